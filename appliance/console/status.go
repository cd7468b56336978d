// Package console is the appliance's face at the machine: the status page
// shown on the screen (VGA, /dev/tty1) and the serial console (/dev/ttyS0),
// the single-line commands typed on either, and the first-boot setup dialog
// that asks for the provisioning interface, address and range.
//
// Rendering is pure (Render, a function of a Status and a width); Console
// writes pages to terminals, Input reads lines from them, Setup is a
// question-and-answer dialog over an Input and a writer. Nothing here opens a
// device: the appliance init hands in the readers and writers.
package console

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Status is what the status page shows.
type Status struct {
	// Version is the appliance's version, shown in the title.
	Version string
	// URLs are the dashboard's addresses ("http://10.77.0.1:8080/").
	URLs []string
	// TokenHint says how to get the admin token; default DefaultTokenHint.
	TokenHint string
	// Token is the admin token, non-empty only while the operator asked to
	// see it.
	Token string
	// Segments are the served network segments.
	Segments []Segment
	// Links are the machine's network interfaces.
	Links []Link
	// Machines counts machines by state, shown in the order given; states
	// with no machine are left out.
	Machines []StateCount
	// Events are the latest events, newest first; the page shows at most
	// MaxEvents.
	Events []Event
	// DataDisk describes the data disk ("/dev/vdb (FOUNDRY-DATA, ext4, 8.0
	// GiB)"); "" when there is none.
	DataDisk string
	// Warnings are shown first and loud (running from RAM, no provisioning
	// segment).
	Warnings []string
	// Error is the latest failure ("API not answering: ..."), shown loud
	// after the warnings; "" when none.
	Error string
}

// Segment is one served network segment.
type Segment struct {
	Name      string // segment name
	Interface string // interface it is served on
	Address   string // the appliance's address on it ("10.77.0.1/24")
	Range     string // DHCP range ("10.77.0.100-10.77.0.200"), "" in proxy mode
}

// Link is one network interface of the appliance.
type Link struct {
	Name    string         // "ens3"
	MAC     string         // "52:54:00:12:34:56"
	Driver  string         // "virtio_net"
	Carrier bool           // link up
	Addrs   []netip.Prefix // its addresses
	Role    string         // "provisioning", "uplink", "" for none
}

// StateCount is how many machines are in one state.
type StateCount struct {
	State string
	Count int
}

// Event is one line of the event list.
type Event struct {
	Time time.Time
	Text string
}

// MaxEvents is how many events the page shows.
const MaxEvents = 8

// DefaultTokenHint is shown when Status.TokenHint is empty.
const DefaultTokenHint = "type t and Enter to show it"

// DefaultWidth is the page width when none is given: the VGA text console's.
const DefaultWidth = 80

// warnMark starts every loud line, so that a warning stands out on a plain
// serial log too.
const warnMark = "!! "

// helpLines are the command help, longest first; the page ends with the
// longest that fits.
var helpLines = []string{
	"Commands (type, then Enter): t token  s setup  p power off  r reboot  h help",
	"t token  s setup  p power off  r reboot  h help",
	"t token s setup p off r reboot h help",
	"t s p r h + Enter",
}

// pageLine is one line of the page; loud lines are highlighted on screen.
type pageLine struct {
	text string
	loud bool
}

// Render draws the status page as text lines of at most width cells (default
// DefaultWidth), each ending in "\n", the last one the command help. It is a
// pure function of its arguments.
func Render(s Status, width int) string {
	return join(render(s, width, 0))
}

func join(lines []pageLine) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.text)
		b.WriteByte('\n')
	}
	return b.String()
}

// render lays out the page; with maxLines > 0 it leaves out the oldest
// events, then lines above the help line, until the page fits.
func render(s Status, width, maxLines int) []pageLine {
	if width <= 0 {
		width = DefaultWidth
	}
	events := min(len(s.Events), MaxEvents)
	for {
		lines := layout(s, width, events)
		if maxLines <= 0 || len(lines) <= maxLines {
			return lines
		}
		if events > 0 {
			events--
			continue
		}
		if maxLines == 1 {
			return lines[len(lines)-1:]
		}
		return append(lines[:maxLines-1], lines[len(lines)-1])
	}
}

