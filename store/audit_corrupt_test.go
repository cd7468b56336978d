package store

import (
	"github.com/foundry-appliance/foundry/store/kv"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/test/syncbuf"
)

// damagedAuditLog writes six entries (details 0-5, the odd ones about
// mac(1)) to a database on disk and then damages it as a bad disk or
// another build could, between good entries: entry 2 is not JSON, entry 3
// (indexed under am/) is JSON of another shape, a key past every id is
// not an id, an index key is not one either, and another index key names
// an entry that does not exist. It returns the ids and the keys that
// must be reported.
func damagedAuditLog(t *testing.T, dir string, clk *clock) (ids, bad []string) {
	t.Helper()
	db, err := openAt(dir, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		clk.Add(time.Second)
		m := ""
		if i%2 == 1 {
			m = mac(1)
		}
		if err := db.AppendAudit(m, Audit{Actor: "admin", Action: "note", Detail: string(rune('0' + i))}); err != nil {
			t.Fatal(err)
		}
	}
	es, err := db.AuditAfter("", 0)
	if err != nil || len(es) != 6 {
		t.Fatalf("audit log: %d entries, %v", len(es), err)
	}
	for _, e := range es {
		ids = append(ids, e.ID)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	n4, _, _ := parseID(ids[4])
	missing := formatID(n4, 7) // between entries 4 and 5, never written
	bad = []string{"a/" + ids[2], "a/" + ids[3], "a/zzzz", auditMACPrefix(mac(1)) + "not-an-id"}
	bdb, err := openBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(txn kv.Txn) error {
		for k, v := range map[string][]byte{
			bad[0]:                               garbage[1],
			bad[1]:                               []byte(`{"actor": "admin", "action": "note", "detail": "3"}`),
			bad[2]:                               garbage[0],
			bad[3]:                               nil,
			string(auditMACKey(mac(1), missing)): nil,
		} {
			if err := txn.Set([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = bdb.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	return ids, bad
}

// Damaged audit entries and index keys are skipped and reported: they
// stop neither Open, nor the audit list (newest first, paged, by MAC),
// nor an exporter reading the log oldest first, nor retention.
func TestDamagedAuditEntriesAreSkipped(t *testing.T) {
	badgerOnly(t)
	dir, clk := t.TempDir(), newClock()
	ids, bad := damagedAuditLog(t, dir, clk)
	var log syncbuf.Buffer
	db, err := Open(dir, Options{Now: clk.Now, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatalf("Open with a damaged audit log: %v", err)
	}
	defer db.Close()

	list := func(f AuditFilter) string {
		t.Helper()
		es, err := db.ListAudit(f)
		if err != nil {
			t.Errorf("ListAudit(%+v): %v", f, err)
		}
		return details(es)
	}
	after := func(id string, limit int) string {
		t.Helper()
		es, err := db.AuditAfter(id, limit)
		if err != nil {
			t.Errorf("AuditAfter(%q, %d): %v", id, limit, err)
		}
		return details(es)
	}
	for range 2 { // a second round reports nothing new
		for _, c := range []struct{ name, got, want string }{
			{"list", list(AuditFilter{}), "5,4,1,0"},
			{"list by MAC", list(AuditFilter{MAC: mac(1)}), "5,1"},
			{"first page", list(AuditFilter{Limit: 2}), "5,4"},
			{"next page", list(AuditFilter{After: ids[4], Limit: 2}), "1,0"},
			{"by MAC since", list(AuditFilter{MAC: mac(1), Since: clk.Now().Add(-3 * time.Second)}), "5"},
			// The exporter's reads: damaged entries do not count against
			// the page, so a short page still means the end of the log.
			{"after none", after("", 0), "0,1,4,5"},
			{"after 0, two", after(ids[0], 2), "1,4"},
			{"after 1", after(ids[1], 0), "4,5"},
		} {
			if c.got != c.want {
				t.Errorf("%s: %q, want %q", c.name, c.got, c.want)
			}
		}
	}

	// The id sequence goes on after the newest good entry: the damaged
	// key past every id did not stop Open or reset it.
	clk.Add(time.Second)
	if err := db.AppendAudit(mac(1), Audit{Actor: "admin", Action: "note", Detail: "6"}); err != nil {
		t.Fatal(err)
	}
	if got := list(AuditFilter{Limit: 3}); got != "6,5,4" {
		t.Errorf("list after a new entry: %q", got)
	}
	if got := after(ids[5], 0); got != "6" {
		t.Errorf("after the last good entry: %q, want the new one", got)
	}

	for _, k := range bad {
		if n := strings.Count(log.String(), "key="+k+" "); n != 1 {
			t.Errorf("key %s logged %d times, want once:\n%s", k, n, log.String())
		}
	}
	if n, keys := db.CorruptRecords(); n != len(bad) {
		t.Errorf("CorruptRecords() = %d %v, want the %d damaged keys (an index key of a pruned entry is not damage)", n, keys, len(bad))
	}

	// Retention prunes past the damaged entries, not stopping at them.
	p, err := db.PruneAudit(AuditRetention{MaxEntries: 3, MaxAge: -1})
	if err != nil || p.ByCount != 5 {
		t.Errorf("PruneAudit over damaged entries: %+v, %v; want 5 pruned (0-4, the damaged ones too)", p, err)
	}
	if got := list(AuditFilter{}); got != "6,5" {
		t.Errorf("list after pruning: %q", got)
	}
}
