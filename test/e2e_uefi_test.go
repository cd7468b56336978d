package test

import (
	"testing"
	"time"
)

// Issue 4, b: a UEFI machine (OVMF, virtio-net without an option ROM, so
// the firmware's own PXE client) is handed ipxe.efi, fetches it over TFTP,
// chains to its iPXE script and registers from the discovery OS.
func TestE2EUEFIDiscovery(t *testing.T) {
	l := newE2ELab(t)
	const mac = "52:54:00:e2:e0:02"
	poweredOn := time.Now()
	m := bootUEFIMachine(t, l.lab.tap(), mac)

	line, ok := l.app.waitLog(registerTimeout, "tftp transfer", "file=ipxe.efi")
	if !ok {
		t.Fatalf("the appliance never sent ipxe.efi over TFTP")
	}
	t.Logf("after %v: %s", time.Since(poweredOn).Round(100*time.Millisecond), line)

	rec, tok := l.registered(t, m, mac)
	t.Logf("UEFI machine: power-on to registered in %v under TCG (token %s)", time.Since(poweredOn).Round(100*time.Millisecond), tok)
	if rec.Arch != "uefi-x64" {
		t.Errorf("record says arch %q, want uefi-x64", rec.Arch)
	}
	inv := parseInventory(t, rec)
	var nic string
	for _, n := range inv.NICs {
		if n.MAC == mac {
			nic = n.Name + " (" + n.Driver + ")"
		}
	}
	if nic == "" {
		t.Errorf("inventory lists no NIC with MAC %s: %+v", mac, inv.NICs)
	}
	t.Logf("inventoried boot NIC %s; firmware %s %s", nic, inv.BIOS.Vendor, inv.BIOS.Version)
	if _, ok := l.app.waitLog(time.Second, "GET", "/boot/"+mac); !ok {
		t.Errorf("iPXE never asked for its script over HTTP")
	}
}
