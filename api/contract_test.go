package api_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/agentwire"
	"github.com/foundry-appliance/foundry/api"
	// The agent's package name would collide with this package's agent type.
	discovery "github.com/foundry-appliance/foundry/discovery-os/agent"
	"github.com/foundry-appliance/foundry/discovery-os/token"
	"github.com/foundry-appliance/foundry/store"
)

// The contract tests run the discovery agent's real API client against the
// real server over HTTP: both sides speak package agentwire, and these
// tests prove that what one sends is what the other reads.

// agentClient is the agent's client for a discovered machine.
func (a *agent) client() *discovery.Client {
	return &discovery.Client{BaseURL: a.e.ts.URL, Nonce: a.nonce, Key: a.key, HTTP: a.e.ts.Client()}
}

// newWireToken draws a registration token and its salted hash as the agent
// sends it.
func newWireToken(t *testing.T, now time.Time) (token.Token, agentwire.AgentToken) {
	t.Helper()
	tok, err := token.New(rand.Reader, now)
	if err != nil {
		t.Fatal(err)
	}
	salt, err := token.NewSalt(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return tok, agentwire.NewAgentToken(tok, salt)
}

func TestContractNonceHeader(t *testing.T) {
	if api.NonceHeader != agentwire.NonceHeader {
		t.Fatalf("the appliance reads the nonce from %q, the agent sends it in %q", api.NonceHeader, agentwire.NonceHeader)
	}
	e := newEnv(t)
	a := e.discover(macA)
	c := a.client()
	c.Nonce = "not-a-nonce"
	inv, _ := json.Marshal(testInventory(macA))
	_, tok := newWireToken(t, e.clock.Now())
	_, err := c.Register(context.Background(), agentwire.AgentRegister{MAC: macA, Inventory: inv, Token: tok})
	var ae *discovery.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized || !discovery.IsPermanent(err) {
		t.Fatalf("unknown nonce: %v, want a permanent 401", err)
	}
	// A key that never registered has no session.
	if _, err := a.client().Decision(context.Background(), 0); !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		t.Fatalf("unregistered key: %v, want 401", err)
	}
}

