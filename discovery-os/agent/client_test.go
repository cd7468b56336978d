package agent

import (
	"context"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/agentwire"
)

// TestClientSignsEveryCall drives every call of the Client against the
// fake appliance, which verifies each signature with agentsig.Verify and
// fails the test on a stray or missing nonce header or a call number that
// does not grow. A call refused with 503 and one whose connection drops
// after the appliance accepted it are retried: the retry must be a new
// call with a new number (a reused number is refused as a replay).
func TestClientSignsEveryCall(t *testing.T) {
	app, srv := newFakeAppliance(t, agentwire.Decision{Decision: agentwire.KindWait})
	key := newKey(t)
	c := &Client{BaseURL: srv.URL, Nonce: app.nonce, Key: key, HTTP: srv.Client()}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	app.failNext[agentwire.PathRegister] = 1
	app.dropNext[agentwire.PathDecision] = 1
	reg := agentwire.AgentRegister{MAC: "52:54:00:12:34:56", Inventory: []byte(`{}`),
		PublicKey: []byte("ignored: the client sends its own key")}

	if _, err := c.Register(ctx, reg); err == nil || IsPermanent(err) {
		t.Fatalf("first registration: %v, want the injected 503", err)
	}
	if state, err := c.Register(ctx, reg); err != nil || state != "inventoried" {
		t.Fatalf("registration: %q, %v", state, err)
	}
	if err := c.Token(ctx, agentwire.AgentToken{Salt: []byte{1}, Hash: []byte{2}}); err != nil {
		t.Fatalf("token: %v", err)
	}
	if _, err := c.Decision(ctx, time.Second); err == nil {
		t.Fatal("decision: the dropped connection was not reported")
	}
	if d, err := c.Decision(ctx, time.Second); err != nil || d.Decision != agentwire.KindWait {
		t.Fatalf("decision: %+v, %v", d, err)
	}
	if err := c.Progress(ctx, 5, "writing"); err != nil {
		t.Fatalf("progress: %v", err)
	}
	if err := c.Result(ctx, true, "done"); err != nil {
		t.Fatalf("result: %v", err)
	}

	app.mu.Lock()
	defer app.mu.Unlock()
	want := []string{agentwire.PathRegister, agentwire.PathRegister, agentwire.PathToken,
		agentwire.PathDecision, agentwire.PathDecision, agentwire.PathProgress, agentwire.PathResult}
	if len(app.calls) != len(want) {
		t.Fatalf("the appliance accepted %d calls, want %d: %+v", len(app.calls), len(want), app.calls)
	}
	for i, call := range app.calls {
		if call.Path != want[i] || call.Seq != uint64(i+1) {
			t.Errorf("call %d: %s number %d, want %s number %d", i+1, call.Path, call.Seq, want[i], i+1)
		}
		if withNonce := call.Path == agentwire.PathRegister; (call.Nonce == app.nonce) != withNonce || (!withNonce && call.Nonce != "") {
			t.Errorf("call %d (%s) carried nonce header %q", i+1, call.Path, call.Nonce)
		}
	}
	if len(app.registered) != 1 || !key.Public().(ed25519.PublicKey).Equal(ed25519.PublicKey(app.registered[0].PublicKey)) {
		t.Errorf("registered public key is not the signing key's: %+v", app.registered)
	}
}

// A Client without a key sends nothing: an unsigned call would only be
// refused, and a registration without a key cannot open a session.
func TestClientNeedsKey(t *testing.T) {
	app, srv := newFakeAppliance(t)
	c := &Client{BaseURL: srv.URL, Nonce: app.nonce, HTTP: srv.Client()}
	ctx := context.Background()
	if _, err := c.Register(ctx, agentwire.AgentRegister{MAC: "m"}); err == nil || !strings.Contains(err.Error(), "no Ed25519 key") {
		t.Errorf("register without a key: %v", err)
	}
	if _, err := c.Decision(ctx, time.Second); err == nil || !strings.Contains(err.Error(), "no Ed25519 key") {
		t.Errorf("decision without a key: %v", err)
	}
	app.mu.Lock()
	defer app.mu.Unlock()
	if len(app.calls) != 0 {
		t.Errorf("calls sent without a key: %+v", app.calls)
	}
}
