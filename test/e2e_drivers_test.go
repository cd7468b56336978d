package test

// Issue 15: the discovery OS boots on whatever hardware Debian's kernel
// supports. Emulated machines with NICs and disk controllers beyond the
// e1000/IDE/virtio of the other tests PXE-boot (through their NIC's iPXE
// option ROM from Debian's ipxe-qemu), reach discovery and report their
// disks; a machine whose boot NIC has no driver in the image says so on
// its console and registers through another NIC.

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/discovery-os/inventory"
	"github.com/foundry-appliance/foundry/test/vm"
	"github.com/klauspost/compress/zstd"
	"github.com/u-root/u-root/pkg/cpio"
)

// driverMachine is one emulated machine of the drivers test: a NIC model,
// a disk behind a controller, and the drivers the inventory must name.
type driverMachine struct {
	name      string
	nic       string // QEMU's device model, booted through its option ROM
	nicDriver []string
	mac       string
	disk      func(path string) []string // QEMU arguments attaching the disk
	diskBytes int64
	diskDrv   string
	// bootVia, when set, is a card the machine network-boots through
	// instead (nic then has no option ROM), whose driver the lab's image
	// lacks: the agent must say so and reach the appliance through nic.
	bootVia, bootMAC string
	// more are further cards, after nic; console lines the machine must
	// show.
	more    []vm.NIC
	console []string
}

// scsiDisk attaches a disk to a SCSI host adapter of the given model.
func scsiDisk(hba string) func(string) []string {
	return func(p string) []string {
		return []string{"-device", hba + ",id=hba0", "-drive", "if=none,id=d0,format=raw,file=" + p,
			"-device", "scsi-hd,drive=d0,bus=hba0.0"}
	}
}

// The four machines: the NIC models the issue names, each with a disk on
// another controller, the disks of distinct sizes so that the inventory
// cannot show one for another. The pcnet machine boots through an e1000:
// the iPXE of Debian's ipxe-qemu (2019) stalls after about 600 KB of an
// HTTP download through its pcnet32 driver (1% of the kernel, every
// time), which is the firmware's problem and not the discovery OS's.
var driverMachines = []driverMachine{
	{name: "rtl8139-megasas", nic: "rtl8139", nicDriver: []string{"8139cp", "8139too"}, mac: "52:54:00:15:00:11",
		disk: scsiDisk("megasas"), diskBytes: 3 << 30, diskDrv: "megaraid_sas"},
	// An Intel 82559ER as a third card, on a socket nobody answers: the
	// agent brings every card with link up when the boot NIC is missing,
	// which makes e100 load its microcode from the image's /lib/firmware.
	{name: "e1000-without-driver-pcnet-lsi53c895a", nic: "pcnet", nicDriver: []string{"pcnet32"}, mac: "52:54:00:15:00:12",
		disk: scsiDisk("lsi53c895a"), diskBytes: 5 << 30, diskDrv: "sym53c8xx",
		bootVia: "e1000", bootMAC: "52:54:00:15:00:22",
		more:    []vm.NIC{{Model: "i82559er", MAC: "52:54:00:15:00:32", Socket: "listen=127.0.0.1:47115", NoROM: true}},
		console: []string{"firmware: direct-loading firmware e100/d101s_ucode.bin"}},
	{name: "vmxnet3-nvme", nic: "vmxnet3", nicDriver: []string{"vmxnet3"}, mac: "52:54:00:15:00:13",
		disk: func(p string) []string {
			return []string{"-drive", "if=none,id=d0,format=raw,file=" + p, "-device", "nvme,drive=d0,serial=FOUNDRY15"}
		}, diskBytes: 6 << 30, diskDrv: "nvme"},
	{name: "e1000e-ahci", nic: "e1000e", nicDriver: []string{"e1000e"}, mac: "52:54:00:15:00:14",
		disk: func(p string) []string {
			return []string{"-device", "ich9-ahci,id=sata0", "-drive", "if=none,id=d0,format=raw,file=" + p,
				"-device", "ide-hd,drive=d0,bus=sata0.0"}
		}, diskBytes: 7 << 30, diskDrv: "ahci"},
}

