package store

import (
	"errors"
	"fmt"
	"github.com/foundry-appliance/foundry/store/kv"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// clock is a settable time source for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// openTest opens a database in a fresh temporary directory.
func openTest(t *testing.T) (*DB, *clock, string) {
	t.Helper()
	dir := t.TempDir()
	clk := newClock()
	db, err := openAt(dir, Options{Now: clk.Now})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db, clk, dir
}

var admin = Audit{Actor: "admin", Action: "test"}

func mac(i int) string { return fmt.Sprintf("52:54:00:00:%02x:%02x", i>>8&0xff, i&0xff) }

// mustCreate creates a permanent machine and fails the test on error.
func mustCreate(t *testing.T, db *DB, m Machine) Machine {
	t.Helper()
	out, err := db.CreateMachine(m, admin)
	if err != nil {
		t.Fatalf("CreateMachine(%s): %v", m.MAC, err)
	}
	return out
}

func TestNewDatabaseRecordsSchemaVersion(t *testing.T) {
	db, _, _ := openTest(t)
	v, err := db.SchemaVersion()
	if err != nil || v != SchemaVersion {
		t.Fatalf("SchemaVersion() = %d, %v; want %d", v, err, SchemaVersion)
	}
}

func TestSyncWritesEnabled(t *testing.T) {
	badgerOnly(t)
	db, _, _ := openTest(t)
	if !db.kv.(*kv.Badger).DB().Opts().SyncWrites {
		t.Fatal("Badger opened without SyncWrites: acknowledged writes could be lost")
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	db, err := openAt(dir, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateProfile(Profile{Name: "deb", Kind: ProfileImage}, admin); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateCluster(Cluster{Name: "prod", DefaultProfile: "deb"}, admin); err != nil {
		t.Fatal(err)
	}
	m := mustCreate(t, db, Machine{MAC: mac(1), Hostname: "a", Cluster: "prod"})
	lease := Lease{Segment: "lab", MAC: mac(1), IP: netip.MustParseAddr("10.77.0.100"), Expires: clk.Now().Add(time.Hour)}
	if err := db.PutLease(lease); err != nil {
		t.Fatal(err)
	}
	nonce, err := db.IssueNonce(mac(1), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	hash := make([]byte, 32)
	if err := db.CreateAPIToken(APIToken{ID: "t1", Role: RoleAdmin, Hash: hash}); err != nil {
		t.Fatal(err)
	}
	before, err := db.ListAudit(AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// The clock steps back across the restart: new audit ids must still
	// sort after the old ones.
	clk.Add(-time.Hour)
	db, err = openAt(dir, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, err := db.SchemaVersion(); err != nil || v != SchemaVersion {
		t.Errorf("SchemaVersion after reopen = %d, %v", v, err)
	}
	got, err := db.GetMachine(mac(1))
	if err != nil || got.Hostname != "a" || got.Revision != m.Revision {
		t.Errorf("machine after reopen = %+v, %v", got, err)
	}
	if ls, err := db.ListLeases("lab"); err != nil || len(ls) != 1 || ls[0].IP != lease.IP {
		t.Errorf("leases after reopen = %+v, %v", ls, err)
	}
	if got, err := db.CheckNonce(nonce); err != nil || got != mac(1) {
		t.Errorf("CheckNonce after reopen = %q, %v", got, err)
	}
	if _, err := db.FindAPIToken(hash); err != nil {
		t.Errorf("FindAPIToken after reopen: %v", err)
	}
	if c, err := db.GetCluster("prod"); err != nil || c.DefaultProfile != "deb" {
		t.Errorf("cluster after reopen = %+v, %v", c, err)
	}
	if err := db.AppendAudit("", Audit{Actor: "admin", Action: "after"}); err != nil {
		t.Fatal(err)
	}
	after, err := db.ListAudit(AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before)+1 || after[0].Action != "after" || after[0].ID <= before[0].ID {
		t.Errorf("audit after reopen: newest %+v, before newest %+v (%d→%d entries)", after[0], before[0], len(before), len(after))
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	badgerOnly(t)
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = db.kv.Update(func(txn kv.Txn) error { return setJSON(txn, keySchema, SchemaVersion+1) })
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(dir, Options{})
	if err == nil {
		db.Close()
		t.Fatal("Open accepted a database with a newer schema")
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Errorf("error %q does not say the schema is newer", err)
	}
	// Refusing must release the directory: a fixed build can open it.
	bdb, err := openBadger(dir)
	if err != nil {
		t.Fatalf("directory still locked after refusal: %v", err)
	}
	bdb.Close()
}

func TestOpenErrors(t *testing.T) {
	badgerOnly(t)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, dir := range map[string]string{"empty": "", "file": file, "under a file": filepath.Join(file, "db")} {
		t.Run(name, func(t *testing.T) {
			if db, err := Open(dir, Options{}); err == nil {
				db.Close()
				t.Fatalf("Open(%q) succeeded", dir)
			}
		})
	}
	t.Run("locked", func(t *testing.T) {
		_, _, dir := openTest(t)
		if db, err := Open(dir, Options{}); err == nil {
			db.Close()
			t.Fatal("a second Open of one directory succeeded")
		}
	})
}

func TestInMemory(t *testing.T) {
	badgerOnly(t)
	db, err := Open("", Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mustCreate(t, db, Machine{MAC: mac(1)})
	if _, err := db.GetMachine(mac(1)); err != nil {
		t.Fatal(err)
	}
	db.expireRound() // no value-log GC in memory: must not log or fail
}

func TestClosedDatabase(t *testing.T) {
	db, _, _ := openTest(t)
	ch, cancel := db.Subscribe(1)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-ch; ok {
		t.Error("subscriber channel still open after Close")
	}
	cancel() // must not panic on the closed channel
	if _, err := db.CreateMachine(Machine{MAC: mac(1)}, admin); err == nil {
		t.Error("CreateMachine after Close succeeded")
	}
	if _, err := db.ListMachines(); err == nil {
		t.Error("ListMachines after Close succeeded")
	}
	if ch, _ := db.Subscribe(1); func() bool { _, ok := <-ch; return ok }() {
		t.Error("Subscribe after Close returned an open channel")
	}
}

// TestUpdateRetriesConflicts drives the retry loop directly: unlocked
// read-modify-write transactions on one key conflict constantly, and none
// may be lost.
func TestUpdateRetriesConflicts(t *testing.T) {
	db, _, _ := openTest(t)
	key := []byte("test/counter")
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			errs <- db.update(func(txn kv.Txn) error {
				var v int
				if err := getJSON(txn, key, &v); err != nil && !errors.Is(err, ErrNotFound) {
					return err
				}
				time.Sleep(time.Millisecond) // widen the window for conflicts
				return setJSON(txn, key, v+1)
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var v int
	if err := db.kv.View(func(txn kv.Txn) error { return getJSON(txn, key, &v) }); err != nil || v != n {
		t.Fatalf("counter = %d, %v; want %d", v, err, n)
	}
}

// openBadger opens the Badger database in dir directly, beneath the store,
// for tests that plant what the store itself would never write.
func openBadger(dir string) (kv.Engine, error) {
	b, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		return nil, err
	}
	return kv.NewBadger(b), nil
}
