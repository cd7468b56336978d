package store

import (
	"context"
	"fmt"
	"github.com/foundry-appliance/foundry/store/kv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// appendN appends n entries one minute apart, every other one for mac(1),
// and returns their ids, oldest first.
func appendN(t *testing.T, db *DB, clk *clock, n int) []string {
	t.Helper()
	for i := range n {
		clk.Add(time.Minute)
		m := ""
		if i%2 == 1 {
			m = mac(1)
		}
		if err := db.AppendAudit(m, Audit{Actor: "test", Action: "note", Detail: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	es, err := db.AuditAfter("", 1000)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(es))
	for i, e := range es {
		ids[i] = e.ID
	}
	return ids
}

// keyCount counts the keys under prefix.
func keyCount(t *testing.T, db *DB, prefix string) int {
	t.Helper()
	n := 0
	err := db.kv.View(func(txn kv.Txn) error {
		it := txn.NewIterator(kv.IterOptions{Prefix: []byte(prefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPruneAudit(t *testing.T) {
	tests := []struct {
		name    string
		r       AuditRetention
		cursor  int // index of the entry a cursor stands at; -1: none, -2: set to ""
		age     time.Duration
		want    Pruned
		oldest  int // index of the oldest entry left
		entries int
	}{
		{"by count, no exporter", AuditRetention{MaxEntries: 20}, -1, 0, Pruned{ByCount: 30}, 30, 20},
		{"by age", AuditRetention{MaxAge: 10*time.Minute - time.Second}, -1, 0, Pruned{ByAge: 40}, 40, 10},
		{"by age, after time passed", AuditRetention{MaxAge: time.Hour - time.Second}, -1, 30 * time.Minute, Pruned{ByAge: 20}, 20, 30},
		{"count and age together", AuditRetention{MaxEntries: 45, MaxAge: 10*time.Minute - time.Second}, -1, 0, Pruned{ByCount: 5, ByAge: 35}, 40, 10},
		// Undelivered entries stay: the cursor at entry 10 keeps entries
		// from a minute before it (the margin), 9 onwards.
		{"by count, exporter behind", AuditRetention{MaxEntries: 20, HardMaxEntries: -1}, 10, 0, Pruned{ByCount: 9}, 9, 41},
		{"by count, exporter caught up", AuditRetention{MaxEntries: 20}, 49, 0, Pruned{ByCount: 30}, 30, 20},
		{"exporter that delivered nothing", AuditRetention{MaxEntries: 20, HardMaxEntries: -1}, -2, 0, Pruned{}, 0, 50},
		{"named exporter never set", AuditRetention{MaxEntries: 30, Exporters: []string{"gitops"}}, -1, 0, Pruned{}, 0, 50},
		// Past the hard limit (by default twice MaxEntries), undelivered
		// entries go too, oldest first, down to the hard limit.
		{"default hard limit", AuditRetention{MaxEntries: 20}, -2, 0, Pruned{ByCount: 10, Undelivered: 10}, 10, 40},
		{"hard limit", AuditRetention{MaxEntries: 20, HardMaxEntries: 30}, -2, 0, Pruned{ByCount: 20, Undelivered: 20}, 20, 30},
		{"no bounds", AuditRetention{MaxEntries: -1, MaxAge: -1}, -1, 0, Pruned{}, 0, 50},
		{"defaults keep a small log", AuditRetention{}, -1, 0, Pruned{}, 0, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, clk, _ := openTest(t)
			ids := appendN(t, db, clk, 50)
			switch {
			case tt.cursor >= 0:
				if err := db.SetCursor("gitops", ids[tt.cursor]); err != nil {
					t.Fatal(err)
				}
			case tt.cursor == -2:
				if err := db.SetCursor("gitops", ""); err != nil {
					t.Fatal(err)
				}
			}
			clk.Add(tt.age)
			got, err := db.PruneAudit(tt.r)
			if err != nil {
				t.Fatal(err)
			}
			if got.ByCount != tt.want.ByCount || got.ByAge != tt.want.ByAge || got.Undelivered != tt.want.Undelivered || got.Entries != tt.entries {
				t.Errorf("pruned %+v, want %+v and %d entries", got, tt.want, tt.entries)
			}
			left, err := db.AuditAfter("", 1000)
			if err != nil {
				t.Fatal(err)
			}
			if len(left) != tt.entries || left[0].ID != ids[tt.oldest] || left[len(left)-1].ID != ids[49] {
				t.Fatalf("%d entries left from %s, want %d from entry %d to the newest", len(left), left[0].Detail, tt.entries, tt.oldest)
			}
			// The per-MAC index keeps exactly the surviving entries of mac(1).
			byMAC, err := db.ListAudit(AuditFilter{MAC: mac(1), Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			for i := tt.oldest; i < 50; i++ {
				if i%2 == 1 {
					want++
				}
			}
			if len(byMAC) != want || keyCount(t, db, "am/") != want {
				t.Errorf("mac(1): %d entries listed, %d index keys; want %d", len(byMAC), keyCount(t, db, "am/"), want)
			}
		})
	}
}

// After pruning, a reopened database goes on with ids after the newest
// entry, and a second pass prunes nothing more.
func TestPruneAuditReopen(t *testing.T) {
	db, clk, dir := openTest(t)
	ids := appendN(t, db, clk, 30)
	if _, err := db.PruneAudit(AuditRetention{MaxEntries: 5}); err != nil {
		t.Fatal(err)
	}
	if p, err := db.PruneAudit(AuditRetention{MaxEntries: 5}); err != nil || p.Total() != 0 || p.Entries != 5 {
		t.Fatalf("second pass: %+v, %v", p, err)
	}
	must(t, db.Close())
	db, err := openAt(dir, Options{Now: clk.Now})
	must(t, err)
	defer db.Close()
	clk.t = clk.t.Add(-time.Hour) // the clock stepped back: ids still grow
	must(t, db.AppendAudit("", Audit{Actor: "test", Action: "note"}))
	es, err := db.ListAudit(AuditFilter{Limit: 1})
	must(t, err)
	if len(es) != 1 || es[0].ID <= ids[29] {
		t.Errorf("new entry %v is not after the newest before pruning (%s)", es, ids[29])
	}
}

// RunRetention prunes at once, counts what it pruned and how many are left.
func TestRunRetentionMetrics(t *testing.T) {
	db, clk, _ := openTest(t)
	appendN(t, db, clk, 40)
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- db.RunRetention(ctx, AuditRetention{MaxEntries: 10}, time.Hour, reg) }()
	deadline := time.Now().Add(5 * time.Second)
	for keyCount(t, db, "a/") != 10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	must(t, <-done)
	m, err := newRetentionMetrics(reg) // the registered ones
	must(t, err)
	if got := testutil.ToFloat64(m.pruned.WithLabelValues("count")); got != 30 {
		t.Errorf("foundry_audit_pruned_total{reason=count} = %v, want 30", got)
	}
	if got := testutil.ToFloat64(m.entries); got != 10 {
		t.Errorf("foundry_audit_entries = %v, want 10", got)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
