// Package ipxe renders the iPXE script that package lifecycle decides a
// machine gets: discovery (the bundled discovery OS with a one-time boot
// nonce), production (the profile's kernel, initrd and command line, or its
// own script template), local disk, a boot menu, and the refusals for
// unknown, rejected and held machines. Server serves the script at
// GET /boot/{mac}.
//
// Render is the only place where a script is made; the HTTP handler and the
// API's preview both call it. Every value placed
// in a script is validated first (see validate.go): iPXE has no quoting,
// so a value that could inject a command is refused, never escaped.
package ipxe

import (
	"errors"
	"fmt"
	"time"

	"github.com/foundry-appliance/foundry/lifecycle"
	"github.com/foundry-appliance/foundry/store"
)

// Kind is which script a machine gets; lifecycle decides it.
type Kind = lifecycle.Script

// Script kinds (lifecycle's).
const (
	KindUnknown    = lifecycle.ScriptUnknown
	KindDiscovery  = lifecycle.ScriptDiscovery
	KindProduction = lifecycle.ScriptProduction
	KindLocal      = lifecycle.ScriptLocal
	KindMenu       = lifecycle.ScriptMenu
	KindRejected   = lifecycle.ScriptRejected
	KindHeld       = lifecycle.ScriptHeld
	KindBroken     = lifecycle.ScriptBroken
)

// Mode is a one-boot override requested by a menu item (?mode= on the
// script URL); lifecycle ignores it unless the machine's normal script is
// its menu, so that the URL cannot talk a machine out of its state.
type Mode = lifecycle.Mode

// Modes.
const (
	ModeNormal     = lifecycle.ModeNormal
	ModeDiscovery  = lifecycle.ModeDiscovery  // the menu's "rediscover" item
	ModeProduction = lifecycle.ModeProduction // the menu's "production" item
)

// ParseMode parses the ?mode= query value.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeNormal, ModeDiscovery, ModeProduction:
		return m, nil
	}
	return "", fmt.Errorf("unknown mode %s", quote(s))
}

// Defaults for the zero values of Input and Server.
const (
	DefaultDiscoveryKernel    = "/images/discovery/vmlinuz"
	DefaultDiscoveryInitrd    = "/images/discovery/initrd"
	DefaultExtraDiscoveryArgs = "console=tty0 console=ttyS0,115200"
	DefaultMenuTimeout        = 5 * time.Second
	// PreviewNonce stands in for the boot nonce when Input.Nonce is nil, so
	// that showing a script never revokes the nonce a machine is using.
	PreviewNonce = "NONCE-ISSUED-AT-BOOT"
)

// Input is everything Render needs. Render does no I/O besides calling
// Nonce.
type Input struct {
	// MAC is the machine's MAC in canonical form (see ParseMAC). Required.
	MAC string
	// Machine is the machine's record; nil when the MAC is unknown.
	Machine *store.Machine
	// Profile is the profile named by Machine.Profile; nil when the machine
	// has none or it does not exist.
	Profile *store.Profile
	// Mode is the one-boot override from the URL.
	Mode Mode
	// Segment is the segment of the machine's record, as configured; the
	// zero value (no discovery) for a segment that is not configured.
	Segment lifecycle.Segment
	// BaseURL is the appliance URL machines use (http.advertise), e.g.
	// "http://10.77.0.1:8080". Required.
	BaseURL string
	// DiscoveryKernel and DiscoveryInitrd are paths on the appliance (or
	// absolute URLs). Defaults DefaultDiscoveryKernel and
	// DefaultDiscoveryInitrd.
	DiscoveryKernel string
	DiscoveryInitrd string
	// ExtraDiscoveryArgs is appended to the discovery kernel command line.
	// Default DefaultExtraDiscoveryArgs.
	ExtraDiscoveryArgs string
	// MenuTimeout is how long the menu waits before booting production.
	// Default DefaultMenuTimeout.
	MenuTimeout time.Duration
	// Nonce issues a boot nonce for the discovery script. Render calls it
	// at most once, and only for a discovery script. Nil renders
	// PreviewNonce instead (for showing a script without issuing one).
	Nonce func() (string, error)
}

// Script is a rendered boot script.
type Script struct {
	Kind Kind
	// Text starts with "#!ipxe" and ends with a newline.
	Text string
}

// ErrNoProfile is returned when an accepted machine's profile is missing.
var ErrNoProfile = errors.New("machine has no usable profile")

// Render decides which script the machine gets and renders it.
func Render(in Input) (Script, error) {
	in = in.withDefaults()
	if err := checkMAC(in.MAC); err != nil {
		return Script{}, fmt.Errorf("render script: %w", err)
	}
	base, err := checkBaseURL(in.BaseURL)
	if err != nil {
		return Script{}, fmt.Errorf("render script for %s: %w", in.MAC, err)
	}
	in.BaseURL = base
	kind, err := decide(in)
	if err != nil {
		return Script{}, fmt.Errorf("render script for %s: %w", in.MAC, err)
	}
	var text string
	switch kind {
	case KindUnknown:
		text = unknownScript(in)
	case KindRejected:
		text = rejectedScript(in)
	case KindDiscovery:
		text, err = discoveryScript(in)
	case KindProduction:
		text, err = productionScript(in)
	case KindLocal:
		text, err = localScript(in)
	case KindMenu:
		text, err = menuScript(in)
	case KindHeld:
		text = heldScript(in)
	}
	if err != nil {
		return Script{}, fmt.Errorf("render %s script for %s: %w", kind, in.MAC, err)
	}
	return Script{Kind: kind, Text: text}, nil
}

func (in Input) withDefaults() Input {
	if in.DiscoveryKernel == "" {
		in.DiscoveryKernel = DefaultDiscoveryKernel
	}
	if in.DiscoveryInitrd == "" {
		in.DiscoveryInitrd = DefaultDiscoveryInitrd
	}
	if in.ExtraDiscoveryArgs == "" {
		in.ExtraDiscoveryArgs = DefaultExtraDiscoveryArgs
	}
	if in.MenuTimeout <= 0 {
		in.MenuTimeout = DefaultMenuTimeout
	}
	return in
}

// decide asks lifecycle.Decide which script the machine gets; the table
// of script kinds by state is in docs/lifecycle.md.
func decide(in Input) (Kind, error) {
	m := in.Machine
	if m == nil {
		return KindUnknown, nil
	}
	if m.MAC != "" && m.MAC != in.MAC {
		return 0, fmt.Errorf("record is for %s", quote(m.MAC))
	}
	var kind store.ProfileKind
	if p := in.Profile; p != nil && m.Profile != "" {
		if p.Name != m.Profile {
			return 0, fmt.Errorf("%w: profile %s given for %s", ErrNoProfile, quote(p.Name), quote(m.Profile))
		}
		kind = p.Kind
		if kind != store.ProfileImage && kind != store.ProfileNetboot {
			return 0, fmt.Errorf("%w: profile %s has unknown kind %s", ErrNoProfile, quote(p.Name), quote(string(p.Kind)))
		}
	}
	k := lifecycle.Decide(lifecycle.Query{Machine: m.Lifecycle(kind), Segment: in.Segment, Mode: in.Mode}).Script
	if k == KindBroken {
		if !m.State.Valid() {
			return 0, fmt.Errorf("unknown state %s", m.State)
		}
		return 0, fmt.Errorf("%w: profile %s not found", ErrNoProfile, quote(m.Profile))
	}
	return k, nil
}
