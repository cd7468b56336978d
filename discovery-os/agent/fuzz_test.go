package agent

import (
	"bytes"
	"encoding/json"
	"io"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"

	"github.com/foundry-appliance/foundry/agentwire"
	"github.com/foundry-appliance/foundry/discovery-os/inventory"
	"github.com/foundry-appliance/foundry/names"
)

// FuzzParseCmdline: what the agent accepts from /proc/cmdline is a base
// URL it can call, a canonical MAC and a nonce that fits in a header; and
// written back in the documented form it reads the same.
func FuzzParseCmdline(f *testing.F) {
	for _, s := range []string{
		"BOOT_IMAGE=vmlinuz initrd=initrd foundry.url=http://10.77.0.1:8080/ foundry.mac=52-54-00-12-34-AB foundry.nonce=n0nce_x console=tty0",
		`foundry.url="https://[fd00::1]:8443" foundry.mac=5254.0012.3456 foundry.nonce="abc"`,
		"foundry.url=http://x foundry.mac=52:54:00:12:34:56 foundry.nonce=a\x7fb",
		"foundry.url=http://x/?a foundry.mac=52:54:00:12:34:56 foundry.nonce=1 foundry.url=http://y",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCmdline(s)
		if err != nil {
			return
		}
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.User != nil || strings.HasSuffix(c.URL, "/") {
			t.Fatalf("%q: accepted URL %q", s, c.URL)
		}
		if names.CheckMAC(c.MAC) != nil {
			t.Fatalf("%q: accepted MAC %q", s, c.MAC)
		}
		for _, r := range c.Nonce {
			if r <= ' ' || r > '~' {
				t.Fatalf("%q: accepted nonce %q", s, c.Nonce)
			}
		}
		// A quote that ends a value is the kernel's, not the value's.
		if strings.HasSuffix(c.URL, `"`) || strings.HasSuffix(c.Nonce, `"`) {
			return
		}
		line := "foundry.url=" + c.URL + " foundry.mac=" + c.MAC + " foundry.nonce=" + c.Nonce
		if back, err := ParseCmdline(line); back != c || err != nil {
			t.Fatalf("%q: %+v written back as %q reads %+v, %v", s, c, line, back, err)
		}
	})
}

// FuzzResolveDisk: a decision's disk resolves to one of this machine's
// writable disks that the name identifies, and to nothing when two
// disks could be meant; a by-path name only ever matches a by-path name.
// Each disk is "name|path|by-path|wwn|serial".
func FuzzResolveDisk(f *testing.F) {
	f.Add("/dev/disk/by-path/pci-0000:00:1f.2-ata-1.0", "sda|/dev/sda|pci-0000:00:1f.2-ata-1.0|naa.5|S1", "nvme0n1|/dev/nvme0n1|pci-0000:01:00.0-nvme-1||", uint8(0))
	f.Add("sda", "sda|/dev/sda|||", "sdb|/dev/sdb|||sda", uint8(0))
	f.Add("/dev/sr0", "sda|/dev/sda|||", "sr0|/dev/sr0|||", uint8(2))
	f.Add("/dev/disk/by-path/S1", "sda|/dev/sda|||S1", "|||/dev/disk/by-path/S1|", uint8(0))
	f.Fuzz(func(t *testing.T, name, a, b string, ro uint8) {
		var inv inventory.Inventory
		for i, spec := range []string{a, b} {
			p := append(strings.SplitN(spec, "|", 5), "", "", "", "", "")
			inv.Disks = append(inv.Disks, inventory.Disk{Name: p[0], Path: p[1], ByPath: p[2], WWN: p[3], Serial: p[4], ReadOnly: ro>>i&1 == 1})
		}
		// The collector names each disk once, by its /dev path.
		if inv.Disks[0].Path == "" || inv.Disks[0].Path == inv.Disks[1].Path {
			return
		}
		got, err := ResolveDisk(name, inv)
		var meant []inventory.Disk
		for _, d := range inv.Disks {
			if identifies(d, name) {
				meant = append(meant, d)
			}
		}
		if err != nil {
			if len(meant) == 1 && !meant[0].ReadOnly {
				t.Fatalf("ResolveDisk(%q) refused %+v: %v", name, meant[0], err)
			}
			return
		}
		if len(meant) != 1 || meant[0].Path != got || meant[0].ReadOnly {
			t.Fatalf("ResolveDisk(%q) = %q among %+v", name, got, inv.Disks)
		}
		if rest, ok := strings.CutPrefix(name, "/dev/disk/by-path/"); ok && meant[0].ByPath != rest {
			t.Fatalf("by-path name %q resolved to %+v", name, meant[0])
		}
	})
}

