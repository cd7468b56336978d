package console

import (
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
)

// UPDATE_GOLDEN=1 go test ./appliance/console rewrites testdata/page-*.txt
// from the current output; review the diff before committing it.
var update = os.Getenv("UPDATE_GOLDEN") != ""

func at(h, m, s int) time.Time { return time.Date(2026, 3, 1, h, m, s, 0, time.UTC) }

// full is a status with every part filled in, some of it too long for a
// line.
func full() Status {
	return Status{
		Version:  "0.9.0",
		URLs:     []string{"http://10.77.0.1:8080/", "http://192.168.122.50:8080/"},
		DataDisk: "/dev/vdb (FOUNDRY-DATA, ext4, 8.0 GiB)",
		Warnings: []string{"running from RAM: nothing is kept across a reboot; type s to format a disk and keep machines"},
		Error:    "API not answering: dial tcp 127.0.0.1:8080: connect: connection refused",
		Segments: []Segment{{"discovery", "ens4", "10.77.0.1/24", "10.77.0.100-10.77.0.200"}, {"remote", "", "", ""}},
		Links: []Link{
			{Name: "ens3", MAC: "52:54:00:12:34:56", Driver: "virtio_net", Carrier: true,
				Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.2.15/24")}, Role: "uplink"},
			{Name: "ens4", MAC: "52:54:00:12:34:57", Driver: "e1000", Carrier: true,
				Addrs: []netip.Prefix{netip.MustParsePrefix("10.77.0.1/24")}, Role: "provisioning"},
			{Name: "ens5", MAC: "52:54:00:12:34:58", Driver: "e1000"},
		},
		Machines: []StateCount{{"discovered", 3}, {"approved", 0}, {"installing", 1}},
		Events: []Event{
			{at(12, 3, 4), "machine 52:54:00:aa:bb:cc discovered on segment discovery: 4 CPUs, 8 GiB of memory, 1 disk of 20 GiB"},
			{at(12, 0, 0), "appliance started"},
		},
	}
}

func TestRenderGolden(t *testing.T) {
	for _, width := range []int{80, 40} {
		got := Render(full(), width)
		path := filepath.Join("testdata", "page-"+strconv.Itoa(width)+".txt")
		if update {
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Errorf("width %d: page differs from %s (UPDATE_GOLDEN=1 to accept):\n%s", width, path, got)
		}
	}
}

// checkPage asserts what every page must be: lines of at most width cells,
// printable, ending with a command help line.
func checkPage(t *testing.T, page string, width int) []string {
	t.Helper()
	if !strings.HasSuffix(page, "\n") {
		t.Fatalf("page does not end with a newline: %q", page)
	}
	lines := strings.Split(strings.TrimSuffix(page, "\n"), "\n")
	for i, l := range lines {
		if c := cells(l); c > width {
			t.Errorf("line %d is %d cells wide, more than %d: %q", i+1, c, width, l)
		}
		for _, r := range l {
			if !unicode.IsPrint(r) {
				t.Errorf("line %d holds unprintable %U: %q", i+1, r, l)
			}
		}
	}
	last := strings.TrimSpace(lines[len(lines)-1])
	if !strings.HasPrefix(last, "t ") && !strings.HasPrefix(last, "Commands") {
		t.Errorf("last line is not the command help: %q", last)
	}
	return lines
}

func TestRender(t *testing.T) {
	many := full()
	many.Events = nil
	for i := range 12 {
		many.Events = append(many.Events, Event{at(10, i, 0), "event " + string(rune('A'+i))})
	}
	withToken := full()
	withToken.Token = "fa-0123456789abcdef0123456789abcdef"
	hint := full()
	hint.TokenHint = "type t, or read token on the data disk"
	hostile := Status{
		Version:  "1\x1b[2J",
		Warnings: []string{"bad\x1b]0;owned\x07 warning\nsecond line"},
		Events:   []Event{{at(1, 2, 3), "evil\x1b[31m red\r\n"}},
		Links:    []Link{{Name: "eth\x1b0", MAC: "\x00"}},
		Machines: []StateCount{{"new\x1b[H", 1}},
	}
	wide := Status{Events: []Event{{at(1, 2, 3), strings.Repeat("機械", 40)}}, URLs: []string{"http://" + strings.Repeat("x", 100) + "/"}}

	tests := []struct {
		name   string
		s      Status
		width  int
		want   []string // substrings of the page, in this order
		absent []string
		check  func(t *testing.T, lines []string)
	}{
		{name: "full 80", s: full(), width: 80,
			want: []string{"!! running from RAM", "!! error: API not answering", "FOUNDRY appliance 0.9.0",
				"http://10.77.0.1:8080/", "type t and Enter to show it", "/dev/vdb (FOUNDRY-DATA", "4: 3 discovered, 1 installing",
				"discovery  on ens4  10.77.0.1/24  range 10.77.0.100-10.77.0.200", "remote  relayed  proxy",
				"ens4  52:54:00:12:34:57  e1000  link up  10.77.0.1/24  (provisioning)",
				"ens5  52:54:00:12:34:58  e1000  no link  no address",
				"Mar 01 12:03:04  machine 52:54:00:aa:bb:cc", "Mar 01 12:00:00  appliance started"},
			absent: []string{"approved", "fa-"}},
		{name: "full 40", s: full(), width: 40,
			want: []string{"!! running from RAM", "FOUNDRY appliance", "http://192.168.122.50:8080/", "12:03  machine", "12:00  appliance started"}},
		{name: "warnings first", s: full(), width: 80, check: func(t *testing.T, lines []string) {
			if !strings.HasPrefix(lines[0], "!! running from RAM") || !strings.HasPrefix(lines[2], "!! error:") {
				t.Errorf("the page does not start with the warnings and the error: %q", lines[:3])
			}
		}},
		{name: "token only when set", s: withToken, width: 80,
			want: []string{"Admin token  fa-0123456789abcdef0123456789abcdef"}, absent: []string{"type t and Enter"}},
		{name: "token hint", s: hint, width: 80, want: []string{"Admin token  type t, or read token on the data disk"}},
		{name: "long event cut", s: full(), width: 80, check: func(t *testing.T, lines []string) {
			for _, l := range lines {
				if strings.Contains(l, "machine 52:54:00:aa:bb:cc") {
					if !strings.HasSuffix(l, "…") || cells(l) != 80 {
						t.Errorf("long event not cut to the width with an ellipsis: %q", l)
					}
					return
				}
			}
			t.Error("event line missing")
		}},
		{name: "at most 8 events", s: many, width: 80, want: []string{"event A", "event H"}, absent: []string{"event I", "event L"}},
		{name: "zero machines", s: Status{Machines: []StateCount{{"discovered", 0}, {"ready", 0}}}, width: 80,
			want:   []string{"Dashboard    (no address yet)", "Data disk    none: running from RAM", "Machines     none yet", "Segments", "none"},
			absent: []string{"!!", "Latest events", "ready", "discovered"}},
		{name: "empty 40", s: Status{}, width: 40, want: []string{"FOUNDRY appliance", "t token s setup p off r reboot h help"}},
		{name: "default width", s: full(), width: 0, want: []string{"Commands (type, then Enter)"}},
		{name: "hostile text", s: hostile, width: 80, want: []string{"!! bad?]0;owned? warning?second line", "1 new?[H", "eth?0", "evil?[31m red??"}},
		{name: "wide runes and long url", s: wide, width: 40, want: []string{"http://xxx", "機械"}},
		{name: "very narrow", s: full(), width: 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page := Render(tt.s, tt.width)
			w := tt.width
			if w == 0 {
				w = DefaultWidth
			}
			lines := checkPage(t, page, w)
			rest := page
			for _, want := range tt.want {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Errorf("page lacks %q (or not in order):\n%s", want, page)
					continue
				}
				rest = rest[i+len(want):]
			}
			for _, a := range tt.absent {
				if strings.Contains(page, a) {
					t.Errorf("page holds %q:\n%s", a, page)
				}
			}
			if tt.check != nil {
				tt.check(t, lines)
			}
			if again := Render(tt.s, tt.width); again != page {
				t.Error("Render is not deterministic")
			}
		})
	}
}

