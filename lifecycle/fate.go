package lifecycle

import "fmt"

// Machine is what Decide needs of a machine's record.
type Machine struct {
	State State
	// Profile is the kind of the machine's profile; "" when it has none or
	// the profile does not exist.
	Profile ProfileKind
	// Menu makes a production or local-disk boot an iPXE menu.
	Menu bool
	// UEFIBinary overrides Segment.UEFIBinary; "" keeps the segment's.
	UEFIBinary string
	// Installed says that the agent has written the image: a provisioning
	// image machine then boots its disk until the installed system reports
	// its first boot. It means nothing in any other state.
	Installed bool
	// Wipe says that a release asked for the machine's disks to be wiped
	// before it can be approved again.
	Wipe bool
}

// WipePending says that a release's wipe is still to be done: a released
// machine waits in discovery, and each of its boot sessions wipes before
// one can be approved (Decide tells a session that has not wiped to wipe).
func (m *Machine) WipePending() bool { return m.Wipe && m.State.Pending() }

// awaitingFirstBoot: the image is written and the installed system has not
// reported its first boot yet.
func (m *Machine) awaitingFirstBoot() bool {
	return m.Installed && m.State == Provisioning && m.Profile == Image
}

// Segment is what Decide needs of the segment the machine is on: for DHCP
// the segment the packet arrived on, for HTTP the segment of the machine's
// record (the one DHCP saw it on last). A segment that is not configured
// (any more) is the zero value: no discovery, proxy off.
type Segment struct {
	// Discovery allows unknown machines to boot into discovery here.
	Discovery bool
	// Proxy is proxyDHCP mode: another server hands out addresses.
	Proxy bool
	// AllowUnknown gives unknown MACs an address (no boot) on a dhcp-mode
	// segment without discovery.
	AllowUnknown bool
	// UEFIBinary is the segment's x86-64 UEFI iPXE binary: BinaryIPXE or
	// BinarySNP; "" means BinaryIPXE.
	UEFIBinary string
}

// Firmware is what kind of network-boot client asked.
type Firmware int

// Firmware kinds, from DHCP options 60 and 77.
const (
	FirmwareNone Firmware = iota // not a network-boot client (an OS's DHCP client)
	FirmwarePXE                  // firmware PXE (option 60 "PXEClient")
	FirmwareIPXE                 // iPXE (option 77 "iPXE")
	FirmwareHTTP                 // UEFI HTTP boot (option 60 "HTTPClient")
)

var firmwareNames = [...]string{"none", "pxe", "ipxe", "http"}

// String returns the name stored in a machine record ("client kind").
func (f Firmware) String() string {
	if f < 0 || int(f) >= len(firmwareNames) {
		return fmt.Sprintf("firmware(%d)", int(f))
	}
	return firmwareNames[f]
}

// Arch is the client architecture of DHCP option 93, grouped by the iPXE
// binary it needs.
type Arch int

// Architectures.
const (
	ArchUnknown Arch = iota // option 93 absent
	ArchBIOS                // x86 BIOS
	ArchX64                 // x86-64 UEFI (PXE or HTTP)
	ArchARM64               // arm64 UEFI (PXE or HTTP)
	ArchOther               // anything Foundry has no binary for
)

// Client is the asking client, as parsed from its DHCP request.
type Client struct {
	Firmware Firmware
	Arch     Arch
}

// iPXE binaries by file name (TFTP names; over HTTP under /images/ipxe/).
const (
	BinaryBIOS  = "undionly.kpxe"
	BinaryIPXE  = "ipxe.efi"
	BinarySNP   = "snponly.efi"
	BinaryARM64 = "ipxe-arm64.efi"
)

// UEFIBinaries are the x86-64 UEFI binaries a segment or machine may name.
func UEFIBinaries() []string { return []string{BinaryIPXE, BinarySNP} }

// Mode is a one-boot override chosen from a machine's boot menu.
type Mode string

// Modes.
const (
	ModeNormal     Mode = ""
	ModeDiscovery  Mode = "discovery"  // the menu's "rediscover" item
	ModeProduction Mode = "production" // the menu's "production" item
)

// Query is one question: what does this machine get, on this segment, from
// this client?
type Query struct {
	// Machine is the record; nil when the MAC is unknown.
	Machine *Machine
	Segment Segment
	Client  Client
	// Mode is the menu override of a script request; ignored unless the
	// machine's normal script is its menu, so that a URL cannot talk a
	// machine out of its state.
	Mode Mode
	// HaveARM64 says whether the appliance has an arm64 iPXE binary.
	HaveARM64 bool
	// Bound says, for an agent's question, that its boot session is the one
	// approval bound the machine to. Another session of the same MAC (an
	// earlier boot's, or a spoofer's) is never given the image to write nor
	// the approval's details.
	Bound bool
	// Wiped says, for an agent's question, that its boot session has
	// already wiped the machine's disks for a release.
	Wiped bool
}

