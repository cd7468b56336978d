// Package agent is the discovery OS agent: it reads its orders from the
// kernel command line, registers the machine's inventory and registration
// token with the appliance, shows the token on the console, waits for the
// administrator's decision and carries it out (reboot into a netboot
// profile, write an image to disk, or power off).
//
// Everything that touches the machine (HTTP, clock, console, disks, reboot)
// is behind a field of Agent, so the logic runs in tests without being
// PID 1; the PID 1 duties (mounts, reaping, modules, DHCP) are in
// system_linux.go and used by cmd/foundry-agent.
package agent

import (
	"errors"
	"fmt"
	"github.com/foundry-appliance/foundry/names"
	"net/url"
	"strings"
)

// Cmdline is what the appliance put on the discovery kernel's command line:
// foundry.url=<advertise> foundry.mac=<mac> foundry.nonce=<nonce>.
type Cmdline struct {
	// URL is the appliance's base URL (http or https, no query).
	URL string
	// MAC is the boot NIC in canonical lower-case colon form.
	MAC string
	// Nonce authenticates the agent's API calls.
	Nonce string
}

// ErrCmdline is wrapped by every ParseCmdline error.
var ErrCmdline = errors.New("kernel command line")

// ParseCmdline reads the foundry.* parameters from /proc/cmdline. Other
// parameters are ignored; a missing or malformed foundry parameter is an
// error naming it.
func ParseCmdline(s string) (Cmdline, error) {
	var c Cmdline
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		v = strings.Trim(v, `"`)
		switch k {
		case "foundry.url":
			c.URL = strings.TrimRight(v, "/")
		case "foundry.mac":
			c.MAC = v
		case "foundry.nonce":
			c.Nonce = v
		}
	}
	if c.URL == "" {
		return c, fmt.Errorf("%w: foundry.url missing", ErrCmdline)
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.User != nil {
		return c, fmt.Errorf("%w: foundry.url %q is not an http(s) base URL", ErrCmdline, c.URL)
	}
	if c.MAC == "" {
		return c, fmt.Errorf("%w: foundry.mac missing", ErrCmdline)
	}
	mac, err := names.ParseMAC(c.MAC)
	if err != nil {
		return c, fmt.Errorf("%w: foundry.mac %q is not a MAC address", ErrCmdline, c.MAC)
	}
	c.MAC = mac
	if c.Nonce == "" {
		return c, fmt.Errorf("%w: foundry.nonce missing", ErrCmdline)
	}
	for _, r := range c.Nonce {
		if r <= ' ' || r > '~' {
			return c, fmt.Errorf("%w: foundry.nonce has a character that cannot go in an HTTP header", ErrCmdline)
		}
	}
	return c, nil
}