func TestRenderFitsHeight(t *testing.T) {
	s := full()
	for i := range 8 {
		s.Events = append(s.Events, Event{at(9, i, 0), "more"})
	}
	all := render(s, 80, 0)
	for _, height := range []int{40, 24, 20, 10, 3, 1} {
		lines := render(s, 80, height)
		if len(lines) > height {
			t.Errorf("height %d: %d lines", height, len(lines))
		}
		if lines[len(lines)-1] != all[len(all)-1] {
			t.Errorf("height %d: the help line is gone", height)
		}
		if height >= 3 && lines[0] != all[0] {
			t.Errorf("height %d: the first warning is gone", height)
		}
	}
	// Events go first, the oldest first: without events the page is 22
	// lines, the events' heading and blank line take 2, so 30 lines keep
	// the 6 newest of the 8 shown.
	page := join(render(s, 80, 30))
	if !strings.Contains(page, "machine 52:54:00:aa:bb:cc") || !strings.Contains(page, "09:03:00") || strings.Contains(page, "09:04:00") {
		t.Errorf("at 30 lines the 6 newest events should stay:\n%s", page)
	}
}

func FuzzRender(f *testing.F) {
	f.Add("0.9.0", "running from RAM", "error", "machine discovered", "ens3", "discovered", 80)
	f.Add("", "", "", "", "", "", 40)
	f.Add("\x1b[2J", "機械機械機械機械", "a\u0301\u0301\u0301", "\xff\xfe", "eth0\n", "x", 1)
	f.Fuzz(func(t *testing.T, version, warning, errText, event, link, state string, width int) {
		if width <= 0 || width > 300 {
			return
		}
		s := Status{Version: version, Warnings: []string{warning}, Error: errText,
			Events:   []Event{{at(1, 2, 3), event}, {time.Time{}, event + event}},
			Links:    []Link{{Name: link, MAC: link, Driver: link, Role: link}},
			Segments: []Segment{{link, link, link, link}},
			Machines: []StateCount{{state, 1}}, URLs: []string{event}, DataDisk: link, TokenHint: warning}
		page := Render(s, width)
		checkPageFuzz(t, page, width)
		for _, l := range render(s, width, 10) {
			if cells(l.text) > width {
				t.Fatalf("screen line wider than %d: %q", width, l.text)
			}
		}
	})
}