func layout(s Status, w, events int) []pageLine {
	var out []pageLine
	add := func(loud bool, texts ...string) {
		for _, t := range texts {
			out = append(out, pageLine{cut(t, w), loud})
		}
	}
	blank := func() { add(false, "") }
	ind := "  "
	if w < 40 {
		ind = ""
	}
	// field draws "  Label      value", wrapping the value under itself.
	const labelCells = 13
	field := func(label string, values ...string) {
		head := ind + label + strings.Repeat(" ", max(labelCells-cells(label), 1))
		pad := strings.Repeat(" ", cells(head))
		avail := w - cells(head)
		if avail < 12 || longestWord(values) > avail {
			// Too narrow for a column: the values go under the label,
			// where a URL or a path has the room to stay whole.
			add(false, ind+label)
			head, pad, avail = ind+"  ", ind+"  ", w-cells(ind)-2
		}
		for _, v := range values {
			for _, l := range wrap(clean(v), avail) {
				add(false, head+l)
				head = pad
			}
		}
	}

	for _, warn := range s.Warnings {
		loud(&out, clean(warn), w)
	}
	if s.Error != "" {
		loud(&out, "error: "+clean(s.Error), w)
	}
	if len(out) > 0 {
		blank()
	}

	title := ind + "FOUNDRY appliance"
	if s.Version != "" {
		title += " " + clean(s.Version)
	}
	add(false, title, ind+strings.Repeat("─", max(min(w-2*len(ind), 76), 1)))
	if len(s.URLs) == 0 {
		field("Dashboard", "(no address yet)")
	} else {
		field("Dashboard", s.URLs...)
	}
	if s.Token != "" {
		field("Admin token", s.Token)
	} else {
		field("Admin token", or(s.TokenHint, DefaultTokenHint))
	}
	field("Data disk", or(s.DataDisk, "none: running from RAM"))
	field("Machines", machines(s.Machines))
	blank()

	add(false, ind+"Segments")
	if len(s.Segments) == 0 {
		add(false, ind+"  none")
	}
	for _, g := range s.Segments {
		rng := "proxy"
		if g.Range != "" {
			rng = "range " + g.Range
		}
		iface := "relayed"
		if g.Interface != "" {
			iface = "on " + g.Interface
		}
		add(false, pack(ind+"  ", ind+"    ", "  ", cleanAll(g.Name, iface, g.Address, rng), w)...)
	}
	add(false, ind+"Interfaces")
	if len(s.Links) == 0 {
		add(false, ind+"  none")
	}
	for _, l := range s.Links {
		add(false, pack(ind+"  ", ind+"    ", "  ", linkParts(l), w)...)
	}

	if events > 0 {
		blank()
		add(false, ind+"Latest events")
		for _, e := range s.Events[:events] {
			add(false, ind+"  "+eventTime(e.Time, w)+"  "+clean(e.Text))
		}
	}
	blank()
	help := helpLines[len(helpLines)-1]
	for _, h := range helpLines {
		if cells(ind+h) <= w {
			help = h
			break
		}
	}
	add(false, ind+help)
	return out
}

func longestWord(values []string) int {
	n := 0
	for _, v := range values {
		for _, w := range strings.Fields(clean(v)) {
			n = max(n, cells(w))
		}
	}
	return n
}

// loud appends a warning, wrapped, every line marked.
func loud(out *[]pageLine, text string, w int) {
	for i, l := range wrap(text, w-len(warnMark)) {
		if i == 0 {
			l = warnMark + l
		} else {
			l = "   " + l
		}
		*out = append(*out, pageLine{cut(l, w), true})
	}
}

func machines(counts []StateCount) string {
	var parts []string
	total := 0
	for _, c := range counts {
		if c.Count > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.Count, clean(c.State)))
			total += c.Count
		}
	}
	if total == 0 {
		return "none yet"
	}
	return fmt.Sprintf("%d: %s", total, strings.Join(parts, ", "))
}

// linkParts are the fields of an interface line, also used by Setup's list.
func linkParts(l Link) []string {
	state := "no link"
	if l.Carrier {
		state = "link up"
	}
	parts := cleanAll(l.Name, or(l.MAC, "no MAC"), or(l.Driver, "no driver"), state)
	if len(l.Addrs) == 0 {
		parts = append(parts, "no address")
	}
	for _, a := range l.Addrs {
		parts = append(parts, a.String())
	}
	if l.Role != "" {
		parts = append(parts, "("+clean(l.Role)+")")
	}
	return parts
}

func eventTime(t time.Time, w int) string {
	switch {
	case t.IsZero() && w >= 60:
		return strings.Repeat(" ", len("Jan 02 15:04:05"))
	case t.IsZero():
		return strings.Repeat(" ", len("15:04"))
	case w >= 60:
		return t.Format("Jan 02 15:04:05")
	}
	return t.Format("15:04")
}

func cleanAll(s ...string) []string {
	for i := range s {
		s[i] = clean(s[i])
	}
	return s
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
