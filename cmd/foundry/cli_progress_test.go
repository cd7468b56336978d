package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/store"
	"github.com/foundry-appliance/foundry/test/syncbuf"
)

func TestTransferText(t *testing.T) {
	at := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	const mib = 1 << 20
	for _, tc := range []struct {
		name string
		d    *api.ProgressDetail
		now  time.Time
		want string
	}{
		{"none", nil, at, ""},
		{"no figures", &api.ProgressDetail{At: at}, at, ""},
		{"all", &api.ProgressDetail{BytesDone: 420 * mib, BytesTotal: 1000 * mib, RateBps: 50 * mib, ETASeconds: 12, At: at}, at,
			" (420.0 MiB of 1000.0 MiB, 50.0 MiB/s, 12s left)"},
		{"counted down since the report", &api.ProgressDetail{BytesDone: 1, BytesTotal: 2, RateBps: 1, ETASeconds: 600, At: at}, at.Add(90 * time.Second),
			" (1 B of 2 B, 1 B/s, 8m left)"},
		{"overdue", &api.ProgressDetail{BytesDone: 1, BytesTotal: 2, RateBps: 1, ETASeconds: 1, At: at}, at.Add(time.Minute),
			" (1 B of 2 B, 1 B/s, 0s left)"},
		{"unknown size", &api.ProgressDetail{BytesDone: 3 << 30, RateBps: mib, At: at}, at, " (3.0 GiB, 1.0 MiB/s)"},
		{"nothing yet of a known size", &api.ProgressDetail{BytesTotal: 2 << 30, At: at}, at, " (0 B of 2.0 GiB)"},
		{"failed: no rate, no time left", &api.ProgressDetail{BytesDone: mib, BytesTotal: 2 * mib, RateBps: mib, ETASeconds: 1, At: at}, time.Time{},
			" (1.0 MiB of 2.0 MiB)"},
	} {
		if got := transferText(tc.d, tc.now); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// `machines show`, `ls` and `watch` print a provisioning machine's
// download: bytes of the total, rate and time left; a failed one's shows
// how far it came.
func TestCLIShowsDownloadProgress(t *testing.T) {
	e := newCLIEnv(t)
	const mac = "52:54:00:00:00:0a"
	e.registerMachine(mac)
	const mib = 1 << 20
	set := func(state store.State, d *store.ProgressDetail) {
		t.Helper()
		if _, err := e.db.UpdateMachine(mac, store.Audit{Actor: "test"}, func(m *store.Machine) error {
			m.State, m.Progress, m.ProgressDetail = state, 42, d
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	// The states on the way, so that the store accepts each change.
	for _, st := range []store.State{store.StateInventoried, store.StateApproved} {
		set(st, nil)
	}
	detail := &store.ProgressDetail{BytesDone: 420 * mib, BytesTotal: 1000 * mib, RateBps: 50 * mib, ETASeconds: 12, At: time.Now()}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	root := &cobra.Command{Use: "foundry", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(cliCommands()...)
	var watched syncbuf.Buffer
	root.SetOut(&watched)
	root.SetArgs([]string{"machines", "watch", mac, "--server", e.url, "--token", e.viewer})
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(wctx) }()
	live := regexp.MustCompile(`42% \(420\.0 MiB of 1000\.0 MiB, 50\.0 MiB/s, 1[12]s left\)`)
	for tick := time.NewTicker(100 * time.Millisecond); !live.MatchString(watched.String()); {
		set(store.StateProvisioning, detail)
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("watch printed no download progress: %q", watched.String())
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("watch: %v", err)
	}

	for _, args := range [][]string{{"machines", "show", mac}, {"machines", "ls"}} {
		out, errOut, code := e.run(ctx, append(args, "--server", e.url, "--token", e.viewer)...)
		if code != 0 || !live.MatchString(out) {
			t.Errorf("%v: exit %d, want %s in:\n%s%s", args, code, live, out, errOut)
		}
	}
	if _, err := e.db.UpdateMachine(mac, store.Audit{Actor: "test"}, func(m *store.Machine) error {
		m.State, m.Message = store.StateFailed, "download image: connection reset"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	out, _, _ := e.run(ctx, "machines", "show", mac, "--server", e.url, "--token", e.viewer)
	if want := "failed: download image: connection reset (420.0 MiB of 1000.0 MiB)"; !strings.Contains(out, want) {
		t.Errorf("failed machine: want %q in\n%s", want, out)
	}
}
