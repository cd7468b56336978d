package main

import (
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/dhcp"
	"github.com/foundry-appliance/foundry/store"
)

// haConfig is goodConfig with the etcd backend (unless badger) and the
// given dhcp.ha section.
func haConfig(ha string, badger bool) string {
	c := strings.Replace(goodConfig, "dhcp:\n", "dhcp:\n  ha: "+ha+"\n", 1)
	if !badger {
		c += "store:\n  backend: etcd\n  etcd: {endpoints: ['http://10.0.0.1:2379']}\n"
	}
	return c
}

func TestConfigDHCPPair(t *testing.T) {
	c, err := parseConfig([]byte(goodConfig), fakeHost)
	if err != nil || c.Pair != nil {
		t.Fatalf("without dhcp.ha: %+v %v", c.Pair, err)
	}
	for _, tc := range []struct {
		ha   string
		want dhcp.Pair
	}{
		{"{name: rack1-a, peer: rack1-b, role: primary}", dhcp.Pair{Name: "rack1-a", Peer: "rack1-b", Role: dhcp.Primary, FailoverAfter: 10 * time.Second}},
		{"{name: b, peer: a, role: secondary, failover_after: 3s}", dhcp.Pair{Name: "b", Peer: "a", Role: dhcp.Secondary, FailoverAfter: 3 * time.Second}},
	} {
		c, err := parseConfig([]byte(haConfig(tc.ha, false)), fakeHost)
		if err != nil {
			t.Fatalf("%s: %v", tc.ha, err)
		}
		if c.Pair == nil || *c.Pair != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.ha, c.Pair, tc.want)
		}
		// What serve builds from it passes the dhcp package's own check.
		p := *c.Pair
		p.Heartbeats = fakeHeartbeats{}
		if err := p.Validate(); err != nil {
			t.Errorf("%s: dhcp.Pair.Validate: %v", tc.ha, err)
		}
	}
	for _, tc := range []struct {
		ha     string
		badger bool
		want   string
	}{
		{"{name: a, peer: b, role: primary}", true, "dhcp.ha: a DHCP pair shares its leases through etcd"},
		{"{peer: b, role: primary}", false, "dhcp.ha.name:"},
		{"{name: a, role: primary}", false, "dhcp.ha.peer:"},
		{"{name: a, peer: a, role: primary}", false, `dhcp.ha.peer: "a" is this appliance's own name`},
		{"{name: a, peer: b/c, role: primary}", false, "dhcp.ha.peer:"},
		{"{name: a, peer: b}", false, "dhcp.ha.role: primary or secondary"},
		{"{name: a, peer: b, role: backup}", false, `dhcp.ha.role: "backup" is not primary or secondary`},
		{"{name: a, peer: b, role: primary, failover_after: 1s}", false, "dhcp.ha.failover_after: 1s is below 3s"},
		{"{name: a, peer: b, role: primary, failover_after: soon}", false, "dhcp.ha.failover_after:"},
		{"{name: a, peer: b, role: primary, mode: hot-standby}", false, "field mode not found"},
	} {
		_, err := parseConfig([]byte(haConfig(tc.ha, tc.badger)), fakeHost)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s (badger %v): %v, want an error with %q", tc.ha, tc.badger, err, tc.want)
		}
	}
}

type fakeHeartbeats struct{}

func (fakeHeartbeats) Heartbeat(string) error     { return nil }
func (fakeHeartbeats) HeartbeatStop(string) error { return nil }
func (fakeHeartbeats) HeartbeatValue(string) (store.HeartbeatState, error) {
	return store.HeartbeatState{}, nil
}
