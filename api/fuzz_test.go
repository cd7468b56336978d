package api

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/foundry-appliance/foundry/agentwire"
	"github.com/foundry-appliance/foundry/discovery-os/agent"
	"github.com/foundry-appliance/foundry/discovery-os/inventory"
	"github.com/foundry-appliance/foundry/store"
)

// FuzzDecodeCursor: a cursor is refused or decodes to a position with a
// MAC, which encodes to a cursor that decodes the same; and every cursor
// the list hands out decodes to what it encoded.
func FuzzDecodeCursor(f *testing.F) {
	f.Add(listCursor{Sort: "hostname", Key: "web01", MAC: "52:54:00:12:34:56"}.encode(), "hostname", "web01", "52:54:00:12:34:56")
	f.Add(listCursor{Sort: "-last_seen", Key: "2025-01-02T03:04:05.000000000", MAC: "52:54:00:12:34:56"}.encode(), "", "", "")
	f.Add("eyJzIjoiIiwiayI6IiIsIm0iOiIifQ", "state", "03", "x")
	f.Add("not base64!", "\xff", "\x00", "m")
	f.Fuzz(func(t *testing.T, s, sort, key, mac string) {
		if c, err := decodeCursor(s); err == nil {
			if c.MAC == "" {
				t.Fatalf("%q accepted without a MAC", s)
			}
			if again, err := decodeCursor(c.encode()); err != nil || again != c {
				t.Fatalf("%q decodes to %+v, which encodes to a cursor that decodes to %+v, %v", s, c, again, err)
			}
		}
		// Positions the list makes: keys and MACs of the store (text).
		c := listCursor{Sort: sort, Key: key, MAC: mac}
		if mac == "" || !utf8.ValidString(sort) || !utf8.ValidString(key) || !utf8.ValidString(mac) {
			return
		}
		if got, err := decodeCursor(c.encode()); err != nil || got != c {
			t.Fatalf("%+v encodes to %q, which decodes to %+v, %v", c, c.encode(), got, err)
		}
	})
}

