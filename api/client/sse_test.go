package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestSSEReader(t *testing.T) {
	msg := func(data string) RawEvent { return RawEvent{Type: "message", Data: data} }
	tests := []struct {
		name   string
		stream string
		want   []RawEvent
	}{
		{"multi-line data joined with LF", "data: {\"a\":\ndata: 1}\n\n", []RawEvent{msg("{\"a\":\n1}")}},
		{"no space after the colon", "data:x\n\n", []RawEvent{msg("x")}},
		{"only one space removed", "data:  x \n\n", []RawEvent{msg(" x ")}},
		{"colon inside the value", "data: a:b\n\n", []RawEvent{msg("a:b")}},
		{"comments ignored", ": keep-alive\ndata: x\n:\n\n", []RawEvent{msg("x")}},
		{"comment-only block dispatches nothing", ": hello\n\n", nil},
		{"named event", "event: machine\ndata: {}\n\n", []RawEvent{{Type: "machine", Data: "{}"}}},
		{"event name resets after dispatch", "event: a\ndata: 1\n\ndata: 2\n\n", []RawEvent{{Type: "a", Data: "1"}, msg("2")}},
		{"blank line without data resets the name", "event: a\n\ndata: x\n\n", []RawEvent{msg("x")}},
		{"empty data field dispatches", "data:\n\n", []RawEvent{msg("")}},
		{"field without colon has an empty value", "data\n\n", []RawEvent{msg("")}},
		{"two empty data fields are one LF", "data:\ndata\n\n", []RawEvent{msg("\n")}},
		{"id persists across events", "id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\n",
			[]RawEvent{{Type: "message", Data: "a", ID: "7"}, {Type: "message", Data: "b", ID: "7"}, msg("c")}},
		{"id with NUL ignored", "id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n",
			[]RawEvent{{Type: "message", Data: "a", ID: "1"}, {Type: "message", Data: "b", ID: "1"}}},
		{"unknown fields and retry ignored", "retry: 10\nfoo: bar\nData: no\ndata: x\n\n", []RawEvent{msg("x")}},
		{"CRLF", "event: e\r\ndata: a\r\ndata: b\r\n\r\n", []RawEvent{{Type: "e", Data: "a\nb"}}},
		{"bare CR", "data: a\rdata: b\r\rdata: c\r\r", []RawEvent{msg("a\nb"), msg("c")}},
		{"mixed endings", "data: a\r\ndata: b\n\rdata: c\r\n\n", []RawEvent{msg("a\nb"), msg("c")}},
		{"byte order mark", "\uFEFFdata: x\n\n", []RawEvent{msg("x")}},
		{"unfinished event discarded", "data: a\n\ndata: b\n", []RawEvent{msg("a")}},
		{"unfinished line discarded", "data: a\n\ndata: b", []RawEvent{msg("a")}},
		{"empty stream", "", nil},
	}
	readers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		// Every line ending split across reads, CR then LF included.
		{"byte by byte", iotest.OneByteReader},
	}
	for _, tt := range tests {
		for _, rd := range readers {
			t.Run(tt.name+"/"+rd.name, func(t *testing.T) {
				r := NewEventReader(rd.wrap(strings.NewReader(tt.stream)))
				var got []RawEvent
				for {
					ev, err := r.Next()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, ev)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("stream %q\ngot  %q\nwant %q", tt.stream, got, tt.want)
				}
			})
		}
	}
}

// An event that ends with a bare CR must be dispatched when it arrives,
// not when the next bytes show whether a LF follows.
func TestSSEReaderDoesNotWaitAfterCR(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte("data: now\r\r"))
	got := make(chan RawEvent, 1)
	go func() {
		ev, err := NewEventReader(pr).Next()
		if err == nil {
			got <- ev
		}
	}()
	select {
	case ev := <-got:
		if ev.Data != "now" {
			t.Errorf("data %q", ev.Data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the event was held back after its final CR")
	}
}

// Watch decodes events whose JSON the server split over several data
// lines, passes the stream's last event ID on, and skips pings.
func TestWatchRawStream(t *testing.T) {
	const stream = ": welcome\n" +
		"event: ping\ndata: {\"time\":\"2025-03-01T12:00:00Z\"}\n\n" +
		"id: 41\nevent: machine\ndata: {\"type\": \"updated\",\ndata:  \"machine\": {\"mac\": \"52:54:00:12:34:56\",\r\ndata:\"hostname\": \"web\\n01\"}}\n\n" +
		"event: resync\ndata:{\"reason\":\"missed\"}\r\n\r\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/events" || r.URL.Query().Get("mac") != "52:54:00:12:34:56" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, stream)
	}))
	defer srv.Close()
	var got []Event
	err := (&Client{BaseURL: srv.URL}).Watch(context.Background(), "52:54:00:12:34:56", func(ev Event) error {
		got = append(got, ev)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d events, want a machine and a resync: %+v", len(got), got)
	}
	m := got[0]
	if m.Name != "machine" || m.ID != "41" || m.Machine == nil || m.Machine.Type != "updated" ||
		m.Machine.Machine.MAC != "52:54:00:12:34:56" || m.Machine.Machine.Hostname != "web\n01" {
		t.Errorf("machine event %+v (machine %+v)", m, m.Machine)
	}
	if r := got[1]; r.Name != "resync" || r.ID != "41" || r.Resync == nil || r.Resync.Reason != "missed" {
		t.Errorf("resync event %+v", r)
	}
}

func TestWatchStopsOnCallbackErrorAndBadJSON(t *testing.T) {
	stop := errors.New("stop")
	tests := []struct {
		name, stream string
		fnErr        error
		want         string
	}{
		{"callback error returned", "event: resync\ndata: {}\n\nevent: resync\ndata: {}\n\n", stop, "stop"},
		{"undecodable machine event", "event: machine\ndata: {\"type\":\ndata: \n\n", nil, "decode machine event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, tt.stream)
			}))
			defer srv.Close()
			calls := 0
			err := (&Client{BaseURL: srv.URL}).Watch(context.Background(), "", func(Event) error {
				calls++
				return tt.fnErr
			})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Watch = %v, want an error about %q", err, tt.want)
			}
			if tt.fnErr != nil && calls != 1 {
				t.Errorf("callback called %d times after returning an error", calls)
			}
		})
	}
}
