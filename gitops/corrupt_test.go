package gitops_test

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/foundry-appliance/foundry/store"
)

// An audit entry that no longer decodes (a damaged disk) sits between
// good ones after the exporter's cursor. The exporter starts, passes over
// it, and goes on delivering: the good entries after it and new ones. (It
// used to stop: AuditAfter failed, and so did Serve.)
func TestExporterSkipsDamagedAuditEntry(t *testing.T) {
	needGit(t)
	bare := filepath.Join(t.TempDir(), "fleet.git")
	runGit(t, "", "init", "-q", "--bare", "-b", "main", bare)
	f := newFleet(t, bare, nil)
	const a, b, c = "52:54:00:ee:00:01", "52:54:00:ee:00:02", "52:54:00:ee:00:03"
	f.discover(a)
	eventually(t, 10*time.Second, "the first machine delivered", func() bool {
		cur, err := f.db.Cursor("gitops")
		return err == nil && cur != "" && strings.Contains(remoteLog(t, bare, a), "discover")
	})

	// While the exporter is stopped: b and c appear, then b's entry is
	// damaged on disk.
	f.stop()
	f.discover(b)
	f.discover(c)
	f.register(c)
	es, err := f.db.ListAudit(store.AuditFilter{MAC: b})
	if err != nil || len(es) != 1 {
		t.Fatalf("audit of %s: %v, %v", b, es, err)
	}
	damaged := "a/" + es[0].ID
	if err := f.db.Close(); err != nil {
		t.Fatal(err)
	}
	bdb, err := badger.Open(badger.DefaultOptions(f.dbDir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(txn *badger.Txn) error { return txn.Set([]byte(damaged), []byte{0xff, 0x00, 0x13, 0x37}) })
	if err == nil {
		err = bdb.Close()
	}
	if err != nil {
		t.Fatal(err)
	}

	f.open()
	f.start() // fails the test when Serve stops or never follows the log
	f.approve(c, "bob", "node-c")
	eventually(t, 10*time.Second, "the approval after the damaged entry delivered, authored by its actor", func() bool {
		return strings.Contains(remoteLog(t, bare, c), "bob|approve node-c")
	})
	if n, keys := f.db.CorruptRecords(); n != 1 || !slices.Contains(keys, damaged) {
		t.Errorf("CorruptRecords() = %d %v, want the damaged entry %s reported", n, keys, damaged)
	}
	if st := f.srv.Status(); !st.Following {
		t.Errorf("exporter status after the damaged entry: %+v", st)
	}
}

// remoteLog is the remote's history of mac's file, one "author|subject"
// line per commit; "" while there is none.
func remoteLog(t *testing.T, bare, mac string) string {
	t.Helper()
	cmd := exec.Command("git", "--git-dir="+bare, "log", "--format=%an|%s", "main", "--", fileOf(mac))
	cmd.Env = gitEnv()
	out, _ := cmd.Output() // no main branch yet: nothing delivered
	return string(out)
}
