package appliance

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/pid1"
)

// A stand-in for foundry: it counts its starts, dies on its first start
// (a crash), and on SIGTERM records that it was stopped and exits 0, as
// serve does after closing the database.
const fakeServe = `#!/bin/sh
dir=$(dirname "$0")
echo "$@" >> "$dir/args"
n=$(cat "$dir/starts" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$dir/starts"
[ $n -eq 1 ] && exit 3
trap 'echo stopped > "$dir/stopped"; exit 0' TERM
echo $n > "$dir/trapped"
while :; do sleep 0.1; done
`

func TestServiceRestartsAndStopsCleanly(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "foundry")
	if err := os.WriteFile(bin, []byte(fakeServe), 0o755); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var reaper pid1.Reaper
	go reaper.Run(ctx)

	var mu sync.Mutex
	var exits []error
	s := &Service{Binary: bin, Config: "/run/foundry.yaml", Log: logf, Reaper: &reaper, StopGrace: 5 * time.Second,
		OnExit: func(err error) { mu.Lock(); exits = append(exits, err); mu.Unlock() }}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()

	// The crash is reported and serve comes back after the first backoff.
	deadline := time.Now().Add(15 * time.Second)
	for {
		// "trapped" is written once the SIGTERM handler is in place.
		if b, _ := os.ReadFile(filepath.Join(dir, "trapped")); strings.TrimSpace(string(b)) == "2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("serve was not restarted after it crashed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("stop: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if _, err := os.Stat(filepath.Join(dir, "stopped")); err != nil {
		t.Error("serve was not stopped with SIGTERM")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(exits) != 1 || exits[0] == nil || !strings.Contains(exits[0].Error(), "exit status 3") {
		t.Errorf("exits reported: %v, want the one crash (exit status 3)", exits)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "args")); !strings.HasPrefix(string(b), "serve --config /run/foundry.yaml") {
		t.Errorf("serve started with %q", b)
	}
}
