// Package dhcpc keeps the discovery OS's boot NIC configured by DHCP for
// as long as the agent runs. A machine may wait in discovery for days
// while a lease lasts an hour, so obtaining an address once is not
// enough: Client follows RFC 2131 §4.4.5. It obtains a lease (DISCOVER,
// OFFER, REQUEST, ACK), configures the address and routes, renews with
// the server that granted the lease at T1 (unicast), rebinds with any
// server at T2 (broadcast), and when the lease expires or a server refuses
// it (NAK) it removes the address and starts over with a DISCOVER.
//
// How a lease without a subnet mask is configured is explained at plan.
package dhcpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Client keeps one interface configured. Call Acquire until it succeeds,
// then run Keep until the context ends. A Client is not safe for
// concurrent use.
type Client struct {
	// Interface is the NIC to configure. Required.
	Interface string
	// Log receives lease events. Default: silent.
	Log *slog.Logger
	// Timeout is how long one exchange waits for an answer before it
	// sends again (doubling each time). Default 4 s.
	Timeout time.Duration
	// Retries is how many times one exchange is sent. Default 3.
	Retries int
	// MinRetry is the shortest pause between two renewal (or rebinding)
	// attempts: after a failure the client waits half the time left
	// until T2 (or the expiry), but at least this, and never past that
	// deadline. Default 60 s, as RFC 2131 §4.4.5 says.
	MinRetry time.Duration
	// OnChange is told the configured address whenever it changes: the
	// first lease, a new address, or none (the zero Prefix) after the
	// lease was lost. Default: nobody.
	OnChange func(netip.Prefix)

	// net does the sockets and netlink calls; tests replace it, and
	// sleep and now with it. Defaults: the real interface and clock.
	net   network
	sleep func(ctx context.Context, d time.Duration) error
	now   func() time.Time

	lease   *lease
	applied config
}

// network is what the client needs from the system.
type network interface {
	// up brings the link up and waits a little for carrier.
	up(ctx context.Context) error
	// discover obtains a new lease: DISCOVER, OFFER, REQUEST, ACK.
	discover(ctx context.Context) (*dhcpv4.DHCPv4, error)
	// request asks to extend the lease of ack, unicast to server when
	// it is valid (renewing), broadcast when it is not (rebinding). A
	// refusal is errNAK.
	request(ctx context.Context, ack *dhcpv4.DHCPv4, server netip.Addr) (*dhcpv4.DHCPv4, error)
	// apply changes the interface from configuration old to new; the
	// zero config removes everything old added.
	apply(old, new config) error
}

// errNAK is a server's refusal of a lease.
var errNAK = errors.New("the server refused the lease (DHCPNAK)")

// rediscoverPause is the wait between failed attempts at a new lease.
const rediscoverPause = 5 * time.Second

func (c *Client) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (c *Client) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

func (c *Client) minRetry() time.Duration {
	if c.MinRetry > 0 {
		return c.MinRetry
	}
	return 60 * time.Second
}

func (c *Client) system() network {
	if c.net == nil {
		c.net = newLinkNet(c.Interface, c.Timeout, c.Retries)
	}
	return c.net
}

