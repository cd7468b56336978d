package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/crc64"
	"math"
	"strings"

	"github.com/foundry-appliance/foundry/discovery-os/inventory"
)

// InventorySummary is the part of a machine's inventory that lists show
// and search. The store derives it from Machine.Inventory whenever that
// changes and keeps it in the machine's record, so that a list never reads
// an inventory.
type InventorySummary struct {
	Vendor      string `json:"vendor,omitempty"`
	Model       string `json:"model,omitempty"`
	Serial      string `json:"serial,omitempty"`
	CPUModel    string `json:"cpu_model,omitempty"`
	Cores       int    `json:"cores,omitempty"`
	Threads     int    `json:"threads,omitempty"`
	MemoryBytes uint64 `json:"memory_bytes,omitempty"`
	Disks       int    `json:"disks,omitempty"`
	// DiskBytes is the total size of the fixed disks (inventory.Disk.Fixed):
	// not removable media, not read-only devices.
	DiskBytes uint64 `json:"disk_bytes,omitempty"`
	NICs      int    `json:"nics,omitempty"`
	GPUs      int    `json:"gpus,omitempty"`
	// Sum identifies the inventory the summary was made from (CRC-64 of its
	// bytes and their length), so that a write that keeps the inventory
	// neither rewrites it nor parses it again.
	Sum uint64 `json:"sum,omitempty"`
}

var crcTable = crc64.MakeTable(crc64.ECMA)

// inventorySum identifies raw inventory bytes; 0 for none.
func inventorySum(raw []byte) uint64 {
	if len(raw) == 0 {
		return 0
	}
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(raw)))
	return crc64.Update(crc64.Checksum(raw, crcTable), crcTable, n[:]) | 1
}

// ParseInventory reads a stored inventory (a machine's or a
// registration's) as encoding/json would, with the store's faster decoder
// (codec.go): an approval and a machine's view read every registration's.
// nil for none, or for bytes that do not parse as an inventory (accepted
// as JSON and kept as received: they have nothing to show or choose from).
func ParseInventory(raw []byte) *inventory.Inventory {
	if len(raw) == 0 {
		return nil
	}
	var inv inventory.Inventory
	if decodeJSON(raw, &inv) != nil {
		return nil
	}
	return &inv
}

// SummarizeInventory summarises an agent's inventory (docs/inventory.md).
// An inventory that does not parse gives an empty summary: it was accepted
// as JSON and is kept as received, but has nothing a list can show.
func SummarizeInventory(raw json.RawMessage) InventorySummary {
	if len(raw) == 0 {
		return InventorySummary{}
	}
	inv := ParseInventory(raw)
	if inv == nil {
		return InventorySummary{Sum: inventorySum(raw)}
	}
	s := InventorySummary{
		Vendor: inv.System.Vendor, Model: inv.System.Product, Serial: inv.System.Serial,
		CPUModel: inv.CPU.Model, Cores: inv.CPU.Cores, Threads: inv.CPU.Threads,
		MemoryBytes: inv.Memory.TotalBytes, Disks: len(inv.Disks), NICs: len(inv.NICs), GPUs: len(inv.GPUs),
		Sum: inventorySum(raw),
	}
	for _, d := range inv.Disks {
		if d.Fixed() { // a CD-ROM's medium or a USB stick is no disk space
			// Saturating: sizes are the agent's word, and a sum that
			// wrapped would list a huge machine as a small one.
			if sum := s.DiskBytes + d.SizeBytes; sum < s.DiskBytes {
				s.DiskBytes = math.MaxUint64
			} else {
				s.DiskBytes = sum
			}
		}
	}
	return s
}

// SummaryOf is the summary of raw: the one of known made from the same
// bytes (by Sum), so that an inventory is parsed once, when it changes
// (a registration's inventory is most often its machine's); else a new
// one, and fresh.
func SummaryOf(raw json.RawMessage, known ...InventorySummary) (s InventorySummary, fresh bool) {
	sum := inventorySum(raw)
	for _, k := range known {
		if k.Sum == sum {
			return k, false
		}
	}
	return SummarizeInventory(raw), true
}

// searchText is what a free-text search (MachineFilter.Query) looks in:
// the MAC, host name, address, cluster, profile, segment, the summary's
// vendor, model, serial and CPU model, and the addresses the machine's
// boot sessions registered from; lower case, one field a line.
func searchText(m *Machine, remotes []string) string {
	var b strings.Builder
	for _, f := range []string{m.MAC, m.Hostname, m.IP, m.Cluster, m.Profile, m.Segment,
		m.Summary.Vendor, m.Summary.Model, m.Summary.Serial, m.Summary.CPUModel} {
		if f != "" {
			b.WriteString(clean(f))
			b.WriteByte('\n')
		}
	}
	for _, r := range remotes {
		b.WriteString(clean(r))
		b.WriteByte('\n')
	}
	return strings.ToLower(b.String())
}

// clean replaces control characters, which separate the parts of index
// keys and search rows, with spaces.
func clean(s string) string {
	if strings.IndexFunc(s, isControl) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return ' '
		}
		return r
	}, s)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// queryWords splits a free-text query into lower-case words; a word that
// is a MAC written with dashes, dots or no separators is also looked for in
// the canonical form.
func queryWords(q string) [][][]byte {
	var out [][][]byte
	for _, w := range strings.Fields(strings.ToLower(q)) {
		alts := [][]byte{[]byte(w)}
		if mac := normalizeMAC(w); mac != w {
			alts = append(alts, []byte(mac))
		}
		out = append(out, alts)
	}
	return out
}

// normalizeMAC turns a whole or partial MAC in another notation
// ("52-54-00-AA", "525400aa0001", "5254.00aa.0001") into the canonical
// colon form; other words come back as they are.
func normalizeMAC(w string) string {
	hex := strings.Map(func(r rune) rune {
		if r == '-' || r == ':' || r == '.' {
			return -1
		}
		return r
	}, w)
	if len(hex) < 4 || len(hex) > 12 || len(hex)%2 != 0 {
		return w
	}
	for i := 0; i < len(hex); i++ {
		c := hex[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return w
		}
	}
	var b strings.Builder
	for i := 0; i < len(hex); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(hex[i : i+2])
	}
	return b.String()
}

// matchWords reports whether text holds every word (any of its forms).
func matchWords(text []byte, words [][][]byte) bool {
	for _, alts := range words {
		found := false
		for _, w := range alts {
			if bytes.Contains(text, w) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