// FuzzNoCloudFiles: a seed is written only from values that cloud-init
// reads back exactly as they were decided. The files are JSON read by
// cloud-init's YAML loader (PyYAML/libyaml, YAML 1.1), which refuses a
// whole file holding a character it does not print (DEL, C1 controls,
// U+FFFE…) and folds NEL, U+2028 and U+2029 as line breaks.
func FuzzNoCloudFiles(f *testing.F) {
	f.Add("web1.lab", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl admin@lab", `ssh-rsa AAAA "quoted" x`,
		"static", "10.77.0.50/24", "10.77.0.1", "10.77.0.1", "http://10.77.0.1:8080/api/v1/first-boot/52:54:00:12:34:56/c2VjcmV0")
	// Regressions in testdata/fuzz/FuzzNoCloudFiles: key comments with
	// DEL (del-in-key) or NEL (nel-in-key) made user-data that
	// cloud-init refuses or reads with another key.
	f.Add("n", "k v", "", "static", "fd00::5/64", "fe80::1%eth0", "::ffff:1.2.3.4", "https://[fd00::1]/x?y=1")
	f.Fuzz(func(t *testing.T, host, key1, key2, mode, addr, gw, dns, firstBoot string) {
		d := agentwire.Decision{Hostname: host, FirstBootURL: firstBoot,
			Network: &agentwire.Network{Mode: mode, Address: addr, Gateway: gw}}
		for _, k := range []string{key1, key2} {
			if k != "" {
				d.SSHKeys = append(d.SSHKeys, k)
			}
		}
		if dns != "" {
			d.Network.DNS = []string{dns}
		}
		const mac = "52:54:00:12:34:56"
		files, err := NoCloudFiles("foundry-525400123456-1", mac, d)
		if err != nil {
			return
		}
		for name, b := range files {
			if i := yamlRefuses(b); i >= 0 {
				r, _ := utf8.DecodeRune(b[i:])
				t.Fatalf("%s has %U at %d, which cloud-init's YAML loader refuses or folds:\n%s", name, r, i, b)
			}
		}
		var user struct {
			FQDN string   `json:"fqdn"`
			Keys []string `json:"ssh_authorized_keys"`
			Home *struct {
				URL string `json:"url"`
			} `json:"phone_home"`
		}
		ud, ok := bytes.CutPrefix(files["user-data"], []byte("#cloud-config\n"))
		if !ok || json.Unmarshal(ud, &user) != nil {
			t.Fatalf("user-data is not #cloud-config and JSON:\n%s", files["user-data"])
		}
		if want, _ := names.Hostname(host); user.FQDN != want {
			t.Fatalf("fqdn %q, want %q", user.FQDN, want)
		}
		if !slices.Equal(user.Keys, d.SSHKeys) && len(user.Keys)+len(d.SSHKeys) > 0 {
			t.Fatalf("keys %q, want %q", user.Keys, d.SSHKeys)
		}
		if (user.Home == nil) != (firstBoot == "") || user.Home != nil && user.Home.URL != firstBoot {
			t.Fatalf("phone_home %+v, want %q", user.Home, firstBoot)
		}
		var nw struct {
			Ethernets map[string]struct {
				Match     map[string]string `json:"match"`
				DHCP4     bool              `json:"dhcp4"`
				Addresses []string          `json:"addresses"`
				Gateway4  string            `json:"gateway4"`
			} `json:"ethernets"`
		}
		if err := json.Unmarshal(files["network-config"], &nw); err != nil {
			t.Fatalf("network-config: %v", err)
		}
		eth := nw.Ethernets["primary"]
		if g, err := netip.ParseAddr(eth.Gateway4); eth.Gateway4 != "" && (err != nil || !g.Is4()) {
			t.Fatalf("gateway4 %q", eth.Gateway4)
		}
		if eth.Match["macaddress"] != mac {
			t.Fatalf("network-config matches %v", eth.Match)
		}
		if mode == "static" {
			if want, _ := netip.ParsePrefix(addr); len(eth.Addresses) != 1 || eth.Addresses[0] != want.String() || eth.DHCP4 {
				t.Fatalf("static %q written as %+v", addr, eth)
			}
		} else if !eth.DHCP4 {
			t.Fatalf("mode %q written as %+v", mode, eth)
		}
	})
}

// yamlRefuses returns the offset of the first character PyYAML's reader
// refuses (anything outside tab, LF, CR, printable ASCII, NEL and the
// printable planes) or reads as a line break inside a scalar (NEL, LS,
// PS), -1 when there is none.
func yamlRefuses(b []byte) int {
	for i, r := range string(b) {
		ok := r == '\t' || r == '\n' || r == '\r' || r >= 0x20 && r <= 0x7e ||
			r >= 0xa0 && r <= 0xd7ff && r != 0x2028 && r != 0x2029 || r >= 0xe000 && r <= 0xfffd || r >= 0x10000 && r <= 0x10ffff
		if !ok || r == utf8.RuneError {
			return i
		}
	}
	return -1
}

