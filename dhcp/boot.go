package dhcp

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/foundry-appliance/foundry/store"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// Boot file names as served by TFTP (docs/architecture.md, fixed names).
const (
	fileBIOS  = "undionly.kpxe"
	fileARM64 = "ipxe-arm64.efi"
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

// bootEnv is what the boot decision needs from the server.
type bootEnv struct {
	// ScriptURL returns the iPXE script URL for a MAC; nil means none.
	ScriptURL func(net.HardwareAddr) string
	// HTTPBase is the appliance URL that booting machines use.
	HTTPBase string
	// HaveFile reports whether an optional boot file exists; nil = no.
	HaveFile func(name string) bool
}

// decision is the outcome of decide for one request.
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

// decide is the boot decision of SPEC §1–2: given the segment, what the
// client sent and its machine record (nil when the MAC is unknown), whether
// to answer, whether to give an address, and what to boot.
func decide(seg *Segment, c bootClient, m *store.Machine, env bootEnv) decision {
	var wantBoot, discover bool
	switch {
	case m == nil && seg.Discovery:
		wantBoot, discover = true, true
	case m == nil:
		// Discovery is confined to discovery segments: no boot, no record.
		if seg.Mode == ModeDHCP && seg.AllowUnknown {
			return decision{Reply: true, Address: true, Reason: "unknown machine on non-discovery segment"}
		}
		return decision{Reason: "unknown machine on non-discovery segment"}
	case m.State == store.StateRejected:
		// A rejected machine is a deny entry: not even an address.
		return decision{Reason: "machine rejected"}
	case m.State == store.StateDiscovered || m.State == store.StateInventoried:
		wantBoot = seg.Discovery
	default:
		// Accepted machines boot anywhere; the script decides what they run.
		wantBoot = true
	}
	d := decision{Address: seg.Mode == ModeDHCP}
	if wantBoot {
		d.BootFile, d.Vendor, d.Reason = bootFile(seg, c, m, env)
	} else {
		d.Reason = "machine not yet accepted, segment without discovery"
	}
	// A client we cannot boot gets no record: it would only expire.
	d.Discover = discover && d.BootFile != ""
	d.Reply = d.Address || d.BootFile != ""
	return d
}

// bootFile picks the file or URL for a client, with the option 60 value to
// echo; when there is none, reason says why.
func bootFile(seg *Segment, c bootClient, m *store.Machine, env bootEnv) (file, vendor, reason string) {
	vendor = vendorPXE
	if c.Vendor == vendorHTTP {
		vendor = vendorHTTP
	}
	uefi := seg.uefiBinary()
	if m != nil && (m.UEFIBinary == "ipxe.efi" || m.UEFIBinary == "snponly.efi") {
		uefi = m.UEFIBinary
	}
	arm64 := ""
	if env.HaveFile != nil && env.HaveFile(fileARM64) {
		arm64 = fileARM64
	}
	switch {
	case c.IPXE:
		if env.ScriptURL == nil {
			return "", "", "no script URL configured"
		}
		if u := env.ScriptURL(c.MAC); u != "" {
			return u, vendor, ""
		}
		return "", "", "no script URL for this machine"
	case c.Vendor == vendorHTTP:
		if env.HTTPBase == "" {
			return "", "", "no HTTP base URL configured"
		}
		name := ""
		switch {
		case !c.HasArch:
		case c.Arch == iana.EFI_X86_64_HTTP, c.Arch == iana.EFI_X86_64, c.Arch == iana.EFI_BC:
			name = uefi
		case c.Arch == iana.EFI_ARM64_HTTP, c.Arch == iana.EFI_ARM64:
			name = arm64
		}
		if name == "" {
			return "", "", "no boot binary for HTTP client arch " + archName(c)
		}
		return strings.TrimRight(env.HTTPBase, "/") + "/images/ipxe/" + name, vendor, ""
	case c.Vendor == vendorPXE && c.HasArch:
		name := ""
		switch c.Arch {
		case iana.INTEL_X86PC:
			name = fileBIOS
		case iana.EFI_X86_64, iana.EFI_BC:
			name = uefi
		case iana.EFI_ARM64:
			name = arm64
		}
		if name == "" {
			return "", "", "no boot binary for arch " + archName(c)
		}
		return name, vendor, ""
	}
	return "", "", "not a network-boot client"
}