// BootKind is what the DHCP answer tells the client to boot.
type BootKind int

// Boot kinds.
const (
	BootNone   BootKind = iota // no boot information
	BootTFTP                   // File over TFTP (firmware PXE)
	BootHTTP                   // File over HTTP, /images/ipxe/<File> (UEFI HTTP boot)
	BootScript                 // the machine's iPXE script URL (iPXE)
)

var bootNames = [...]string{"none", "tftp", "http", "script"}

func (k BootKind) String() string {
	if k < 0 || int(k) >= len(bootNames) {
		return fmt.Sprintf("boot(%d)", int(k))
	}
	return bootNames[k]
}

// Script is the iPXE script a machine gets.
type Script int

// Script kinds.
const (
	// ScriptUnknown: the MAC has no record; the script says so and exits.
	ScriptUnknown Script = iota
	// ScriptDiscovery: the discovery OS, with a fresh boot nonce.
	ScriptDiscovery
	// ScriptProduction: the netboot profile's kernel/initrd/cmdline or script.
	ScriptProduction
	// ScriptLocal: boot the installed system from the local disk.
	ScriptLocal
	// ScriptMenu: the boot menu (production, rediscover, local disk, shell).
	ScriptMenu
	// ScriptRejected: the machine was rejected; nothing is booted.
	ScriptRejected
	// ScriptHeld: a machine waiting in discovery asks from a segment where
	// discovery is not allowed; nothing is booted.
	ScriptHeld
	// ScriptBroken: an accepted machine whose profile is missing, or a
	// record in a state this code does not know; the appliance logs the
	// fault and the machine boots nothing.
	ScriptBroken
)

var scriptNames = [...]string{"unknown", "discovery", "production", "local", "menu", "rejected", "held", "broken"}

// String returns the lower-case name used in logs and the API.
func (k Script) String() string {
	if k < 0 || int(k) >= len(scriptNames) {
		return fmt.Sprintf("kind(%d)", int(k))
	}
	return scriptNames[k]
}

// MarshalText makes script kinds appear by name in JSON.
func (k Script) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Agent is what the discovery agent is told to do.
type Agent string

// Agent decisions.
const (
	AgentWait    Agent = "wait"    // stay in discovery; ask again
	AgentNetboot Agent = "netboot" // reboot: the next PXE boot is production
	AgentImage   Agent = "image"   // write the profile's image, then boot the disk
	AgentReject  Agent = "reject"  // power off
	AgentWipe    Agent = "wipe"    // wipe the disks (a release), report, then wait
)

// Fate is everything a machine gets for one Query.
type Fate struct {
	// Reply says whether DHCP answers at all.
	Reply bool
	// Address says whether DHCP gives an address (dhcp-mode segments).
	Address bool
	// Boot and File are the boot information of the DHCP answer.
	Boot BootKind
	File string
	// Record asks DHCP to create the temporary discovered record.
	Record bool
	// Script is the iPXE script the machine's script URL serves.
	Script Script
	// Agent is the discovery agent's decision.
	Agent Agent
	// AgentDetails says that the decision carries the approval's details
	// (host name, SSH keys, network, image): only to the bound session, and
	// only with a decision that uses them.
	AgentDetails bool
	// Reason explains a missing answer, boot or script, for logs.
	Reason string
}

// Decide is the boot decision of docs/spec.md §1–2: the one answer to what a
// machine gets from DHCP, from its script URL and from the agent API.
func Decide(q Query) Fate {
	f := Fate{Script: script(q), Agent: agent(q.Machine)}
	if f.Agent == AgentImage && !q.Bound {
		f.Agent = AgentWait
	}
	// A released machine's disks are wiped by every boot session before
	// one of them can be approved: each session wipes its own hardware, so
	// a spoofer's report cannot spare the genuine machine's disks.
	if m := q.Machine; m != nil && m.WipePending() && !q.Wiped {
		f.Agent = AgentWipe
	}
	f.AgentDetails = q.Bound && (f.Agent == AgentImage || f.Agent == AgentNetboot)
	m, seg := q.Machine, q.Segment
	var wantBoot bool
	switch {
	case m != nil && !m.State.Valid():
		// A record this code cannot read gets nothing rather than a guess.
		f.Reason = "machine in unknown state " + m.State.String()
		return f
	case m == nil && seg.Discovery:
		wantBoot, f.Record = true, true
	case m == nil:
		f.Reason = "unknown machine on a segment without discovery"
		if !seg.Proxy && seg.AllowUnknown {
			f.Reply, f.Address = true, true
		}
		return f
	case m.State == Rejected:
		// A rejected machine is a deny entry: not even an address.
		f.Reason = "machine rejected"
		return f
	case m.State.Pending():
		wantBoot = seg.Discovery
		if !wantBoot {
			f.Reason = "machine not yet accepted, segment without discovery"
		}
	default:
		// Accepted machines boot anywhere; the script decides what they run.
		wantBoot = true
	}
	f.Address = !seg.Proxy
	if wantBoot {
		f.Boot, f.File, f.Reason = bootFile(q)
	}
	// A client that cannot be booted gets no record: it would only expire.
	f.Record = f.Record && f.Boot != BootNone
	f.Reply = f.Address || f.Boot != BootNone
	return f
}

