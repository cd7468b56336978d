package kmod

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/discovery-os/kmod/kmodtest"
)

func TestParseUevent(t *testing.T) {
	tests := []struct {
		name, in string
		want     Uevent
		ok       bool
	}{
		{"pci add", "add@/devices/pci0000:00/0000:00:03.0\x00ACTION=add\x00DEVPATH=/devices/pci0000:00/0000:00:03.0\x00SUBSYSTEM=pci\x00" +
			"MODALIAS=pci:v000010ECd00008139sv00001AF4sd00001100bc02sc00i00\x00SEQNUM=812\x00",
			Uevent{"add", "/devices/pci0000:00/0000:00:03.0", "pci", "pci:v000010ECd00008139sv00001AF4sd00001100bc02sc00i00"}, true},
		{"scsi device, trailing NUL missing", "add@/devices/x/host0/target0:0:0/0:0:0:0\x00ACTION=add\x00SUBSYSTEM=scsi\x00MODALIAS=scsi:t-0x00",
			Uevent{"add", "/devices/x/host0/target0:0:0/0:0:0:0", "scsi", "scsi:t-0x00"}, true},
		{"no modalias", "bind@/devices/y\x00ACTION=bind\x00SUBSYSTEM=pci\x00", Uevent{"bind", "/devices/y", "pci", ""}, true},
		{"udev's own", "libudev\x00\xfe\xed\xca\xfe", Uevent{}, false},
		{"empty", "", Uevent{}, false},
		{"relative path", "add@devices\x00", Uevent{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseUevent([]byte(tt.in))
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v (ok %v)", got, err, tt.want, tt.ok)
			}
		})
	}
}

func FuzzParseUevent(f *testing.F) {
	f.Add([]byte("add@/devices/pci0000:00/0000:00:03.0\x00ACTION=add\x00SUBSYSTEM=pci\x00MODALIAS=pci:v1\x00"))
	f.Add([]byte("libudev\x00"))
	f.Add([]byte("@\x00=\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := ParseUevent(b)
		if err != nil {
			return
		}
		if ev.Action == "" && !strings.Contains(string(b), "ACTION=") {
			t.Fatalf("accepted %q without an action", b)
		}
	})
}

// TestMatchHeads checks that Match, which skips patterns whose literal head
// the modalias lacks, finds what globbing every pattern finds.
func TestMatchHeads(t *testing.T) {
	var aliases []Alias
	for _, m := range append(slices.Clone(kmodtest.Debian), softTree...) {
		for _, a := range m.Aliases {
			aliases = append(aliases, Alias{Pattern: a, Module: NameOf(m.Path)})
		}
	}
	aliases = append(aliases, Alias{Pattern: "[ab]x*", Module: "set"}, Alias{Pattern: "exact", Module: "exact"})
	ix := &Index{Aliases: aliases}
	for _, ma := range []string{
		"pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00", "pci:v0000144Dd0000A808sv0000144Dsd0000A801bc01sc08i02",
		"virtio:d00000001v00001AF4", "scsi:t-0x00", "crc32c", "bx1", "exact", "exac", "", "pci:v00001002d00001234sv0sd0bc03sc00i00",
	} {
		var naive []string
		for _, a := range aliases {
			if Glob(a.Pattern, ma) && !slices.Contains(naive, a.Module) {
				naive = append(naive, a.Module)
			}
		}
		if got := ix.Match(ma); !slices.Equal(got, naive) {
			t.Errorf("Match(%q) = %v, globbing every pattern gives %v", ma, got, naive)
		}
	}
}

// fakeMachine is a module tree with its index, a sysfs with a NIC, and a
// loader that records what it inserts; an insert can make devices appear.
type fakeMachine struct {
	dir, sys string
	mu       sync.Mutex
	inserted []string
	onInsert func(name string)
}

