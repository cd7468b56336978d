package store

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// migrateChildEnv makes the test binary act as the migration crash test's
// child: it opens (and so migrates) the database named by the variable.
const migrateChildEnv = "FOUNDRY_STORE_MIGRATE_CHILD"

// TestMigrationSurvivesSIGKILL kills a process with SIGKILL while Open
// rewrites a schema-2 database (kv.Badger.Rebuild), at moments spread over
// the rewrite, and opens each database again: every machine is there with
// its inventory, the schema is current, and nothing of the rewrite is
// left beside the database.
func TestMigrationSurvivesSIGKILL(t *testing.T) {
	badgerOnly(t)
	if dir := os.Getenv(migrateChildEnv); dir != "" {
		db, err := Open(dir, Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, "open:", err)
			os.Exit(3)
		}
		db.Close()
		os.Exit(0)
	}
	if testing.Short() {
		t.Skip("builds a database of 1,500 machines")
	}
	db, _, pristine := openTest(t)
	const n = 1500
	for i := range n {
		mustCreate(t, db, Machine{MAC: mac(i + 1), State: StateInventoried, Hostname: fmt.Sprintf("dell-%d", i+1), Inventory: json.RawMessage(dellInventory)})
	}
	writeSchema2(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	child := func(dir string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMigrationSurvivesSIGKILL$")
		cmd.Env = append(os.Environ(), migrateChildEnv+"="+dir)
		cmd.Stderr = os.Stderr
		return cmd
	}
	copyDB := func() string {
		dir := filepath.Join(t.TempDir(), "db")
		if err := os.CopyFS(dir, os.DirFS(pristine)); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	// waitFor polls until cond holds (true) or the child has exited.
	waitFor := func(exited chan struct{}, cond func() bool) bool {
		for {
			if cond() {
				return true
			}
			select {
			case <-exited:
				return false
			case <-time.After(200 * time.Microsecond):
			}
		}
	}
	present := func(path string) bool { _, err := os.Stat(path); return err == nil }
	run := func(dir string) (*exec.Cmd, chan struct{}, chan error) {
		cmd := child(dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited, result := make(chan struct{}), make(chan error, 1)
		go func() { result <- cmd.Wait(); close(exited) }()
		return cmd, exited, result
	}
	// How long the rewrite takes here, uninterrupted: from its directory
	// appearing to the swap.
	dir := copyDB()
	_, exited, result := run(dir)
	if !waitFor(exited, func() bool { return present(dir + ".rebuild") }) {
		t.Fatalf("the migrating child ended (%v) before its rewrite was seen", <-result)
	}
	start := time.Now()
	waitFor(exited, func() bool { return !present(dir + ".rebuild") })
	whole := time.Since(start)
	if err := <-result; err != nil {
		t.Fatalf("migrating child: %v", err)
	}

	midBuild := 0
	for _, frac := range []float64{0, 0.2, 0.4, 0.6, 0.8, 0.95, 1.1} {
		dir := copyDB()
		cmd, exited, result := run(dir)
		if !waitFor(exited, func() bool { return present(dir + ".rebuild") }) {
			t.Fatalf("the migrating child ended (%v) before its rewrite was seen", <-result)
		}
		time.Sleep(time.Duration(frac * float64(whole)))
		var state []string
		for _, s := range []string{".rebuild", ".old", ".sort"} {
			if _, err := os.Stat(dir + s); err == nil {
				state = append(state, filepath.Base(dir+s))
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		err := <-result
		ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		killed := ws.Signaled() && ws.Signal() == syscall.SIGKILL
		if !killed && err != nil {
			t.Fatalf("child at %.0f%% of the migration: %v", 100*frac, err)
		}
		if killed && len(state) > 0 {
			midBuild++
		}
		t.Logf("killed at %.0f%% of %s: %v (beside the database: %v)", 100*frac, whole.Round(time.Millisecond), killed, state)

		db, err := Open(dir, Options{})
		if err != nil {
			t.Fatalf("open after a kill at %.0f%%: %v", 100*frac, err)
		}
		if v, err := db.SchemaVersion(); err != nil || v != SchemaVersion {
			t.Errorf("schema after a kill at %.0f%%: %d %v", 100*frac, v, err)
		}
		p, err := db.ListMachinePage(MachineQuery{Limit: 1})
		if err != nil || p.Total != n {
			t.Errorf("machines after a kill at %.0f%%: %d, %v", 100*frac, p.Total, err)
		}
		for _, i := range []int{1, n / 2, n} {
			if m, err := db.GetMachine(mac(i)); err != nil || string(m.Inventory) != dellInventory {
				t.Errorf("machine %d after a kill at %.0f%%: %v", i, 100*frac, err)
			}
		}
		db.Close()
		if left, _ := filepath.Glob(dir + ".*"); len(left) > 0 {
			t.Errorf("left beside the database after a kill at %.0f%%: %v", 100*frac, left)
		}
	}
	if midBuild == 0 {
		t.Fatalf("no kill landed during the rewrite (%s); the test proved nothing", whole)
	}
}
