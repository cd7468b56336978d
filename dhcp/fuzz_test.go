package dhcp

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// fuzzSeeds are the packets of the checked-in corpus under
// testdata/fuzz/FuzzHandler; FOUNDRY_UPDATE_FUZZ_SEEDS=1 rewrites it.
func fuzzSeeds(t testing.TB) map[string]*dhcpv4.DHCPv4 {
	mk := func(mt dhcpv4.MessageType, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
		p, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(testMAC), dhcpv4.WithMessageType(mt)}, mods...)...)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	relay := []dhcpv4.Modifier{dhcpv4.WithGatewayIP(net.IPv4(10, 88, 0, 1)),
		dhcpv4.WithOption(dhcpv4.OptRelayAgentInfo(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(1), []byte("sw1"))))}
	sid := dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 77, 0, 1)))
	return map[string]*dhcpv4.DHCPv4{
		"discover-bios":      mk(dhcpv4.MessageTypeDiscover, pxeBIOS, arch(iana.INTEL_X86PC)),
		"discover-uefi-ipxe": mk(dhcpv4.MessageTypeDiscover, pxeUEFI, arch(iana.EFI_X86_64), ipxeRFC),
		"discover-http":      mk(dhcpv4.MessageTypeDiscover, httpClient, arch(iana.EFI_X86_64_HTTP)),
		"discover-relayed":   mk(dhcpv4.MessageTypeDiscover, append(relay, pxeUEFI)...),
		"request-selecting": mk(dhcpv4.MessageTypeRequest, sid, ipxePlain,
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 77, 0, 120))), dhcpv4.WithOption(dhcpv4.OptHostName("node-1"))),
		"request-init-reboot": mk(dhcpv4.MessageTypeRequest, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 77, 0, 120)))),
		"request-renew":       mk(dhcpv4.MessageTypeRequest, dhcpv4.WithClientIP(net.IPv4(10, 77, 0, 120))),
		"request-pxe-4011":    mk(dhcpv4.MessageTypeRequest, pxeUEFI, dhcpv4.WithClientIP(net.IPv4(10, 79, 0, 50))),
		"release":             mk(dhcpv4.MessageTypeRelease, sid, dhcpv4.WithClientIP(net.IPv4(10, 77, 0, 120))),
		"decline":             mk(dhcpv4.MessageTypeDecline, sid, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 77, 0, 120)))),
		"inform":              mk(dhcpv4.MessageTypeInform, dhcpv4.WithClientIP(net.IPv4(10, 77, 0, 7))),
	}
}

func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("FOUNDRY_UPDATE_FUZZ_SEEDS") != "1" {
		t.Skip("set FOUNDRY_UPDATE_FUZZ_SEEDS=1 to rewrite testdata/fuzz/FuzzHandler")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzHandler")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, p := range fuzzSeeds(t) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", p.ToBytes())
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzHandler feeds arbitrary bytes, as coredhcp would after parsing them,
// through every listener of a server with dhcp, proxy and relayed segments.
// The handler must never panic and every reply must be well formed.
func FuzzHandler(f *testing.F) {
	fx := newFixture(f, nil)
	var listeners []*listener
	for _, l := range fx.byIf {
		listeners = append(listeners, l)
	}
	for _, l := range fx.pxe {
		listeners = append(listeners, l)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, l := range listeners {
			req, err := dhcpv4.FromBytes(b)
			if err != nil {
				return
			}
			resp, err := dhcpv4.NewReplyFromRequest(req)
			if err != nil {
				return
			}
			// From an allowed relay, so that relayed packets reach the
			// segments on the listeners that may accept them.
			out := l.handle(req, resp, relaySrc)
			if out == nil {
				continue
			}
			switch out.MessageType() {
			case dhcpv4.MessageTypeOffer, dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak:
			default:
				t.Fatalf("reply of type %v", out.MessageType())
			}
			back, err := dhcpv4.FromBytes(out.ToBytes())
			if err != nil {
				t.Fatalf("reply does not parse: %v", err)
			}
			if back.OpCode != dhcpv4.OpcodeBootReply || back.TransactionID != req.TransactionID {
				t.Fatalf("reply header: %v", back.Summary())
			}
			if yi := fromIP(back.YourIPAddr); yi.IsValid() {
				ok := false
				for _, s := range testSegments() {
					ok = ok || (s.Mode == ModeDHCP && s.Subnet.Contains(yi))
				}
				if !ok {
					t.Fatalf("yiaddr %v outside every dhcp segment", yi)
				}
			}
		}
	})
}

// FuzzNewReply holds newReply to the library's NewReplyFromRequest: for
// any packet that parses, both build the same bytes (the library's random
// transaction ID is overwritten by the request's in both).
func FuzzNewReply(f *testing.F) {
	for _, p := range fuzzSeeds(f) {
		f.Add(p.ToBytes())
	}
	withID, err := dhcpv4.New(dhcpv4.WithHwAddr(testMAC), dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover),
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier([]byte{1, 0x52, 0x54, 0, 1, 2, 3})))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(withID.ToBytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		want, err := dhcpv4.NewReplyFromRequest(req)
		if err != nil {
			t.Skip("no randomness for the library's transaction ID")
		}
		if got := newReply(req).ToBytes(); !bytes.Equal(got, want.ToBytes()) {
			t.Fatalf("newReply differs from NewReplyFromRequest:\n got %x\nwant %x", got, want.ToBytes())
		}
	})
}