func newFakeMachine(t *testing.T) (*fakeMachine, *Loader) {
	t.Helper()
	fm := &fakeMachine{dir: kmodtest.Tree(t, t.TempDir(), kmodtest.Debian), sys: t.TempDir()}
	tree, err := OpenTree(fm.dir)
	if err != nil {
		t.Fatal(err)
	}
	mods, _, err := tree.Closure(tree.Names())
	if err != nil {
		t.Fatal(err)
	}
	writeIndex(t, fm.dir, mods)
	ix, err := ReadIndex(fm.dir)
	if err != nil {
		t.Fatal(err)
	}
	fm.device("pci", "0000:00:03.0", "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00", true)
	return fm, &Loader{Dir: fm.dir, Index: ix, Insert: func(p string) error {
		n := NameOf(p)
		fm.mu.Lock()
		fm.inserted = append(fm.inserted, n)
		on := fm.onInsert
		fm.mu.Unlock()
		if on != nil {
			on(n)
		}
		return nil
	}}
}

// device adds a device to the fake sysfs, with a modalias file or (like an
// MMC card) only a uevent file.
func (fm *fakeMachine) device(bus, name, modalias string, file bool) {
	d := filepath.Join(fm.sys, "bus", bus, "devices", name)
	os.MkdirAll(d, 0o755)
	if file {
		os.WriteFile(filepath.Join(d, "modalias"), []byte(modalias+"\n"), 0o644)
	}
	os.WriteFile(filepath.Join(d, "uevent"), []byte("DRIVER=x\nMODALIAS="+modalias+"\n"), 0o644)
}

func (fm *fakeMachine) got() []string {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	return slices.Clone(fm.inserted)
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWatch: the devices present are handled first, then each device the
// kernel announces; a lost-events notice rescans sysfs.
func TestWatch(t *testing.T) {
	fm, l := newFakeMachine(t)
	events := make(chan Event)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Watch(ctx, fm.sys, events) }()

	waitFor(t, "the NIC's driver", func() bool { return slices.Contains(fm.got(), "e1000") })
	// A SCSI disk found by an asynchronous scan, announced after the scan
	// of sysfs: sd_mod comes with it; a remove is ignored.
	events <- Event{Uevent: Uevent{Action: "remove", DevPath: "/devices/z", Modalias: "virtio:d00000001v00001AF4"}}
	events <- Event{Uevent: Uevent{Action: "add", DevPath: "/devices/x/0:0:0:0", Subsystem: "scsi", Modalias: "scsi:t-0x00"}}
	waitFor(t, "sd_mod", func() bool { return slices.Contains(fm.got(), "sd_mod") })
	if slices.Contains(fm.got(), "virtio_net") {
		t.Fatalf("a remove event loaded a driver: %v", fm.got())
	}
	// Events were lost while an NVMe controller appeared (a device only
	// in sysfs, seen through its uevent file): the rescan finds it.
	fm.device("pci", "0000:00:05.0", "pci:v0000144Dd0000A808sv0000144Dsd0000A801bc01sc08i02", false)
	events <- Event{Err: ErrOverflow}
	waitFor(t, "nvme after the rescan", func() bool { return slices.Contains(fm.got(), "nvme") })

	want := []string{"e1000", "scsi_common", "scsi_mod", "sd_mod", "nvme_core", "nvme"}
	if got := fm.got(); !slices.Equal(got, want) {
		t.Errorf("inserted %v, want %v", got, want)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Watch returned %v after cancel", err)
	}
}

func TestSettle(t *testing.T) {
	fm, l := newFakeMachine(t)
	ctx := context.Background()

	// Nothing happening: settled after the quiet period.
	start := time.Now()
	if err := l.Settle(ctx, 40*time.Millisecond, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 40*time.Millisecond || d > 2*time.Second {
		t.Errorf("idle settle took %v", d)
	}

	// The last activity long enough ago: settled at once.
	l.touch()
	time.Sleep(50 * time.Millisecond)
	start = time.Now()
	l.Settle(ctx, 40*time.Millisecond, 5*time.Second)
	if d := time.Since(start); d > 30*time.Millisecond {
		t.Errorf("settle after %v of quiet took %v more", 50*time.Millisecond, d)
	}

	// Devices keep appearing: Settle gives up at its limit.
	stop := make(chan struct{})
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
				l.touch()
			}
		}
	}()
	start = time.Now()
	l.Settle(ctx, 100*time.Millisecond, 300*time.Millisecond)
	close(stop)
	if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
		t.Errorf("busy settle took %v, want its 300ms limit", d)
	}
	_ = fm
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	l.touch()
	if err := l.Settle(cctx, time.Hour, time.Hour); err != context.Canceled {
		t.Errorf("Settle after cancel: %v", err)
	}
}
