package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/foundry-appliance/foundry/agentwire"
	"github.com/foundry-appliance/foundry/discovery-os/inventory"
)

// fileDisks makes disk files full of random bytes, named as inv's disks,
// and an opener that maps each device path to its file.
func fileDisks(t *testing.T, inv inventory.Inventory) (func(string) (Disk, error), map[string]string) {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{}
	for _, d := range inv.Disks {
		b := make([]byte, d.SizeBytes)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		// Random bytes are no partition table (1 in 65536 would pass
		// for an MBR, and its spans be wiped too).
		b[510] = 0
		f := filepath.Join(dir, d.Name)
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		files[d.Path] = f
	}
	return func(p string) (Disk, error) {
		f, ok := files[p]
		if !ok {
			return nil, errors.New("no such disk " + p)
		}
		return os.OpenFile(f, os.O_RDWR, 0)
	}, files
}

func TestWipeDisks(t *testing.T) {
	const size = 5 << 20
	inv := inventory.Inventory{Disks: []inventory.Disk{
		{Name: "sda", Path: "/dev/sda", SizeBytes: size},
		{Name: "nvme0n1", Path: "/dev/nvme0n1", SizeBytes: size},
		{Name: "sdb", Path: "/dev/sdb", SizeBytes: size, Removable: true},
		{Name: "sr0", Path: "/dev/sr0", SizeBytes: size, ReadOnly: true},
	}}
	zero := make([]byte, size)
	for _, full := range []bool{false, true} {
		open, files := fileDisks(t, inv)
		before := map[string][]byte{}
		for p, f := range files {
			before[p], _ = os.ReadFile(f)
		}
		n, err := WipeDisks(context.Background(), inv, open, full)
		if err != nil || n != 2 {
			t.Fatalf("full=%v: wiped %d, %v", full, n, err)
		}
		for p, f := range files {
			got, _ := os.ReadFile(f)
			switch {
			case p == "/dev/sdb" || p == "/dev/sr0":
				if !bytes.Equal(got, before[p]) {
					t.Errorf("%s (removable or read-only) was written", p)
				}
			case full:
				if !bytes.Equal(got, zero) {
					t.Errorf("full wipe left data on %s", p)
				}
			default:
				edge := wipeEdge
				if !bytes.Equal(got[:edge], zero[:edge]) || !bytes.Equal(got[size-edge:], zero[:edge]) {
					t.Errorf("quick wipe left the first or last MiB of %s", p)
				}
				if !bytes.Equal(got[edge:size-edge], before[p][edge:size-edge]) {
					t.Errorf("quick wipe wrote the middle of %s", p)
				}
			}
		}
	}
	// A disk that fails is reported; the others are still wiped.
	open, _ := fileDisks(t, inv)
	failing := func(p string) (Disk, error) {
		if p == "/dev/sda" {
			return nil, errors.New("I/O error")
		}
		return open(p)
	}
	n, err := WipeDisks(context.Background(), inv, failing, false)
	if n != 1 || err == nil || !strings.Contains(err.Error(), "/dev/sda") {
		t.Fatalf("with a failing disk: wiped %d, %v", n, err)
	}
}

// A release's wipe decision: the agent wipes, reports success with what it
// did, and carries out the next decision.
func TestWipeDecision(t *testing.T) {
	h := newHarness(t,
		agentwire.Decision{Decision: agentwire.KindWipe, Wipe: &agentwire.DecisionWipe{}},
		agentwire.Decision{Decision: agentwire.KindReject})
	h.agent.Inventory = inventory.Inventory{SchemaVersion: inventory.SchemaVersion,
		Disks: []inventory.Disk{{Name: "sda", Path: "/dev/sda", SizeBytes: 3 << 20}}}
	open, files := fileDisks(t, h.agent.Inventory)
	h.agent.Disks = open
	if err := h.run(t); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(files["/dev/sda"])
	if !bytes.Equal(got[:wipeEdge], make([]byte, wipeEdge)) {
		t.Error("the disk's first MiB was not wiped")
	}
	if len(h.app.results) != 2 || h.app.results[0]["success"] != true ||
		!strings.Contains(h.app.results[0]["message"].(string), "wiped 1 disks") || h.poweroff != 1 {
		t.Fatalf("results %v, powered off %d", h.app.results, h.poweroff)
	}
}