// TestE2EDrivers boots the four machines two at a time and checks that
// each registers with its NIC and its disk in the inventory. The lab's
// image lacks the e1000 driver (no other machine here has an e1000), so
// that one machine also shows what happens when the boot NIC has no
// driver: the console names the controller and what to do, and the agent
// registers through another card with link.
func TestE2EDrivers(t *testing.T) {
	l := newE2ELab(t)
	machines := driverMachines
	if useDiscoveryImage(t, l) {
		// Another build (the image before a change): its layout is not
		// this one's, and only the boot times are compared.
		machines = slices.DeleteFunc(slices.Clone(machines), func(dm driverMachine) bool { return dm.bootVia != "" })
	} else {
		withoutDriver(t, filepath.Join(l.images, "discovery", "initrd"), "e1000")
	}
	start := time.Now()
	for i := 0; i < len(machines); i += 2 {
		pair := machines[i:min(i+2, len(machines))]
		// Names end up in temporary paths that QEMU's options carry:
		// no commas.
		t.Run(fmt.Sprintf("pair-%d", i/2+1), func(t *testing.T) {
			for _, dm := range pair {
				t.Run(dm.name, func(t *testing.T) {
					t.Parallel()
					bootAndCheck(t, l, dm)
				})
			}
		})
	}
	t.Logf("%d machines in %v", len(machines), time.Since(start).Round(time.Second))
}

func bootAndCheck(t *testing.T, l *e2eLab, dm driverMachine) {
	disk := rawDisk(t, dm.diskBytes)
	spec := vm.Machine{MemoryMiB: e2eMemMiB, NIC: &vm.NIC{Tap: l.lab.tap(), MAC: dm.mac, Model: dm.nic}, Extra: dm.disk(disk)}
	id := dm.mac // the MAC the machine boots with: its identity
	if dm.bootVia != "" {
		id = dm.bootMAC
		spec.NIC = &vm.NIC{Tap: l.lab.tap(), MAC: dm.bootMAC, Model: dm.bootVia}
		spec.MoreNICs = []vm.NIC{{Tap: l.lab.tap(), MAC: dm.mac, Model: dm.nic, NoROM: true}}
	}
	spec.MoreNICs = append(spec.MoreNICs, dm.more...)
	poweredOn := time.Now()
	m := startMachine(t, spec)
	rec, tok := l.registered(t, m, id)
	took := time.Since(poweredOn)
	if tok == "" {
		t.Errorf("no registration token on the console")
	}
	inv := parseInventory(t, rec)
	var nic *inventory.NIC
	for i := range inv.NICs {
		if strings.EqualFold(inv.NICs[i].MAC, dm.mac) {
			nic = &inv.NICs[i]
		}
	}
	switch {
	case nic == nil:
		t.Errorf("inventory lists no NIC with MAC %s: %+v", dm.mac, inv.NICs)
	case !slices.Contains(dm.nicDriver, nic.Driver):
		t.Errorf("NIC %s driven by %q, want one of %v", nic.Name, nic.Driver, dm.nicDriver)
	case !nic.Link:
		t.Errorf("NIC %s has no link", nic.Name)
	}
	var found *inventory.Disk
	for i := range inv.Disks {
		if int64(inv.Disks[i].SizeBytes) == dm.diskBytes {
			found = &inv.Disks[i]
		}
	}
	switch {
	case found == nil:
		t.Errorf("inventory lists no disk of %d bytes: %+v", dm.diskBytes, inv.Disks)
	case found.Driver != dm.diskDrv:
		t.Errorf("disk %s behind %q, want %s", found.Name, found.Driver, dm.diskDrv)
	}
	if dm.bootVia != "" {
		checkDriverless(t, m, inv, dm)
	}
	for _, c := range dm.console {
		if line := m.consoleLine(c); line == "" {
			t.Errorf("the console never showed %q", c)
		} else {
			t.Logf("console: %s", line)
		}
	}
	nicName, diskName := "", ""
	if nic != nil {
		nicName = nic.Name + " (" + nic.Driver + ")"
	}
	if found != nil {
		diskName = found.Name + " (" + found.Driver + ", " + found.ByPath + ")"
	}
	t.Logf("%s: power-on to registered in %v under TCG; NIC %s, disk %s", dm.name, took.Round(100*time.Millisecond), nicName, diskName)
}

