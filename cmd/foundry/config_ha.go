package main

import (
	"github.com/foundry-appliance/foundry/dhcp"
	"github.com/foundry-appliance/foundry/names"
)

// fileHA is the dhcp.ha section: this appliance's side of a DHCP pair
// (docs/scale-out.md, "DHCP pair"). The peer's file names the same two
// appliances the other way round, with the other role.
type fileHA struct {
	Name          string `yaml:"name"`
	Peer          string `yaml:"peer"`
	Role          string `yaml:"role"`
	FailoverAfter string `yaml:"failover_after"`
}

// dhcpPair checks dhcp.ha: nil without it, else the pair's settings
// (serve adds the store that keeps the heartbeats). A pair shares its
// leases through etcd, so it needs store.backend etcd.
func dhcpPair(errs *configErrors, f *fileHA, etcd bool) *dhcp.Pair {
	if f == nil {
		return nil
	}
	if !etcd {
		errs.add("dhcp.ha", "a DHCP pair shares its leases through etcd: set store.backend: etcd on both appliances")
	}
	p := &dhcp.Pair{Name: f.Name, Peer: f.Peer}
	for key, v := range map[string]string{"dhcp.ha.name": f.Name, "dhcp.ha.peer": f.Peer} {
		if err := names.CheckName(v); err != nil {
			errs.add(key, "%v", err)
		}
	}
	if f.Name != "" && f.Name == f.Peer {
		errs.add("dhcp.ha.peer", "%s is this appliance's own name: name the other appliance", names.Label(f.Peer))
	}
	if f.Role == "" {
		errs.add("dhcp.ha.role", "primary or secondary (one of each in a pair)")
	} else if r, err := dhcp.ParseRole(f.Role); err != nil {
		errs.add("dhcp.ha.role", "%s is not primary or secondary", names.Label(f.Role))
	} else {
		p.Role = r
	}
	p.FailoverAfter = duration(errs, "dhcp.ha.failover_after", f.FailoverAfter, dhcp.DefaultFailoverAfter)
	if p.FailoverAfter < dhcp.MinFailoverAfter {
		errs.add("dhcp.ha.failover_after", "%v is below %v: heartbeats are read every second", p.FailoverAfter, dhcp.MinFailoverAfter)
	}
	return p
}

// dhcpPair is the configured pair with the store that keeps its
// heartbeats (the one it shares with the peer); nil without dhcp.ha.
func (c *config) dhcpPair(beats dhcp.Heartbeats) *dhcp.Pair {
	if c.Pair == nil {
		return nil
	}
	p := *c.Pair
	p.Heartbeats = beats
	return &p
}