// A release that asks for the drives' own erase: the NVMe disk erases
// itself, a disk without one and a disk whose erase fails are overwritten
// in full, and the report names what was done to each.
func TestSecureEraseDecision(t *testing.T) {
	h := newHarness(t,
		agentwire.Decision{Decision: agentwire.KindWipe, Wipe: &agentwire.DecisionWipe{Secure: true}},
		agentwire.Decision{Decision: agentwire.KindReject})
	h.agent.Inventory = inventory.Inventory{SchemaVersion: inventory.SchemaVersion, Disks: []inventory.Disk{
		{Name: "nvme0n1", Path: "/dev/nvme0n1", SizeBytes: 3 << 20},
		{Name: "nvme1n1", Path: "/dev/nvme1n1", SizeBytes: 3 << 20},
		{Name: "sda", Path: "/dev/sda", SizeBytes: 3 << 20},
		{Name: "sdb", Path: "/dev/sdb", SizeBytes: 3 << 20, Removable: true},
	}}
	open, files := fileDisks(t, h.agent.Inventory)
	h.agent.Disks = open
	var asked []string
	h.agent.SecureErase = func(_ context.Context, d inventory.Disk) error {
		asked = append(asked, d.Name)
		switch d.Name {
		case "nvme0n1":
			return os.WriteFile(files[d.Path], make([]byte, d.SizeBytes), 0o600) // what the drive does
		case "nvme1n1":
			return errors.New("the controller answered status 0x2")
		}
		return fmt.Errorf("%w: not NVMe", ErrNoSecureErase)
	}
	before, _ := os.ReadFile(files["/dev/sdb"])
	if err := h.run(t); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(asked, []string{"nvme0n1", "nvme1n1", "sda"}) {
		t.Errorf("secure erase asked of %v, want the fixed disks", asked)
	}
	for _, p := range []string{"/dev/nvme0n1", "/dev/nvme1n1", "/dev/sda"} {
		if got, _ := os.ReadFile(files[p]); !bytes.Equal(got, make([]byte, 3<<20)) {
			t.Errorf("%s is not erased", p)
		}
	}
	if got, _ := os.ReadFile(files["/dev/sdb"]); !bytes.Equal(got, before) {
		t.Error("the removable disk was written")
	}
	want := "wiped 3 disks (the drive's secure erase: nvme0n1; every byte overwritten: nvme1n1 (secure erase failed: the controller answered status 0x2), sda (no secure erase))"
	if len(h.app.results) != 2 || h.app.results[0]["success"] != true || h.app.results[0]["message"] != want {
		t.Fatalf("results %v, want the first %q", h.app.results, want)
	}
}

// Format NVM's dword 10 keeps the namespace's LBA format, metadata and
// protection settings and asks for a user-data erase (SES 1, bits 11:9).
func TestFormatCDW10(t *testing.T) {
	id := func(nlbaf, flbas, dps byte) []byte {
		b := make([]byte, 4096)
		b[25], b[26], b[29] = nlbaf, flbas, dps
		return b
	}
	for _, tc := range []struct {
		name    string
		id      []byte
		want    uint32
		wantErr bool
	}{
		{"format 0", id(0, 0, 0), 0x200, false},
		{"4K format 1 of 2", id(1, 1, 0), 0x201, false},
		{"metadata at the end, PI type 1 first", id(3, 0x12, 0x09), 0x2 | 1<<4 | 1<<5 | 1<<8 | 0x200, false},
		{"format 17 (upper bits)", id(20, 0x21, 0), 0x1 | 0x200 | 1<<12, false},
		{"format past the namespace's", id(1, 2, 0), 0, true},
		{"short", make([]byte, 10), 0, true},
	} {
		got, err := formatCDW10(tc.id)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("%s: %#x, %v; want %#x (error %v)", tc.name, got, err, tc.want, tc.wantErr)
		}
	}
	if n := unsafe.Sizeof(nvmePassthru{}); n != 72 {
		t.Errorf("nvmePassthru is %d bytes, the kernel's struct nvme_passthru_cmd 72", n)
	}
}
