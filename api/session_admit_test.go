package api_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/store"
)

// A host spoofing the MAC reads the genuine registration's salt and hash
// off the wire (plain HTTP) and sends them as its own token, with its own
// key and a forged inventory. Were they accepted, the console token the
// administrator reads off the genuine machine would match the forged
// registration too. The copy is refused at registration and as a token
// replacement, without using up the spoofer's nonce; a retried genuine
// registration and a genuine new token are not copies.
func TestCopiedTokenRefused(t *testing.T) {
	e := newEnv(t)
	e.setup()
	genuine := e.discover(macA)
	body := genuine.registerBody(testInventory(macA))
	if code, out := genuine.call(http.MethodPost, "/agent/register", body); code != http.StatusOK {
		t.Fatalf("genuine registration: %d %s", code, out)
	}
	copied := body["token"].(map[string]any)

	spoofer := genuine.newBoot()
	forged := spoofer.registerBody(spoofInventory())
	forged["token"] = copied
	code, out := spoofer.call(http.MethodPost, "/agent/register", forged)
	if p := problem(t, out); code != http.StatusUnprocessableEntity || !hasLocation(p, "body.token") {
		t.Fatalf("registration with the genuine token's salt and hash: %d %s, want 422 naming body.token", code, out)
	}
	if ss := e.sessions(macA); len(ss) != 1 || ss[0].ID != genuine.session() {
		t.Fatalf("a copied token opened a session: %+v", ss)
	}
	// Only the salt, or only the hash, is as much a copy.
	for name, tok := range map[string]map[string]any{
		"salt": {"salt": copied["salt"], "hash": spoofer.tokenBody()["hash"], "expires_at": copied["expires_at"]},
		"hash": {"salt": spoofer.tokenBody()["salt"], "hash": copied["hash"], "expires_at": copied["expires_at"]},
	} {
		forged["token"] = tok
		if code, out := spoofer.call(http.MethodPost, "/agent/register", forged); code != http.StatusUnprocessableEntity {
			t.Fatalf("registration with the genuine token's %s: %d %s, want 422", name, code, out)
		}
	}
	// The refusals used nothing up: the spoofer registers with its own
	// token (a MAC conflict, as any second registration).
	if code, out := spoofer.register(spoofInventory()); code != http.StatusOK {
		t.Fatalf("the spoofer's own registration after the refusals: %d %s", code, out)
	}
	if code, out := spoofer.call(http.MethodPost, "/agent/token", copied); code != http.StatusUnprocessableEntity {
		t.Fatalf("token replacement with the genuine token's copy: %d %s, want 422", code, out)
	}
	for _, s := range e.sessions(macA) {
		if s.ID == spoofer.session() && bytes.Equal(s.Token.Hash, copied["hash"].([]byte)) {
			t.Fatal("the spoofer's session holds the genuine hash")
		}
	}

	// The genuine agent's retry of its registration and its next token
	// are its own.
	if code, out := genuine.call(http.MethodPost, "/agent/register", body); code != http.StatusOK {
		t.Fatalf("the genuine registration sent again: %d %s", code, out)
	}
	if code, out := genuine.call(http.MethodPost, "/agent/token", genuine.tokenBody()); code != http.StatusOK {
		t.Fatalf("the genuine agent's new token: %d %s", code, out)
	}
	m, err := e.admin.Approve(context.Background(), macA, api.ApproveRequest{Token: genuine.tok.Value, Cluster: "rack1"})
	if err != nil || e.machine(macA).Session != genuine.session() {
		t.Fatalf("approval with the genuine token: %+v %v", m, err)
	}
}

// A spoofer that opens sessions until the MAC has store.MaxSessions cannot
// end the genuine one while its agent is active: the next registration is
// refused (409, which an agent retries) while every session it could end
// is active. Once the spoofer's sessions are quiet, a new registration
// ends the quietest of them, not the active genuine one.
func TestActiveSessionsAreNotEnded(t *testing.T) {
	e := newEnv(t)
	e.setup()
	genuine := e.inventoried(macA)
	for range store.MaxSessions - 1 {
		if code, out := genuine.newBoot().register(spoofInventory()); code != http.StatusOK {
			t.Fatalf("spoofed registration: %d %s", code, out)
		}
	}
	e.clock.Add(30 * time.Second)
	ninth := genuine.newBoot()
	code, out := ninth.register(spoofInventory())
	if code != http.StatusConflict {
		t.Fatalf("a ninth registration while all eight are active: %d %s, want 409", code, out)
	}
	if ss := e.sessions(macA); len(ss) != store.MaxSessions || !hasSession(ss, genuine.session()) || hasSession(ss, ninth.session()) {
		t.Fatalf("the refused registration changed the sessions: %d", len(ss))
	}

	// Three minutes on, the genuine agent has kept polling; the spoofer's
	// sessions have not. The ninth registration (its nonce unused) now
	// replaces the quietest spoofed session.
	e.clock.Add(3 * time.Minute)
	if code, out := genuine.call(http.MethodGet, "/agent/decision", nil); code != http.StatusOK {
		t.Fatalf("genuine decision: %d %s", code, out)
	}
	if code, out := ninth.register(spoofInventory()); code != http.StatusOK {
		t.Fatalf("a ninth registration once the others are quiet: %d %s", code, out)
	}
	if ss := e.sessions(macA); len(ss) != store.MaxSessions || !hasSession(ss, genuine.session()) || !hasSession(ss, ninth.session()) {
		t.Fatalf("after the ninth: %d sessions, want %d with the genuine and the ninth", len(ss), store.MaxSessions)
	}
}

func hasSession(ss []store.Session, id string) bool {
	for _, s := range ss {
		if s.ID == id {
			return true
		}
	}
	return false
}
