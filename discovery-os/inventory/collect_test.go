package inventory

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"
)

var collectedAt = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func collect(t *testing.T, tree string) Inventory {
	t.Helper()
	c := &Collector{
		Root:   "testdata/" + tree,
		PCIIDs: "testdata/pci.ids",
		Now:    func() time.Time { return collectedAt },
	}
	inv := c.Collect()
	// The report must survive the trip to the appliance unchanged.
	b, err := json.Marshal(inv)
	if err != nil {
		t.Fatal(err)
	}
	var back Inventory
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(inv, back) {
		t.Fatalf("JSON round trip changed the inventory:\n%+v\n%+v", inv, back)
	}
	return inv
}

func TestCollectQEMU(t *testing.T) {
	inv := collect(t, "qemu")
	if inv.SchemaVersion != SchemaVersion || !inv.CollectedAt.Equal(collectedAt) {
		t.Errorf("header = %d %v", inv.SchemaVersion, inv.CollectedAt)
	}
	if len(inv.Warnings) != 0 {
		t.Errorf("warnings: %q", inv.Warnings)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"system", inv.System, System{Vendor: "QEMU", Product: "Standard PC (i440FX + PIIX, 1996)",
			Version: "pc-i440fx-7.2", Serial: "QEMU-SERIAL-0001", UUID: "6a1e3b2c-0000-4000-8000-525400123456"}},
		{"baseboard absent", inv.Baseboard, Baseboard{}},
		{"bios", inv.BIOS, BIOS{Vendor: "SeaBIOS", Version: "1.16.2-debian-1.16.2-1", Date: "04/01/2014"}},
		{"chassis", inv.Chassis, Chassis{Vendor: "QEMU", Type: "Other", Version: "pc-i440fx-7.2"}},
		{"cpu model", inv.CPU.Model, "QEMU Virtual CPU version 2.5+"},
		{"cpu topology", [3]int{inv.CPU.Sockets, inv.CPU.Cores, inv.CPU.Threads}, [3]int{1, 2, 2}},
		{"cpu flags", len(inv.CPU.Flags), 34},
		{"cpu has svm", slices.Contains(inv.CPU.Flags, "svm"), true},
		{"memory total (DIMMs)", inv.Memory.TotalBytes, uint64(2 << 30)},
		{"memory usable", inv.Memory.UsableBytes, uint64(2030996 * 1024)},
		{"dimms", inv.Memory.DIMMs, []DIMM{{Locator: "DIMM 0", SizeBytes: 2 << 30, Type: "RAM",
			FormFactor: "DIMM", Manufacturer: "QEMU"}}},
		{"bmc", inv.BMC, &BMC{Interface: "ipmi", Type: "KCS"}},
		{"disks", inv.Disks, []Disk{
			{Name: "sda", Path: "/dev/sda", SizeBytes: 8 << 30, Model: "QEMU HARDDISK", Serial: "QM00001",
				WWN: "t10.ATA     QEMU HARDDISK                           QM00001", Rotational: true,
				ByPath: "pci-0000:00:01.1-ata-1.0", Driver: "ata_piix"},
			{Name: "sr0", Path: "/dev/sr0", Vendor: "QEMU", Model: "QEMU DVD-ROM", Serial: "QM00003",
				WWN: "t10.ATA     QEMU DVD-ROM                            QM00003", Rotational: true,
				Removable: true, ByPath: "pci-0000:00:01.1-ata-2.0", Driver: "ata_piix"},
		}},
		{"nics", inv.NICs, []NIC{{Name: "eth0", MAC: "52:54:00:12:34:56", Driver: "e1000", SpeedMbps: 1000,
			Link: true, OperState: "up", PCIAddress: "0000:00:03.0"}}},
		{"pci count", len(inv.PCI), 6},
		{"e1000 names", [3]string{inv.PCI[5].Vendor, inv.PCI[5].Device, inv.PCI[5].ClassName},
			[3]string{"Intel Corporation", "82540EM Gigabit Ethernet Controller", "Ethernet controller"}},
		{"ide class", inv.PCI[2].Class + " " + inv.PCI[2].ClassName + " " + inv.PCI[2].Driver, "010180 IDE interface ata_piix"},
		{"gpus", inv.GPUs, []PCIDevice{{Address: "0000:00:02.0", VendorID: "1234", DeviceID: "1111",
			Vendor: "Technical Corp.", Device: "QEMU Virtual Video Controller", Class: "030000",
			ClassName: "VGA compatible controller", SubsystemVendorID: "1af4", SubsystemID: "1100", Driver: "bochs-drm"}}},
		{"nfs", inv.NFSMounts, []NFSMount{
			{Server: "10.77.0.1", Export: "/srv/nfs/tools", MountPoint: "/mnt/tools", FSType: "nfs4",
				Options: "ro,relatime,vers=4.2,addr=10.77.0.1"},
			{Server: "fd00::1", Export: "/export/my data", MountPoint: "/mnt/my data", FSType: "nfs",
				Options: "rw,vers=3,addr=fd00::1"},
		}},
		{"iscsi", inv.ISCSISessions, []ISCSISession{{Session: "session1",
			TargetName: "iqn.2003-01.org.linux-iscsi.lab:disk1", Portal: "10.77.0.1:3260",
			Initiator: "iqn.1993-08.org.debian:01:52540012"}}},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Errorf("got  %+v\nwant %+v", c.got, c.want)
			}
		})
	}
}