// FuzzWriteSeed: whatever partition table the written image brought, the
// seed is either refused with an error or added as a partition that reads
// back with the seed's files, beside every partition the image had. The
// input is the disk's first two sectors (the MBR, or the protective MBR
// and the GPT header); the sectors after them hold the partition entries
// of a GPT with one partition, which a fuzzed header may or may not point
// at (a small input keeps the fuzzer's minimising short).
func FuzzWriteSeed(f *testing.F) {
	const diskMB = 80
	gptHead := tableHead(f, diskMB, &gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true,
		Partitions: []*gpt.Partition{{Index: 1, Start: 2048, End: 20000, Type: gpt.LinuxFilesystem, Name: "root"}}})
	f.Add(gptHead[:1024])
	f.Add(tableHead(f, diskMB, &mbr.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512,
		Partitions: []*mbr.Partition{{Index: 1, Type: mbr.Linux, Start: 2048, Size: 20000, Bootable: true}}})[:1024])
	files := map[string][]byte{"meta-data": []byte(`{"instance-id":"x"}` + "\n"), "user-data": []byte("#cloud-config\n{}\n"), "network-config": []byte("{}\n")}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, head []byte) {
		if len(head) > 1024 {
			return
		}
		p := filepath.Join(dir, "disk.img")
		os.Remove(p)
		img := append(append(make([]byte, 0, len(gptHead)), head...), make([]byte, 1024-len(head))...)
		if err := os.WriteFile(p, append(img, gptHead[1024:]...), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, diskMB<<20); err != nil {
			t.Fatal(err)
		}
		before := spans(t, p)
		if err := WriteSeed(p, files); err != nil {
			return
		}
		after := spans(t, p)
		var seed []span
		for _, sp := range after {
			if !slices.Contains(before, sp) {
				seed = append(seed, sp)
			}
		}
		if len(seed) != 1 || len(after) != len(before)+1 {
			t.Fatalf("partitions before %+v, after %+v: want the image's and one more", before, after)
		}
		s := seed[0]
		if s.start < 0 || s.start+s.size > diskMB<<20 || s.size < SeedSize/2 {
			t.Fatalf("seed partition %+v on a %d MiB disk", s, diskMB)
		}
		for _, o := range before {
			if o.start < s.start+s.size && s.start < o.start+o.size {
				t.Fatalf("seed partition %+v overlaps the image's %+v", s, o)
			}
		}
		d, err := diskfs.Open(p, diskfs.WithOpenMode(diskfs.ReadOnly))
		if err != nil {
			t.Fatalf("seeded disk does not open: %v", err)
		}
		defer d.Close()
		fs, err := d.GetFilesystem(s.index)
		if err != nil {
			t.Fatalf("seed file system: %v", err)
		}
		if l := strings.TrimSpace(fs.Label()); l != "CIDATA" {
			t.Fatalf("seed label %q", l)
		}
		for name, want := range files {
			fh, err := fs.OpenFile("/"+name, os.O_RDONLY)
			if err != nil {
				t.Fatalf("seed file %s: %v", name, err)
			}
			got, _ := io.ReadAll(fh)
			if !bytes.Equal(got, want) {
				t.Fatalf("seed file %s reads %q", name, got)
			}
		}
	})
}

// span is a partition with a size, in bytes.
type span struct {
	index       int
	start, size int64
}

// spans lists the partitions in use in the table of the disk at p;
// none when it has no table diskfs reads.
func spans(t *testing.T, p string) []span {
	d, err := diskfs.Open(p, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tbl, err := d.GetPartitionTable()
	if err != nil {
		return nil
	}
	var out []span
	for _, part := range tbl.GetPartitions() {
		if mp, ok := part.(*mbr.Partition); ok && mp.Type == mbr.Empty {
			continue // an unused slot, whatever its numbers say
		}
		if part.GetSize() > 0 {
			out = append(out, span{part.GetIndex(), part.GetStart(), part.GetSize()})
		}
	}
	return out
}

// tableHead is the first 64 KiB of a disk of diskMB holding tbl: the MBR,
// or the protective MBR, GPT header and entries.
func tableHead(f testing.TB, diskMB int64, tbl partition.Table) []byte {
	p := filepath.Join(f.TempDir(), "head.img")
	d, err := diskfs.Create(p, diskMB<<20, diskfs.SectorSize512)
	if err != nil {
		f.Fatal(err)
	}
	defer d.Close()
	if err := d.Partition(tbl); err != nil {
		f.Fatal(err)
	}
	b := make([]byte, 64<<10)
	fh, err := os.Open(p)
	if err != nil {
		f.Fatal(err)
	}
	defer fh.Close()
	if _, err := io.ReadFull(fh, b); err != nil {
		f.Fatal(err)
	}
	return b
}
