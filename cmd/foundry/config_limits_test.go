package main

import (
	"strings"
	"testing"

	"github.com/foundry-appliance/foundry/dhcp"
)

const limitsConfig = `
data_dir: /tmp/foundry
dhcp:
  max_discovered: 300
  rate_limit:
    per_mac: {rate: 2, burst: 10}
    per_source: {rate: 0}
    mac_table: 1024
audit:
  max_entries: 5000
  max_age: 0s
segments:
  - name: lab
    interface: br0
    subnet: 10.77.0.0/24
    range: [10.77.0.100, 10.77.0.200]
    max_pending_offers: 20
    discovery: true
  - name: big
    interface: eth1
    subnet: 192.0.2.0/24
    range: [192.0.2.10, 192.0.2.20]
    max_discovered: 50
`

// The limit keys reach the dhcp and store values; unset ones stay zero
// (their packages' defaults); 0 turns a rate or an audit bound off.
func TestConfigLimits(t *testing.T) {
	c, err := parseConfig([]byte(limitsConfig), fakeHost)
	if err != nil {
		t.Fatal(err)
	}
	want := dhcp.Limits{PerMAC: dhcp.RateLimit{Rate: 2, Burst: 10}, PerSource: dhcp.RateLimit{Rate: -1}, MACTable: 1024}
	if c.Limits != want {
		t.Errorf("limits %+v, want %+v", c.Limits, want)
	}
	if c.Segments[0].MaxDiscovered != 300 || c.Segments[0].MaxPendingOffers != 20 || c.Segments[1].MaxDiscovered != 50 {
		t.Errorf("segment caps: %+v / %+v", c.Segments[0], c.Segments[1])
	}
	if a := c.Audit; a.MaxEntries != 5000 || a.MaxAge != -1 || a.HardMaxEntries != 0 {
		t.Errorf("audit %+v", a)
	}
	d, err := parseConfig([]byte(goodConfig), fakeHost)
	if err != nil {
		t.Fatal(err)
	}
	if d.Limits != (dhcp.Limits{}) || d.Audit.MaxEntries != 0 || d.Segments[0].MaxDiscovered != 0 || d.Audit.MaxAge != 0 {
		t.Errorf("defaults are not left to the packages: %+v %+v", d.Limits, d.Audit)
	}
}

// Every bad limit is named by its key, in one run.
func TestConfigLimitsRefused(t *testing.T) {
	bad := strings.NewReplacer(
		"max_discovered: 300", "max_discovered: -3",
		"per_mac: {rate: 2, burst: 10}", "per_mac: {rate: 2, burst: -1}",
		"mac_table: 1024", "mac_table: 5",
		"max_age: 0s", "max_age: soon",
		"max_pending_offers: 20", "max_pending_offers: 500",
		"audit:\n", "audit:\n  hard_max_entries: 10\n",
	).Replace(limitsConfig)
	_, err := parseConfig([]byte(bad), fakeHost)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, key := range []string{"dhcp.max_discovered:", "dhcp.rate_limit.per_mac.burst:", "dhcp.rate_limit.mac_table:",
		"audit.max_age:", "audit.hard_max_entries:", "segments[0] (lab).max_pending_offers:"} {
		if !strings.Contains(err.Error(), "\n  "+key) {
			t.Errorf("no problem named %s in:\n%v", key, err)
		}
	}
}
