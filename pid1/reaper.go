package pid1

import (
	"context"
	"os"
	"os/exec"
	"os/signal"
	"sync"

	"golang.org/x/sys/unix"
)

// Reaper collects every child that exits, PID 1's duty: orphans are
// re-parented to it, and unreaped zombies would pile up. Because it waits
// for any child, exec.Cmd.Wait cannot be used next to it; a program starts
// the children whose exit it cares about with Start, which hands it their
// status. The zero value is ready; Run does the collecting.
type Reaper struct {
	mu      sync.Mutex
	waiting map[int]chan unix.WaitStatus
}

// Run reaps until ctx ends.
func (r *Reaper) Run(ctx context.Context) {
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, unix.SIGCHLD)
	defer signal.Stop(ch)
	for {
		r.reap()
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

func (r *Reaper) reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
		// Start registers the child under r.mu before releasing it, so a
		// child that exits at once is still found here.
		r.mu.Lock()
		c, ok := r.waiting[pid]
		delete(r.waiting, pid)
		r.mu.Unlock()
		if ok {
			c <- ws
		}
	}
}

// Start starts cmd and returns a channel that receives its exit status.
// cmd's Stdin, Stdout and Stderr must be nil or *os.File: other writers
// need exec.Cmd.Wait to copy, which the reaper pre-empts. Never call
// cmd.Wait.
func (r *Reaper) Start(cmd *exec.Cmd) (<-chan unix.WaitStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if r.waiting == nil {
		r.waiting = map[int]chan unix.WaitStatus{}
	}
	c := make(chan unix.WaitStatus, 1)
	r.waiting[cmd.Process.Pid] = c
	return c, nil
}
