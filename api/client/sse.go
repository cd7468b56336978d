package client

import (
	"bufio"
	"bytes"
	"io"
	"strings"
)

// RawEvent is one event dispatched from a text/event-stream, pings included
// (Watch decodes them into Events; tests that watch the stream itself read
// these).
type RawEvent struct {
	// Type is the event field; "message" when the event names none.
	Type string
	// Data is the data fields joined with "\n".
	Data string
	// ID is the last event ID the stream set, by this event or an earlier one.
	ID string
}

// EventReader reads events from a text/event-stream as the HTML standard's
// "interpreting an event stream" says (section 9.2.6): lines end with CRLF,
// LF or CR; a line starting with a colon is a comment; "field:value" loses
// one space after the colon, and a line without a colon is a field with an
// empty value; data fields accumulate, joined with "\n"; an empty line
// dispatches the event, unless it had no data field; unknown fields are
// ignored; an event the stream ends in the middle of is discarded.
type EventReader struct {
	sc      *bufio.Scanner
	started bool
	lastID  string
	// crEnded is set when a line ended with CR at the end of the bytes
	// read so far: a LF that follows belongs to that CR.
	crEnded bool
}

// NewEventReader reads the events of the text/event-stream r.
func NewEventReader(r io.Reader) *EventReader {
	s := &EventReader{sc: bufio.NewScanner(r)}
	s.sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	s.sc.Split(s.splitLines)
	return s
}

// Next returns the next event, or io.EOF when the stream ends.
func (s *EventReader) Next() (RawEvent, error) {
	var typ string
	var data strings.Builder
	hasData := false
	for s.sc.Scan() {
		line := s.sc.Text()
		if !s.started {
			s.started = true
			line = strings.TrimPrefix(line, "\uFEFF")
		}
		if line == "" {
			if !hasData {
				typ = ""
				continue
			}
			if typ == "" {
				typ = "message"
			}
			return RawEvent{Type: typ, Data: strings.TrimSuffix(data.String(), "\n"), ID: s.lastID}, nil
		}
		if line[0] == ':' {
			continue
		}
		field, value, found := strings.Cut(line, ":")
		if found {
			value = strings.TrimPrefix(value, " ")
		}
		switch field {
		case "event":
			typ = value
		case "data":
			data.WriteString(value)
			data.WriteByte('\n')
			hasData = true
		case "id":
			if !strings.ContainsRune(value, 0) {
				s.lastID = value
			}
		}
		// "retry" sets the reconnection delay of a browser's EventSource;
		// Watch does not reconnect, so it is ignored like unknown fields.
	}
	if err := s.sc.Err(); err != nil {
		return RawEvent{}, err
	}
	return RawEvent{}, io.EOF
}

// splitLines is a bufio.SplitFunc for the stream's three line endings. A
// CR at the end of what has arrived ends its line at once, so that an
// event is not held back waiting to see whether a LF follows.
func (s *EventReader) splitLines(data []byte, atEOF bool) (int, []byte, error) {
	if s.crEnded && len(data) > 0 {
		s.crEnded = false
		if data[0] == '\n' {
			return 1, nil, nil
		}
	}
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		if data[i] == '\n' {
			return i + 1, data[:i], nil
		}
		if i+1 < len(data) {
			if data[i+1] == '\n' {
				return i + 2, data[:i], nil
			}
			return i + 1, data[:i], nil
		}
		s.crEnded = true
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}
