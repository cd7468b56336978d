package dhcp

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/foundry-appliance/foundry/lifecycle"
	"github.com/foundry-appliance/foundry/store"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// Option 60 values that mark network-boot clients, echoed in replies.
const (
	vendorPXE  = "PXEClient"
	vendorHTTP = "HTTPClient"
)

// bootClient is what a request tells about the firmware that sent it.
type bootClient struct {
	MAC net.HardwareAddr
	// Arch is option 93 (or, failing that, the arch in "PXEClient:Arch:xxxxx").
	Arch    iana.Arch
	HasArch bool
	// IPXE is set when option 77 names iPXE (plain or RFC 3004 form).
	IPXE bool
	// Vendor is vendorPXE, vendorHTTP or "" from the prefix of option 60.
	Vendor string
}

// parseClient reads the boot-related options of req. It never fails: an
// option that does not parse is treated as absent.
func parseClient(req *dhcpv4.DHCPv4) bootClient {
	c := bootClient{MAC: req.ClientHWAddr}
	class := req.ClassIdentifier()
	switch {
	case strings.HasPrefix(class, vendorPXE):
		c.Vendor = vendorPXE
	case strings.HasPrefix(class, vendorHTTP):
		c.Vendor = vendorHTTP
	}
	if archs := req.ClientArch(); len(archs) > 0 {
		c.Arch, c.HasArch = archs[0], true
	} else if a, ok := archFromClass(class); ok {
		c.Arch, c.HasArch = a, true
	}
	c.IPXE = isIPXE(req.Options.Get(dhcpv4.OptionUserClassInformation))
	return c
}

// archFromClass reads the arch from "PXEClient:Arch:00007:UNDI:003016", the
// form PXE firmware puts in option 60 (PXE 2.1 §2.2).
func archFromClass(class string) (iana.Arch, bool) {
	parts := strings.Split(class, ":")
	if len(parts) < 3 || parts[1] != "Arch" || len(parts[2]) != 5 {
		return 0, false
	}
	n, err := strconv.ParseUint(parts[2], 10, 16)
	if err != nil {
		return 0, false
	}
	return iana.Arch(n), true
}

// isIPXE recognises option 77 sent by iPXE: the plain string "iPXE" or an
// RFC 3004 list of length-prefixed strings containing "iPXE".
func isIPXE(v []byte) bool {
	if string(v) == "iPXE" {
		return true
	}
	for len(v) > 0 {
		n := int(v[0])
		if n == 0 || n > len(v)-1 {
			return false
		}
		if string(v[1:1+n]) == "iPXE" {
			return true
		}
		v = v[1+n:]
	}
	return false
}

// archName is the firmware name recorded in a machine record.
func archName(c bootClient) string {
	if !c.HasArch {
		return ""
	}
	switch c.Arch {
	case iana.INTEL_X86PC:
		return "bios"
	case iana.EFI_IA32:
		return "uefi-ia32"
	case iana.EFI_X86_64, iana.EFI_BC:
		return "uefi-x64"
	case iana.EFI_ARM64:
		return "uefi-arm64"
	case iana.EFI_X86_64_HTTP:
		return "uefi-x64-http"
	case iana.EFI_ARM64_HTTP:
		return "uefi-arm64-http"
	}
	return fmt.Sprintf("arch-%d", uint16(c.Arch))
}

// lifecycle is the client as the boot decision sees it: its firmware kind
// and the architecture group that picks the iPXE binary.
func (c bootClient) lifecycle() lifecycle.Client {
	var lc lifecycle.Client
	switch {
	case c.IPXE:
		lc.Firmware = lifecycle.FirmwareIPXE
	case c.Vendor == vendorHTTP:
		lc.Firmware = lifecycle.FirmwareHTTP
	case c.Vendor == vendorPXE:
		lc.Firmware = lifecycle.FirmwarePXE
	}
	switch {
	case !c.HasArch:
		lc.Arch = lifecycle.ArchUnknown
	case c.Arch == iana.INTEL_X86PC:
		lc.Arch = lifecycle.ArchBIOS
	case c.Arch == iana.EFI_X86_64, c.Arch == iana.EFI_BC, c.Arch == iana.EFI_X86_64_HTTP:
		lc.Arch = lifecycle.ArchX64
	case c.Arch == iana.EFI_ARM64, c.Arch == iana.EFI_ARM64_HTTP:
		lc.Arch = lifecycle.ArchARM64
	default:
		lc.Arch = lifecycle.ArchOther
	}
	return lc
}