// wait pauses for d or until ctx ends.
func (c *Client) wait(ctx context.Context, d time.Duration) error {
	if c.sleep != nil {
		return c.sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Acquire brings the interface up, obtains a lease within timeout and
// configures it. It returns the configured address.
func (c *Client) Acquire(ctx context.Context, timeout time.Duration) (netip.Prefix, error) {
	if c.Interface == "" {
		return netip.Prefix{}, errors.New("dhcpc: no interface")
	}
	n := c.system()
	if err := n.up(ctx); err != nil {
		return netip.Prefix{}, err
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	ack, err := n.discover(dctx)
	cancel()
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("dhcp on %s: %w", c.Interface, err)
	}
	if err := c.bind(ack); err != nil {
		return netip.Prefix{}, err
	}
	return c.applied.addr, nil
}

// Keep renews, rebinds and replaces the lease that Acquire obtained until
// ctx ends, and then returns ctx's error. Every other trouble is logged
// and retried: the agent has no use for a machine without its address.
func (c *Client) Keep(ctx context.Context) error {
	if c.lease == nil {
		return errors.New("dhcpc: Keep needs a lease from Acquire")
	}
	for ctx.Err() == nil {
		t := leaseTimes(c.lease.ack, c.lease.acquired)
		now := c.clock()
		var err error
		switch {
		case now.Before(t.renew):
			err = c.wait(ctx, t.renew.Sub(now))
		case now.Before(t.rebind):
			server, _ := netip.AddrFromSlice(c.lease.ack.ServerIdentifier().To4())
			err = c.extend(ctx, "renew", server, t.rebind)
		case now.Before(t.expire):
			err = c.extend(ctx, "rebind", netip.Addr{}, t.expire)
		default:
			c.log().Warn("dhcp lease expired", "interface", c.Interface, "addr", c.applied.addr)
			err = c.rediscover(ctx)
		}
		if err != nil {
			return err
		}
	}
	return ctx.Err()
}

// extend makes one attempt to renew (server valid) or rebind the lease
// before deadline, and on failure waits for the next attempt. It returns
// an error only when ctx ended.
func (c *Client) extend(ctx context.Context, phase string, server netip.Addr, deadline time.Time) error {
	if phase == "renew" && !server.IsValid() {
		// Nobody to ask unicast; the broadcast comes at T2.
		return c.wait(ctx, deadline.Sub(c.clock()))
	}
	rctx, cancel := context.WithTimeout(ctx, deadline.Sub(c.clock()))
	ack, err := c.system().request(rctx, c.lease.ack, server)
	cancel()
	switch {
	case err == nil:
		inherit(ack, c.lease.ack)
		if err := c.bind(ack); err != nil {
			c.log().Warn("dhcp "+phase, "interface", c.Interface, "err", err)
			return c.wait(ctx, retryWait(c.clock(), deadline, c.minRetry()))
		}
		c.log().Info("dhcp lease "+phase+"ed", "interface", c.Interface, "addr", c.applied.addr,
			"lease", ack.IPAddressLeaseTime(forever))
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, errNAK):
		c.log().Warn("dhcp "+phase, "interface", c.Interface, "err", err)
		return c.rediscover(ctx)
	default:
		c.log().Warn("dhcp "+phase, "interface", c.Interface, "err", err, "deadline", deadline)
		return c.wait(ctx, retryWait(c.clock(), deadline, c.minRetry()))
	}
}

// rediscover gives the address up and obtains a new lease, retrying
// until it has one or ctx ends.
func (c *Client) rediscover(ctx context.Context) error {
	if err := c.system().apply(c.applied, config{}); err != nil {
		c.log().Warn("dhcp: remove the lost address", "interface", c.Interface, "err", err)
	}
	lost := c.applied.addr
	c.applied, c.lease = config{}, nil
	if lost.IsValid() && c.OnChange != nil {
		c.OnChange(netip.Prefix{})
	}
	for {
		ack, err := c.system().discover(ctx)
		if err == nil {
			if err = c.bind(ack); err == nil {
				c.log().Info("dhcp lease obtained again", "interface", c.Interface, "addr", c.applied.addr)
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log().Warn("dhcp discover", "interface", c.Interface, "err", err)
		if err := c.wait(ctx, rediscoverPause); err != nil {
			return err
		}
	}
}

// bind configures the interface for ack and records the lease.
func (c *Client) bind(ack *dhcpv4.DHCPv4) error {
	cfg, err := plan(bindingOf(ack))
	if err != nil {
		return fmt.Errorf("dhcp on %s: %w", c.Interface, err)
	}
	if err := c.system().apply(c.applied, cfg); err != nil {
		return fmt.Errorf("configure %s on %s: %w", cfg, c.Interface, err)
	}
	changed := cfg.addr != c.applied.addr
	c.applied = cfg
	c.lease = &lease{ack: ack, acquired: c.clock()}
	if changed {
		c.log().Info("dhcp address configured", "interface", c.Interface, "config", cfg.String())
		if c.OnChange != nil {
			c.OnChange(cfg.addr)
		}
	}
	return nil
}

// inherit fills in, for a renewal ACK of the same address, the network
// options the server left out: some servers send only the lease time when
// renewing, and a mask or router must not vanish because of that.
func inherit(ack, prev *dhcpv4.DHCPv4) {
	if !ack.YourIPAddr.Equal(prev.YourIPAddr) {
		return
	}
	for _, code := range []dhcpv4.OptionCode{dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionServerIdentifier} {
		if ack.Options.Get(code) == nil && prev.Options.Get(code) != nil {
			ack.UpdateOption(dhcpv4.OptGeneric(code, prev.Options.Get(code)))
		}
	}
}