// checkDriverless: the console named the boot NIC's controller and what
// to do, said which card it used instead, and the inventory shows the
// driverless controller among the PCI devices, not among the NICs.
func checkDriverless(t *testing.T, m *machine, inv inventory.Inventory, dm driverMachine) {
	t.Helper()
	const want = "no driver for the network controller 8086:100e"
	line := m.consoleLine("foundry: notice:", want)
	if line == "" {
		t.Errorf("the console never said %q; agent lines:\n%s", want, m.agentLines())
		return
	}
	t.Logf("console: %s", line)
	for _, w := range []string{"Intel Corporation", "at 0000:00:03.0", "report the ID 8086:100e", "other network cards with link are tried"} {
		if !strings.Contains(line, w) {
			t.Errorf("the notice lacks %q", w)
		}
	}
	if via := m.consoleLine("(the boot NIC has no driver)"); via == "" {
		t.Errorf("the console never said which card it used instead")
	}
	for _, n := range inv.NICs {
		if strings.EqualFold(n.MAC, dm.bootMAC) {
			t.Errorf("the driverless boot NIC is in the inventory's NICs: %+v", n)
		}
	}
	var listed bool
	for _, p := range inv.PCI {
		if p.VendorID == "8086" && p.DeviceID == "100e" && p.Driver == "" {
			listed = true
		}
	}
	if !listed {
		t.Errorf("inventory lists no driverless 8086:100e among the PCI devices")
	}
}

// useDiscoveryImage puts FOUNDRY_DISCOVERY_DIR's vmlinuz and initrd in the
// lab's image directory when it is set, and says so: how the boot time of
// another build (the image before a change) is measured on the same
// machines.
func useDiscoveryImage(t *testing.T, l *e2eLab) bool {
	t.Helper()
	dir := os.Getenv("FOUNDRY_DISCOVERY_DIR")
	if dir == "" {
		return false
	}
	for _, f := range []string{"vmlinuz", "initrd"} {
		copyFile(t, filepath.Join(dir, f), filepath.Join(l.images, "discovery", f))
	}
	t.Logf("discovery image from %s", dir)
	return true
}

// withoutDriver makes an initrd whose modules.alias lacks the named
// modules: it reads the index from the image's compressed archive and
// appends an archive with the edited copy, which the kernel unpacks last
// and so over the first.
func withoutDriver(t *testing.T, initrd string, mods ...string) {
	t.Helper()
	img, err := os.ReadFile(initrd)
	must(t, err)
	// The compressed archive follows the stored one (modules and firmware
	// compressed one by one) and its zero padding.
	i := bytes.Index(img, []byte("TRAILER!!!"))
	if i < 0 {
		t.Fatal("no cpio archive in the initrd")
	}
	for i += len("TRAILER!!!"); i < len(img) && img[i] == 0; i++ {
	}
	if !bytes.HasPrefix(img[i:], []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		t.Fatalf("no zstd archive after the stored one (at byte %d)", i)
	}
	zr, err := zstd.NewReader(bytes.NewReader(img[i:]))
	must(t, err)
	raw, err := io.ReadAll(zr)
	zr.Close()
	must(t, err)
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(raw)))
	must(t, err)
	var name, alias string
	for _, r := range recs {
		if strings.HasSuffix(r.Name, "/modules.alias") {
			b, err := io.ReadAll(io.NewSectionReader(r, 0, int64(r.FileSize)))
			must(t, err)
			name, alias = r.Name, string(b)
		}
	}
	if name == "" {
		t.Fatal("no modules.alias in the initrd")
	}
	var kept []string
	removed := 0
	for _, line := range strings.Split(alias, "\n") {
		if f := strings.Fields(line); len(f) == 3 && slices.Contains(mods, f[2]) {
			removed++
			continue
		}
		kept = append(kept, line)
	}
	if removed == 0 {
		t.Fatalf("%s names none of %v", name, mods)
	}
	var extra bytes.Buffer
	w := cpio.Newc.Writer(&extra)
	data := strings.Join(kept, "\n")
	must(t, w.WriteRecord(cpio.StaticFile(name, data, 0o644)))
	must(t, cpio.WriteTrailer(w))
	// The kernel looks for the next archive at a 4-byte boundary.
	pad := make([]byte, (4-len(img)%4)%4)
	must(t, os.WriteFile(initrd, slices.Concat(img, pad, extra.Bytes()), 0o644))
	t.Logf("initrd without %v: %d aliases removed from %s", mods, removed, name)
}
