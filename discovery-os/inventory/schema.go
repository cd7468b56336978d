// Package inventory defines the hardware inventory that the discovery agent
// reports (the schema, versioned by SchemaVersion) and collects it from a
// Linux machine's /sys and /proc without udev, so that it works inside a
// bare initramfs. Every path is read under Collector.Root, which lets tests
// run the collector against trees captured from real machines.
//
// The schema is documented field by field in docs/inventory.md; a change to
// the structs below changes that file and, when a field changes meaning or
// disappears, SchemaVersion.
package inventory

import "time"

// SchemaVersion is the version of the Inventory layout. Additive changes
// (a new optional field) keep it; a renamed, removed or redefined field
// bumps it.
const SchemaVersion = 1

// Inventory is one machine's hardware report.
type Inventory struct {
	SchemaVersion int       `json:"schema_version"`
	CollectedAt   time.Time `json:"collected_at"`
	System        System    `json:"system"`
	Baseboard     Baseboard `json:"baseboard"`
	BIOS          BIOS      `json:"bios"`
	Chassis       Chassis   `json:"chassis"`
	CPU           CPU       `json:"cpu"`
	Memory        Memory    `json:"memory"`
	Disks         []Disk    `json:"disks"`
	NICs          []NIC     `json:"nics"`
	// GPUs are the PCI devices of display class (0x03xx), also listed in PCI.
	GPUs          []PCIDevice    `json:"gpus"`
	PCI           []PCIDevice    `json:"pci"`
	BMC           *BMC           `json:"bmc,omitempty"`
	NFSMounts     []NFSMount     `json:"nfs_mounts"`
	ISCSISessions []ISCSISession `json:"iscsi_sessions"`
	// Warnings lists what could not be read; the rest of the report stands.
	Warnings []string `json:"warnings,omitempty"`
}

// System is SMBIOS type 1, as the kernel exposes it in /sys/class/dmi/id.
type System struct {
	Vendor  string `json:"vendor"`
	Product string `json:"product"`
	Version string `json:"version"`
	Serial  string `json:"serial"`
	UUID    string `json:"uuid"`
	SKU     string `json:"sku"`
	Family  string `json:"family"`
}

// Baseboard is SMBIOS type 2.
type Baseboard struct {
	Vendor   string `json:"vendor"`
	Product  string `json:"product"`
	Version  string `json:"version"`
	Serial   string `json:"serial"`
	AssetTag string `json:"asset_tag"`
}

// BIOS is SMBIOS type 0.
type BIOS struct {
	Vendor  string `json:"vendor"`
	Version string `json:"version"`
	Date    string `json:"date"`
}

// Chassis is SMBIOS type 3.
type Chassis struct {
	Vendor string `json:"vendor"`
	// Type is the SMBIOS chassis type name ("Rack Mount Chassis", "Other", …).
	Type     string `json:"type"`
	Version  string `json:"version"`
	Serial   string `json:"serial"`
	AssetTag string `json:"asset_tag"`
}

// CPU summarises /proc/cpuinfo.
type CPU struct {
	Model   string `json:"model"`
	Vendor  string `json:"vendor"`
	Sockets int    `json:"sockets"`
	// Cores counts physical cores over all sockets.
	Cores int `json:"cores"`
	// Threads counts logical CPUs (what the kernel calls processors).
	Threads int      `json:"threads"`
	Flags   []string `json:"flags"`
}

// Memory is the installed memory.
type Memory struct {
	// TotalBytes is the sum of the DIMM sizes when SMBIOS lists DIMMs,
	// otherwise UsableBytes.
	TotalBytes uint64 `json:"total_bytes"`
	// UsableBytes is MemTotal from /proc/meminfo: what the kernel manages.
	UsableBytes uint64 `json:"usable_bytes"`
	DIMMs       []DIMM `json:"dimms"`
}

// DIMM is one populated SMBIOS type 17 memory device.
type DIMM struct {
	Locator      string `json:"locator"`
	Bank         string `json:"bank,omitempty"`
	SizeBytes    uint64 `json:"size_bytes"`
	Type         string `json:"type"`
	FormFactor   string `json:"form_factor"`
	SpeedMTs     int    `json:"speed_mts,omitempty"`
	Manufacturer string `json:"manufacturer,omitempty"`
	Serial       string `json:"serial,omitempty"`
	PartNumber   string `json:"part_number,omitempty"`
}

