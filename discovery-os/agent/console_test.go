package agent

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestBigText(t *testing.T) {
	got := BigText("A-2")
	// Glyph placement, exactly, for the first and third rows.
	rows := []string{
		" ██       ███ ",
		"████ ████  ██ ",
	}
	if got[0] != rows[0] {
		t.Errorf("row 0 = %q, want %q", got[0], rows[0])
	}
	if got[2] != rows[1] {
		t.Errorf("row 2 = %q, want %q", got[2], rows[1])
	}
	for c := range glyphs {
		for _, row := range glyphs[c] {
			if len(row) != 4 {
				t.Errorf("glyph %q row %q is not 4 wide", c, row)
			}
		}
	}
	for _, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567-" {
		if _, ok := glyphs[c]; !ok {
			t.Errorf("no glyph for %q", c)
		}
	}
	// Every pair of glyphs must differ, or the big token is ambiguous.
	seen := map[[5]string]rune{}
	for c, g := range glyphs {
		if o, dup := seen[g]; dup {
			t.Errorf("glyphs %q and %q are identical", c, o)
		}
		seen[g] = c
	}
}

func TestRender(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	s := Screen{Token: "FOUNDRY-AB2C-D3EF-GH45", ExpiresAt: now.Add(59*time.Minute + 7*time.Second),
		MAC: "52:54:00:12:34:56", IP: "10.77.0.100", URL: "http://10.77.0.1:8080", Status: "waiting for approval",
		Error: "register: connection refused"}
	out := Render(s, now)
	for _, want := range []string{"FOUNDRY-AB2C-D3EF-GH45   valid for 59:07", "52:54:00:12:34:56", "10.77.0.100",
		"http://10.77.0.1:8080", "waiting for approval", "ERROR      register: connection refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("screen lacks %q:\n%s", want, out)
		}
	}
	lines := strings.Split(out, "\n")
	if len(lines) > 25 {
		t.Errorf("screen has %d lines, more than a console's 25", len(lines))
	}
	for _, l := range lines {
		if n := utf8.RuneCountInString(l); n > 80 {
			t.Errorf("line of %d columns: %q", n, l)
		}
	}
	if got := Render(Screen{Token: s.Token, ExpiresAt: now.Add(-time.Minute)}, now); !strings.Contains(got, "valid for 00:00") {
		t.Errorf("expired token:\n%s", got)
	}
}

func TestTTYConsole(t *testing.T) {
	var screen, serial bytes.Buffer
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	c := &TTYConsole{Screen: &screen, Serial: &serial, Now: func() time.Time { return now }}
	c.Update(func(s *Screen) { s.Token, s.ExpiresAt = "FOUNDRY-AAAA-BBBB-CCCC", now.Add(time.Hour) })
	c.Update(func(s *Screen) { s.Status = "registering" })
	c.Update(func(s *Screen) { s.Error = "boom" })
	c.Update(func(s *Screen) { s.Status = "registering" }) // unchanged: no new serial line, error stays
	c.Update(func(s *Screen) { s.Status = "waiting" })     // new status clears the error
	c.Tick()
	lines := strings.Split(strings.TrimSpace(serial.String()), "\n")
	want := []string{"registration token: FOUNDRY-AAAA-BBBB-CCCC", "foundry: registering", "foundry: error: boom", "foundry: waiting"}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("serial:\n%s\nwant:\n%s", serial.String(), strings.Join(want, "\n"))
	}
	frames := strings.Split(screen.String(), "\x1b[?25l\x1b[H")
	if len(frames) != 7 { // "" before the first frame, then 5 updates and a tick
		t.Fatalf("%d frames drawn", len(frames)-1)
	}
	last := frames[len(frames)-1]
	if strings.Contains(last, "boom") || !strings.Contains(last, "waiting") || !strings.HasSuffix(last, "\x1b[J") {
		t.Errorf("last frame:\n%q", last)
	}
}

// TestRenderNotice: the no-driver notice and the interface used instead
// of the boot NIC fit on a console beside the token, and the notice stays
// when the status changes (an error would not).
func TestRenderNotice(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	root, ids := fakeSys(t)
	nics := NetworkControllers(root, ids)
	notice := NoBootNICMessage("52:54:00:aa:bb:cc", nics[1:2], nil)
	s := Screen{Token: "FOUNDRY-AB2C-D3EF-GH45", ExpiresAt: now.Add(time.Hour), MAC: "52:54:00:aa:bb:cc",
		Via: "eth0 52:54:00:aa:bb:cd (the boot NIC has no driver)", IP: "10.77.0.101", URL: "http://10.77.0.1:8080",
		Status: "waiting for approval", Notice: notice}
	out := Render(s, now)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) > 25 {
		t.Errorf("screen has %d lines, more than a console's 25:\n%s", len(lines), out)
	}
	for _, l := range lines {
		if n := utf8.RuneCountInString(l); n > 80 {
			t.Errorf("line of %d columns: %q", n, l)
		}
	}
	if !strings.Contains(out, "Via        eth0 52:54:00:aa:bb:cd") || !strings.Contains(out, "NOTE       no driver for the network controller 10ec:8139") {
		t.Errorf("screen:\n%s", out)
	}
	if joined := strings.Join(strings.Fields(out), " "); !strings.Contains(joined, strings.Join(strings.Fields(notice), " ")) {
		t.Errorf("the wrapped notice lost words:\n%s", out)
	}

	var serial bytes.Buffer
	c := &TTYConsole{Serial: &serial, Now: func() time.Time { return now }}
	c.Update(func(s *Screen) { s.Notice = notice })
	c.Update(func(s *Screen) { s.Status = "DHCP on eth0" })
	c.Update(func(s *Screen) { s.Status = "registering" })
	if n := strings.Count(serial.String(), "foundry: notice: no driver for the network controller 10ec:8139"); n != 1 {
		t.Errorf("notice on the serial console %d times:\n%s", n, serial.String())
	}
	if !strings.Contains(Render(c.s, now), "NOTE") {
		t.Error("a status change cleared the notice")
	}
}
