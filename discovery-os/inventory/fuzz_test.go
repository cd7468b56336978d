package inventory

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/foundry-appliance/foundry/names"
)

func seedFile(f *testing.F, name string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata/qemu", name))
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzParseCPUInfo: every "processor : N" line is one thread; cores and
// sockets never outnumber the threads.
func FuzzParseCPUInfo(f *testing.F) {
	f.Add(seedFile(f, "proc/cpuinfo"))
	f.Add([]byte(cpuBlocks([][2]string{{"0", "0"}, {"0", "1"}, {"1", "0"}, {"1", "1"}})))
	f.Add([]byte("processor : 0\nFeatures : fp asimd\n\nprocessor : x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := parseCPUInfo(b)
		threads := 0
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if _, err := strconv.Atoi(strings.TrimSpace(v)); ok && err == nil && strings.TrimSpace(k) == "processor" {
				threads++
			}
		}
		if c.Threads != threads || c.Cores > c.Threads || c.Sockets > c.Threads || c.Threads > 0 && (c.Cores == 0 || c.Sockets == 0) || c.Flags == nil {
			t.Fatalf("%q: %d processor lines, parsed %+v", b, threads, c)
		}
	})
}

// FuzzParseMemTotal: a whole number of KiB from a MemTotal line, or 0.
func FuzzParseMemTotal(f *testing.F) {
	f.Add(seedFile(f, "proc/meminfo"))
	f.Add([]byte("MemTotal: 18446744073709551615 kB\n"))
	f.Add([]byte("MemFree: 1 kB\nMemTotal:\t 42 MB\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := parseMemTotal(b)
		if n%1024 != 0 || n > 1<<63 || n > 0 && !strings.Contains(string(b), "MemTotal:") {
			t.Fatalf("%q: MemTotal %d", b, n)
		}
	})
}

// FuzzParseVPD80: the serial is the page's payload, trimmed, as UTF-8.
func FuzzParseVPD80(f *testing.F) {
	f.Add([]byte("\x00\x80\x00\x0cQM00001     "))
	f.Add([]byte("\x00\x80\xff\xff\x00S\x00"))
	f.Add([]byte("\x00\x81\x00\x01x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := parseVPD80(b)
		if s == "" {
			return
		}
		if len(b) < 4 || !utf8.ValidString(s) || len(s) > 3*(len(b)-4) || s != strings.TrimSpace(strings.Trim(s, "\x00")) {
			t.Fatalf("%q: serial %q", b, s)
		}
	})
}

// FuzzParseNFSMounts: only nfs and nfs4 lines, each with an absolute
// export, at most one per line.
func FuzzParseNFSMounts(f *testing.F) {
	f.Add(seedFile(f, "proc/mounts"))
	f.Add([]byte("srv:/x\\134\\040y /m\\0 nfs4 ro 0 0\n[::1]:/ / nfs rw\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms := parseNFSMounts(b)
		if len(ms) > strings.Count(string(b), "\n")+1 {
			t.Fatalf("%q: %d mounts", b, len(ms))
		}
		for _, m := range ms {
			if (m.FSType != "nfs" && m.FSType != "nfs4") || !strings.HasPrefix(m.Export, "/") {
				t.Fatalf("%q: mount %+v", b, m)
			}
		}
	})
}

// FuzzParsePCIIDs: names only for the wanted vendors' devices and for
// classes. (pci.ids comes with the discovery image, not from the machine;
// this only shows a malformed file cannot stop the collector.)
func FuzzParsePCIIDs(f *testing.F) {
	f.Add([]byte("# c\n8086  Intel Corporation\n\t100e  82540EM Gigabit Ethernet Controller\n\t\t8086 001e  PRO/1000 MT\nabcd  Other\nC 02  Network controller\n\t00  Ethernet controller\n"))
	f.Add([]byte("C 0\n\t0  x\n8086\t x\n\t\t\t100e  y\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, _ := parsePCIIDs(strings.NewReader(string(b)), map[string]bool{"8086": true})
		for k := range n.vendors {
			if k != "8086" {
				t.Fatalf("%q: vendor %q not wanted", b, k)
			}
		}
		for k := range n.devices {
			if !strings.HasPrefix(k, "8086:") {
				t.Fatalf("%q: device key %q", b, k)
			}
		}
	})
}

