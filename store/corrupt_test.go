package store

import (
	"crypto/sha256"
	"errors"
	"github.com/foundry-appliance/foundry/store/kv"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/test/syncbuf"
)

// garbage are values a damaged disk or another build could leave: not
// JSON, JSON of another shape, nothing at all.
var garbage = [][]byte{
	[]byte("{\"mac\": \"52:54:00:00:00:01\", \"state\": "),
	{0xff, 0x00, 0x13, 0x37},
	[]byte(`"a string where a record was"`),
	[]byte(`{"ip": 17}`),
	{},
	[]byte(`[1, 2, 3]`),
	[]byte(`{"created_at": "yesterday"}`),
	[]byte(`{"name": {"nested": true}}`),
}

// corruptFixture writes one good and one damaged record of every kind into
// a database on disk, closed again. It returns the damaged keys.
func corruptFixture(t *testing.T, dir string, clk *clock) []string {
	t.Helper()
	db, err := openAt(dir, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	now := clk.Now()
	mustCreate(t, db, Machine{MAC: mac(1), Temporary: true, ExpiresAt: now.Add(-time.Minute)}) // due
	mustCreate(t, db, Machine{MAC: mac(2)})
	mustCreate(t, db, Machine{MAC: mac(3)})
	if err := db.PutLease(Lease{Segment: "lab", MAC: mac(2), IP: netip.MustParseAddr("10.0.0.2")}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutLease(Lease{Segment: "lab", MAC: mac(3), IP: netip.MustParseAddr("10.0.0.3")}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"p1", "p2"} {
		if _, err := db.CreateProfile(Profile{Name: p, Kind: ProfileNetboot}, admin); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []string{"c1", "c2"} {
		if _, err := db.CreateCluster(Cluster{Name: c}, admin); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []string{"i1", "i2"} {
		if _, err := db.CreateImage(Image{Name: i, Source: ImageUpload, State: ImageImporting}, admin); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"t1", "t2"} {
		h := sha256.Sum256([]byte(id))
		if err := db.CreateAPIToken(APIToken{ID: id, Name: id, Role: "admin", Hash: h[:]}); err != nil {
			t.Fatal(err)
		}
	}
	audit, err := db.ListAudit(AuditFilter{})
	if err != nil || len(audit) < 2 {
		t.Fatalf("audit log: %d entries, %v", len(audit), err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// A session has no writer short of a registration: both are written
	// raw, as a good record and a damaged one.
	good := Session{ID: "sess-good", MAC: mac(2), OpenedAt: now, LastSeen: now, ExpiresAt: now.Add(time.Hour)}
	bad := []string{
		"m/" + mac(3), "l/lab/" + mac(3), "s/sess-bad", "a/" + audit[0].ID,
		"c/c2", "p/p2", "i/i2", "t/t2",
		"m/" + mac(4), // a record with no index entries at all
	}
	bdb, err := openBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(txn kv.Txn) error {
		if err := setJSON(txn, sessionKey(good.ID), good); err != nil {
			return err
		}
		for i, k := range bad {
			if err := txn.Set([]byte(k), garbage[i%len(garbage)]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Close(); err != nil {
		t.Fatal(err)
	}
	return bad
}

func TestCorruptRecordsAreSkippedAndReported(t *testing.T) {
	badgerOnly(t)
	dir, clk := t.TempDir(), newClock()
	bad := corruptFixture(t, dir, clk)
	var log syncbuf.Buffer
	db, err := Open(dir, Options{Now: clk.Now, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatalf("Open with damaged records: %v", err)
	}
	defer db.Close()

	lists := []struct {
		name string
		list func() ([]string, error)
		want string
	}{
		{"machines", func() ([]string, error) { return ids(db.ListMachines()) }, mac(1) + " " + mac(2)},
		{"leases", func() ([]string, error) { return ids(db.ListLeases("")) }, mac(2)},
		{"sessions", func() ([]string, error) { return ids(db.ListSessions()) }, "sess-good"},
		{"clusters", func() ([]string, error) { return ids(db.ListClusters()) }, "c1"},
		{"profiles", func() ([]string, error) { return ids(db.ListProfiles()) }, "p1"},
		{"images", func() ([]string, error) { return ids(db.ListImages()) }, "i1"},
		{"tokens", func() ([]string, error) { return ids(db.ListAPITokens()) }, "t1"},
	}
	for range 2 { // a second round logs nothing new
		for _, l := range lists {
			got, err := l.list()
			if err != nil || strings.Join(got, " ") != l.want {
				t.Errorf("list %s: %v, %v; want the good records %s", l.name, got, err, l.want)
			}
		}
	}
	// The expiry round reads every machine: the due one goes, the damaged
	// ones stay.
	gone, err := db.ExpireMachines()
	if err != nil || len(gone) != 1 || gone[0].MAC != mac(1) {
		t.Errorf("ExpireMachines with damaged records: %v, %v; want %s expired", gone, err, mac(1))
	}
	if _, err := db.GetMachine(mac(3)); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "m/"+mac(3)) {
		t.Errorf("GetMachine of a damaged record: %v; want ErrCorrupt naming the key", err)
	}
	// Writes go on, the audit log after its damaged entry too.
	mustCreate(t, db, Machine{MAC: mac(5)})
	if err := db.AppendAudit("", Audit{Actor: "admin", Action: "after"}); err != nil {
		t.Errorf("AppendAudit after a damaged entry: %v", err)
	}

	listed := 0
	for _, k := range bad {
		if strings.HasPrefix(k, "a/") {
			continue // read by the audit log's own reader (audit.go, cursor.go)
		}
		listed++
		if n := strings.Count(log.String(), "key="+k+" "); n != 1 {
			t.Errorf("key %s logged %d times, want once:\n%s", k, n, log.String())
		}
	}
	n, keys := db.CorruptRecords()
	if n != listed || len(keys) != min(listed, 10) {
		t.Errorf("CorruptRecords() = %d, %v; want %d", n, keys, listed)
	}
}

// ids maps records to what identifies them.
func ids[T any](xs []T, err error) ([]string, error) {
	var out []string
	for _, x := range xs {
		switch v := any(x).(type) {
		case Machine:
			out = append(out, v.MAC)
		case Lease:
			out = append(out, v.MAC)
		case Session:
			out = append(out, v.ID)
		case Cluster:
			out = append(out, v.Name)
		case Profile:
			out = append(out, v.Name)
		case Image:
			out = append(out, v.Name)
		case APIToken:
			out = append(out, v.ID)
		}
	}
	return out, err
}

func TestCorruptRecordsBounded(t *testing.T) {
	badgerOnly(t)
	db := &DB{}
	for i := range maxCorruptKeys + 5 {
		db.corrupt.report([]byte("m/"+mac(i)), ErrCorrupt)
		db.corrupt.report([]byte("m/"+mac(i)), ErrCorrupt) // known: not counted again
	}
	if n, keys := db.CorruptRecords(); n != maxCorruptKeys+10 || len(keys) != 10 {
		t.Errorf("CorruptRecords() = %d, %d keys; want %d (past the bound every report counts)", n, len(keys), maxCorruptKeys+10)
	}
}

// A database of schema 1 is migrated at Open (unique.go, and whatever
// later schemas do); a damaged machine record must not stop that.
func TestOpenMigratesPastCorruptRecords(t *testing.T) {
	badgerOnly(t)
	dir, clk := t.TempDir(), newClock()
	bad := corruptFixture(t, dir, clk)
	bdb, err := openBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(txn kv.Txn) error { return setJSON(txn, keySchema, 1) })
	if err == nil {
		err = bdb.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	var log syncbuf.Buffer
	db, err := Open(dir, Options{Now: clk.Now, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatalf("Open of schema 1 with damaged records: %v", err)
	}
	defer db.Close()
	if v, err := db.SchemaVersion(); err != nil || v != SchemaVersion {
		t.Errorf("schema after migration: %d, %v", v, err)
	}
	if got, err := ids(db.ListMachines()); err != nil || strings.Join(got, " ") != mac(1)+" "+mac(2) {
		t.Errorf("machines after migration: %v, %v", got, err)
	}
	if !strings.Contains(log.String(), "key="+bad[0]+" ") {
		t.Errorf("the damaged record %s was not reported:\n%s", bad[0], log.String())
	}
}
