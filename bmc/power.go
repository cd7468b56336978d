package bmc

import (
	"context"
	"fmt"
	"strings"

	bmclib "github.com/bmc-toolbox/bmclib/v2"
)

// PowerState is a machine's power as its BMC reports it.
type PowerState string

// Power states.
const (
	PowerOn      PowerState = "on"
	PowerOff     PowerState = "off"
	PowerUnknown PowerState = "unknown" // the BMC answered something else
)

// ParsePowerState reads the BMC's answer: ipmitool's "Chassis Power is
// on", Redfish's "On", "PoweringOff", ….
func ParsePowerState(s string) PowerState {
	f := strings.Fields(strings.ToLower(s))
	if len(f) == 0 {
		return PowerUnknown
	}
	switch f[len(f)-1] {
	case "on", "poweringon":
		return PowerOn
	case "off", "poweringoff":
		return PowerOff
	}
	return PowerUnknown
}

// Action is a power change.
type Action string

// Power actions. Cycle is a hard power-off followed by power-on (the
// machine boots again from its firmware); on and off do nothing to a
// machine already in that state.
const (
	ActionOn    Action = "on"
	ActionOff   Action = "off"
	ActionCycle Action = "cycle"
)

// ParseAction is the inverse of Action's string form.
func ParseAction(s string) (Action, error) {
	switch a := Action(strings.ToLower(strings.TrimSpace(s))); a {
	case ActionOn, ActionOff, ActionCycle:
		return a, nil
	}
	return "", fmt.Errorf("unknown power action %q (want on, off or cycle)", s)
}

// PowerState asks the BMC whether the machine is on.
func (c *Client) PowerState(ctx context.Context, ep Endpoint) (PowerState, error) {
	var st PowerState
	err := c.session(ctx, ep, "power status", func(ctx context.Context, cl *bmclib.Client) error {
		raw, err := cl.GetPowerState(ctx)
		if err != nil {
			return err
		}
		st = ParsePowerState(raw)
		return nil
	})
	return st, err
}

// Power turns the machine on or off, or cycles it.
func (c *Client) Power(ctx context.Context, ep Endpoint, a Action) error {
	if _, err := ParseAction(string(a)); err != nil {
		return &Error{Op: "power", Endpoint: ep.String(), Msg: err.Error(), Err: err}
	}
	return c.session(ctx, ep, "power "+string(a), func(ctx context.Context, cl *bmclib.Client) error {
		return setPower(ctx, cl, a)
	})
}

func setPower(ctx context.Context, cl *bmclib.Client, a Action) error {
	ok, err := cl.SetPowerState(ctx, string(a))
	if err == nil && !ok {
		err = fmt.Errorf("the BMC did not confirm power %s", a)
	}
	return err
}

// BootPXE makes the machine's next boot (only the next) a network boot.
func (c *Client) BootPXE(ctx context.Context, ep Endpoint) error {
	return c.session(ctx, ep, "boot pxe", func(ctx context.Context, cl *bmclib.Client) error {
		return bootPXE(ctx, cl)
	})
}

func bootPXE(ctx context.Context, cl *bmclib.Client) error {
	ok, err := cl.SetBootDevice(ctx, "pxe", false, false)
	if err == nil && !ok {
		err = fmt.Errorf("the BMC did not confirm the boot device")
	}
	return err
}

// RestartPXE boots the machine from the network now: next boot PXE, then
// a power cycle, or a power-on when it is off (many BMCs refuse to cycle
// a machine that is off). It is what rediscover, redeploy and release do
// when a machine's BMC is known. It returns the power state it found.
func (c *Client) RestartPXE(ctx context.Context, ep Endpoint) (PowerState, error) {
	var was PowerState
	err := c.session(ctx, ep, "restart pxe", func(ctx context.Context, cl *bmclib.Client) error {
		if err := bootPXE(ctx, cl); err != nil {
			return err
		}
		raw, err := cl.GetPowerState(ctx)
		if err != nil {
			return err
		}
		was = ParsePowerState(raw)
		if was == PowerOff {
			return setPower(ctx, cl, ActionOn)
		}
		return setPower(ctx, cl, ActionCycle)
	})
	return was, err
}
