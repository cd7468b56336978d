package netplan

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseFields(t *testing.T) {
	cases := []struct {
		name                          string
		iface, addr, rng, router, dns string
		wantErr                       string
		wantRange                     string
	}{
		{name: "default range of a /24", iface: "eth0", addr: "10.77.0.1/24", wantRange: "10.77.0.100-10.77.0.200"},
		{name: "given range, router and dns", iface: "52:54:00:aa:00:01", addr: "192.168.5.2/24", rng: "192.168.5.10-192.168.5.20",
			router: "192.168.5.1", dns: "192.168.5.1, 192.168.5.3", wantRange: "192.168.5.10-192.168.5.20"},
		{name: "default range avoids the appliance", iface: "eth0", addr: "10.77.0.150/24", wantRange: "10.77.0.100-10.77.0.149"},
		{name: "no interface", addr: "10.77.0.1/24", wantErr: "interface: required"},
		{name: "no prefix length", iface: "eth0", addr: "10.77.0.1", wantErr: "not an address with its prefix length"},
		{name: "network address", iface: "eth0", addr: "10.77.0.0/24", wantErr: "network address"},
		{name: "/31", iface: "eth0", addr: "10.77.0.1/31", wantErr: "/8 to /30"},
		{name: "IPv6", iface: "eth0", addr: "fd00::1/64", wantErr: "not an IPv4"},
		{name: "range outside the subnet", iface: "eth0", addr: "10.77.0.1/24", rng: "10.78.0.10-10.78.0.20", wantErr: "outside the subnet"},
		{name: "reversed range", iface: "eth0", addr: "10.77.0.1/24", rng: "10.77.0.20-10.77.0.10", wantErr: "after its end"},
		{name: "range holds the appliance", iface: "eth0", addr: "10.77.0.15/24", rng: "10.77.0.10-10.77.0.20", wantErr: "appliance's own address"},
		{name: "router in the range", iface: "eth0", addr: "10.77.0.1/24", router: "10.77.0.150", wantErr: "inside the DHCP range"},
		{name: "router is the appliance", iface: "eth0", addr: "10.77.0.1/24", router: "10.77.0.1", wantErr: "does not route"},
		{name: "bad dns", iface: "eth0", addr: "10.77.0.1/24", dns: "resolver", wantErr: "dns"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := ParseFields(c.iface, c.addr, c.rng, c.router, c.dns)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := RangeText(p.RangeStart, p.RangeEnd); got != c.wantRange {
				t.Errorf("range %s, want %s", got, c.wantRange)
			}
			seg := p.Segment("eth9")
			if seg.Interface != "eth9" || !seg.Discovery || seg.ServerIP != p.Address.Addr() || seg.Subnet != p.Address.Masked() || seg.Name != SegmentName {
				t.Errorf("segment %+v does not serve discovery on eth9 from %v", seg, p.Address)
			}
		})
	}
}

// What the setup writes is what the next boot reads.
func TestMarshalParse(t *testing.T) {
	p, err := ParseFields("52:54:00:aa:00:01", "10.77.0.1/24", "10.77.0.100-10.77.0.120", "10.77.0.254", "10.77.0.1")
	if err != nil {
		t.Fatal(err)
	}
	for _, plan := range []Plan{{Provisioning: &p}, {NoManagement: true}, {}} {
		raw, err := Marshal(plan, "written by the console setup\non first boot")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(raw), "# written by the console setup\n# on first boot\n") {
			t.Errorf("no comment:\n%s", raw)
		}
		got, err := Parse(raw)
		if err != nil {
			t.Fatalf("parse what Marshal wrote: %v\n%s", err, raw)
		}
		if got.NoManagement != plan.NoManagement || (got.Provisioning == nil) != (plan.Provisioning == nil) {
			t.Fatalf("round trip: %+v, want %+v", got, plan)
		}
		if plan.Provisioning != nil {
			g, w := *got.Provisioning, *plan.Provisioning
			if g.Interface != w.Interface || g.Address != w.Address || g.RangeStart != w.RangeStart || g.RangeEnd != w.RangeEnd ||
				g.Router != w.Router || len(g.DNS) != 1 || g.DNS[0] != netip.MustParseAddr("10.77.0.1") {
				t.Errorf("round trip: %+v, want %+v", g, w)
			}
		}
	}
}

func TestParseRejects(t *testing.T) {
	cases := map[string]string{
		"misspelt key":      "provisioning:\n  interfce: eth0\n  address: 10.77.0.1/24\n",
		"bad management":    "management: static\n",
		"bad address":       "provisioning:\n  interface: eth0\n  address: 10.77.0.300/24\n",
		"not yaml":          "provisioning: [",
		"oversized":         strings.Repeat("#", maxFile+1),
		"range outside net": "provisioning:\n  interface: eth0\n  address: 10.77.0.1/24\n  range: 10.1.0.1-10.1.0.9\n",
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			if plan, err := Parse([]byte(raw)); err == nil {
				t.Errorf("accepted: %+v", plan)
			}
		})
	}
	if plan, err := Parse(nil); err != nil || plan.Provisioning != nil || plan.NoManagement {
		t.Errorf("empty file: %+v %v, want no segment and management by DHCP", plan, err)
	}
}

// FuzzParse: appliance.yaml comes from a disk anyone with the box in hand
// can write. Whatever it holds, Parse answers with an error or a plan that
// passes every rule.
func FuzzParse(f *testing.F) {
	f.Add([]byte("provisioning:\n  interface: eth0\n  address: 10.77.0.1/24\n  range: 10.77.0.100-10.77.0.200\nmanagement: dhcp\n"))
	f.Add([]byte("management: none\n"))
	f.Add([]byte("provisioning: {interface: x, address: 1.2.3.4/8, router: 1.2.3.5, dns: [1.1.1.1]}"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		plan, err := Parse(raw)
		if err != nil || plan.Provisioning == nil {
			return
		}
		if err := plan.Provisioning.Check(); err != nil {
			t.Fatalf("Parse accepted a plan that fails Check: %v\n%q", err, raw)
		}
	})
}
