package console

import (
	"fmt"
	"io"
	"strings"
	"sync"
)

// Console shows the status page on a screen and a serial console.
//
// The screen gets the page redrawn in place (cursor home, each line cleared
// to its end, the rest of the screen cleared), warnings highlighted, with
// the cursor left on the line below the help line, where the operator's
// typing echoes. The serial console gets the whole page again, plain, only
// when its text changed, so that a serial log reads as a history of pages.
type Console struct {
	// Screen receives the page redrawn in place with ANSI sequences; nil =
	// none.
	Screen io.Writer
	// Serial receives the plain page whenever its text changed, and the
	// messages of Say; nil = none.
	Serial io.Writer
	// Width is the page width in cells. Default DefaultWidth (80).
	Width int
	// Height is the screen's height in lines; the page on the screen is
	// shortened to leave one line free for typing (the oldest events go
	// first), so that drawing never scrolls it. Default 25, the VGA text
	// console's. The serial page is never shortened.
	Height int

	mu                     sync.Mutex
	lastScreen, lastSerial string // "" before the first page
}

// Show draws s. The screen is redrawn only when its page changed, so that a
// periodic Show does not wipe what the operator is typing; the serial
// console likewise. Safe for concurrent use.
func (c *Console) Show(s Status) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Serial != nil {
		page := Render(s, c.Width)
		if page != c.lastSerial {
			// A blank line first: the page must not run on from a prompt
			// or a message.
			io.WriteString(c.Serial, "\n"+page)
			c.lastSerial = page
		}
	}
	if c.Screen != nil {
		height := c.Height
		if height <= 0 {
			height = 25
		}
		lines := render(s, c.Width, max(height-1, 1))
		page := join(lines)
		if page != c.lastScreen {
			io.WriteString(c.Screen, screenText(lines))
			c.lastScreen = page
		}
	}
}

// screenText is the ANSI rendering of a page: home, each line cleared to its
// end after its text, loud lines in bold red, then the rest of the screen
// cleared and the cursor shown at the start of the line under the page.
func screenText(lines []pageLine) string {
	var b strings.Builder
	b.WriteString("\x1b[H")
	for _, l := range lines {
		if l.loud {
			b.WriteString("\x1b[1;31m" + l.text + "\x1b[0m")
		} else {
			b.WriteString(l.text)
		}
		b.WriteString("\x1b[K\r\n")
	}
	b.WriteString("\x1b[J\x1b[?25h")
	return b.String()
}

// Say writes a one-off message line on both consoles (boot progress: "data
// disk: /dev/vdb mounted"). On the screen it appears under the page, where
// it stays until the page next changes. Control characters in the message
// are replaced. Safe for concurrent use.
func (c *Console) Say(format string, args ...any) {
	msg := clean(fmt.Sprintf(format, args...))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Serial != nil {
		io.WriteString(c.Serial, msg+"\n")
	}
	if c.Screen != nil {
		io.WriteString(c.Screen, msg+"\x1b[K\r\n")
	}
}
