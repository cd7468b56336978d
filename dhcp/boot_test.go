package dhcp

import (
	"net"
	"reflect"
	"testing"

	"github.com/foundry-appliance/foundry/store"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

var testMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}

// Request modifiers that make a packet look like a given firmware.
var (
	pxeBIOS    = dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001"))
	pxeUEFI    = dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016"))
	pxeARM     = dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00011:UNDI:003016"))
	httpClient = dhcpv4.WithOption(dhcpv4.OptClassIdentifier("HTTPClient:Arch:00016:UNDI:003000"))
	ipxePlain  = dhcpv4.WithUserClass("iPXE", false)
	ipxeRFC    = dhcpv4.WithUserClass("iPXE", true)
)

func arch(a iana.Arch) dhcpv4.Modifier { return dhcpv4.WithOption(dhcpv4.OptClientArch(a)) }

func discover(t testing.TB, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	p, err := dhcpv4.NewDiscovery(testMAC, mods...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func machine(s store.State) *store.Machine {
	return &store.Machine{MAC: testMAC.String(), State: s}
}

var testEnv = bootEnv{
	ScriptURL: func(mac net.HardwareAddr) string { return "http://10.77.0.1:8080/boot/" + mac.String() },
	HTTPBase:  "http://10.77.0.1:8080/",
	HaveFile:  func(name string) bool { return name == "ipxe-arm64.efi" },
}

func TestParseClient(t *testing.T) {
	tests := []struct {
		name    string
		mods    []dhcpv4.Modifier
		want    bootClient
		archStr string
	}{
		{"nothing", nil, bootClient{}, ""},
		{"bios pxe", []dhcpv4.Modifier{pxeBIOS, arch(iana.INTEL_X86PC)}, bootClient{Vendor: vendorPXE, HasArch: true}, "bios"},
		{"arch from class only", []dhcpv4.Modifier{pxeUEFI}, bootClient{Vendor: vendorPXE, HasArch: true, Arch: iana.EFI_X86_64}, "uefi-x64"},
		{"option 93 wins over class", []dhcpv4.Modifier{pxeBIOS, arch(iana.EFI_ARM64)}, bootClient{Vendor: vendorPXE, HasArch: true, Arch: iana.EFI_ARM64}, "uefi-arm64"},
		{"ipxe plain", []dhcpv4.Modifier{pxeBIOS, ipxePlain}, bootClient{Vendor: vendorPXE, HasArch: true, IPXE: true}, "bios"},
		{"ipxe rfc3004", []dhcpv4.Modifier{ipxeRFC}, bootClient{IPXE: true}, ""},
		{"ipxe in a list", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptRFC3004UserClass([]string{"foo", "iPXE"}))}, bootClient{IPXE: true}, ""},
		{"other user class", []dhcpv4.Modifier{dhcpv4.WithUserClass("gPXE", false)}, bootClient{}, ""},
		{"broken rfc3004 length", []dhcpv4.Modifier{dhcpv4.WithGeneric(dhcpv4.OptionUserClassInformation, []byte{9, 'i', 'P', 'X', 'E'})}, bootClient{}, ""},
		{"http client", []dhcpv4.Modifier{httpClient, arch(iana.EFI_X86_64_HTTP)}, bootClient{Vendor: vendorHTTP, HasArch: true, Arch: iana.EFI_X86_64_HTTP}, "uefi-x64-http"},
		{"bad class arch", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:x"))}, bootClient{Vendor: vendorPXE}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseClient(discover(t, tt.mods...))
			if got.MAC.String() != testMAC.String() {
				t.Errorf("MAC = %v", got.MAC)
			}
			got.MAC, tt.want.MAC = nil, nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseClient = %+v, want %+v", got, tt.want)
			}
			if s := archName(got); s != tt.archStr {
				t.Errorf("archName = %q, want %q", s, tt.archStr)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	discoveryDHCP := Segment{Name: "lab", Mode: ModeDHCP, Discovery: true}
	plainDHCP := Segment{Name: "prod", Mode: ModeDHCP}
	openDHCP := Segment{Name: "office", Mode: ModeDHCP, AllowUnknown: true}
	discoveryProxy := Segment{Name: "px", Mode: ModeProxy, Discovery: true}
	plainProxy := Segment{Name: "px2", Mode: ModeProxy, AllowUnknown: true}
	snp := Segment{Name: "snp", Mode: ModeDHCP, Discovery: true, UEFIBinary: "snponly.efi"}
	script := "http://10.77.0.1:8080/boot/52:54:00:12:34:56"
	snpMachine := machine(store.StateReady)
	snpMachine.UEFIBinary = "snponly.efi"

	tests := []struct {
		name string
		seg  Segment
		m    *store.Machine
		mods []dhcpv4.Modifier
		env  *bootEnv
		want decision
	}{
		// Unknown machines.
		{"unknown bios on discovery segment", discoveryDHCP, nil, []dhcpv4.Modifier{pxeBIOS, arch(0)},
			nil, decision{Reply: true, Address: true, BootFile: "undionly.kpxe", Vendor: vendorPXE, Discover: true}},
		{"unknown ipxe on discovery segment", discoveryDHCP, nil, []dhcpv4.Modifier{pxeBIOS, arch(0), ipxePlain},
			nil, decision{Reply: true, Address: true, BootFile: script, Vendor: vendorPXE, Discover: true}},
		{"unknown non-PXE on discovery segment: address, no record", discoveryDHCP, nil, nil,
			nil, decision{Reply: true, Address: true}},
		{"unknown on plain segment: ignored", plainDHCP, nil, []dhcpv4.Modifier{pxeBIOS, arch(0)},
			nil, decision{}},
		{"unknown on allow-unknown segment: address only", openDHCP, nil, []dhcpv4.Modifier{pxeBIOS, arch(0)},
			nil, decision{Reply: true, Address: true}},
		{"unknown on proxy discovery segment", discoveryProxy, nil, []dhcpv4.Modifier{pxeUEFI, arch(7)},
			nil, decision{Reply: true, BootFile: "ipxe.efi", Vendor: vendorPXE, Discover: true}},
		{"unknown on proxy non-discovery segment: nothing even if allow-unknown", plainProxy, nil, []dhcpv4.Modifier{pxeUEFI},
			nil, decision{}},
		{"unknown non-PXE on proxy segment: nothing", discoveryProxy, nil, nil,
			nil, decision{}},
		// Rejected machines: deny entry.
		{"rejected on discovery segment", discoveryDHCP, machine(store.StateRejected), []dhcpv4.Modifier{pxeBIOS, arch(0)},
			nil, decision{}},
		{"rejected on allow-unknown segment", openDHCP, machine(store.StateRejected), nil,
			nil, decision{}},
		// Not yet accepted: boot only where discovery is allowed.
		{"discovered on discovery segment", discoveryDHCP, machine(store.StateDiscovered), []dhcpv4.Modifier{ipxeRFC},
			nil, decision{Reply: true, Address: true, BootFile: script, Vendor: vendorPXE}},
		{"inventoried on plain segment: address, no boot", plainDHCP, machine(store.StateInventoried), []dhcpv4.Modifier{ipxeRFC},
			nil, decision{Reply: true, Address: true}},
		{"inventoried on proxy plain segment: nothing", plainProxy, machine(store.StateInventoried), []dhcpv4.Modifier{ipxeRFC},
			nil, decision{}},
		// Accepted machines boot anywhere.
		{"approved on plain segment", plainDHCP, machine(store.StateApproved), []dhcpv4.Modifier{pxeUEFI, arch(iana.EFI_X86_64)},
			nil, decision{Reply: true, Address: true, BootFile: "ipxe.efi", Vendor: vendorPXE}},
		{"provisioning ipxe", plainDHCP, machine(store.StateProvisioning), []dhcpv4.Modifier{ipxePlain},
			nil, decision{Reply: true, Address: true, BootFile: script, Vendor: vendorPXE}},
		{"failed on proxy", plainProxy, machine(store.StateFailed), []dhcpv4.Modifier{pxeBIOS, arch(0)},
			nil, decision{Reply: true, BootFile: "undionly.kpxe", Vendor: vendorPXE}},
		{"ready production OS (no PXE): address only", plainDHCP, machine(store.StateReady), nil,
			nil, decision{Reply: true, Address: true}},
		// Binary choice.
		{"arch 9 is x64 uefi", discoveryDHCP, nil, []dhcpv4.Modifier{pxeUEFI, arch(iana.EFI_BC)},
			nil, decision{Reply: true, Address: true, BootFile: "ipxe.efi", Vendor: vendorPXE, Discover: true}},
		{"segment snponly", snp, nil, []dhcpv4.Modifier{pxeUEFI, arch(7)},
			nil, decision{Reply: true, Address: true, BootFile: "snponly.efi", Vendor: vendorPXE, Discover: true}},
		{"machine snponly overrides segment", discoveryDHCP, snpMachine, []dhcpv4.Modifier{pxeUEFI, arch(7)},
			nil, decision{Reply: true, Address: true, BootFile: "snponly.efi", Vendor: vendorPXE}},
		{"machine with bogus binary falls back", discoveryDHCP, &store.Machine{State: store.StateReady, UEFIBinary: "../x"}, []dhcpv4.Modifier{pxeUEFI, arch(7)},
			nil, decision{Reply: true, Address: true, BootFile: "ipxe.efi", Vendor: vendorPXE}},
		{"arm64 when present", discoveryDHCP, nil, []dhcpv4.Modifier{pxeARM, arch(iana.EFI_ARM64)},
			nil, decision{Reply: true, Address: true, BootFile: "ipxe-arm64.efi", Vendor: vendorPXE, Discover: true}},
		{"arm64 when absent", discoveryDHCP, nil, []dhcpv4.Modifier{pxeARM, arch(iana.EFI_ARM64)},
			&bootEnv{ScriptURL: testEnv.ScriptURL}, decision{Reply: true, Address: true}},
		{"ia32 uefi: no binary", discoveryDHCP, nil, []dhcpv4.Modifier{pxeUEFI, arch(iana.EFI_IA32)},
			nil, decision{Reply: true, Address: true}},
		{"http boot x64", discoveryDHCP, nil, []dhcpv4.Modifier{httpClient, arch(iana.EFI_X86_64_HTTP)},
			nil, decision{Reply: true, Address: true, BootFile: "http://10.77.0.1:8080/images/ipxe/ipxe.efi", Vendor: vendorHTTP, Discover: true}},
		{"http boot arm64", discoveryDHCP, nil, []dhcpv4.Modifier{httpClient, arch(iana.EFI_ARM64_HTTP)},
			nil, decision{Reply: true, Address: true, BootFile: "http://10.77.0.1:8080/images/ipxe/ipxe-arm64.efi", Vendor: vendorHTTP, Discover: true}},
		{"http boot without base url", discoveryDHCP, nil, []dhcpv4.Modifier{httpClient, arch(iana.EFI_X86_64_HTTP)},
			&bootEnv{}, decision{Reply: true, Address: true}},
		{"ipxe without script url", discoveryDHCP, nil, []dhcpv4.Modifier{ipxePlain},
			&bootEnv{}, decision{Reply: true, Address: true}},
		{"pxe class without any arch", discoveryDHCP, nil, []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient"))},
			nil, decision{Reply: true, Address: true}},
		{"ipxe over http client class still gets the script", discoveryProxy, nil, []dhcpv4.Modifier{httpClient, ipxePlain},
			nil, decision{Reply: true, BootFile: script, Vendor: vendorHTTP, Discover: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := testEnv
			if tt.env != nil {
				env = *tt.env
			}
			got := decide(&tt.seg, parseClient(discover(t, tt.mods...)), tt.m, env)
			reason := got.Reason
			got.Reason = ""
			if got != tt.want {
				t.Errorf("decide = %+v, want %+v", got, tt.want)
			}
			if (!got.Reply || got.BootFile == "") && reason == "" {
				t.Errorf("no reply or no boot, but no reason given")
			}
		})
	}
}

func TestIsIPXE(t *testing.T) {
	tests := []struct {
		in   []byte
		want bool
	}{
		{[]byte("iPXE"), true},
		{[]byte{4, 'i', 'P', 'X', 'E'}, true},
		{[]byte{3, 'f', 'o', 'o', 4, 'i', 'P', 'X', 'E'}, true},
		{[]byte{0}, false},
		{[]byte{200, 'i'}, false},
		{[]byte("ipxe"), false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := isIPXE(tt.in); got != tt.want {
			t.Errorf("isIPXE(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestDecideAsksForTheARMBinaryOnlyForARM: the file system is asked about
// the arm64 binary only for an arm64 client, whose boot file it decides;
// every other packet is decided without a stat.
func TestDecideAsksForTheARMBinaryOnlyForARM(t *testing.T) {
	seg := Segment{Name: "lab", Mode: ModeDHCP, Discovery: true}
	for _, tt := range []struct {
		name  string
		mods  []dhcpv4.Modifier
		have  bool
		asked int
		file  string
	}{
		{"bios", []dhcpv4.Modifier{pxeBIOS, arch(iana.INTEL_X86PC)}, true, 0, "undionly.kpxe"},
		{"uefi x64", []dhcpv4.Modifier{pxeUEFI, arch(iana.EFI_X86_64)}, true, 0, "ipxe.efi"},
		{"no PXE", nil, true, 0, ""},
		{"arm64, binary present", []dhcpv4.Modifier{pxeUEFI, arch(iana.EFI_ARM64)}, true, 1, "ipxe-arm64.efi"},
		{"arm64, binary missing", []dhcpv4.Modifier{pxeUEFI, arch(iana.EFI_ARM64)}, false, 1, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := testEnv
			asked := 0
			env.HaveFile = func(name string) bool { asked++; return tt.have && name == "ipxe-arm64.efi" }
			d := decide(&seg, parseClient(discover(t, tt.mods...)), nil, env)
			if asked != tt.asked {
				t.Errorf("HaveFile asked %d times, want %d", asked, tt.asked)
			}
			if d.BootFile != tt.file {
				t.Errorf("boot file %q, want %q", d.BootFile, tt.file)
			}
		})
	}
}
