package console

import (
	"bufio"
	"context"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// MaxLine is the longest line Input keeps; the rest of a longer line is
// dropped (noise on a serial line must not grow memory).
const MaxLine = 1024

// Input merges the lines typed on several consoles: whichever console the
// operator uses, the next whole line comes out of Line.
//
// A line ends at "\n", "\r" or "\r\n" (a serial terminal in raw mode sends
// "\r", a tty in canonical mode "\n"); backspace and DEL delete the last
// character, Ctrl-U the whole line, other control characters are dropped.
type Input struct {
	ctx   context.Context
	lines chan string
	done  chan struct{} // closed when every reader has ended
}

// NewInput starts one goroutine per reader. A goroutine ends when its reader
// ends (EOF or an error; a last unterminated line is still delivered) or,
// once its current read returns, when ctx ends: a Read blocked on a quiet
// terminal cannot be interrupted from here, so a caller that needs the
// goroutine gone at once closes the reader. nil readers are skipped.
func NewInput(ctx context.Context, readers ...io.Reader) *Input {
	in := &Input{ctx: ctx, lines: make(chan string), done: make(chan struct{})}
	var wg sync.WaitGroup
	for _, r := range readers {
		if r == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			in.read(r)
		}()
	}
	go func() {
		wg.Wait()
		close(in.done)
	}()
	return in
}

// Line returns the next line typed on any console, without its line end. It
// returns ctx's error when ctx ends, the error of NewInput's context when
// that ended, and io.EOF when every reader has ended.
func (in *Input) Line(ctx context.Context) (string, error) {
	select {
	case l := <-in.lines:
		return l, nil
	case <-ctx.Done():
		return "", ctx.Err()
	case <-in.ctx.Done():
		return "", in.ctx.Err()
	case <-in.done:
		// Every sender has returned, so no line can be pending.
		if err := in.ctx.Err(); err != nil {
			return "", err
		}
		return "", io.EOF
	}
}

func (in *Input) read(r io.Reader) {
	br := bufio.NewReader(r)
	var line []byte
	afterCR := false
	for {
		c, err := br.ReadByte()
		if err != nil {
			if len(line) > 0 {
				in.send(line)
			}
			return
		}
		if c == '\n' && afterCR { // the second half of "\r\n"
			afterCR = false
			continue
		}
		afterCR = c == '\r'
		switch {
		case c == '\r' || c == '\n':
			if !in.send(line) {
				return
			}
			line = line[:0]
		case c == '\b' || c == 0x7f:
			if len(line) > 0 {
				_, size := utf8.DecodeLastRune(line)
				line = line[:len(line)-size]
			}
		case c == 0x15: // Ctrl-U
			line = line[:0]
		case c < 0x20:
		case len(line) < MaxLine:
			line = append(line, c)
		}
	}
}

// send hands a line to Line; false when the context ended first.
func (in *Input) send(line []byte) bool {
	select {
	case in.lines <- strings.ToValidUTF8(string(line), "?"):
		return true
	case <-in.ctx.Done():
		return false
	}
}

// Command is a command typed at the status page.
type Command int

// The commands; CmdNone is an empty or unknown line.
const (
	CmdNone     Command = iota
	CmdToken            // show the admin token
	CmdSetup            // run the setup dialog again
	CmdPowerOff         // shut down cleanly and power off
	CmdReboot           // shut down cleanly and reboot
	CmdHelp             // explain the commands
)

var commandNames = [...]string{"none", "token", "setup", "poweroff", "reboot", "help"}

// String returns the command's long name ("token").
func (c Command) String() string {
	if c < 0 || int(c) >= len(commandNames) {
		return "Command(" + strconv.Itoa(int(c)) + ")"
	}
	return commandNames[c]
}

// ParseCommand reads a command line: "t"/"token", "s"/"setup",
// "p"/"poweroff", "r"/"reboot", "h"/"?"/"help", case-insensitive, spaces
// around it ignored. Anything else is CmdNone.
func ParseCommand(line string) Command {
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "t", "token":
		return CmdToken
	case "s", "setup":
		return CmdSetup
	case "p", "poweroff":
		return CmdPowerOff
	case "r", "reboot":
		return CmdReboot
	case "h", "?", "help":
		return CmdHelp
	}
	return CmdNone
}
