package pid1

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test process stands in for PID 1: as a child subreaper it inherits
// its children's orphans the way init does.
func TestReaper(t *testing.T) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Skipf("cannot become a subreaper: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var r Reaper
	go r.Run(ctx)

	// A child that exits at once still hands its status to Start's caller.
	exited, err := r.Start(exec.Command("sh", "-c", "exit 3"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ws := <-exited:
		if !ws.Exited() || ws.ExitStatus() != 3 {
			t.Errorf("status %v, want exit 3", ws)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit status for the started child")
	}

	// An orphan (the grandchild that sh leaves behind) is reaped too: no
	// zombie stays in the process table.
	pidFile := t.TempDir() + "/pid"
	parent, err := r.Start(exec.Command("sh", "-c", "sleep 0.2 & echo $! > "+pidFile))
	if err != nil {
		t.Fatal(err)
	}
	<-parent
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	orphan, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
	deadline := time.Now().Add(10 * time.Second)
	for {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(orphan) + "/stat")
		if err != nil {
			break // gone: reaped
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphan %d still in the process table: %s", orphan, stat)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
