package kmod

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/test/nstest"
)

// TestOpenUevents subscribes to the kernel's device events inside a
// private network namespace and creates a bridge there: the kernel
// announces it, and the source delivers the announcement parsed.
func TestOpenUevents(t *testing.T) {
	if nstest.Reexec(t) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	events, err := OpenUevents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "link", "add", "uevtest0", "type", "bridge").CombinedOutput(); err != nil {
		t.Fatalf("ip link add: %v: %s", err, out)
	}
	defer exec.Command("ip", "link", "del", "uevtest0").Run()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("event source closed before the bridge was announced")
			}
			if ev.Err != nil {
				t.Fatal(ev.Err)
			}
			if ev.Uevent.Action == "add" && ev.Uevent.Subsystem == "net" && strings.HasSuffix(ev.Uevent.DevPath, "/uevtest0") {
				cancel()
				for range events { // the channel closes when ctx ends
				}
				return
			}
		case <-ctx.Done():
			t.Fatal("no uevent for the new bridge")
		}
	}
}
