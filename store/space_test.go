package store

import (
	"errors"
	"github.com/foundry-appliance/foundry/store/kv"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/foundry-appliance/foundry/test/syncbuf"
)

func TestSpaceStep(t *testing.T) {
	badgerOnly(t)
	const r = 100
	tests := []struct {
		full     bool
		free     int64
		wantFull bool
		want     ballastAction
	}{
		{false, 1000, false, keepBallast},
		{false, r, false, keepBallast},
		{false, r - 1, true, releaseBallast},
		{false, 0, true, releaseBallast},
		{true, r, true, keepBallast},
		{true, 2 * r, true, keepBallast}, // the ballast would leave less than r
		{true, resumeAt(r) - 1, true, keepBallast},
		{true, resumeAt(r), false, allocateBallast},
		{true, -1, true, keepBallast}, // unknown free space changes nothing
		{false, -1, false, keepBallast},
	}
	for _, tt := range tests {
		full, act := spaceStep(tt.full, tt.free, r)
		if full != tt.wantFull || act != tt.want {
			t.Errorf("spaceStep(full=%t, free=%d) = %t, %v; want %t, %v", tt.full, tt.free, full, act, tt.wantFull, tt.want)
		}
	}
}

// fakeDisk is a file system for Options.FreeSpace: free is what it would
// have without the store's ballast, whose real size it subtracts, so that
// releasing the ballast frees space as on a real disk.
type fakeDisk struct {
	dir  string
	free atomic.Int64
}

func (d *fakeDisk) FreeSpace(string) (int64, error) {
	n := d.free.Load()
	if fi, err := os.Stat(filepath.Join(d.dir, ballastName)); err == nil {
		n -= fi.Size()
	}
	return max(n, 0), nil
}

const testReserve = 8 << 20

func openFake(t *testing.T, disk *fakeDisk, log *syncbuf.Buffer) (*DB, error) {
	t.Helper()
	return Open(disk.dir, Options{SpaceReserve: testReserve, FreeSpace: disk.FreeSpace,
		Logger: slog.New(slog.NewTextHandler(log, nil))})
}

func ballastSize(dir string) int64 {
	fi, err := os.Stat(filepath.Join(dir, ballastName))
	if err != nil {
		return -1
	}
	return allocatedSize(fi)
}

func TestFullDiskRefusesWritesAndKeepsReads(t *testing.T) {
	badgerOnly(t)
	disk := &fakeDisk{dir: t.TempDir()}
	disk.free.Store(100 << 20)
	var log syncbuf.Buffer
	db, err := openFake(t, disk, &log)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := ballastSize(disk.dir); got != testReserve {
		t.Fatalf("ballast takes %d bytes on disk, want %d allocated", got, testReserve)
	}
	lease := Lease{Segment: "lab", MAC: mac(1), IP: netip.MustParseAddr("10.0.0.1")}
	mustCreate(t, db, Machine{MAC: mac(1)})
	if err := db.PutLease(lease); err != nil {
		t.Fatal(err)
	}

	// 7 MiB free with the ballast: below the reserve.
	disk.free.Store(15 << 20)
	lease2 := Lease{Segment: "lab", MAC: mac(2), IP: netip.MustParseAddr("10.0.0.2")}
	err = db.PutLease(lease2)
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "15 MiB free") || !strings.Contains(err.Error(), "writes resume once 17 MiB are free") {
		t.Fatalf("PutLease on a full disk: %v; want ErrNoSpace saying what is free and when writes resume", err)
	}
	if got := ballastSize(disk.dir); got != -1 {
		t.Errorf("ballast still there (%d bytes) on a full disk", got)
	}
	writes := map[string]func() error{
		"create machine": func() error { _, err := db.CreateMachine(Machine{MAC: mac(3)}, admin); return err },
		"update machine": func() error {
			_, err := db.UpdateMachine(mac(1), admin, func(m *Machine) error { m.Hostname = "h1"; return nil })
			return err
		},
		"create cluster": func() error { _, err := db.CreateCluster(Cluster{Name: "c1"}, admin); return err },
		"issue nonce":    func() error { _, err := db.IssueNonce(mac(1), 60e9); return err },
	}
	for name, w := range writes {
		if err := w(); !errors.Is(err, ErrNoSpace) {
			t.Errorf("%s on a full disk: %v, want ErrNoSpace", name, err)
		}
	}
	// A transaction that writes nothing still runs, and says what it found.
	if err := db.DeleteLease("lab", mac(9)); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteLease of no lease on a full disk: %v, want ErrNotFound", err)
	}
	if _, err := db.ExpireMachines(); err != nil {
		t.Errorf("ExpireMachines with nothing due on a full disk: %v", err)
	}
	if m, err := db.GetMachine(mac(1)); err != nil || m.Hostname != "" {
		t.Errorf("GetMachine on a full disk: %+v, %v", m, err)
	}
	if ls, err := db.ListLeases("lab"); err != nil || len(ls) != 1 || ls[0].IP != lease.IP {
		t.Errorf("ListLeases on a full disk: %v, %v", ls, err)
	}
	if s := db.Space(); !s.Full || s.Free != 15<<20 || s.Reserve != testReserve {
		t.Errorf("Space() = %+v, want full with 15 MiB free", s)
	}
	if err := db.Writable(); !errors.Is(err, ErrNoSpace) {
		t.Errorf("Writable() = %v on a full disk", err)
	}
	if !strings.Contains(log.String(), "data disk full: refusing writes") {
		t.Errorf("no log line says the disk is full:\n%s", log.String())
	}

	// Writes resume only once the ballast fits with the reserve free.
	disk.free.Store(16 << 20)
	if err := db.PutLease(lease2); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("PutLease with 16 MiB free (resume at 17): %v", err)
	}
	disk.free.Store(20 << 20)
	if err := db.PutLease(lease2); err != nil {
		t.Fatalf("PutLease after space was freed: %v", err)
	}
	if got := ballastSize(disk.dir); got != testReserve {
		t.Errorf("ballast after space was freed: %d bytes, want %d", got, testReserve)
	}
	if err := db.Writable(); err != nil {
		t.Errorf("Writable() = %v after space was freed", err)
	}
	if !strings.Contains(log.String(), "data disk has space again") {
		t.Errorf("no log line says writes resumed:\n%s", log.String())
	}
}

