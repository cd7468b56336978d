package drivers

import (
	"slices"
	"strings"
	"testing"

	"github.com/foundry-appliance/foundry/discovery-os/kmod"
	"github.com/foundry-appliance/foundry/discovery-os/kmod/kmodtest"
)

// fakeModules is kmodtest.Debian plus the remaining required drivers and a
// few optional ones.
func fakeModules() []kmodtest.Module {
	return append(slices.Clone(kmodtest.Debian),
		kmodtest.Module{Path: "kernel/drivers/scsi/virtio_scsi.ko", Depends: []string{"scsi_mod"}},
		kmodtest.Module{Path: "kernel/drivers/ata/ahci.ko", Depends: []string{"libahci", "libata"}},
		kmodtest.Module{Path: "kernel/drivers/ata/libahci.ko", Depends: []string{"libata"}},
		kmodtest.Module{Path: "kernel/drivers/net/ethernet/intel/igb/igb.ko", Depends: []string{"dca", "i2c_algo_bit"}},
		kmodtest.Module{Path: "kernel/drivers/dca/dca.ko"},
		kmodtest.Module{Path: "kernel/drivers/i2c/algos/i2c-algo-bit.ko"},
		kmodtest.Module{Path: "kernel/drivers/char/hw_random/virtio-rng.ko"},
	)
}

func TestSelect(t *testing.T) {
	tests := []struct {
		name    string
		mods    []kmodtest.Module
		want    []string
		wantErr string
	}{
		// optional drivers come after the required ones in list order;
		// the dashed file name virtio-rng.ko counts as virtio_rng.
		{"full tree", fakeModules(), append(slices.Clone(required), "igb", "virtio_rng"), ""},
		{"virtio_scsi built in", kmodtest.Debian, nil, "virtio_scsi ahci"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree, err := kmod.OpenTree(kmodtest.Tree(t, t.TempDir(), tt.mods))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Select(tree)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to name %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// TestListsDisjoint guards the lists against a name added to both, which
// would select a driver twice.
func TestListsDisjoint(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range append(slices.Clone(required), optional...) {
		if seen[n] {
			t.Errorf("%s listed twice", n)
		}
		if n != kmod.Normalize(n) {
			t.Errorf("%s: module names use underscores", n)
		}
		seen[n] = true
	}
}