// FuzzApprovalRules: what approval accepts (host name, SSH keys, network
// on the machine's segment, disk from its inventory) is what the agent can
// carry out: the seed it writes from the decision reads back as approved,
// and the disk resolves to the one chosen on the same hardware. Disks are
// "name|path|by-path|size" lines; bit i of flags makes disk i removable,
// bit i+4 read-only.
func FuzzApprovalRules(f *testing.F) {
	disks := "sda|/dev/sda|pci-0000:00:1f.2-ata-1|8589934592\nsdb|/dev/sdb|pci-0000:00:01.2-usb-0:1:1.0-scsi-0:0:0:0|1000\nnvme0n1|/dev/nvme0n1|pci-0000:00:04.0-nvme-1|68719476736"
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl admin@example"
	f.Add("web01.lab", key, `from="10.0.0.0/8" `+key, "static", "10.77.0.50/24", "10.77.0.1", "10.77.0.1", disks, "", uint8(2))
	f.Add("Node-1", key+" caf\u00e9", "", "dhcp", "", "", "", disks, "/dev/disk/by-path/pci-0000:00:1f.2-ata-1", uint8(0))
	f.Add("n", key, "", "", "", "", "8.8.8.8", disks, "sda", uint8(0x10))
	f.Add("n", key, "", "static", "10.77.0.255/24", "10.77.1.1", "fd00::1", "a|/dev/a||1\nb|/dev/a|x|2", "x", uint8(0))
	seg := &SegmentInfo{Name: "lab", Subnet: netip.MustParsePrefix("10.77.0.0/24"), Mode: "dhcp",
		RangeStart: netip.MustParseAddr("10.77.0.100"), RangeEnd: netip.MustParseAddr("10.77.0.200"),
		Router: netip.MustParseAddr("10.77.0.1"), DNS: []netip.Addr{netip.MustParseAddr("10.77.0.1")}}
	f.Fuzz(func(t *testing.T, hostname, key1, key2, mode, addr, gw, dns, diskLines, want string, flags uint8) {
		var inv inventory.Inventory
		for i, line := range strings.SplitN(diskLines, "\n", 4) {
			p := append(strings.SplitN(line, "|", 4), "", "", "")
			var size uint64
			for _, c := range p[3] {
				if c >= '0' && c <= '9' && size < 1<<50 {
					size = size*10 + uint64(c-'0')
				}
			}
			inv.Disks = append(inv.Disks, inventory.Disk{Name: p[0], Path: p[1], ByPath: p[2], SizeBytes: size,
				Removable: flags>>i&1 == 1, ReadOnly: flags>>(i+4)&1 == 1})
		}
		var keys []string
		for _, k := range []string{key1, key2} {
			if k != "" {
				keys = append(keys, k)
			}
		}
		req := &Network{Mode: mode, Address: addr, Gateway: gw}
		if dns != "" {
			req.DNS = []string{dns}
		}
		host, herr := checkHostname(hostname)
		okKeys, kerrs := checkSSHKeys(keys)
		nw, nerrs := checkNetwork(req, seg)
		disk, derr := diskChoice(&inv, strings.TrimSpace(want), true)
		if herr != nil || len(kerrs) > 0 || len(nerrs) > 0 || derr != nil {
			return
		}
		if nw.Mode == "static" {
			a := nw.Address.Addr()
			inRange := seg.RangeStart.Compare(a) <= 0 && a.Compare(seg.RangeEnd) <= 0
			if !seg.Subnet.Contains(a) || nw.Address.Bits() < seg.Subnet.Bits() || inRange || a == seg.Router ||
				!nw.Address.Masked().Contains(nw.Gateway) || nw.Gateway == a {
				t.Fatalf("accepted %+v as %+v on %+v", *req, nw, *seg)
			}
		}
		d := agentwire.Decision{Hostname: host, SSHKeys: okKeys}
		n := networkView(nw)
		d.Network = &n
		files, err := agent.NoCloudFiles("foundry-test", "52:54:00:12:34:56", d)
		if err != nil {
			t.Fatalf("approval accepted host %q, keys %q, network %+v; the agent refuses the seed: %v", host, okKeys, n, err)
		}
		var user struct {
			FQDN string   `json:"fqdn"`
			Keys []string `json:"ssh_authorized_keys"`
		}
		if err := json.Unmarshal([]byte(strings.TrimPrefix(string(files["user-data"]), "#cloud-config\n")), &user); err != nil ||
			user.FQDN != host || !slices.Equal(user.Keys, okKeys) && len(okKeys) > 0 {
			t.Fatalf("seed user-data %s, approved %q %q", files["user-data"], host, okKeys)
		}
		if nw.Mode == "static" && !strings.Contains(string(files["network-config"]), `"`+nw.Address.String()+`"`) {
			t.Fatalf("seed network-config %s, approved %v", files["network-config"], nw.Address)
		}
		// The agent resolves the chosen disk on the same hardware (whose
		// device paths are unique) to the disk approval chose.
		paths := map[string]bool{}
		for _, dk := range inv.Disks {
			if dk.Path == "" || paths[dk.Path] {
				return
			}
			paths[dk.Path] = true
		}
		chosen, ok := findDisk(&inv, disk)
		if !ok || chosen.ReadOnly {
			t.Fatalf("approval chose %q, which is no writable disk of %+v", disk, inv.Disks)
		}
		got, err := agent.ResolveDisk(disk, inv)
		if err != nil || got != chosen.Path {
			t.Fatalf("approval chose %q (%s); the agent resolves it to %q, %v", disk, chosen.Path, got, err)
		}
	})
}

// FuzzSummary: a machine's summary is made of its inventory, whatever the
// agent sent as one.
func FuzzSummary(f *testing.F) {
	b, _ := json.Marshal(inventory.Inventory{System: inventory.System{Vendor: "QEMU", Product: "pc"},
		CPU:   inventory.CPU{Model: "x", Cores: 2, Threads: 4},
		Disks: []inventory.Disk{{Name: "sda", SizeBytes: 1 << 40}, {Name: "sr0", SizeBytes: 700 << 20, Removable: true}}})
	f.Add(b)
	f.Add([]byte(`{"disks":[{"size_bytes":18446744073709551615},{"size_bytes":1}],"cpu":{"cores":-1}}`))
	f.Add([]byte(`{"system":"x"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		s := store.SummarizeInventory(raw)
		v := summaryView(s)
		var inv inventory.Inventory
		if json.Unmarshal(raw, &inv) != nil {
			if v.Disks != 0 || v.Vendor != "" {
				t.Fatalf("%q does not parse, summarised as %+v", raw, v)
			}
			return
		}
		if v.Vendor != inv.System.Vendor || v.Model != inv.System.Product || v.Disks != len(inv.Disks) || v.NICs != len(inv.NICs) ||
			v.Cores != inv.CPU.Cores || v.MemoryBytes != inv.Memory.TotalBytes {
			t.Fatalf("%q summarised as %+v", raw, v)
		}
		if _, err := json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	})
}
