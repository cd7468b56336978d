package main

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeHost has br0 (10.77.0.1), eth1 (192.0.2.1), relay0 (10.99.0.1) and
// bare0 (no IPv4 address), and nothing else.
func fakeHost(name string) ([]netip.Addr, bool) {
	switch name {
	case "br0":
		return []netip.Addr{netip.MustParseAddr("10.77.0.1")}, true
	case "eth1":
		return []netip.Addr{netip.MustParseAddr("192.0.2.1")}, true
	case "relay0":
		return []netip.Addr{netip.MustParseAddr("10.99.0.1")}, true
	case "bare0":
		return nil, true
	}
	return nil, false
}

const goodConfig = `
data_dir: /tmp/foundry
http:
  listen: ":8080"
dhcp:
  relay_interfaces: [relay0]
  relay_sources: [10.99.0.2, 10.98.0.1/30]
segments:
  - name: lab
    interface: br0
    subnet: 10.77.0.0/24
    range: [10.77.0.100, 10.77.0.200]
    router: 10.77.0.1
    dns: [10.77.0.1]
    lease_time: 30m
    discovery: true
  - name: remote
    relayed: true
    subnet: 10.88.0.0/24
    range: [10.88.0.10, 10.88.0.50]
    mode: dhcp
`

func TestConfigDefaultsAndValues(t *testing.T) {
	c, err := parseConfig([]byte(goodConfig), fakeHost)
	if err != nil {
		t.Fatal(err)
	}
	if c.TFTPListen != ":69" || c.DiscoveryTTL != 24*time.Hour {
		t.Errorf("defaults: tftp %q ttl %v", c.TFTPListen, c.DiscoveryTTL)
	}
	if c.ImageDir != "/tmp/foundry/images" {
		t.Errorf("image_dir default = %q", c.ImageDir)
	}
	if c.Advertise != "http://10.77.0.1:8080" {
		t.Errorf("advertise derived from br0's address = %q", c.Advertise)
	}
	if len(c.Segments) != 2 {
		t.Fatalf("segments = %d", len(c.Segments))
	}
	lab := c.Segments[0]
	// server_ip is left to serve, which takes br0's address when it starts.
	if lab.LeaseTime != 30*time.Minute || !lab.Discovery || lab.ServerIP.IsValid() || lab.UEFIBinary != "ipxe.efi" {
		t.Errorf("lab segment = %+v", lab)
	}
	if remote := c.Segments[1]; !remote.Relayed || remote.LeaseTime != time.Hour {
		t.Errorf("remote segment = %+v", remote)
	}
	// One relay by its address; a network by any of its addresses.
	want := []netip.Prefix{netip.MustParsePrefix("10.99.0.2/32"), netip.MustParsePrefix("10.98.0.0/30")}
	if !slices.Equal(c.Relays.Interfaces, []string{"relay0"}) || !slices.Equal(c.Relays.Sources, want) {
		t.Errorf("relays = %+v", c.Relays)
	}
}