func TestOpenOnFullDisk(t *testing.T) {
	badgerOnly(t)
	disk := &fakeDisk{dir: t.TempDir()}
	disk.free.Store(100 << 20)
	var log syncbuf.Buffer
	db, err := openFake(t, disk, &log)
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, db, Machine{MAC: mac(1)})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// The disk filled while the appliance was down: Open drops the
	// ballast, and starts with reads only.
	disk.free.Store(testReserve + 2<<20) // 2 MiB free with the ballast
	db, err = openFake(t, disk, &log)
	if err != nil {
		t.Fatalf("Open on a full disk: %v", err)
	}
	if _, err := db.GetMachine(mac(1)); err != nil {
		t.Errorf("GetMachine after Open on a full disk: %v", err)
	}
	if _, err := db.CreateMachine(Machine{MAC: mac(2)}, admin); !errors.Is(err, ErrNoSpace) {
		t.Errorf("CreateMachine after Open on a full disk: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("Close with 10 MiB free: %v", err)
	}

	// Without the room Open itself writes, Open says so instead of
	// letting Badger fault.
	disk.free.Store(1 << 20)
	if db, err := openFake(t, disk, &log); !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "free space there") {
		if err == nil {
			db.Close()
		}
		t.Fatalf("Open with 1 MiB free: %v, want ErrNoSpace", err)
	}

	disk.free.Store(100 << 20)
	db, err = openFake(t, disk, &log)
	if err != nil {
		t.Fatalf("Open after space was freed: %v", err)
	}
	defer db.Close()
	if _, err := db.CreateMachine(Machine{MAC: mac(2)}, admin); err != nil {
		t.Errorf("CreateMachine after space was freed: %v", err)
	}
}

func TestCloseOnFullDiskLeavesTheLogToReplay(t *testing.T) {
	badgerOnly(t)
	disk := &fakeDisk{dir: t.TempDir()}
	disk.free.Store(100 << 20)
	var log syncbuf.Buffer
	db, err := openFake(t, disk, &log)
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, db, Machine{MAC: mac(1)})
	disk.free.Store(1 << 20) // less than the ballast gives back
	if err := db.Close(); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Close with 1 MiB free: %v, want ErrNoSpace (Badger's flush would fault)", err)
	}
	if db.kv.(*kv.Badger).DB().IsClosed() {
		t.Fatal("Badger was closed, flushing its memtable on a full disk")
	}
	// The process would exit here; close Badger for the reopen.
	disk.free.Store(100 << 20)
	if err := db.kv.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = openFake(t, disk, &log)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.GetMachine(mac(1)); err != nil {
		t.Errorf("machine written before the full close: %v", err)
	}
}

func TestNoGuard(t *testing.T) {
	badgerOnly(t)
	for name, opt := range map[string]Options{"in memory": {InMemory: true}, "negative reserve": {SpaceReserve: -1}} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			opt.FreeSpace = func(string) (int64, error) { return 0, nil }
			db, err := Open(dir, opt)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.CreateMachine(Machine{MAC: mac(1)}, admin); err != nil {
				t.Errorf("write without a guard: %v", err)
			}
			if s := db.Space(); s.Reserve != 0 || s.Full {
				t.Errorf("Space() = %+v without a guard", s)
			}
			if ballastSize(dir) != -1 {
				t.Error("a ballast without a guard")
			}
		})
	}
	// Turning the reserve off removes the ballast the guard kept before.
	dir := t.TempDir()
	db, err := Open(dir, Options{SpaceReserve: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if ballastSize(dir) != 1<<20 {
		t.Fatalf("no 1 MiB ballast with a reserve: %d", ballastSize(dir))
	}
	db, err = Open(dir, Options{SpaceReserve: -1})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if ballastSize(dir) != -1 {
		t.Error("the ballast stayed after the reserve was turned off")
	}
}
