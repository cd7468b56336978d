package main

import (
	"strings"
	"testing"

	"github.com/foundry-appliance/foundry/dhcp"
	"github.com/foundry-appliance/foundry/store"
)

// serveSetup is what `foundry serve` does with a configuration file before
// it opens a socket: load it (as check-config does), then build the DHCP
// server as serve() does and run the checks Serve runs before listening.
// Interfaces come from lookup instead of this host.
func serveSetup(t *testing.T, raw string, lookup dhcp.Interfaces) error {
	t.Helper()
	cfg, err := parseConfig([]byte(raw), lookup)
	if err != nil {
		return err
	}
	if len(cfg.Segments) == 0 {
		return nil // serve runs no DHCP server then
	}
	db, err := store.Open("", store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	srv := &dhcp.Server{Segments: cfg.Segments, Leases: db, Machines: db, Relays: cfg.Relays, Pair: cfg.dhcpPair(db)}
	return srv.Check(lookup)
}

// checkConfig is what `foundry check-config` does with a file.
func checkConfig(raw string, lookup dhcp.Interfaces) error {
	_, err := parseConfig([]byte(raw), lookup)
	return err
}

// TestCheckConfigAndServeAgree feeds one table of configuration files to
// both commands: each accepts exactly what the other accepts, and a refusal
// names the configuration key at fault.
func TestCheckConfigAndServeAgree(t *testing.T) {
	// lab on br0 (10.77.0.1), with the segment body varied per case.
	lab := func(body string) string {
		return "segments:\n  - name: lab\n    interface: br0\n    subnet: 10.77.0.0/24\n" + body
	}
	labRange := func(body string) string { return lab("    range: [10.77.0.100, 10.77.0.200]\n" + body) }
	const advertise = "http: {advertise: 'http://10.99.0.1:8080'}\n"
	// A DHCP pair (dhcp.ha) on etcd; serve adds the heartbeat store.
	pair := func(ha string) string {
		return "store: {backend: etcd, etcd: {endpoints: ['http://10.0.0.1:2379']}}\ndhcp: {ha: " + ha + "}\n" + labRange("")
	}
	tests := []struct {
		name, yaml string
		key        string // "" = valid; else the key the error must name
	}{
		{"full example", goodConfig, ""},
		{"no segments", advertise, ""},
		{"proxy without range", "segments:\n  - {name: office, interface: eth1, subnet: 192.0.2.0/24, mode: proxy, discovery: true}", ""},
		{"relayed through a relay interface", advertise + "dhcp: {relay_interfaces: [relay0]}\nsegments:\n  - {name: remote, relayed: true, subnet: 10.88.0.0/24, range: [10.88.0.10, 10.88.0.50], server_ip: 10.99.0.1}", ""},
		{"relayed through a listed segment interface, from listed relays", "dhcp: {relay_interfaces: [br0], relay_sources: [10.77.0.2, 10.99.0.0/30]}\n" +
			labRange("  - {name: remote, relayed: true, subnet: 10.88.0.0/24, range: [10.88.0.10, 10.88.0.50]}\n"), ""},
		{"interface without address, server_ip given", advertise + "segments:\n  - {name: lab, interface: bare0, subnet: 10.77.0.0/24, range: [10.77.0.10, 10.77.0.20], server_ip: 10.77.0.1}", ""},
		{"name of the one alphabet", "segments:\n  - {name: Rack_2.A, interface: br0, subnet: 10.77.0.0/24, range: [10.77.0.10, 10.77.0.20]}", ""},
		{"address with prefix names its subnet", "segments:\n  - {name: lab, interface: br0, subnet: 10.77.0.1/24, range: [10.77.0.10, 10.77.0.20]}", ""},
		{"shortest lease", labRange("    lease_time: 10s\n"), ""},
		{"domain", labRange("    domain: Lab.Example\n"), ""},
		{"pair, primary, default failover", pair("{name: rack1-a, peer: rack1-b, role: primary}"), ""},
		{"pair, secondary, shortest failover", pair("{name: rack1-b, peer: rack1-a, role: secondary, failover_after: 3s}"), ""},
		{"/8", "segments:\n  - {name: big, interface: br0, subnet: 10.0.0.0/8, range: [10.1.0.1, 10.1.255.254]}", ""},

		{"lease_time 5s", labRange("    lease_time: 5s\n"), "segments[0] (lab).lease_time"},
		{"lease_time beyond option 51", labRange("    lease_time: 2000000h\n"), "segments[0] (lab).lease_time"},
		{"lease_time zero", labRange("    lease_time: 0s\n"), "segments[0] (lab).lease_time"},
		{"/31 subnet", "segments:\n  - {name: p2p, interface: br0, subnet: 10.77.0.0/31, range: [10.77.0.0, 10.77.0.1]}", "segments[0] (p2p).subnet"},
		{"/32 subnet", "segments:\n  - {name: host, interface: br0, subnet: 10.77.0.1/32, range: [10.77.0.1, 10.77.0.1]}", "segments[0] (host).subnet"},
		{"0.0.0.0/4", "segments:\n  - {name: huge, interface: br0, subnet: 0.0.0.0/4, range: [10.0.0.1, 10.0.0.2]}", "segments[0] (huge).subnet"},
		{"IPv6 subnet", "segments:\n  - {name: v6, interface: br0, subnet: 'fd00::/64', mode: proxy}", "segments[0] (v6).subnet"},
		{"not a subnet", "segments:\n  - {name: a, interface: br0, subnet: 10.0.0.0/33}", "segments[0] (a).subnet"},
		{"overlapping ranges", "segments:\n  - {name: a, interface: br0, subnet: 10.77.0.0/24, range: [10.77.0.10, 10.77.0.20]}\n  - {name: b, interface: eth1, subnet: 10.77.0.0/16, range: [10.77.0.15, 10.77.0.30]}", "segments[1] (b).range"},
		{"relayed subnet overlaps", "segments:\n  - {name: a, interface: br0, subnet: 10.77.0.0/24, range: [10.77.0.10, 10.77.0.20]}\n  - {name: r, relayed: true, subnet: 10.77.0.0/16, range: [10.77.5.10, 10.77.5.20]}", "segments[1] (r).subnet"},
		{"one interface twice", "segments:\n  - {name: a, interface: br0, subnet: 10.77.0.0/24, range: [10.77.0.10, 10.77.0.20]}\n  - {name: b, interface: br0, subnet: 10.78.0.0/24, range: [10.78.0.10, 10.78.0.20]}", "segments[1] (b).interface"},
		{"duplicate names", "segments:\n  - {name: a, interface: br0, subnet: 10.77.0.0/24, range: [10.77.0.10, 10.77.0.20]}\n  - {name: a, interface: eth1, subnet: 192.0.2.0/24, range: [192.0.2.10, 192.0.2.20]}", "segments[1] (a).name"},
		{"range outside subnet", lab("    range: [10.77.0.10, 10.78.0.5]\n"), "segments[0] (lab).range[1]"},
		{"range reversed", lab("    range: [10.77.0.50, 10.77.0.10]\n"), "segments[0] (lab).range"},
		{"range of one address", lab("    range: [10.77.0.50]\n"), "segments[0] (lab).range"},
		{"no range in dhcp mode", lab(""), "segments[0] (lab).range"},
		{"router outside subnet", labRange("    router: 10.1.1.1\n"), "segments[0] (lab).router"},
		{"server_ip outside subnet", labRange("    server_ip: 192.0.2.1\n"), "segments[0] (lab).server_ip"},
		{"IPv6 dns", labRange("    dns: ['fd00::1']\n"), "segments[0] (lab).dns[0]"},
		{"too many dns", labRange("    dns: [" + strings.Repeat("10.77.0.1, ", 63) + "10.77.0.1]\n"), "segments[0] (lab).dns"},
		{"domain with a space", labRange("    domain: 'lab example'\n"), "segments[0] (lab).domain"},
		{"unknown interface", "segments:\n  - {name: a, interface: eth9, subnet: 10.0.0.0/24, range: [10.0.0.1, 10.0.0.2]}", "segments[0] (a).interface"},
		{"interface without IPv4 address", advertise + "segments:\n  - {name: lab, interface: bare0, subnet: 10.77.0.0/24, range: [10.77.0.10, 10.77.0.20]}", "segments[0] (lab).interface"},
		{"relayed segment, nothing to receive it", advertise + "segments:\n  - {name: remote, relayed: true, subnet: 10.88.0.0/24, range: [10.88.0.10, 10.88.0.50]}", "dhcp.relay_interfaces"},
		{"unknown relay interface", advertise + "dhcp: {relay_interfaces: [nope]}", "dhcp.relay_interfaces[0]"},
		{"relayed beside a direct segment, which is no relay interface", labRange("  - {name: remote, relayed: true, subnet: 10.88.0.0/24, range: [10.88.0.10, 10.88.0.50]}\n"), "dhcp.relay_interfaces"},
		{"relay source not an address", advertise + "dhcp: {relay_interfaces: [relay0], relay_sources: [relay1]}", "dhcp.relay_sources[0]"},
		{"IPv6 relay source", advertise + "dhcp: {relay_interfaces: [relay0], relay_sources: ['fd00::/64']}", "dhcp.relay_sources[0]"},
		{"relay sources, no relay interface", advertise + "dhcp: {relay_sources: [10.99.0.2]}", "dhcp.relay_sources"},
		{"relay interface listed twice", advertise + "dhcp: {relay_interfaces: [relay0, relay0]}", "dhcp.relay_interfaces[1]"},
		{"relayed segment with an interface", "segments:\n  - {name: a, relayed: true, interface: br0, subnet: 10.0.0.0/24, range: [10.0.0.1, 10.0.0.2]}", "segments[0] (a).interface"},
		{"name with a space", "segments:\n  - {name: 'Lab 1', interface: br0, subnet: 10.77.0.0/24, range: [10.77.0.10, 10.77.0.20]}", `segments[0] ("Lab 1").name`},
		{"name with a slash", "segments:\n  - {name: a/b, interface: br0, subnet: 10.77.0.0/24, range: [10.77.0.10, 10.77.0.20]}", "segments[0] (a/b).name"},
		{"name starting with '-'", "segments:\n  - {name: -lab, interface: br0, subnet: 10.77.0.0/24, range: [10.77.0.10, 10.77.0.20]}", "segments[0] (-lab).name"},
		{"no name", "segments:\n  - {interface: br0, subnet: 10.77.0.0/24, range: [10.77.0.10, 10.77.0.20]}", "segments[0].name"},
		{"bad mode", labRange("    mode: relay\n"), "segments[0] (lab).mode"},
		{"bad uefi binary", labRange("    uefi_binary: grub.efi\n"), "segments[0] (lab).uefi_binary"},
		{"pair, failover under 3s", pair("{name: a, peer: b, role: primary, failover_after: 2s}"), "dhcp.ha.failover_after"},
		{"pair, peer is itself", pair("{name: a, peer: a, role: primary}"), "dhcp.ha.peer"},
		{"pair, no role", pair("{name: a, peer: b}"), "dhcp.ha.role"},
		{"pair, name with a slash", pair("{name: a/b, peer: b, role: primary}"), "dhcp.ha.name"},
		{"pair on Badger", "dhcp: {ha: {name: a, peer: b, role: primary}}\n" + labRange(""), "dhcp.ha"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr := checkConfig(tt.yaml, fakeHost)
			serveErr := serveSetup(t, tt.yaml, fakeHost)
			if (checkErr == nil) != (serveErr == nil) {
				t.Fatalf("check-config and serve disagree:\ncheck-config: %v\nserve: %v", checkErr, serveErr)
			}
			switch {
			case tt.key == "" && checkErr != nil:
				t.Fatalf("refused: %v", checkErr)
			case tt.key != "" && checkErr == nil:
				t.Fatalf("accepted:\n%s", tt.yaml)
			case tt.key != "" && (!strings.Contains(checkErr.Error(), tt.key+": ") || !strings.Contains(serveErr.Error(), tt.key+": ")):
				t.Fatalf("errors do not name %s:\ncheck-config: %v\nserve: %v", tt.key, checkErr, serveErr)
			}
		})
	}
}