// TestCollectHost reads the tree captured from a real (virtual) machine with
// testdata/capture.sh: a Firecracker-style guest with virtio devices and no
// SMBIOS at all.
func TestCollectHost(t *testing.T) {
	inv := collect(t, "host")
	checks := []struct {
		name      string
		got, want any
	}{
		{"no DMI is a warning", len(inv.Warnings), 1},
		{"system empty", inv.System, System{}},
		{"cpu", [4]any{inv.CPU.Model, inv.CPU.Vendor, inv.CPU.Sockets, inv.CPU.Threads}, [4]any{"AMD EPYC", "AuthenticAMD", 1, 2}},
		{"cpu cores", inv.CPU.Cores, 2},
		{"avx512f", slices.Contains(inv.CPU.Flags, "avx512f"), true},
		{"memory", inv.Memory, Memory{TotalBytes: 24684100 * 1024, UsableBytes: 24684100 * 1024, DIMMs: []DIMM{}}},
		{"no bmc", inv.BMC, (*BMC)(nil)},
		{"disks: loop and zram skipped", inv.Disks, []Disk{{Name: "vda", Path: "/dev/vda", SizeBytes: 536870912 * 512,
			Rotational: true, ByPath: "pci-0000:00:02.0", Driver: "virtio_blk"}}},
		{"nics: lo and ifb skipped", inv.NICs, []NIC{{Name: "eth0", MAC: "02:fc:00:00:00:01", Driver: "virtio_net",
			Link: true, OperState: "up", PCIAddress: "0000:00:03.0"}}},
		{"pci", len(inv.PCI), 6},
		{"virtio net name", inv.PCI[3].Device + " / " + inv.PCI[3].Driver, "Virtio 1.0 network device / virtio-pci"},
		{"no gpus", inv.GPUs, []PCIDevice{}},
		{"no nfs", inv.NFSMounts, []NFSMount{}},
		{"no iscsi", inv.ISCSISessions, []ISCSISession{}},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Errorf("got  %+v\nwant %+v", c.got, c.want)
			}
		})
	}
}

func TestCollectEmptyRoot(t *testing.T) {
	inv := (&Collector{Root: t.TempDir()}).Collect()
	if len(inv.Warnings) < 4 {
		t.Errorf("an empty root gave only %d warnings: %q", len(inv.Warnings), inv.Warnings)
	}
	if inv.Disks == nil || inv.NICs == nil || inv.PCI == nil {
		t.Error("lists must be empty, not null, in JSON")
	}
}

func TestBMCAddressHook(t *testing.T) {
	c := &Collector{Root: "testdata/qemu", PCIIDs: "testdata/pci.ids",
		BMCAddress: func() (string, error) { return "10.0.0.9", nil },
		BMCMAC:     func() (string, error) { return "52:54:00:ba:5e:01", nil }}
	if got := c.Collect().BMC; got == nil || got.Address != "10.0.0.9" || got.MAC != "52:54:00:ba:5e:01" {
		t.Fatalf("BMC = %+v", got)
	}
}
