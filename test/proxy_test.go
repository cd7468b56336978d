package test

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/test/syncbuf"
)

// proxyConfig joins a network whose addresses come from another DHCP
// server: Foundry answers only with boot information (proxyDHCP).
const proxyConfig = `
http:
  listen: ":8080"
  advertise: "http://10.79.0.1:8080"
segments:
  - name: office
    interface: br2
    subnet: 10.79.0.0/24
    mode: proxy
    discovery: true
`

var consoleAddr = regexp.MustCompile(`net0: (10\.79\.0\.\d+)/`)

// A BIOS machine on a network where dnsmasq hands out addresses gets its
// address from dnsmasq and its boot from Foundry's proxyDHCP reply, and
// chains all the way to the discovery kernel.
func TestQEMUProxyDHCPBesideDnsmasq(t *testing.T) {
	if testing.Short() {
		t.Skip("boots an emulated machine")
	}
	office := newLab(t, "br2", "10.79.0.1/24")

	// The network's own DHCP server, on another host of the same segment.
	router := office.client("52:54:00:fe:00:01")
	nsRun(t, router, "ip", "addr", "add", "10.79.0.254/24", "dev", "eth0")
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	dnsmasq := inNS(ctx, router, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
		"--interface=eth0", "--bind-interfaces", "--dhcp-range=10.79.0.100,10.79.0.150,255.255.255.0,1h",
		"--dhcp-leasefile="+filepath.Join(dir, "leases"), "--pid-file="+filepath.Join(dir, "pid"), "--log-dhcp")
	out := &syncbuf.Buffer{}
	dnsmasq.Stdout, dnsmasq.Stderr = out, out
	must(t, dnsmasq.Start())
	t.Cleanup(func() {
		cancel()
		dnsmasq.Wait()
		if t.Failed() {
			t.Logf("dnsmasq:\n%s", out.String())
		}
	})

	a := startAppliance(t, t.TempDir(), imageDir(t), proxyConfig, "http://10.79.0.1:8080")
	const mac = "52:54:00:12:34:57"
	m := bootBIOS(t, office.tap(), mac)
	if _, ok := a.waitLog(3*time.Minute, "GET", "path=/images/discovery/vmlinuz", "status=200"); !ok {
		t.Fatalf("the machine never fetched the discovery kernel through proxyDHCP")
	}
	got := consoleAddr.FindStringSubmatch(m.text())
	if got == nil {
		t.Fatalf("no address on the machine's console")
	}
	t.Logf("address from the console: %s", got[1])
	if !strings.Contains(out.String(), fmt.Sprintf("DHCPACK(eth0) %s %s", got[1], mac)) {
		t.Errorf("address %s did not come from dnsmasq", got[1])
	}
	if _, ok := a.waitLog(time.Second, "dhcp reply", "mac="+mac, "yiaddr=0.0.0.0"); !ok {
		t.Errorf("Foundry's reply to %s was not an address-free proxy reply", mac)
	}
	// The machine fetched its discovery kernel above, so it got the
	// discovery script with its nonce; the record says what it gets now.
	if _, ok := a.waitLog(time.Second, "ipxe script", "mac="+mac, "kind=discovery"); !ok {
		t.Errorf("no discovery script was served to %s", mac)
	}
}