func TestContractRegisterApproveProvision(t *testing.T) {
	e := newEnv(t)
	e.setup()
	ctx := context.Background()
	a := e.discover(macA)
	c := a.client()

	inv, err := json.Marshal(testInventory(macA))
	if err != nil {
		t.Fatal(err)
	}
	first, firstHash := newWireToken(t, e.clock.Now())
	state, err := c.Register(ctx, agentwire.AgentRegister{MAC: macA, Inventory: inv, Token: firstHash})
	if err != nil || state != "inventoried" {
		t.Fatalf("register: state %q, %v", state, err)
	}
	m := e.machine(macA)
	if string(m.Inventory) != string(inv) {
		t.Errorf("stored inventory differs from what the agent sent:\n got %s\nsent %s", m.Inventory, inv)
	}
	if ss := e.sessions(macA); len(ss) != 1 || ss[0].ID != a.session() || string(ss[0].Token.Hash) != string(firstHash.Hash) || string(ss[0].Token.Salt) != string(firstHash.Salt) {
		t.Fatalf("stored session %+v, sent %+v", ss, firstHash)
	}

	d, err := c.Decision(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := (agentwire.Decision{Decision: agentwire.KindWait, State: "inventoried"}); !equalDecision(d, want) {
		t.Fatalf("decision before approval: %+v, want %+v", d, want)
	}

	// The console shows a new token: only that one approves from now on.
	second, secondHash := newWireToken(t, e.clock.Now())
	if err := c.Token(ctx, secondHash); err != nil {
		t.Fatalf("token update: %v", err)
	}
	if ss := e.sessions(macA); len(ss) != 1 || string(ss[0].Token.Hash) != string(secondHash.Hash) {
		t.Fatalf("stored session after update: %+v", ss)
	}

	// The long-poll is parked until the administrator decides.
	type answer struct {
		d   agentwire.Decision
		err error
	}
	polled := make(chan answer, 1)
	go func() {
		d, err := c.Decision(ctx, 30*time.Second)
		polled <- answer{d, err}
	}()
	select {
	case r := <-polled:
		t.Fatalf("long-poll answered before approval: %+v %v", r.d, r.err)
	case <-time.After(300 * time.Millisecond):
	}
	req := api.ApproveRequest{Token: first.Value, Cluster: "rack1", Hostname: "node-01", SSHKeys: []string{goodKey},
		Network: &api.Network{Mode: "static", Address: "10.77.0.50/24", Gateway: "10.77.0.1", DNS: []string{"10.77.0.1"}}}
	if _, err := e.admin.Approve(ctx, macA, req); err == nil {
		t.Fatal("approved with the replaced token")
	}
	req.Token = second.Value
	if _, err := e.admin.Approve(ctx, macA, req); err != nil {
		t.Fatalf("approve with the console's token: %v", err)
	}
	var r answer
	select {
	case r = <-polled:
	case <-time.After(10 * time.Second):
		t.Fatal("long-poll did not wake on approval")
	}
	want := agentwire.Decision{
		Decision: agentwire.KindImage, State: "approved", Hostname: "node-01", SSHKeys: []string{goodKey},
		Image: &agentwire.DecisionImage{URL: e.ts.URL + "/images/debian.raw.gz",
			SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
			Disk:   "/dev/disk/by-path/pci-0000:00:04.0-nvme-1", DiskByPath: "/dev/disk/by-path/pci-0000:00:04.0-nvme-1"},
		Network: &agentwire.Network{Mode: "static", Address: "10.77.0.50/24", Gateway: "10.77.0.1", DNS: []string{"10.77.0.1"}},
	}
	// The first-boot URL carries a secret drawn at approval.
	if !strings.HasPrefix(r.d.FirstBootURL, e.ts.URL+"/api/v1/first-boot/"+macA+"/") {
		t.Fatalf("first-boot URL %q", r.d.FirstBootURL)
	}
	want.FirstBootURL = r.d.FirstBootURL
	if r.err != nil || !equalDecision(r.d, want) {
		t.Fatalf("decision after approval: %+v %v\nwant %+v", r.d, r.err, want)
	}
	// Asked again, the answer is the same and immediate.
	if d, err := c.Decision(ctx, 30*time.Second); err != nil || !equalDecision(d, want) {
		t.Fatalf("decision read again: %+v %v", d, err)
	}

	if err := c.Progress(ctx, 42, "writing image to /dev/nvme0n1"); err != nil {
		t.Fatalf("progress: %v", err)
	}
	if m := e.machine(macA); m.State != store.StateProvisioning || m.Progress != 42 || m.Message != "writing image to /dev/nvme0n1" {
		t.Fatalf("after progress: %s %d %q", m.State, m.Progress, m.Message)
	}
	if err := c.Result(ctx, true, "image written and verified"); err != nil {
		t.Fatalf("result: %v", err)
	}
	if m := e.machine(macA); m.State != store.StateProvisioning || !m.Installed || m.Progress != 100 || m.Message != "image written and verified" {
		t.Fatalf("after result: %s installed %v %d %q", m.State, m.Installed, m.Progress, m.Message)
	}
	// The install ended the boot session: its key can report no more.
	err = c.Progress(ctx, 50, "after the end")
	var ae *discovery.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized || !discovery.IsPermanent(err) {
		t.Fatalf("progress of an installed machine: %v, want a permanent 401", err)
	}
}

// TestContractAgentRun runs the whole agent (discovery-os/agent.Agent):
// it registers, shows its token, long-polls, and on a netboot approval
// reports success and reboots.
func TestContractAgentRun(t *testing.T) {
	e := newEnv(t)
	e.setup()
	a := e.discover(macB)
	con := &tokenConsole{shown: make(chan string, 1)}
	rebooted := make(chan struct{})
	ag := &discovery.Agent{
		API:       a.client(),
		MAC:       macB,
		Inventory: testInventory(macB),
		Console:   con,
		PollWait:  time.Second,
		Reboot:    func() error { close(rebooted); return nil },
		PowerOff:  func() error { t.Error("powered off"); return nil },
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()

	var shown string
	select {
	case shown = <-con.shown:
	case err := <-done:
		t.Fatalf("agent ended before showing a token: %v", err)
	case <-ctx.Done():
		t.Fatal("no token on the console")
	}
	// Approval needs the machine to be inventoried, which the agent's
	// registration makes it.
	for e.machine(macB).State != store.StateInventoried {
		select {
		case <-ctx.Done():
			t.Fatalf("never registered: %s", e.machine(macB).State)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if _, err := e.admin.Approve(ctx, macB, api.ApproveRequest{Token: shown, Cluster: "rack2", Hostname: "node-02"}); err != nil {
		t.Fatalf("approve with the token from the console: %v", err)
	}
	select {
	case <-rebooted:
	case <-ctx.Done():
		t.Fatal("the agent did not reboot after a netboot approval")
	}
	if err := <-done; err != nil {
		t.Fatalf("agent: %v", err)
	}
	if m := e.machine(macB); m.State != store.StateReady || m.Hostname != "node-02" {
		t.Errorf("after the agent's report: %s %q", m.State, m.Hostname)
	}
}

// tokenConsole hands the first token the agent shows to the test, as the
// administrator reads it off the screen.
type tokenConsole struct {
	mu    sync.Mutex
	s     discovery.Screen
	shown chan string
}

func (c *tokenConsole) Update(fn func(*discovery.Screen)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	prev := c.s.Token
	fn(&c.s)
	if c.s.Token != "" && c.s.Token != prev {
		select {
		case c.shown <- c.s.Token:
		default:
		}
	}
}

func equalDecision(a, b agentwire.Decision) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
