package inventory

import (
	"encoding/binary"
	"testing"
)

func TestByPath(t *testing.T) {
	r := &reader{c: &Collector{Root: t.TempDir()}}
	tests := []struct {
		name, real, disk, want string
	}{
		{"virtio-blk", "/sys/devices/pci0000:00/0000:00:04.0/virtio1/block/vda", "vda", "pci-0000:00:04.0"},
		{"ahci", "/sys/devices/pci0000:00/0000:00:1f.2/ata3/host2/target2:0:0/2:0:0:0/block/sdb", "sdb", "pci-0000:00:1f.2-ata-3.0"},
		{"port multiplier", "/sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:1:0/0:1:0:2/block/sdc", "sdc", "pci-0000:00:1f.2-ata-1.1.2"},
		{"nvme behind a bridge", "/sys/devices/pci0000:00/0000:00:01.1/0000:01:00.0/nvme/nvme0/nvme0n1", "nvme0n1", "pci-0000:01:00.0-nvme-1"},
		{"nvme multipath name", "/sys/devices/pci0000:00/0000:00:02.0/nvme/nvme1/nvme1c1n2", "nvme1c1n2", "pci-0000:00:02.0-nvme-2"},
		{"virtio-scsi", "/sys/devices/pci0000:00/0000:00:05.0/virtio3/host7/target7:0:1/7:0:1:0/block/sdd", "sdd", "pci-0000:00:05.0-scsi-0:0:1:0"},
		{"usb stick", "/sys/devices/pci0000:00/0000:00:14.0/usb2/2-3/2-3:1.0/host8/target8:0:0/8:0:0:0/block/sde", "sde", "pci-0000:00:14.0-usb-0:3:1.0-scsi-0:0:0:0"},
		{"no PCI", "/sys/devices/platform/soc/mmc0/mmcblk0", "mmcblk0", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.byPath(tt.real, tt.disk); got != tt.want {
				t.Errorf("byPath = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseVPD80(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"serial", []byte("\x00\x80\x00\x09  S3Z1NX0\x00"), "S3Z1NX0"},
		{"length beyond data", []byte("\x00\x80\x00\xffABC"), "ABC"},
		{"wrong page", []byte("\x00\x83\x00\x03ABC"), ""},
		{"short", []byte{0, 0x80}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseVPD80(tt.in); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseCPUInfo(t *testing.T) {
	tests := []struct {
		name                    string
		in                      string
		sockets, cores, threads int
	}{
		{"two sockets with SMT", cpuBlocks([][2]string{{"0", "0"}, {"0", "0"}, {"0", "1"}, {"0", "1"}, {"1", "0"}, {"1", "0"}, {"1", "1"}, {"1", "1"}}), 2, 4, 8},
		{"no topology", "processor\t: 0\nFeatures\t: fp asimd\n\nprocessor\t: 1\nFeatures\t: fp asimd\n", 1, 2, 2},
		{"empty", "", 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := parseCPUInfo([]byte(tt.in))
			if c.Sockets != tt.sockets || c.Cores != tt.cores || c.Threads != tt.threads {
				t.Errorf("got %d/%d/%d, want %d/%d/%d", c.Sockets, c.Cores, c.Threads, tt.sockets, tt.cores, tt.threads)
			}
		})
	}
}

func cpuBlocks(ids [][2]string) string {
	s := ""
	for i, id := range ids {
		s += "processor\t: " + string(rune('0'+i)) + "\nphysical id\t: " + id[0] + "\ncore id\t\t: " + id[1] + "\n\n"
	}
	return s
}

func TestParseMemTotal(t *testing.T) {
	tests := map[string]uint64{
		"MemTotal:        2030996 kB\n": 2030996 * 1024,
		"MemFree: 1 kB\n":               0,
		"MemTotal: lots kB\n":           0,
		"MemTotal: 12 MB\n":             0,
	}
	for in, want := range tests {
		if got := parseMemTotal([]byte(in)); got != want {
			t.Errorf("parseMemTotal(%q) = %d, want %d", in, got, want)
		}
	}
}

// smbiosStruct builds one SMBIOS structure with its string set.
func smbiosStruct(typ byte, body []byte, strs ...string) []byte {
	b := append([]byte{typ, byte(4 + len(body)), 0, 0}, body...)
	for _, s := range strs {
		b = append(append(b, s...), 0)
	}
	if len(strs) == 0 {
		b = append(b, 0)
	}
	return append(b, 0)
}

func TestParseSMBIOSRedfish(t *testing.T) {
	data := make([]byte, 91) // Redfish over IP protocol data
	data[51] = 1             // service address format IPv4
	copy(data[52:], []byte{192, 168, 10, 20})
	body := []byte{0x40, 0, 1, 0x04, byte(len(data))}
	body = append(body, data...)
	table := append(smbiosStruct(42, body), smbiosStruct(127, nil)...)
	d := parseSMBIOS(table)
	if d.tableErr != nil {
		t.Fatal(d.tableErr)
	}
	if d.redfish == nil || d.redfish.Address != "192.168.10.20" {
		t.Fatalf("redfish = %+v", d.redfish)
	}
}

func TestParseSMBIOSMalformed(t *testing.T) {
	good := smbiosStruct(17, make([]byte, 0x24))
	binary.LittleEndian.PutUint16(good[0x0c:], 4096) // 4 GiB
	tests := []struct {
		name   string
		in     []byte
		dimms  int
		hasErr bool
	}{
		{"truncated after a DIMM", append(good, 17, 0x28, 0), 1, true},
		{"garbage", []byte{0xff, 0x01}, 0, true},
		{"no end marker", good, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := parseSMBIOS(tt.in)
			if len(d.dimms) != tt.dimms || (d.tableErr != nil) != tt.hasErr {
				t.Errorf("dimms %d err %v; want %d, error %v", len(d.dimms), d.tableErr, tt.dimms, tt.hasErr)
			}
		})
	}
}

func FuzzParseSMBIOS(f *testing.F) {
	f.Add(smbiosStruct(17, make([]byte, 0x24), "DIMM 0"))
	f.Add(smbiosStruct(42, []byte{0x40, 0, 1, 4, 0}))
	f.Fuzz(func(t *testing.T, b []byte) { parseSMBIOS(b) })
}
