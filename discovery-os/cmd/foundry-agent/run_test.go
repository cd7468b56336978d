package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/agentsig"
	"github.com/foundry-appliance/foundry/discovery-os/agent"
)

// settle waits for the goroutine count to drop to at most n and returns
// the last count: goroutines that have been told to stop need a moment to
// be gone.
func settle(n int) int {
	got := runtime.NumGoroutine()
	for end := time.Now().Add(2 * time.Second); got > n && time.Now().Before(end); got = runtime.NumGoroutine() {
		time.Sleep(10 * time.Millisecond)
	}
	return got
}

// TestRunStopsWithContext starts the agent as an ordinary process on a
// machine without its boot NIC: it waits for the NIC until ctx ends, and
// then returns at once and leaves no goroutine behind.
func TestRunStopsWithContext(t *testing.T) {
	cmdline := filepath.Join(t.TempDir(), "cmdline")
	// 02:… is locally administered: no real NIC has it.
	if err := os.WriteFile(cmdline, []byte("foundry.url=http://127.0.0.1:9 foundry.mac=02:00:00:f0:0d:01 foundry.nonce=n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := run(ctx, false, cmdline)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("run ended with %v, want the context's end", err)
	}
	if late := time.Since(start) - 1500*time.Millisecond; late > 500*time.Millisecond {
		t.Errorf("run returned %v after its context ended", late)
	}
	if after := settle(before); after > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines before run, %d after:\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}

type countingScreen struct{ n atomic.Int32 }

func (c *countingScreen) Write(p []byte) (int, error) { c.n.Add(1); return len(p), nil }

func TestRedrawStopsWithContext(t *testing.T) {
	scr := &countingScreen{}
	con := &agent.TTYConsole{Screen: scr}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { redraw(ctx, con, 5*time.Millisecond); close(done) }()
	time.Sleep(60 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("redraw did not stop when its context ended")
	}
	drawn := scr.n.Load()
	if drawn == 0 {
		t.Error("the console was never redrawn")
	}
	time.Sleep(30 * time.Millisecond)
	if scr.n.Load() != drawn {
		t.Error("the console was drawn after redraw returned")
	}
}

// Every boot gets its own key, and the ID logged is the one the appliance
// shows for the registration (agentsig.KeyID of the public key).
func TestSessionKey(t *testing.T) {
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	a, err := sessionKey(log)
	if err != nil {
		t.Fatal(err)
	}
	b, err := sessionKey(log)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != ed25519.PrivateKeySize || a.Equal(b) {
		t.Fatal("two boots made the same key, or not an Ed25519 key")
	}
	for _, k := range []ed25519.PrivateKey{a, b} {
		if id := agentsig.KeyID(k.Public().(ed25519.PublicKey)); !strings.Contains(logged.String(), "key_id="+id) {
			t.Errorf("key ID %s not logged:\n%s", id, logged.String())
		}
	}
}