func checkPageFuzz(t *testing.T, page string, width int) {
	for _, l := range strings.Split(strings.TrimSuffix(page, "\n"), "\n") {
		if cells(l) > width {
			t.Fatalf("line wider than %d: %q", width, l)
		}
		for _, r := range l {
			if !unicode.IsPrint(r) {
				t.Fatalf("unprintable %U in %q", r, l)
			}
		}
	}
}

func TestWrapAndPack(t *testing.T) {
	tests := []struct {
		in   string
		w    int
		want []string
	}{
		{"a bb ccc", 4, []string{"a bb", "ccc"}},
		{"", 4, []string{""}},
		{"abcdefghij", 4, []string{"abcd", "efgh", "ij"}},
		{"機械機", 3, []string{"機", "械", "機"}},
		{"機", 1, []string{"機"}}, // cannot fit: kept whole rather than looping
	}
	for _, tt := range tests {
		got := wrap(tt.in, tt.w)
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("wrap(%q, %d) = %q, want %q", tt.in, tt.w, got, tt.want)
		}
	}
	got := pack("> ", "  ", ", ", []string{"one", "", "two", "three", "averyveryverylongpart"}, 12)
	want := []string{"> one, two", "  three", "  averyvery…"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("pack = %q, want %q", got, want)
	}
	for _, tt := range []struct {
		n    int64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {8 << 30, "8.0 GiB"}, {1536 << 20, "1.5 GiB"}, {3 << 40, "3.0 TiB"}} {
		if got := sizeText(tt.n); got != tt.want {
			t.Errorf("sizeText(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
