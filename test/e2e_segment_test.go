package test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/api/client"
)

// Issue 4, d: an unknown machine on a segment without discovery gets an
// address (the segment allows unknown clients) but no boot offer: its iPXE
// finds nothing to boot, the appliance's DHCP reply carried no file, and
// the API has no record of it.
func TestE2ENoDiscoverySegmentNoBoot(t *testing.T) {
	l := newE2ELab(t)
	const mac = "52:54:00:e2:e1:04"
	m := bootBIOSMachine(t, l.office.tap(), mac, "")

	// iPXE's autoboot: DHCP, then the boot file; with none it says
	// "Nothing to boot" and gives the machine back to the BIOS.
	if !m.waitConsole(bootTimeout, "Nothing to boot") {
		t.Fatalf("iPXE on the office segment never reported that it has nothing to boot")
	}
	addr := m.consoleLine("net0: 10.78.0.")
	if addr == "" {
		t.Errorf("iPXE got no address on the office segment (allow_unknown)")
	}
	t.Logf("iPXE: %q, then %q", addr, m.consoleLine("Nothing to boot"))
	if line := m.consoleLine("Filename:"); line != "" {
		t.Errorf("iPXE was offered a boot file: %q", line)
	}
	if line, ok := l.app.waitLog(time.Second, "dhcp reply", "mac="+mac, "reply=ACK"); !ok {
		t.Errorf("the appliance log shows no ACK for %s", mac)
	} else if !strings.Contains(line, `file=""`) {
		t.Errorf("the ACK for %s carried a boot file: %s", mac, line)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := l.api.GetMachine(ctx, mac); client.StatusOf(err) != 404 {
		t.Errorf("GET machine %s: %v, want 404 (no record)", mac, err)
	}
	list, err := l.api.ListMachines(ctx, client.ListOptions{})
	must(t, err)
	for _, r := range list.Items {
		if r.MAC == mac {
			t.Errorf("the machine list has %s (%s)", mac, r.State)
		}
	}
	if _, ok := l.app.waitLog(time.Second, "/boot/"+mac); ok {
		t.Errorf("the machine asked for a boot script although it was offered none")
	}
}
