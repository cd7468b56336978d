package appliance

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/foundry-appliance/foundry/appliance/netplan"
)

// Cmdline is what the kernel command line says to the appliance init
// (foundry.* parameters; the rest is the kernel's).
type Cmdline struct {
	// Plan is the network from foundry.iface= and foundry.ip= (with
	// foundry.range=, foundry.gw=, foundry.dns= and foundry.mgmt=); nil
	// when the line names no interface.
	Plan *netplan.Plan
	// Format (foundry.format=yes) allows formatting a blank disk as the
	// data disk without asking.
	Format bool
	// RAM (foundry.data=ram) ignores every data disk: nothing is kept.
	RAM bool
	// Setup (foundry.setup=yes) runs the console setup even when the data
	// disk holds a plan.
	Setup bool
	// SetupTimeout (foundry.setup_timeout=, a Go duration) is how long the
	// console setup waits for a person before the appliance comes up with
	// DHCP management addresses and no provisioning segment. Default
	// DefaultSetupTimeout; 0 waits for ever.
	SetupTimeout time.Duration
	// LogConsole (foundry.log=console) copies `foundry serve`'s log to the
	// serial console, for debugging a box that misbehaves.
	LogConsole bool
}

// DefaultSetupTimeout leaves a person at the console time to read the
// interface list and answer, and lets an unattended box come up on its own.
const DefaultSetupTimeout = 10 * time.Minute

// ParseCmdline reads /proc/cmdline's text. An unknown foundry.* key or a
// bad value is an error naming it, so that a typo at the GRUB prompt is
// shown on the console instead of silently ignored.
func ParseCmdline(line string) (Cmdline, error) {
	c := Cmdline{SetupTimeout: DefaultSetupTimeout}
	net := map[string]string{}
	var errs []error
	for _, field := range strings.Fields(line) {
		key, val, _ := strings.Cut(field, "=")
		if !strings.HasPrefix(key, "foundry.") {
			continue
		}
		switch key {
		case "foundry.iface", "foundry.ip", "foundry.range", "foundry.gw", "foundry.dns", "foundry.mgmt":
			net[key] = val
		case "foundry.format":
			c.Format, errs = yesNo(key, val, errs)
		case "foundry.setup":
			c.Setup, errs = yesNo(key, val, errs)
		case "foundry.data":
			switch val {
			case "ram":
				c.RAM = true
			case "disk":
			default:
				errs = append(errs, fmt.Errorf("%s=%s: want ram or disk", key, val))
			}
		case "foundry.setup_timeout":
			d, err := time.ParseDuration(val)
			if err != nil || d < 0 {
				errs = append(errs, fmt.Errorf("%s=%s: want a duration like 90s or 0 (wait for ever)", key, val))
				continue
			}
			c.SetupTimeout = d
		case "foundry.log":
			if val != "console" {
				errs = append(errs, fmt.Errorf("%s=%s: want console", key, val))
				continue
			}
			c.LogConsole = true
		default:
			errs = append(errs, fmt.Errorf("%s: unknown parameter", key))
		}
	}
	if len(net) > 0 {
		plan, err := cmdlinePlan(net)
		if err != nil {
			errs = append(errs, err)
		} else {
			c.Plan = &plan
		}
	}
	return c, errors.Join(errs...)
}

func cmdlinePlan(kv map[string]string) (netplan.Plan, error) {
	var plan netplan.Plan
	switch kv["foundry.mgmt"] {
	case "", "dhcp":
	case "none":
		plan.NoManagement = true
	default:
		return plan, fmt.Errorf("foundry.mgmt=%s: want dhcp or none", kv["foundry.mgmt"])
	}
	iface, ip := kv["foundry.iface"], kv["foundry.ip"]
	if iface == "" || ip == "" {
		return plan, errors.New("foundry.iface= and foundry.ip= go together (the provisioning interface and the appliance's address on it, like foundry.iface=eth0 foundry.ip=10.77.0.1/24)")
	}
	p, err := netplan.ParseFields(iface, ip, kv["foundry.range"], kv["foundry.gw"], kv["foundry.dns"])
	if err != nil {
		return plan, fmt.Errorf("foundry.iface/foundry.ip: %w", err)
	}
	plan.Provisioning = &p
	return plan, nil
}

func yesNo(key, val string, errs []error) (bool, []error) {
	switch strings.ToLower(val) {
	case "yes", "1", "true", "":
		return true, errs
	case "no", "0", "false":
		return false, errs
	}
	return false, append(errs, fmt.Errorf("%s=%s: want yes or no", key, val))
}