func TestConfigEmptyFileUsesDefaults(t *testing.T) {
	_, err := parseConfig([]byte(""), fakeHost)
	// No segment means no address to advertise: the error must say which key to set.
	if err == nil || !strings.Contains(err.Error(), "http.advertise") {
		t.Fatalf("err = %v", err)
	}
	c, err := parseConfig([]byte("http: {advertise: 'http://192.0.2.1:8080'}"), fakeHost)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/var/lib/foundry" || c.HTTPListen != ":8080" {
		t.Errorf("defaults = %+v", c)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	seg := func(body string) string {
		return "segments:\n  - name: lab\n    interface: br0\n    subnet: 10.77.0.0/24\n" + body
	}
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown key", "bogus: 1", "field bogus not found"},
		{"bad duration", "discovery: {ttl: 1x}", `discovery.ttl: "1x" is not a positive duration`},
		{"negative duration", "discovery: {ttl: -5m}", "discovery.ttl"},
		{"unknown interface", "segments:\n  - {name: a, interface: eth9, subnet: 10.0.0.0/24, range: [10.0.0.1, 10.0.0.2]}", `segments[0] (a).interface: "eth9" does not exist`},
		{"range outside subnet", seg("    range: [10.77.0.10, 10.78.0.5]\n"), "segments[0] (lab).range[1]: 10.78.0.5 is outside subnet 10.77.0.0/24"},
		{"range reversed", seg("    range: [10.77.0.50, 10.77.0.10]\n"), "start 10.77.0.50 is after end 10.77.0.10"},
		{"missing range", seg(""), "segments[0] (lab).range: required in dhcp mode"},
		{"bad lease time", seg("    range: [10.77.0.10, 10.77.0.20]\n    lease_time: soon\n"), "segments[0] (lab).lease_time"},
		{"bad mode", seg("    range: [10.77.0.10, 10.77.0.20]\n    mode: relay\n"), `segments[0] (lab).mode: "relay" is not dhcp or proxy`},
		{"bad subnet", "segments:\n  - {name: a, interface: br0, subnet: 10.0.0.0/33}", "segments[0] (a).subnet"},
		{"router outside", seg("    range: [10.77.0.10, 10.77.0.20]\n    router: 10.1.1.1\n"), "router: 10.1.1.1 is outside subnet"},
		{"bad name", "segments:\n  - {name: 'Lab 1', interface: br0, subnet: 10.77.0.0/24, range: [10.77.0.10, 10.77.0.20]}", `segments[0] ("Lab 1").name: "Lab 1": want 1-64 letters`},
		{"relayed with interface", "segments:\n  - {name: a, relayed: true, interface: br0, subnet: 10.0.0.0/24, range: [10.0.0.1, 10.0.0.2]}", "has no interface of its own"},
		{"overlapping ranges", "segments:\n  - {name: a, interface: br0, subnet: 10.77.0.0/24, range: [10.77.0.10, 10.77.0.20]}\n  - {name: b, interface: eth1, subnet: 10.77.0.0/16, range: [10.77.0.15, 10.77.0.30]}", "segments[1] (b).range: 10.77.0.15-10.77.0.30 overlaps range 10.77.0.10-10.77.0.20 of segment a"},
		{"duplicate names", "segments:\n  - {name: a, interface: br0, subnet: 10.77.0.0/24, range: [10.77.0.10, 10.77.0.20]}\n  - {name: a, interface: eth1, subnet: 192.0.2.0/24, range: [192.0.2.10, 192.0.2.20]}", "segments[1] (a).name: a is used twice"},
		{"bad uefi binary", seg("    range: [10.77.0.10, 10.77.0.20]\n    uefi_binary: grub.efi\n"), "uefi_binary"},
		{"bad advertise", "http: {advertise: 'ftp://x'}", "http.advertise"},
		{"tls half", "http: {advertise: 'http://a:1', tls: {cert: /c}}", "http.tls: cert and key"},
		{"bad relay interface", "http: {advertise: 'http://a:1'}\ndhcp: {relay_interfaces: [nope]}", "dhcp.relay_interfaces[0]"},
		{"bad relay source", "http: {advertise: 'http://a:1'}\ndhcp: {relay_interfaces: [relay0], relay_sources: [10.99.0.2, relay-1]}", `dhcp.relay_sources[1]: "relay-1" is not an IP address or network`},
		{"IPv6 relay source", "http: {advertise: 'http://a:1'}\ndhcp: {relay_interfaces: [relay0], relay_sources: ['fd00::1']}", "dhcp.relay_sources[0]: fd00::1/128 is not an IPv4 address or network"},
		{"relay sources without relay interface", "http: {advertise: 'http://a:1'}\ndhcp: {relay_sources: [10.99.0.2]}", "dhcp.relay_sources: no interface receives relayed packets"},
		{"relayed segment beside a direct one, no relay interface", "segments:\n  - {name: a, interface: br0, subnet: 10.77.0.0/24, range: [10.77.0.10, 10.77.0.20]}\n  - {name: r, relayed: true, subnet: 10.88.0.0/24, range: [10.88.0.10, 10.88.0.20]}", "dhcp.relay_interfaces: relayed segments need"},
		{"bad log level", "log_level: loud\nhttp: {advertise: 'http://a:1'}", "log_level"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig([]byte(tc.yaml), fakeHost)
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.yaml)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestProxySegmentNeedsNoRange(t *testing.T) {
	_, err := parseConfig([]byte("segments:\n  - {name: office, interface: eth1, subnet: 192.0.2.0/24, mode: proxy, discovery: true}"), fakeHost)
	if err != nil {
		t.Fatal(err)
	}
}
