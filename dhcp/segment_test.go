package dhcp

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestModeNames(t *testing.T) {
	for _, m := range []Mode{ModeDHCP, ModeProxy} {
		got, err := ParseMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	if _, err := ParseMode("relay"); err == nil {
		t.Error("ParseMode accepted an unknown mode")
	}
	if s := Mode(7).String(); s != "mode(7)" {
		t.Errorf("Mode(7) = %q", s)
	}
}

func TestSegmentValidate(t *testing.T) {
	good := labSegment("10.77.0.100", "10.77.0.199")
	tests := []struct {
		name string
		edit func(*Segment)
		want string // substring of the error; "" = valid
	}{
		{"valid", func(*Segment) {}, ""},
		{"valid proxy without range", func(s *Segment) { s.Mode, s.RangeStart, s.RangeEnd = ModeProxy, netip.Addr{}, netip.Addr{} }, ""},
		{"valid relayed", func(s *Segment) { s.Interface, s.Relayed = "", true }, ""},
		{"empty name", func(s *Segment) { s.Name = "" }, "name"},
		{"slash in name", func(s *Segment) { s.Name = "a/b" }, "name"},
		{"control char in name", func(s *Segment) { s.Name = "a\nb" }, "name"},
		{"no interface", func(s *Segment) { s.Interface = "" }, "interface"},
		{"relayed with interface", func(s *Segment) { s.Relayed = true }, "relayed"},
		{"ipv6 subnet", func(s *Segment) { s.Subnet = netip.MustParsePrefix("fd00::/64") }, "subnet"},
		{"host bits", func(s *Segment) { s.Subnet = netip.MustParsePrefix("10.77.0.1/24") }, "host bits"},
		{"/31", func(s *Segment) { s.Subnet = netip.MustParsePrefix("10.77.0.0/31") }, "subnet"},
		{"range outside subnet", func(s *Segment) { s.RangeEnd = mustAddr("10.77.1.5") }, "range"},
		{"range reversed", func(s *Segment) { s.RangeStart, s.RangeEnd = s.RangeEnd, s.RangeStart }, "after"},
		{"ipv6 router", func(s *Segment) { s.Router = mustAddr("fd00::1") }, "router"},
		{"ipv6 dns", func(s *Segment) { s.DNS = []netip.Addr{mustAddr("fd00::1")} }, "dns"},
		{"short lease", func(s *Segment) { s.LeaseTime = time.Second }, "lease"},
		{"negative lease", func(s *Segment) { s.LeaseTime = -time.Hour }, "lease"},
		{"bad uefi binary", func(s *Segment) { s.UEFIBinary = "../../etc/passwd" }, "uefi"},
		{"bad mode", func(s *Segment) { s.Mode = 9 }, "mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good
			tt.edit(&s)
			err := s.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want one about %q", err, tt.want)
			}
		})
	}
}

func TestValidateSegmentsTogether(t *testing.T) {
	a := labSegment("10.77.0.100", "10.77.0.199")
	b := labSegment("10.77.0.100", "10.77.0.199")
	b.Name = "other"
	if err := validateSegments([]Segment{a, b}); err == nil || !strings.Contains(err.Error(), "already served") {
		t.Errorf("two segments on one interface: %v", err)
	}
	b.Name = a.Name
	b.Interface = "veth9"
	if err := validateSegments([]Segment{a, b}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate names: %v", err)
	}
	r1, r2 := a, a
	r1.Name, r1.Interface, r1.Relayed = "r1", "", true
	r2.Name, r2.Interface, r2.Relayed = "r2", "", true
	r2.Subnet = netip.MustParsePrefix("10.77.0.0/16")
	r2.RangeStart, r2.RangeEnd = mustAddr("10.77.5.1"), mustAddr("10.77.5.9")
	if err := validateSegments([]Segment{r1, r2}); err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Errorf("overlapping relayed subnets: %v", err)
	}
}
