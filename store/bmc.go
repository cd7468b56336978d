package store

import (
	"fmt"
	"time"
)

// BMC is a machine's baseboard management controller and the credential
// the appliance drives it with (package bmc). The password is kept only
// sealed (package internal/seal, bound to the machine's MAC) under a key
// that is not in the database; the API never shows it.
type BMC struct {
	// Protocol is "ipmi" or "redfish".
	Protocol string `json:"protocol"`
	// Address is the BMC's IP address or host name; Port 0 means the
	// protocol's default.
	Address string `json:"address"`
	Port    int    `json:"port,omitempty"`
	// MAC is the BMC's own LAN MAC, when the discovery OS read it.
	MAC      string `json:"mac,omitempty"`
	Username string `json:"username,omitempty"`
	// Secret is the sealed password; empty when none is stored.
	Secret []byte `json:"secret,omitempty"`
	// Source is BMCFromAgent or BMCByHand.
	Source    string    `json:"source"`
	UpdatedAt time.Time `json:"updated_at"`
	// RotatedAt is when the appliance last gave its user a new password.
	RotatedAt time.Time `json:"rotated_at,omitzero"`
}

// PowerManaged reports whether the appliance can reach m's BMC with a
// credential of its own: the machines whose power it reads and drives.
func (m *Machine) PowerManaged() bool {
	return m.BMC != nil && len(m.BMC.Secret) > 0 && m.BMC.Address != ""
}

// BMC sources.
const (
	BMCFromAgent = "agent" // created in band by the discovery OS
	BMCByHand    = "admin" // entered by an administrator
)

func checkBMC(b *BMC) error {
	if b == nil {
		return nil
	}
	if b.Protocol != "ipmi" && b.Protocol != "redfish" {
		return fmt.Errorf("%w: bmc protocol %q is not ipmi or redfish", ErrInvalid, b.Protocol)
	}
	if b.Source != BMCFromAgent && b.Source != BMCByHand {
		return fmt.Errorf("%w: bmc source %q is not %s or %s", ErrInvalid, b.Source, BMCFromAgent, BMCByHand)
	}
	if b.Port < 0 || b.Port > 65535 {
		return fmt.Errorf("%w: bmc port %d is out of range", ErrInvalid, b.Port)
	}
	if len(b.Secret) > 1024 {
		return fmt.Errorf("%w: bmc secret is %d bytes", ErrInvalid, len(b.Secret))
	}
	for _, c := range []struct{ field, v string }{{"bmc address", b.Address}, {"bmc mac", b.MAC}, {"bmc username", b.Username}} {
		if err := checkText(c.field, c.v, maxLabel); err != nil {
			return err
		}
	}
	return nil
}
