package stormsim

import (
	"fmt"
	"net"
	"time"

	"github.com/foundry-appliance/foundry/discovery-os/inventory"
)

// cpuFlags is /proc/cpuinfo's flags line of a current x86 server CPU.
var cpuFlags = []string{"fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce", "cx8", "apic", "sep", "mtrr", "pge",
	"mca", "cmov", "pat", "pse36", "clflush", "dts", "acpi", "mmx", "fxsr", "sse", "sse2", "ss", "ht", "tm", "pbe",
	"syscall", "nx", "pdpe1gb", "rdtscp", "lm", "constant_tsc", "art", "arch_perfmon", "pebs", "bts", "rep_good",
	"nopl", "xtopology", "nonstop_tsc", "cpuid", "aperfmperf", "pni", "pclmulqdq", "dtes64", "monitor", "ds_cpl",
	"vmx", "smx", "est", "tm2", "ssse3", "sdbg", "fma", "cx16", "xtpr", "pdcm", "pcid", "dca", "sse4_1", "sse4_2",
	"x2apic", "movbe", "popcnt", "tsc_deadline_timer", "aes", "xsave", "avx", "f16c", "rdrand", "lahf_lm", "abm",
	"3dnowprefetch", "cpuid_fault", "epb", "cat_l3", "cdp_l3", "invpcid_single", "intel_ppin", "ssbd", "mba",
	"ibrs", "ibpb", "stibp", "ibrs_enhanced", "tpr_shadow", "vnmi", "flexpriority", "ept", "vpid", "ept_ad",
	"fsgsbase", "tsc_adjust", "bmi1", "hle", "avx2", "smep", "bmi2", "erms", "invpcid", "rtm", "cqm", "mpx",
	"rdt_a", "avx512f", "avx512dq", "rdseed", "adx", "smap", "clflushopt", "clwb", "intel_pt", "avx512cd",
	"avx512bw", "avx512vl", "xsaveopt", "xsavec", "xgetbv1", "xsaves", "cqm_llc", "cqm_occup_llc", "cqm_mbm_total",
	"cqm_mbm_local", "dtherm", "ida", "arat", "pln", "pts", "pku", "ospke", "avx512_vnni", "md_clear", "flush_l1d",
	"arch_capabilities"}

// pciFunctions are the PCI functions of a two-socket server board, as
// lspci lists them (address, vendor, device, class, driver).
var pciFunctions = [][5]string{
	{"0000:00:00.0", "8086", "2020", "060000", ""},
	{"0000:00:04.0", "8086", "2021", "088000", "ioatdma"},
	{"0000:00:04.1", "8086", "2021", "088000", "ioatdma"},
	{"0000:00:05.0", "8086", "2024", "088000", ""},
	{"0000:00:05.2", "8086", "2025", "088000", ""},
	{"0000:00:08.0", "8086", "2014", "088000", ""},
	{"0000:00:11.0", "8086", "a1ec", "ff0000", ""},
	{"0000:00:11.5", "8086", "a1d2", "010601", "ahci"},
	{"0000:00:14.0", "8086", "a1af", "0c0330", "xhci_hcd"},
	{"0000:00:16.0", "8086", "a1ba", "078000", "mei_me"},
	{"0000:00:17.0", "8086", "a182", "010601", "ahci"},
	{"0000:00:1c.0", "8086", "a190", "060400", "pcieport"},
	{"0000:00:1f.0", "8086", "a1c2", "060100", ""},
	{"0000:00:1f.2", "8086", "a1a1", "058000", ""},
	{"0000:00:1f.4", "8086", "a1a3", "0c0500", "i801_smbus"},
	{"0000:02:00.0", "1a03", "2000", "030000", "ast"},
	{"0000:17:00.0", "8086", "2030", "060400", "pcieport"},
	{"0000:18:00.0", "144d", "a808", "010802", "nvme"},
	{"0000:19:00.0", "144d", "a808", "010802", "nvme"},
	{"0000:3a:00.0", "8086", "2030", "060400", "pcieport"},
	{"0000:3b:00.0", "8086", "1572", "020000", "i40e"},
	{"0000:3b:00.1", "8086", "1572", "020000", "i40e"},
	{"0000:5d:00.0", "1000", "0097", "010700", "mpt3sas"},
	{"0000:85:00.0", "8086", "2030", "060400", "pcieport"},
	{"0000:86:00.0", "15b3", "1017", "020000", "mlx5_core"},
	{"0000:86:00.1", "15b3", "1017", "020000", "mlx5_core"},
	{"0000:ae:00.0", "8086", "2030", "060400", "pcieport"},
	{"0000:af:00.0", "10de", "1eb8", "030200", "nvidia"},
}

// Serial is the system serial number in the index-th machine's inventory.
func Serial(index int) string { return fmt.Sprintf("SIM%07d", index) }

