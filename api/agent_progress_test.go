package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/agentwire"
	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/api/client"
	"github.com/foundry-appliance/foundry/store"
)

// The agent's download figures (bytes, rate, time left) are kept with the
// machine, shown in its API view and on the event stream while it
// provisions and after a failure, and bounded: a report out of bounds is
// refused and changes nothing.
func TestAgentProgressDetail(t *testing.T) {
	e := newEnv(t)
	e.setup()
	ctx := context.Background()
	a := e.discover(macA)
	c := a.client() // the agent's own client, for the wire's sake
	inv, _ := json.Marshal(testInventory(macA))
	tok, wireTok := newWireToken(t, e.clock.Now())
	if _, err := c.Register(ctx, agentwire.AgentRegister{MAC: macA, Inventory: inv, Token: wireTok}); err != nil {
		t.Fatalf("register: %v", err)
	}
	if _, err := e.admin.Approve(ctx, macA, api.ApproveRequest{Token: tok.Value, Cluster: "rack1"}); err != nil {
		t.Fatalf("approve: %v", err)
	}

	// Watched as the dashboard does.
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	seen := make(chan api.Machine, 16)
	go e.viewer.Watch(wctx, macA, func(ev client.Event) error {
		if ev.Machine != nil {
			seen <- ev.Machine.Machine
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond) // the stream is open

	report := agentwire.AgentProgress{Percent: 42, Message: "writing image to /dev/nvme0n1",
		BytesDone: 420 << 20, BytesTotal: 1000 << 20, RateBps: 50 << 20, ETASeconds: 12}
	if err := c.ReportProgress(ctx, report); err != nil {
		t.Fatalf("progress: %v", err)
	}
	want := &store.ProgressDetail{BytesDone: 420 << 20, BytesTotal: 1000 << 20, RateBps: 50 << 20, ETASeconds: 12, At: e.clock.Now()}
	m := e.machine(macA)
	if m.State != store.StateProvisioning || m.Progress != 42 || m.ProgressDetail == nil || *m.ProgressDetail != *want {
		t.Fatalf("stored %s %d%% %+v, want %+v", m.State, m.Progress, m.ProgressDetail, want)
	}
	view, err := e.viewer.GetMachine(ctx, macA)
	if err != nil {
		t.Fatal(err)
	}
	wantView := api.ProgressDetail{BytesDone: 420 << 20, BytesTotal: 1000 << 20, RateBps: 50 << 20, ETASeconds: 12, At: e.clock.Now()}
	if view.ProgressDetail == nil || *view.ProgressDetail != wantView {
		t.Fatalf("view %+v, want %+v", view.ProgressDetail, wantView)
	}
	timeout := time.After(5 * time.Second)
	for found := false; !found; {
		select {
		case m := <-seen:
			found = m.ProgressDetail != nil && *m.ProgressDetail == wantView
		case <-timeout:
			t.Fatal("the event stream never carried the progress detail")
		}
	}

	// From here on the harness signs the calls, with numbers above the
	// client's, so that refusals can be read in full.
	a.seq.Store(1000)
	progress := func(p agentwire.AgentProgress) (int, string) { return a.call(http.MethodPost, "/agent/progress", p) }
	for _, tc := range []struct {
		name, loc string
		p         agentwire.AgentProgress
	}{
		{"more than the total", "body.bytes_done", agentwire.AgentProgress{Percent: 50, BytesDone: 1001, BytesTotal: 1000}},
		{"negative bytes", "body.bytes_done", agentwire.AgentProgress{Percent: 50, BytesDone: -1}},
		{"negative total", "body.bytes_total", agentwire.AgentProgress{Percent: 50, BytesDone: 1, BytesTotal: -5}},
		{"negative rate", "body.rate_bps", agentwire.AgentProgress{Percent: 50, BytesDone: 1, RateBps: -1}},
		{"more than a week left", "body.eta_seconds", agentwire.AgentProgress{Percent: 50, BytesDone: 1, BytesTotal: 10, ETASeconds: agentwire.MaxETASeconds + 1}},
		{"negative time left", "body.eta_seconds", agentwire.AgentProgress{Percent: 50, BytesDone: 1, ETASeconds: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := progress(tc.p); code != http.StatusUnprocessableEntity || !hasLocation(problem(t, body), tc.loc) {
				t.Errorf("%d %s, want 422 at %s", code, body, tc.loc)
			}
			if m := e.machine(macA); m.Progress != 42 || m.ProgressDetail == nil || *m.ProgressDetail != *want {
				t.Errorf("a refused report changed the machine: %d%% %+v", m.Progress, m.ProgressDetail)
			}
		})
	}

	// The whole week is an estimate still; an unknown total takes any
	// count.
	e.clock.Add(3 * time.Second)
	if code, body := progress(agentwire.AgentProgress{Percent: 43, BytesDone: 5 << 30, RateBps: 1, ETASeconds: agentwire.MaxETASeconds}); code != http.StatusOK {
		t.Fatalf("unknown total: %d %s", code, body)
	}
	if m := e.machine(macA); m.ProgressDetail == nil || m.ProgressDetail.BytesTotal != 0 || m.ProgressDetail.BytesDone != 5<<30 || !m.ProgressDetail.At.Equal(e.clock.Now()) {
		t.Fatalf("stored %+v", m.ProgressDetail)
	}
	// A report without figures (an agent that has none) clears them.
	if code, body := progress(agentwire.AgentProgress{Percent: 44, Message: "verifying"}); code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	if m := e.machine(macA); m.ProgressDetail != nil {
		t.Fatalf("stale figures kept: %+v", m.ProgressDetail)
	}

	// A failure shows how far the download came; a retry leaves it behind.
	if code, body := progress(report); code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	if code, body := a.call(http.MethodPost, "/agent/result", agentwire.AgentResult{Message: "download image: connection reset"}); code != http.StatusOK {
		t.Fatalf("result: %d %s", code, body)
	}
	if v, _ := e.viewer.GetMachine(ctx, macA); v.State != "failed" || v.ProgressDetail == nil || v.ProgressDetail.BytesDone != 420<<20 {
		t.Fatalf("failed machine's view: %s %+v", v.State, v.ProgressDetail)
	}
	if _, err := e.admin.Retry(ctx, macA); err != nil {
		t.Fatal(err)
	}
	if v, _ := e.viewer.GetMachine(ctx, macA); v.Progress != 0 || v.ProgressDetail != nil {
		t.Fatalf("retried machine's view: %s %+v", v.State, v.ProgressDetail)
	}
}