// Disk is one block device that can hold an operating system.
type Disk struct {
	// Name is the kernel name ("sda", "nvme0n1", "vda").
	Name string `json:"name"`
	// Path is the device node ("/dev/sda").
	Path      string `json:"path"`
	SizeBytes uint64 `json:"size_bytes"`
	Vendor    string `json:"vendor,omitempty"`
	Model     string `json:"model,omitempty"`
	Serial    string `json:"serial,omitempty"`
	// WWN is the kernel's world-wide identifier (device/wwid: "naa.…",
	// "eui.…", "t10.…") as reported, or "" when the device has none.
	WWN        string `json:"wwn,omitempty"`
	Rotational bool   `json:"rotational"`
	Removable  bool   `json:"removable"`
	ReadOnly   bool   `json:"read_only"`
	// ByPath is the stable name udev would give under /dev/disk/by-path,
	// computed from the sysfs path (e.g. "pci-0000:00:01.1-ata-1.0").
	ByPath string `json:"by_path,omitempty"`
	// Driver is the kernel driver of the disk's controller.
	Driver string `json:"driver,omitempty"`
}

// Fixed says whether the disk can hold an installed system: not removable
// (USB sticks, optical drives), writable, with a medium. The approval's
// default disk and the machine summary's disk space both count only these.
func (d Disk) Fixed() bool { return !d.Removable && !d.ReadOnly && d.SizeBytes > 0 }

// NIC is one physical network interface.
type NIC struct {
	Name string `json:"name"`
	MAC  string `json:"mac"`
	// Driver is the kernel driver ("e1000", "virtio_net", …).
	Driver string `json:"driver,omitempty"`
	// SpeedMbps is the negotiated speed; 0 when unknown or no link.
	SpeedMbps int  `json:"speed_mbps"`
	Link      bool `json:"link"`
	// OperState is /sys/class/net/*/operstate ("up", "down", "unknown", …).
	OperState  string        `json:"operstate"`
	PCIAddress string        `json:"pci_address,omitempty"`
	LLDP       *LLDPNeighbor `json:"lldp,omitempty"`
}

// LLDPNeighbor is what the switch port on the other end announced.
type LLDPNeighbor struct {
	ChassisID  string `json:"chassis_id"`
	PortID     string `json:"port_id"`
	PortDesc   string `json:"port_description,omitempty"`
	SystemName string `json:"system_name,omitempty"`
	// VLAN is the port VLAN ID (IEEE 802.1 TLV), 0 when not announced.
	VLAN int `json:"vlan,omitempty"`
}

// PCIDevice is one PCI function.
type PCIDevice struct {
	Address   string `json:"address"`
	VendorID  string `json:"vendor_id"`
	DeviceID  string `json:"device_id"`
	Vendor    string `json:"vendor,omitempty"`
	Device    string `json:"device,omitempty"`
	Class     string `json:"class"` // six hex digits: class, subclass, prog-if
	ClassName string `json:"class_name,omitempty"`
	// SubsystemVendorID and SubsystemID identify the board the chip is on.
	SubsystemVendorID string `json:"subsystem_vendor_id,omitempty"`
	SubsystemID       string `json:"subsystem_id,omitempty"`
	Driver            string `json:"driver,omitempty"`
}

// BMC describes the machine's baseboard management controller.
type BMC struct {
	// Interface is "ipmi" (SMBIOS type 38 or /sys/class/ipmi) or
	// "redfish" (SMBIOS type 42 Redfish host interface).
	Interface string `json:"interface"`
	// Type is the IPMI system interface ("KCS", "SMIC", "BT", "SSIF").
	Type string `json:"type,omitempty"`
	// Address is the BMC's IP address when known: the Redfish service
	// address of type 42, or the LAN address read over IPMI.
	Address string `json:"address,omitempty"`
	// MAC is the BMC's own LAN MAC, read over IPMI when known.
	MAC string `json:"mac,omitempty"`
}

// NFSMount is one mounted NFS file system.
type NFSMount struct {
	Server     string `json:"server"`
	Export     string `json:"export"`
	MountPoint string `json:"mount_point"`
	FSType     string `json:"fstype"`
	Options    string `json:"options"`
}

// ISCSISession is one logged-in iSCSI session.
type ISCSISession struct {
	Session    string `json:"session"`
	TargetName string `json:"target_name"`
	Portal     string `json:"portal,omitempty"`
	Initiator  string `json:"initiator,omitempty"`
}
