package store

import (
	"errors"
	"testing"
	"time"
)

func TestAuditAfterOldestFirst(t *testing.T) {
	db, _ := auditFixture(t)
	all, err := db.AuditAfter("", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := details(all); got != "0,1,2,3,4,5,6,7,8,9" {
		t.Fatalf("from the start: %s", got)
	}
	for _, tc := range []struct {
		after string
		limit int
		want  string
	}{
		{all[3].ID, 0, "4,5,6,7,8,9"},
		{all[3].ID, 2, "4,5"},
		{all[9].ID, 0, ""},
		// Read again from a little before the cursor: what an exporter
		// does to see an entry that committed after a later one.
		{AuditIDBefore(all[5].ID, 1500*time.Millisecond), 0, "4,5,6,7,8,9"},
	} {
		got, err := db.AuditAfter(tc.after, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if details(got) != tc.want {
			t.Errorf("after %s limit %d: %s, want %s", tc.after, tc.limit, details(got), tc.want)
		}
	}
	for _, bad := range []string{"x", "zzzzzzzzzzzzzzzzzzzzzzzz"} {
		if _, err := db.AuditAfter(bad, 0); !errors.Is(err, ErrInvalid) {
			t.Errorf("cursor %q: %v", bad, err)
		}
	}
	if AuditIDBefore("x", time.Second) != "" || AuditIDBefore(formatID(5, 0), time.Second) != "" {
		t.Error("AuditIDBefore of a bad or early id is not empty")
	}
}

// A cursor is on disk: it survives closing and reopening the database.
func TestCursorSurvivesReopen(t *testing.T) {
	db, _, dir := openTest(t)
	if v, err := db.Cursor("gitops"); err != nil || v != "" {
		t.Fatalf("unset cursor: %q %v", v, err)
	}
	if err := db.AppendAudit("", Audit{Actor: "a", Action: "b"}); err != nil {
		t.Fatal(err)
	}
	es, _ := db.AuditAfter("", 1)
	if err := db.SetCursor("gitops", es[0].ID); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][2]string{{"gitops", "nope"}, {"", es[0].ID}, {"a/b", ""}} {
		if err := db.SetCursor(bad[0], bad[1]); !errors.Is(err, ErrInvalid) {
			t.Errorf("SetCursor(%q, %q): %v", bad[0], bad[1], err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2, err := openAt(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if v, err := db2.Cursor("gitops"); err != nil || v != es[0].ID {
		t.Fatalf("after reopen: %q %v, want %s", v, err, es[0].ID)
	}
}

// Each entry of a machine write names the revision it made, so that a
// follower can pair it with the machine as it was then.
func TestAuditRevision(t *testing.T) {
	db, _, _ := openTest(t)
	m := mustCreate(t, db, Machine{MAC: mac(7), Hostname: "n7"})
	if _, err := db.UpdateMachine(m.MAC, admin, func(m *Machine) error { m.Hostname = "n7b"; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := db.AppendAudit(m.MAC, Audit{Actor: "a", Action: "note"}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteMachine(m.MAC, admin); err != nil {
		t.Fatal(err)
	}
	es, err := db.AuditAfter("", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, e := range es {
		got = append(got, e.Revision)
	}
	if len(got) != 4 || got[0] != 1 || got[1] != 2 || got[2] != 0 || got[3] != 3 {
		t.Fatalf("revisions %v, want [1 2 0 3]", got)
	}
}
