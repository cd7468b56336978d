package console

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// countWriter records each Write separately.
type countWriter struct {
	mu     sync.Mutex
	writes []string
}

func (w *countWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, string(p))
	return len(p), nil
}

func (w *countWriter) all() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.writes, "")
}

func TestConsoleSerialOnlyOnChange(t *testing.T) {
	var serial countWriter
	c := &Console{Serial: &serial}
	s := full()
	c.Show(s)
	c.Show(s)
	c.Show(s)
	if len(serial.writes) != 1 {
		t.Fatalf("3 Shows of one status wrote %d pages, want 1", len(serial.writes))
	}
	if want := "\n" + Render(s, 80); serial.writes[0] != want {
		t.Errorf("serial page = %q, want the plain page after a blank line %q", serial.writes[0], want)
	}
	if strings.Contains(serial.writes[0], "\x1b") {
		t.Error("the serial page holds escape sequences")
	}
	s.Token = "fa-secret"
	c.Show(s)
	if len(serial.writes) != 2 || !strings.Contains(serial.writes[1], "fa-secret") {
		t.Fatalf("a changed status did not print a new page: %q", serial.writes)
	}
	s.Token = ""
	c.Show(s)
	c.Show(s)
	if len(serial.writes) != 3 || strings.Contains(serial.writes[2], "fa-secret") {
		t.Fatalf("hiding the token again: %d pages, last %q", len(serial.writes), serial.writes[len(serial.writes)-1])
	}
}

func TestConsoleScreen(t *testing.T) {
	var screen, serial countWriter
	c := &Console{Screen: &screen, Serial: &serial, Width: 40, Height: 12}
	s := full()
	c.Show(s)
	if len(screen.writes) != 1 {
		t.Fatalf("%d screen writes, want 1", len(screen.writes))
	}
	draw := screen.writes[0]
	if !strings.HasPrefix(draw, "\x1b[H") || !strings.HasSuffix(draw, "\x1b[J\x1b[?25h") {
		t.Errorf("the screen is not redrawn in place from home with the rest cleared: %q", draw)
	}
	if !strings.Contains(draw, "\x1b[1;31m!! running from RAM") {
		t.Errorf("the warning is not highlighted: %q", draw)
	}
	lines := strings.Split(strings.TrimSuffix(strings.TrimPrefix(draw, "\x1b[H"), "\x1b[J\x1b[?25h"), "\r\n")
	lines = lines[:len(lines)-1] // after the last "\r\n": the cursor's line
	if len(lines) > 11 {
		t.Errorf("%d lines on a 12-line screen: one must stay free for typing", len(lines))
	}
	for _, l := range lines {
		if !strings.HasSuffix(l, "\x1b[K") {
			t.Errorf("line not cleared to its end: %q", l)
		}
		plain := strings.NewReplacer("\x1b[K", "", "\x1b[1;31m", "", "\x1b[0m", "").Replace(l)
		if cells(plain) > 40 {
			t.Errorf("screen line wider than 40: %q", plain)
		}
	}
	if last := lines[len(lines)-1]; !strings.Contains(last, "t token") {
		t.Errorf("the screen does not end with the help line: %q", last)
	}
	// The serial page is never shortened.
	if !strings.Contains(serial.all(), "12:00  appliance started") {
		t.Error("the serial page lost its events")
	}

	c.Show(s)
	if len(screen.writes) != 1 {
		t.Error("an unchanged page was redrawn (it would wipe what the operator types)")
	}
	s.Warnings = []string{"no provisioning segment"}
	c.Show(s)
	if len(screen.writes) != 2 || !strings.Contains(screen.writes[1], "no provisioning segment") {
		t.Errorf("a changed page was not redrawn: %q", screen.writes[1:])
	}
}

func TestConsoleSay(t *testing.T) {
	var screen, serial bytes.Buffer
	c := &Console{Screen: &screen, Serial: &serial}
	c.Say("data disk: %s mounted", "/dev/vdb\x1b[2J")
	if got, want := serial.String(), "data disk: /dev/vdb?[2J mounted\n"; got != want {
		t.Errorf("serial = %q, want %q", got, want)
	}
	if got, want := screen.String(), "data disk: /dev/vdb?[2J mounted\x1b[K\r\n"; got != want {
		t.Errorf("screen = %q, want %q", got, want)
	}
	// Neither console is required.
	(&Console{}).Say("nowhere")
	(&Console{}).Show(full())
}

// TestConsoleConcurrent is for the race detector: the status loop and the
// boot messages write at once.
func TestConsoleConcurrent(t *testing.T) {
	var screen, serial countWriter
	c := &Console{Screen: &screen, Serial: &serial}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 20 {
				s := full()
				s.Version = fmt.Sprint(i, j)
				c.Show(s)
				c.Say("step %d %d", i, j)
			}
		}()
	}
	wg.Wait()
	// Each page is written whole, never interleaved with another write.
	for _, w := range serial.writes {
		if strings.HasPrefix(w, "\n") && !strings.HasSuffix(w, "h help\n") {
			t.Errorf("torn page: %q", w)
		}
	}
	if n := strings.Count(serial.all(), "FOUNDRY appliance"); n != 80 {
		t.Errorf("%d serial pages, want 80 (every version differs)", n)
	}
}
