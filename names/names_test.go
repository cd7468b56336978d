package names

import (
	"strings"
	"testing"
)

func TestHostname(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	max := strings.Repeat(long63+".", 3) + strings.Repeat("b", 61) // 253
	tests := []struct {
		in, want string // want "" = refused
		why      string // substring of the error
	}{
		{"node-01", "node-01", ""},
		{"Node-01.Lab", "node-01.lab", ""},
		{"web01.lab.example", "web01.lab.example", ""},
		{"1", "1", ""},
		{"0-0", "0-0", ""},
		{"discovered-123456", "discovered-123456", ""},
		{long63, long63, ""},
		{max, max, ""},
		{"", "", "empty"},
		{max + "b", "", "longer than 253"},
		{strings.Repeat("a", 64), "", "1-63"},
		{"a..b", "", "1-63"},
		{".a", "", "1-63"},
		{"a.", "", "1-63"}, // no trailing dot: one spelling per name
		{"-node", "", "start or end"},
		{"node-", "", "start or end"},
		{"a.-b", "", "start or end"},
		{"node_1", "", `'_'`},
		{"node 1", "", `' '`},
		{" node", "", `' '`},
		{"x\nchain http://evil", "", `'\n'`},
		{"ünï", "", "not a letter"},
		{"a;b", "", "';'"},
	}
	for _, tt := range tests {
		got, err := Hostname(tt.in)
		if got != tt.want || (err == nil) != (tt.why == "") {
			t.Errorf("Hostname(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), tt.why) {
			t.Errorf("Hostname(%q) error %q does not say %q", tt.in, err, tt.why)
		}
	}
}

func TestDiscoveredHostname(t *testing.T) {
	tests := []struct{ mac, want string }{
		{"52:54:00:12:34:56", "discovered-123456"},
		{"52:54:00:AB:CD:EF", "discovered-abcdef"},
		{"5254.00ab.cdef", "discovered-abcdef"},
		{"02:00:00:00:00:01", "discovered-000001"},
		{"52:54:00:12:34", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := DiscoveredHostname(tt.mac); got != tt.want {
			t.Errorf("DiscoveredHostname(%q) = %q, want %q", tt.mac, got, tt.want)
		}
	}
}

func TestParseMAC(t *testing.T) {
	const want = "52:54:00:ab:cd:ef"
	tests := []struct{ in, want string }{
		{"52:54:00:ab:cd:ef", want},
		{"52:54:00:AB:CD:EF", want},
		{"52-54-00-ab-cd-ef", want},
		{"5254.00ab.cdef", want},
		{"5254.00AB.CDEF", want},
		{"525400abcdef", want},
		{"525400ABCDEF", want},
		{"00:00:00:00:00:00", "00:00:00:00:00:00"},
		{"52:54:00-ab:cd:ef", ""}, // mixed separators
		{"52.54.00.ab.cd.ef", ""},
		{"52:54:00:ab:cd", ""},
		{"52:54:00:ab:cd:ef:01:02", ""}, // EUI-64
		{"00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01", ""}, // IPoIB
		{"52:54:00:ab:cd:eg", ""},
		{"52:54:00:ab:cd:e", ""},
		{" 52:54:00:ab:cd:ef", ""},
		{"52:54:00:ab:cd:ef\n", ""},
		{"5254:00ab:cdef", ""},
		{"525400abcdeg", ""},
		{"../../etc/passw", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, err := ParseMAC(tt.in)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("ParseMAC(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestCheckMAC(t *testing.T) {
	for _, s := range []string{"52:54:00:12:34:56", "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff"} {
		if err := CheckMAC(s); err != nil {
			t.Errorf("CheckMAC(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"52:54:00:AB:CD:EF", "52-54-00-12-34-56", "5254.0012.3456", "525400123456",
		"52:54:00:12:34", "52:54:00:12:34:56:78:9a", "52:54:00:12:34:5g", "52:54:00:12:34:56 ", ""} {
		if err := CheckMAC(s); err == nil {
			t.Errorf("CheckMAC(%q) accepted a non-canonical MAC", s)
		}
	}
}

func TestCheckName(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"lab", true},
		{"rack-1", true},
		{"Prod_2024.v1", true},
		{"0", true},
		{"a" + strings.Repeat("-", 63), true}, // 64
		{"a" + strings.Repeat("-", 64), false},
		{"", false},
		{"-lab", false},
		{".hidden", false},
		{"_x", false},
		{"..", false},
		{"a/b", false},
		{"a b", false},
		{"a\nb", false},
		{"lab:1", false},
		{"läb", false},
		{"a$b", false},
	}
	for _, tt := range tests {
		err := CheckName(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("CheckName(%q) = %v, want ok=%t", tt.in, err, tt.ok)
		}
	}
}

func TestLabelAndRef(t *testing.T) {
	long := strings.Repeat("x", 70)
	tests := []struct{ in, label, ref string }{
		{"lab", `"lab"`, "lab"},
		{"52:54:00:12:34:56", `"52:54:00:12:34:56"`, "52:54:00:12:34:56"},
		{"", `""`, `""`},
		{"a b", `"a b"`, `"a b"`},
		{`say "hi"`, `"say \"hi\""`, `"say \"hi\""`},
		{"a\nforged line", `"a\nforged line"`, `"a\nforged line"`},
		{"\x00\xff", `"\x00\xff"`, `"\x00\xff"`},
		{long, `"` + long[:64] + `"…`, `"` + long[:64] + `"…`},
		// The cut never splits a character: 63 x and a 3-byte one.
		{strings.Repeat("x", 63) + "€€", `"` + strings.Repeat("x", 63) + `"…`, `"` + strings.Repeat("x", 63) + `"…`},
	}
	for _, tt := range tests {
		if got := Label(tt.in); got != tt.label {
			t.Errorf("Label(%q) = %s, want %s", tt.in, got, tt.label)
		}
		if got := Ref(tt.in); got != tt.ref {
			t.Errorf("Ref(%q) = %s, want %s", tt.in, got, tt.ref)
		}
	}
}