// FuzzCollect runs the whole collector on a copy of the captured QEMU tree
// whose /proc files, DMI product name and chassis type, the SATA disk's
// VPD page, the NIC's address, and the sysfs path of one more disk (sdz)
// are the fuzzer's. The report survives the trip to the appliance (JSON)
// unchanged, its counts agree, and a disk's by-path name is one udev could
// give.
func FuzzCollect(f *testing.F) {
	f.Add(seedFile(f, "proc/cpuinfo"), seedFile(f, "proc/meminfo"), seedFile(f, "proc/mounts"), "Standard PC", "1",
		[]byte("\x00\x80\x00\x04S123"), "52:54:00:12:34:56", "pci0000:00/0000:00:1f.2/ata3/host2/target2:0:0/2:0:0:0")
	f.Add([]byte("processor:0"), []byte("MemTotal: 1 kB"), []byte(""), "To be filled by O.E.M.", "-1",
		[]byte("\x00\x80"), "ff:ff:ff:ff:ff:ff:ff:ff", "pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host5/target5:0:0/5:0:0:0")
	f.Add([]byte{}, []byte{}, []byte{}, "\xff\xfe", "255", []byte{}, "", "pci0000:00/0000:00:02.0/host0/host7/target7:0:3/7:0:3:1")
	root := filepath.Join(memDir(f), "root")
	if err := copyTree("testdata/qemu", root); err != nil {
		f.Fatal(err)
	}
	// The tree's sda: its SCSI device directory, where a VPD page lives.
	sdaDev := "sys/devices/pci0000:00/0000:00:01.1/ata1/host0/target0:0:0/0:0:0:0"
	byPathRE := regexp.MustCompile(`^pci-[0-9a-f:.]+(-[a-z]+-[0-9a-z:.]+)*$`)
	f.Fuzz(func(t *testing.T, cpuinfo, meminfo, mounts []byte, product, chassis string, vpd []byte, mac, devPath string) {
		write := func(name string, b []byte) {
			if err := os.WriteFile(filepath.Join(root, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write("proc/cpuinfo", cpuinfo)
		write("proc/meminfo", meminfo)
		write("proc/mounts", mounts)
		write("sys/devices/virtual/dmi/id/product_name", []byte(product))
		write("sys/devices/virtual/dmi/id/chassis_type", []byte(chassis))
		write(sdaDev+"/vpd_pg80", vpd)
		write("sys/devices/pci0000:00/0000:00:03.0/net/eth0/address", []byte(mac))
		// sdz at the fuzzed place under /sys/devices.
		os.RemoveAll(filepath.Join(root, "sys/devices/fuzz"))
		os.Remove(filepath.Join(root, "sys/block/sdz"))
		if dir := sysPath(devPath); dir != "" {
			real := filepath.Join("sys/devices/fuzz", dir, "block/sdz")
			if err := os.MkdirAll(filepath.Join(root, real), 0o755); err != nil {
				t.Fatal(err)
			}
			write(real+"/size", []byte("2048\n"))
			if err := os.Symlink("../"+strings.TrimPrefix(real, "sys/"), filepath.Join(root, "sys/block/sdz")); err != nil {
				t.Fatal(err)
			}
		}
		c := &Collector{Root: root, PCIIDs: "testdata/pci.ids", Now: func() time.Time { return collectedAt }}
		inv := c.Collect()
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
		if inv.CPU.Cores > inv.CPU.Threads || inv.CPU.Sockets > inv.CPU.Threads || inv.Memory.UsableBytes%1024 != 0 {
			t.Fatalf("cpu %+v, memory %+v", inv.CPU, inv.Memory)
		}
		for _, d := range inv.Disks {
			if d.ByPath != "" && !byPathRE.MatchString(d.ByPath) {
				t.Fatalf("disk %s at %q: by-path %q", d.Name, devPath, d.ByPath)
			}
		}
		for _, n := range inv.NICs {
			if n.MAC != "" && names.CheckMAC(n.MAC) != nil {
				t.Fatalf("NIC %s: MAC %q", n.Name, n.MAC)
			}
		}
	})
}

// sysPath makes a relative directory path of at most 12 components from
// s, dropping what a directory name cannot be.
func sysPath(s string) string {
	var out []string
	for _, c := range strings.Split(s, "/") {
		if c == "" || c == "." || c == ".." || len(c) > 64 || strings.ContainsRune(c, 0) {
			continue
		}
		out = append(out, c)
		if len(out) == 12 {
			break
		}
	}
	return strings.Join(out, "/")
}

// copyTree copies the files, directories and symbolic links under src.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(to, b, 0o644)
		}
	})
}

// memDir is a temporary directory in memory (/dev/shm) when there is one:
// every fuzzed input rewrites files, at a few milliseconds each on a disk.
func memDir(f *testing.F) string {
	d, err := os.MkdirTemp("/dev/shm", "foundry-fuzz-")
	if err != nil {
		return f.TempDir()
	}
	f.Cleanup(func() { os.RemoveAll(d) })
	return d
}
