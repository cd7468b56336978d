package agent

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/foundry-appliance/foundry/discovery-os/token"
)

// Screen is what the console shows.
type Screen struct {
	Token     string // FOUNDRY-XXXX-XXXX-XXXX, "" before the first one
	ExpiresAt time.Time
	MAC, IP   string
	URL       string
	Status    string
	// Error is the last failure, shown until the status changes.
	Error string
	// Via is the interface the agent reached the appliance through when it
	// is not the boot NIC ("eth1 52:54:00:12:34:57"); "" for the boot NIC.
	Via string
	// Notice is a problem that stays on the screen until it is replaced
	// (the boot NIC without a driver), unlike Error.
	Notice string
}

// Console shows the agent's state to whoever stands at the machine.
type Console interface {
	// Update changes the screen; fn runs under the console's lock.
	Update(fn func(*Screen))
}

// Render draws the full screen as text for a terminal of at least 80×24,
// with the remaining token validity computed at now.
func Render(s Screen, now time.Time) string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("  FOUNDRY discovery")
	line("  %s", strings.Repeat("─", 76))
	line("")
	if s.Token != "" {
		line("  Registration token (type it into Foundry to approve this machine):")
		line("")
		for _, l := range BigText(strings.TrimPrefix(s.Token, token.Prefix)) {
			line("  %s", l)
		}
		line("")
		rem := s.ExpiresAt.Sub(now)
		if rem < 0 {
			rem = 0
		}
		line("  %s   valid for %02d:%02d", s.Token, int(rem.Minutes()), int(rem.Seconds())%60)
	} else {
		line("  No registration token yet.")
	}
	line("")
	line("  MAC        %s", s.MAC)
	if s.Via != "" {
		line("  Via        %s", s.Via)
	}
	line("  IP         %s", or(s.IP, "(none yet)"))
	line("  Appliance  %s", s.URL)
	line("  Status     %s", s.Status)
	if s.Error != "" {
		line("")
		line("  ERROR      %s", s.Error)
	}
	if s.Notice != "" {
		line("")
		for i, l := range wrap(s.Notice, 65) {
			line("  %-10s %s", map[bool]string{true: "NOTE", false: ""}[i == 0], l)
		}
	}
	return b.String()
}

// wrap breaks text into lines of at most width bytes at spaces (a longer
// word gets a line of its own).
func wrap(text string, width int) []string {
	var out []string
	cur := ""
	for _, w := range strings.Fields(text) {
		if cur != "" && len(cur)+1+len(w) > width {
			out = append(out, cur)
			cur = ""
		}
		if cur != "" {
			cur += " "
		}
		cur += w
	}
	if cur != "" {
		out = append(out, cur)
	}
	return out
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// TTYConsole draws the screen on a terminal (the VGA console, /dev/tty0),
// redrawn in place, and writes plain lines for automation to a serial
// console: the token whenever it changes, the status whenever it changes.
type TTYConsole struct {
	// Screen receives the full-screen view; nil = none.
	Screen io.Writer
	// Serial receives plain lines; nil = none.
	Serial io.Writer
	// Now is the clock for the remaining time. Default time.Now.
	Now func() time.Time

	mu                    sync.Mutex
	s                     Screen
	lastToken, lastStatus string
	lastError, lastNotice string
}

// Update applies fn and redraws.
func (c *TTYConsole) Update(fn func(*Screen)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	prevStatus := c.s.Status
	fn(&c.s)
	if c.s.Status != prevStatus && c.s.Error == c.lastError {
		c.s.Error = "" // a new status clears an old error
	}
	if c.Serial != nil {
		if c.s.Token != c.lastToken && c.s.Token != "" {
			fmt.Fprintf(c.Serial, "registration token: %s\n", c.s.Token)
		}
		if c.s.Status != c.lastStatus {
			fmt.Fprintf(c.Serial, "foundry: %s\n", c.s.Status)
		}
		if c.s.Error != c.lastError && c.s.Error != "" {
			fmt.Fprintf(c.Serial, "foundry: error: %s\n", c.s.Error)
		}
		if c.s.Notice != c.lastNotice && c.s.Notice != "" {
			fmt.Fprintf(c.Serial, "foundry: notice: %s\n", c.s.Notice)
		}
	}
	c.lastToken, c.lastStatus, c.lastError, c.lastNotice = c.s.Token, c.s.Status, c.s.Error, c.s.Notice
	c.draw()
}

// Tick redraws the screen (for the remaining time); call it every second.
func (c *TTYConsole) Tick() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draw()
}

func (c *TTYConsole) draw() {
	if c.Screen == nil {
		return
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	// Home, draw, then clear what is left of the old screen: no flicker.
	text := strings.ReplaceAll(Render(c.s, now()), "\n", "\x1b[K\r\n")
	fmt.Fprint(c.Screen, "\x1b[?25l\x1b[H"+text+"\x1b[J")
}
