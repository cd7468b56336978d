package store

import (
	"errors"
	"fmt"
	"github.com/foundry-appliance/foundry/store/kv"
	"strings"
	"testing"
	"time"
)

// auditFixture appends ten entries one second apart and returns their times.
func auditFixture(t *testing.T) (*DB, []time.Time) {
	t.Helper()
	db, clk, _ := openTest(t)
	var times []time.Time
	for i := range 10 {
		clk.Add(time.Second)
		m := ""
		if i%2 == 1 {
			m = mac(1)
		}
		a := Audit{Actor: fmt.Sprintf("actor%d", i%3), Action: fmt.Sprintf("act%d", i%2), Detail: fmt.Sprint(i)}
		if err := db.AppendAudit(m, a); err != nil {
			t.Fatal(err)
		}
		times = append(times, clk.Now())
	}
	return db, times
}

func details(es []AuditEntry) string {
	var s []string
	for _, e := range es {
		s = append(s, e.Detail)
	}
	return strings.Join(s, ",")
}

func TestListAuditFilters(t *testing.T) {
	db, times := auditFixture(t)
	tests := []struct {
		name string
		f    AuditFilter
		want string
	}{
		{"all newest first", AuditFilter{}, "9,8,7,6,5,4,3,2,1,0"},
		{"mac", AuditFilter{MAC: mac(1)}, "9,7,5,3,1"},
		{"other mac", AuditFilter{MAC: mac(2)}, ""},
		{"actor", AuditFilter{Actor: "actor0"}, "9,6,3,0"},
		{"action", AuditFilter{Action: "act0"}, "8,6,4,2,0"},
		{"since inclusive", AuditFilter{Since: times[7]}, "9,8,7"},
		{"until exclusive", AuditFilter{Until: times[2]}, "1,0"},
		{"window", AuditFilter{Since: times[3], Until: times[6]}, "5,4,3"},
		{"mac and actor", AuditFilter{MAC: mac(1), Actor: "actor1"}, "7,1"},
		{"mac since", AuditFilter{MAC: mac(1), Since: times[4]}, "9,7,5"},
		{"limit", AuditFilter{Limit: 2}, "9,8"},
		{"since after everything", AuditFilter{Since: times[9].Add(time.Hour)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.ListAudit(tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if details(got) != tt.want {
				t.Errorf("got %q, want %q", details(got), tt.want)
			}
		})
	}
}

func TestListAuditPaging(t *testing.T) {
	db, _ := auditFixture(t)
	for _, tt := range []struct {
		name string
		f    AuditFilter
		want string
	}{
		{"all", AuditFilter{Limit: 3}, "9,8,7,6,5,4,3,2,1,0"},
		{"mac", AuditFilter{MAC: mac(1), Limit: 2}, "9,7,5,3,1"},
		{"action", AuditFilter{Action: "act0", Limit: 2}, "8,6,4,2,0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var all []AuditEntry
			f := tt.f
			for pages := 0; ; pages++ {
				if pages > 10 {
					t.Fatal("paging does not end")
				}
				page, err := db.ListAudit(f)
				if err != nil {
					t.Fatal(err)
				}
				if len(page) > f.Limit {
					t.Fatalf("page of %d, limit %d", len(page), f.Limit)
				}
				if len(page) == 0 {
					break
				}
				all = append(all, page...)
				f.After = page[len(page)-1].ID
			}
			if details(all) != tt.want {
				t.Errorf("pages gave %q, want %q", details(all), tt.want)
			}
		})
	}
}

func TestAuditIDsStrictlyIncrease(t *testing.T) {
	db, _, _ := openTest(t) // the clock does not move
	for i := range 5 {
		if err := db.AppendAudit("", Audit{Actor: "a", Detail: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	es, err := db.ListAudit(AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if details(es) != "4,3,2,1,0" {
		t.Fatalf("order %q", details(es))
	}
	for i := 1; i < len(es); i++ {
		if es[i].ID >= es[i-1].ID {
			t.Errorf("ids not strictly decreasing: %s then %s", es[i-1].ID, es[i].ID)
		}
	}
	if es[0].Action != "note" {
		t.Errorf("default action %q, want note", es[0].Action)
	}
}

func TestListAuditLimits(t *testing.T) {
	db, clk, _ := openTest(t)
	for range 22 { // 1,100 in transactions etcd's default --max-txn-ops holds
		err := db.update(func(txn kv.Txn) error {
			for range 50 {
				if err := db.writeAudit(txn, "", Audit{Actor: "a", Action: "b"}, clk.Now(), 0); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct{ limit, want int }{{0, 100}, {1, 1}, {1000, 1000}, {5000, 1000}} {
		got, err := db.ListAudit(AuditFilter{Limit: tt.limit})
		if err != nil || len(got) != tt.want {
			t.Errorf("Limit %d: %d entries, %v; want %d", tt.limit, len(got), err, tt.want)
		}
	}
}

func TestAuditErrors(t *testing.T) {
	db, _, _ := openTest(t)
	for _, tt := range []struct {
		name string
		f    AuditFilter
	}{
		{"negative limit", AuditFilter{Limit: -1}},
		{"bad cursor", AuditFilter{After: "yesterday"}},
		{"upper-case cursor", AuditFilter{After: strings.Repeat("A", idLen)}},
		{"bad mac", AuditFilter{MAC: "52:54:00"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := db.ListAudit(tt.f); !errors.Is(err, ErrInvalid) {
				t.Errorf("ListAudit = %v, want ErrInvalid", err)
			}
		})
	}
	for _, tt := range []struct {
		mac string
		a   Audit
	}{{"", Audit{Action: "x"}}, {"bad", Audit{Actor: "a"}}, {"", Audit{Actor: "a\nforged line"}}} {
		if err := db.AppendAudit(tt.mac, tt.a); !errors.Is(err, ErrInvalid) {
			t.Errorf("AppendAudit(%q, %+v) = %v, want ErrInvalid", tt.mac, tt.a, err)
		}
	}
	if es, _ := db.ListAudit(AuditFilter{}); len(es) != 0 {
		t.Errorf("refused entries were stored: %+v", es)
	}
}
