package main

import (
	"net/netip"
	"testing"

	"github.com/foundry-appliance/foundry/appliance"
	"github.com/foundry-appliance/foundry/appliance/netplan"
)

// The configuration the appliance ISO's init writes is accepted by the
// same validation `foundry serve` runs, and serves DHCP on the provisioning
// interface only: one segment, with discovery, and no relay interfaces.
func TestApplianceServeConfig(t *testing.T) {
	p, err := netplan.ParseFields("52:54:00:aa:00:01", "10.77.0.1/24", "", "10.77.0.254", "10.77.0.1")
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(name string) ([]netip.Addr, bool) {
		if name == "eth1" {
			return []netip.Addr{netip.MustParseAddr("10.77.0.1")}, true
		}
		return nil, name == "eth0"
	}
	dirs := appliance.Dirs{Data: "/data/foundry", Images: "/data/images"}
	raw, err := appliance.ServeConfig(netplan.Plan{Provisioning: &p}, "eth1", dirs)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig(raw, lookup)
	if err != nil {
		t.Fatalf("serve refuses the appliance's configuration: %v\n%s", err, raw)
	}
	if len(cfg.Segments) != 1 || len(cfg.Relays.Interfaces) != 0 {
		t.Fatalf("segments %+v, relay interfaces %v: want exactly the provisioning segment", cfg.Segments, cfg.Relays.Interfaces)
	}
	seg := cfg.Segments[0]
	if seg.Interface != "eth1" || !seg.Discovery || seg.ServerIP.String() != "10.77.0.1" ||
		seg.RangeStart.String() != "10.77.0.100" || seg.RangeEnd.String() != "10.77.0.200" || seg.Router.String() != "10.77.0.254" {
		t.Errorf("segment %+v", seg)
	}
	if cfg.DataDir != dirs.Data || cfg.ImageDir != dirs.Images || cfg.Advertise != "http://10.77.0.1:8080" || cfg.HTTPListen != ":8080" {
		t.Errorf("config %+v", cfg)
	}

	// Not set up yet: no segment at all, so no DHCP answered anywhere.
	raw, err = appliance.ServeConfig(netplan.Plan{}, "", dirs)
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err = parseConfig(raw, lookup); err != nil || len(cfg.Segments) != 0 {
		t.Fatalf("no plan: %v, segments %+v\n%s", err, cfg.Segments, raw)
	}
	if _, err := appliance.ServeConfig(netplan.Plan{Provisioning: &p}, "", dirs); err == nil {
		t.Error("a plan whose interface was not found gave a configuration")
	}
}