// bootEnv is what the boot decision needs from the server.
type bootEnv struct {
	// ScriptURL returns the iPXE script URL for a MAC; nil means none.
	ScriptURL func(net.HardwareAddr) string
	// HTTPBase is the appliance URL that booting machines use.
	HTTPBase string
	// HaveFile reports whether an optional boot file exists; nil = no.
	HaveFile func(name string) bool
}

// decision is lifecycle's answer put in DHCP terms.
type decision struct {
	// Reply says whether to answer at all.
	Reply bool
	// Address says whether to give the client an address (dhcp mode).
	Address bool
	// BootFile is a TFTP file name or an HTTP URL; empty means no boot.
	BootFile string
	// Vendor is option 60 for the reply when booting.
	Vendor string
	// Discover asks for a temporary discovered record for this MAC.
	Discover bool
	// Reason explains a missing reply or boot, for logs and metrics.
	Reason string
}

// decide asks lifecycle.Decide what the client gets (the DHCP answer does
// not depend on the machine's profile, so none is looked up) and turns the
// answer into a file name or URL with what env provides.
func decide(seg *Segment, c bootClient, m *store.Machine, env bootEnv) decision {
	lc := c.lifecycle()
	// Only an arm64 client's fate depends on the arm64 binary; asking the
	// file system for every other packet cost 5 % of the server's CPU
	// under load (a stat each).
	q := lifecycle.Query{Segment: seg.Lifecycle(), Client: lc,
		HaveARM64: lc.Arch == lifecycle.ArchARM64 && env.HaveFile != nil && env.HaveFile(lifecycle.BinaryARM64)}
	if m != nil {
		q.Machine = m.Lifecycle("")
	}
	f := lifecycle.Decide(q)
	d := decision{Address: f.Address, Discover: f.Record, Reason: f.Reason}
	switch f.Boot {
	case lifecycle.BootScript:
		switch {
		case env.ScriptURL == nil:
			d.Reason = "no script URL configured"
		default:
			if d.BootFile = env.ScriptURL(c.MAC); d.BootFile == "" {
				d.Reason = "no script URL for this machine"
			}
		}
	case lifecycle.BootHTTP:
		if env.HTTPBase == "" {
			d.Reason = "no HTTP base URL configured"
		} else {
			d.BootFile = strings.TrimRight(env.HTTPBase, "/") + "/images/ipxe/" + f.File
		}
	case lifecycle.BootTFTP:
		d.BootFile = f.File
	}
	if d.BootFile != "" {
		d.Vendor = vendorPXE
		if c.Vendor == vendorHTTP {
			d.Vendor = vendorHTTP
		}
	}
	// A client we cannot boot gets no record: it would only expire.
	d.Discover = d.Discover && d.BootFile != ""
	d.Reply = d.Address || d.BootFile != ""
	return d
}

// Lifecycle is what the boot decision needs of the segment; the script
// server asks with it too, for the segment a machine was last seen on.
func (s *Segment) Lifecycle() lifecycle.Segment {
	return lifecycle.Segment{Discovery: s.Discovery, Proxy: s.Mode == ModeProxy, AllowUnknown: s.AllowUnknown, UEFIBinary: s.uefiBinary()}
}

// decideUnread is decide for a client whose machine record cannot be read
// (the store is unavailable) and that renews a live lease of ours
// (renewsFromMemory): what lifecycle.Decide gives every record it can
// read other than a rejected one on a dhcp-mode segment, an address, and
// no boot file, which a client that already has an address does not ask
// for (a renewal is an installed OS's or a booted agent's). A rejected
// machine cannot be told apart without its record: it keeps the lease it
// already holds for the time that lease has left, as the store does,
// and is given nothing more.
func decideUnread(seg *Segment) decision {
	return decision{Reply: seg.Mode != ModeProxy, Address: seg.Mode != ModeProxy,
		Reason: "machine record unreadable (store unavailable): the address only"}
}
