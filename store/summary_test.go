package store

import (
	"encoding/json"
	"math"
	"testing"
)

// TestSummaryDiskBytesSaturates: disk sizes are the agent's word; a sum
// past 2^64 shows as the most there can be, never as a wrapped small one.
func TestSummaryDiskBytesSaturates(t *testing.T) {
	for _, c := range []struct {
		name  string
		sizes []uint64
		want  uint64
	}{
		{"two disks", []uint64{1 << 40, 1 << 30}, 1<<40 + 1<<30},
		{"wraps", []uint64{math.MaxUint64 - 10, 100}, math.MaxUint64},
		{"wraps then more", []uint64{math.MaxUint64, math.MaxUint64, 5}, math.MaxUint64},
	} {
		t.Run(c.name, func(t *testing.T) {
			var disks []map[string]any
			for i, s := range c.sizes {
				disks = append(disks, map[string]any{"name": "sd" + string(rune('a'+i)), "size_bytes": s, "type": "hdd"})
			}
			raw, err := json.Marshal(map[string]any{"disks": disks})
			if err != nil {
				t.Fatal(err)
			}
			if got := SummarizeInventory(raw); got.DiskBytes != c.want || got.Disks != len(c.sizes) {
				t.Errorf("DiskBytes %d of %d disks, want %d of %d", got.DiskBytes, got.Disks, c.want, len(c.sizes))
			}
		})
	}
}