// Inventory is a realistic inventory of a two-socket rack server booting
// from mac, the index-th of a storm: SMBIOS identities, 2×20 cores, 16
// DIMMs, two NVMe and four SAS disks with stable paths, four NICs (the
// boot NIC first) with LLDP, 28 PCI functions, a GPU and an IPMI BMC —
// about 15 KB of JSON, as the discovery agent sends it.
func Inventory(mac net.HardwareAddr, index int) inventory.Inventory {
	serial := Serial(index)
	inv := inventory.Inventory{
		SchemaVersion: inventory.SchemaVersion,
		CollectedAt:   time.Now().UTC(),
		System: inventory.System{Vendor: "Supermicro", Product: "SYS-1029U-TRT", Version: "0123456789",
			Serial: serial, UUID: fmt.Sprintf("00000000-0000-4000-8000-%012x", index), SKU: "To be filled by O.E.M.", Family: "SMC X11"},
		Baseboard: inventory.Baseboard{Vendor: "Supermicro", Product: "X11DPU", Version: "1.10", Serial: "BB" + serial, AssetTag: "rack-" + fmt.Sprint(index/40)},
		BIOS:      inventory.BIOS{Vendor: "American Megatrends Inc.", Version: "3.4", Date: "10/27/2020"},
		Chassis:   inventory.Chassis{Vendor: "Supermicro", Type: "Rack Mount Chassis", Version: "0123456789", Serial: "CH" + serial},
		CPU: inventory.CPU{Model: "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz", Vendor: "GenuineIntel",
			Sockets: 2, Cores: 40, Threads: 80, Flags: cpuFlags},
		Memory: inventory.Memory{TotalBytes: 16 * 32 << 30, UsableBytes: 16*32<<30 - 3<<30},
		BMC:    &inventory.BMC{Interface: "ipmi", Type: "KCS", Address: fmt.Sprintf("10.250.%d.%d", index/250, index%250+1)},
	}
	for i := range 16 {
		inv.Memory.DIMMs = append(inv.Memory.DIMMs, inventory.DIMM{
			Locator: fmt.Sprintf("P%d-DIMM%c%d", i/8+1, 'A'+rune(i%8/2), i%2+1), Bank: fmt.Sprintf("P%d_Node%d_Channel%d_Dimm%d", i/8, i/8, i%8/2, i%2),
			SizeBytes: 32 << 30, Type: "DDR4", FormFactor: "DIMM", SpeedMTs: 2933, Manufacturer: "Samsung",
			Serial: fmt.Sprintf("%08X", index*16+i), PartNumber: "M393A4K40DB2-CVF"})
	}
	for i, bus := range []string{"18", "19"} {
		inv.Disks = append(inv.Disks, inventory.Disk{Name: fmt.Sprintf("nvme%dn1", i), Path: fmt.Sprintf("/dev/nvme%dn1", i),
			SizeBytes: 960197124096, Model: "SAMSUNG MZQLB960HAJR-00007", Serial: fmt.Sprintf("S4EMNX0R%06d%d", index, i),
			WWN: fmt.Sprintf("eui.3634473052%06d%04d", index, i), ByPath: "pci-0000:" + bus + ":00.0-nvme-1", Driver: "nvme"})
	}
	for i := range 4 {
		name := fmt.Sprintf("sd%c", 'a'+i)
		inv.Disks = append(inv.Disks, inventory.Disk{Name: name, Path: "/dev/" + name, SizeBytes: 4000787030016,
			Vendor: "SEAGATE", Model: "ST4000NM0025", Serial: fmt.Sprintf("ZC1%05dT%d", index, i),
			WWN: fmt.Sprintf("naa.5000c500%08x", index*4+i), Rotational: true,
			ByPath: fmt.Sprintf("pci-0000:5d:00.0-sas-phy%d-lun-0", i), Driver: "mpt3sas"})
	}
	nics := []struct{ name, driver, pci string }{
		{"eno1", "i40e", "0000:3b:00.0"}, {"eno2", "i40e", "0000:3b:00.1"},
		{"enp134s0f0", "mlx5_core", "0000:86:00.0"}, {"enp134s0f1", "mlx5_core", "0000:86:00.1"},
	}
	for i, n := range nics {
		nicMAC := net.HardwareAddr{0x3c, 0xec, 0xef, byte(index >> 16), byte(index >> 8), byte(index)}
		nicMAC[5] += byte(i)
		speed := 10000
		if i >= 2 {
			speed = 25000
			nicMAC = net.HardwareAddr{0x0c, 0x42, 0xa1, byte(index >> 16), byte(index >> 8), byte(index) + byte(i)}
		}
		if i == 0 {
			nicMAC = mac
		}
		inv.NICs = append(inv.NICs, inventory.NIC{Name: n.name, MAC: nicMAC.String(), Driver: n.driver, SpeedMbps: speed,
			Link: true, OperState: "up", PCIAddress: n.pci,
			LLDP: &inventory.LLDPNeighbor{ChassisID: "00:1c:73:aa:bb:cc", PortID: fmt.Sprintf("Ethernet%d/%d", index%48+1, i+1),
				PortDesc: fmt.Sprintf("srv-%d port %d", index, i), SystemName: fmt.Sprintf("leaf-%02d", index/48), VLAN: 100}})
	}
	for _, f := range pciFunctions {
		d := inventory.PCIDevice{Address: f[0], VendorID: f[1], DeviceID: f[2], Class: f[3], Driver: f[4],
			SubsystemVendorID: "15d9", SubsystemID: "095d"}
		inv.PCI = append(inv.PCI, d)
		if f[3][:2] == "03" {
			inv.GPUs = append(inv.GPUs, d)
		}
	}
	inv.NFSMounts = []inventory.NFSMount{}
	inv.ISCSISessions = []inventory.ISCSISession{}
	return inv
}