// bootFile picks what a client that may boot is given, by firmware and
// architecture (option 93 decides the binary; iPXE gets its script).
func bootFile(q Query) (BootKind, string, string) {
	c := q.Client
	uefi := q.Segment.UEFIBinary
	if uefi == "" {
		uefi = BinaryIPXE
	}
	if m := q.Machine; m != nil && contains(UEFIBinaries(), m.UEFIBinary) {
		uefi = m.UEFIBinary
	}
	var name string
	switch c.Arch {
	case ArchBIOS:
		name = BinaryBIOS
	case ArchX64:
		name = uefi
	case ArchARM64:
		if q.HaveARM64 {
			name = BinaryARM64
		}
	}
	switch c.Firmware {
	case FirmwareIPXE:
		return BootScript, "", ""
	case FirmwareHTTP:
		if name == "" || name == BinaryBIOS {
			return BootNone, "", "no boot binary for this HTTP boot client's architecture"
		}
		return BootHTTP, name, ""
	case FirmwarePXE:
		if name == "" {
			return BootNone, "", "no boot binary for this client's architecture"
		}
		return BootTFTP, name, ""
	}
	return BootNone, "", "not a network-boot client"
}

// script is the iPXE script by state:
//
//	no record                                 → unknown (nothing is created here)
//	discovered, inventoried                   → discovery, or held off discovery segments
//	rejected                                  → rejected
//	image profile: approved, provisioning, failed → discovery (the agent writes the image)
//	image profile: provisioning, installed    → local disk (its first boot)
//	image profile: ready                      → local disk
//	netboot profile: approved, ready          → production
//	netboot profile: provisioning, failed     → discovery (the agent reports)
//
// A production or local-disk boot becomes the menu when the machine has one,
// and the menu's items come back with a Mode for one boot.
func script(q Query) Script {
	m := q.Machine
	switch {
	case m == nil:
		return ScriptUnknown
	case !m.State.Valid():
		return ScriptBroken
	case m.State == Rejected:
		return ScriptRejected
	case m.State.Pending() && !q.Segment.Discovery:
		return ScriptHeld
	case m.State.Pending():
		return ScriptDiscovery
	}
	var kind Script
	switch {
	case m.Profile == Image && (m.State == Ready || m.awaitingFirstBoot()):
		kind = ScriptLocal
	case m.Profile == Image:
		return ScriptDiscovery
	case m.Profile == Netboot && (m.State == Approved || m.State == Ready):
		kind = ScriptProduction
	case m.Profile == Netboot:
		return ScriptDiscovery
	default:
		return ScriptBroken
	}
	if !m.Menu {
		return kind
	}
	switch q.Mode {
	case ModeDiscovery:
		return ScriptDiscovery
	case ModeProduction:
		return kind
	}
	return ScriptMenu
}

// agent is the discovery agent's decision by state:
//
//	discovered, inventoried, failed       → wait (failed waits for a retry)
//	rejected                              → reject
//	approved, provisioning + image        → image
//	provisioning + image, installed       → netboot (reboot: the next boot is the disk)
//	approved, provisioning + netboot      → netboot (reboot into production)
//	ready                                 → netboot (reboot: the next boot is production or the disk)
func agent(m *Machine) Agent {
	if m == nil {
		return AgentWait
	}
	switch m.State {
	case Rejected:
		return AgentReject
	case Approved, Provisioning:
		switch {
		case m.awaitingFirstBoot():
			return AgentNetboot
		case m.Profile == Image:
			return AgentImage
		case m.Profile == Netboot:
			return AgentNetboot
		}
	case Ready:
		return AgentNetboot
	}
	return AgentWait
}
