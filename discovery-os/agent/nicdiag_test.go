package agent

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeSys builds a sysfs with a few PCI devices: an RTL8139 no driver
// took, an e1000 bound to its driver with eth0, an e1000e whose driver is
// in the image but did not bind, and a disk controller.
func fakeSys(t *testing.T) (root, ids string) {
	t.Helper()
	root = t.TempDir()
	dev := func(addr, vendor, device, class, driver string, ifs ...string) {
		d := filepath.Join(root, "sys/bus/pci/devices", addr)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "vendor"), []byte("0x"+vendor+"\n"), 0o444)
		os.WriteFile(filepath.Join(d, "device"), []byte("0x"+device+"\n"), 0o444)
		os.WriteFile(filepath.Join(d, "class"), []byte("0x"+class+"\n"), 0o444)
		os.WriteFile(filepath.Join(d, "modalias"), []byte("pci:v0000"+strings.ToUpper(vendor)+"d0000"+strings.ToUpper(device)+"sv00001AF4sd00001100bc"+class[:2]+"sc"+class[2:4]+"i"+class[4:]+"\n"), 0o444)
		if driver != "" {
			os.Symlink("../../../bus/pci/drivers/"+driver, filepath.Join(d, "driver"))
		}
		for _, i := range ifs {
			os.MkdirAll(filepath.Join(d, "net", i), 0o755)
		}
	}
	dev("0000:00:03.0", "10ec", "8139", "020000", "")
	dev("0000:00:02.0", "8086", "100e", "020000", "e1000", "eth0")
	dev("0000:00:04.0", "8086", "10d3", "020000", "")
	dev("0000:00:05.0", "1000", "0060", "010400", "megaraid_sas")
	ids = filepath.Join(root, "pci.ids")
	os.WriteFile(ids, []byte("# pci.ids\n"+
		"1000  Broadcom / LSI\n\t0060  MegaRAID SAS 1078\n"+
		"10ec  Realtek Semiconductor Co., Ltd.\n\t8129  RTL-8129\n\t8139  RTL-8100/8101L/8139 PCI Fast Ethernet Adapter\n\t\t1af4 1100  QEMU Virtual Machine\n"+
		"8086  Intel Corporation\n\t100e  82540EM Gigabit Ethernet Controller\n"+
		"C 02  Network controller\n\t00  Ethernet controller\n"), 0o644)
	return root, ids
}

func TestNetworkControllers(t *testing.T) {
	root, ids := fakeSys(t)
	nics := NetworkControllers(root, ids)
	var got []string
	for _, n := range nics {
		got = append(got, n.Address+" "+n.ID()+" "+n.Driver+" ["+n.Name+"] "+strings.Join(n.Interfaces, ","))
	}
	want := []string{
		"0000:00:02.0 8086:100e e1000 [Intel Corporation 82540EM Gigabit Ethernet Controller] eth0",
		"0000:00:03.0 10ec:8139  [Realtek Semiconductor Co., Ltd. RTL-8100/8101L/8139 PCI Fast Ethernet Adapter] ",
		// A device pci.ids does not list keeps its vendor's name.
		"0000:00:04.0 8086:10d3  [Intel Corporation] ",
	}
	if !slices.Equal(got, want) {
		t.Errorf("controllers\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := NetworkControllers(t.TempDir(), ids); len(n) != 0 {
		t.Errorf("controllers in an empty sysfs: %v", n)
	}
	if n := NetworkControllers(root, "/nonexistent"); len(n) != 3 || n[1].Name != "" {
		t.Errorf("without pci.ids: %+v", n)
	}
}

func TestNoBootNICMessage(t *testing.T) {
	root, ids := fakeSys(t)
	nics := NetworkControllers(root, ids)
	match := func(modalias string) []string {
		if strings.Contains(modalias, "d000010D3") {
			return []string{"e1000e"}
		}
		return nil
	}
	msg := NoBootNICMessage("52:54:00:aa:bb:cc", nics, match)
	for _, want := range []string{
		"no driver for the network controller 10ec:8139 (Realtek Semiconductor Co., Ltd. RTL-8100/8101L/8139 PCI Fast Ethernet Adapter) at 0000:00:03.0: this discovery image cannot use it",
		"report the ID 10ec:8139",
		"the network controller 8086:10d3 (Intel Corporation) at 0000:00:04.0 has a driver in this image (e1000e), but it did not take the card",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "0000:00:02.0") {
		t.Errorf("the bound e1000 is named as a problem:\n%s", msg)
	}

	// Every controller bound: the message says so instead of blaming one.
	bound := slices.DeleteFunc(slices.Clone(nics), func(n PCINIC) bool { return n.Driver == "" })
	msg = NoBootNICMessage("52:54:00:aa:bb:cc", bound, match)
	if !strings.Contains(msg, "no network interface has the boot MAC 52:54:00:aa:bb:cc") || !strings.Contains(msg, "8086:100e e1000 → eth0") {
		t.Errorf("all bound: %s", msg)
	}
	if msg := NoBootNICMessage("52:54:00:aa:bb:cc", nil, nil); !strings.Contains(msg, "no network controller on the PCI bus") {
		t.Errorf("no controllers: %s", msg)
	}
}
