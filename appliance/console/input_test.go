package console

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestInputMergesPipes(t *testing.T) {
	ctx := testCtx(t)
	vgaR, vgaW := io.Pipe()
	serR, serW := io.Pipe()
	in := NewInput(ctx, vgaR, nil, serR)

	go func() {
		io.WriteString(vgaW, "t\n")
		io.WriteString(serW, "setup\r\n") // a terminal's CR LF is one line end
		io.WriteString(vgaW, "rebo")      // one line in two writes
		io.WriteString(vgaW, "ot\n")
		io.WriteString(serW, "h\r") // a raw serial line ends in CR alone
		io.WriteString(serW, "\n")  // ... and its LF may come in a later read
		io.WriteString(serW, "\n")  // a real empty line
		vgaW.Close()
		io.WriteString(serW, "last") // unterminated at EOF
		serW.Close()
	}()
	var got []string
	for {
		l, err := in.Line(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, l)
	}
	// The order between the two consoles is not defined; within one it is.
	vga, ser := []string{"t", "reboot"}, []string{"setup", "h", "", "last"}
	var gotVGA, gotSer []string
	for _, l := range got {
		switch l {
		case "t", "reboot":
			gotVGA = append(gotVGA, l)
		default:
			gotSer = append(gotSer, l)
		}
	}
	if strings.Join(gotVGA, "|") != strings.Join(vga, "|") || strings.Join(gotSer, "|") != strings.Join(ser, "|") {
		t.Errorf("lines = %q, want %q from one and %q from the other", got, vga, ser)
	}
	if len(got) != 6 {
		t.Errorf("%d lines, want 6: %q", len(got), got)
	}
	// After EOF on every reader Line keeps saying so.
	if _, err := in.Line(ctx); !errors.Is(err, io.EOF) {
		t.Errorf("Line after the end = %v, want EOF", err)
	}
}

func TestInputEditing(t *testing.T) {
	ctx := testCtx(t)
	in := NewInput(ctx, strings.NewReader("tx\b\n10.77.0.5\x7f1/24\nwrong\x15s\n\x1b[Ahelp\nnon-utf8 \xff\n"+strings.Repeat("a", MaxLine+50)+"\n"))
	want := []string{"t", "10.77.0.1/24", "s", "[Ahelp", "non-utf8 ?", strings.Repeat("a", MaxLine)}
	for _, w := range want {
		l, err := in.Line(ctx)
		if err != nil || l != w {
			t.Errorf("Line = %q, %v; want %q", l, err, w)
		}
	}
}

func TestInputContext(t *testing.T) {
	// Line's own context ends the wait; the Input stays usable.
	r, w := io.Pipe()
	defer w.Close()
	in := NewInput(context.Background(), r)
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := in.Line(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Line with an expired context = %v", err)
	}
	go io.WriteString(w, "p\n")
	if l, err := in.Line(testCtx(t)); err != nil || l != "p" {
		t.Fatalf("Line after a timeout = %q, %v", l, err)
	}

	// NewInput's context ends every reader once its read returns.
	ctx, stop := context.WithCancel(context.Background())
	r2, w2 := io.Pipe()
	in2 := NewInput(ctx, r2)
	stop()
	if _, err := in2.Line(testCtx(t)); !errors.Is(err, context.Canceled) {
		t.Errorf("Line after NewInput's context ended = %v, want Canceled", err)
	}
	done := make(chan struct{})
	go func() {
		io.WriteString(w2, "x\n") // lets the blocked read return
		close(done)
	}()
	select {
	case <-in2.done:
	case <-time.After(5 * time.Second):
		t.Error("the reader goroutine did not end after its context")
	}
	w2.Close()
	<-done
}

func TestParseCommand(t *testing.T) {
	tests := []struct {
		line string
		want Command
	}{
		{"t", CmdToken}, {"token", CmdToken}, {" T ", CmdToken}, {"TOKEN\t", CmdToken},
		{"s", CmdSetup}, {"setup", CmdSetup}, {"Setup", CmdSetup},
		{"p", CmdPowerOff}, {"poweroff", CmdPowerOff}, {"PowerOff", CmdPowerOff},
		{"r", CmdReboot}, {"reboot", CmdReboot},
		{"h", CmdHelp}, {"?", CmdHelp}, {"help", CmdHelp}, {" HELP ", CmdHelp},
		{"", CmdNone}, {"   ", CmdNone}, {"x", CmdNone}, {"tok", CmdNone}, {"t t", CmdNone}, {"reboot now", CmdNone},
	}
	for _, tt := range tests {
		if got := ParseCommand(tt.line); got != tt.want {
			t.Errorf("ParseCommand(%q) = %v, want %v", tt.line, got, tt.want)
		}
	}
	for c, want := range map[Command]string{CmdNone: "none", CmdToken: "token", CmdPowerOff: "poweroff", CmdHelp: "help", Command(42): "Command(42)"} {
		if c.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(c), c.String(), want)
		}
	}
}

// FuzzInputLines: whatever bytes a console sends, the lines that come out
// are valid UTF-8 without control characters and no longer than MaxLine.
func FuzzInputLines(f *testing.F) {
	f.Add([]byte("t\r\nsetup\n\rx\b\x7f\x15y"))
	f.Add([]byte("\xff\xfe\x1b[2J\x00\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := testCtx(t)
		in := NewInput(ctx, strings.NewReader(string(data)))
		for {
			l, err := in.Line(ctx)
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !utf8.ValidString(l) || len(l) > MaxLine {
				t.Fatalf("bad line %q", l)
			}
			for _, c := range []byte(l) {
				if c < 0x20 || c == 0x7f {
					t.Fatalf("control character in %q", l)
				}
			}
		}
	})
}
