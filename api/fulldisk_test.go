package api_test

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/store"
)

// fullDiskReserve is the space the store of newFullDiskEnv keeps back.
const fullDiskReserve = 4 << 20

// newFullDiskEnv is newEnv on a store whose free space the test sets
// (free, in bytes; plenty to start with).
func newFullDiskEnv(t *testing.T, configure ...func(*api.Server)) (*env, *atomic.Int64) {
	t.Helper()
	free := new(atomic.Int64)
	free.Store(1 << 40)
	return newSpaceEnv(t, func(string) (int64, error) { return free.Load(), nil }, configure...), free
}

// newSpaceEnv is newEnv on a store that reads its free space from free
// and keeps fullDiskReserve.
func newSpaceEnv(t *testing.T, free func(string) (int64, error), configure ...func(*api.Server)) *env {
	t.Helper()
	e := newEnvWith(t, store.Options{SpaceReserve: fullDiskReserve, FreeSpace: free}, configure...)
	t.Cleanup(e.srv.Close) // first: stops the imports before the store closes
	return e
}

// isFullDisk reports whether an answer is the store's full-disk refusal:
// 507 with its message, not an authentication failure.
func isFullDisk(t *testing.T, code int, body string) bool {
	t.Helper()
	p := problem(t, body)
	return code == http.StatusInsufficientStorage && p.Status == http.StatusInsufficientStorage &&
		strings.Contains(p.Detail, "data disk full") && strings.Contains(p.Detail, "writes resume once")
}

// Every signed agent call stores its call number before it is admitted.
// On a full disk that write is refused: the call answers 507 with the
// store's message (the agent retries 5xx), not 500 "authentication
// failed" and not 401 (which makes the agent give up its boot); a real
// authentication failure is still 401; the call number is not consumed.
func TestAgentCallsOnFullDisk(t *testing.T) {
	e, free := newFullDiskEnv(t)
	a := e.inventoried("52:54:00:fd:00:01")
	newcomer := e.discover("52:54:00:fd:00:02")
	if code, body := a.call(http.MethodGet, "/agent/decision", nil); code != http.StatusOK {
		t.Fatalf("decision with space: %d %s", code, body)
	}
	replay := a.request(http.MethodGet, "/agent/decision", nil) // numbered, kept for later
	if code, body := e.send(replay); code != http.StatusOK {
		t.Fatalf("decision with space: %d %s", code, body)
	}
	before, err := e.db.GetSession(a.session())
	if err != nil {
		t.Fatal(err)
	}

	free.Store(fullDiskReserve / 2)
	for _, c := range []struct {
		name, method, path string
		body               any
	}{
		{"decision", http.MethodGet, "/agent/decision", nil},
		{"progress", http.MethodPost, "/agent/progress", map[string]any{"percent": 10, "message": "writing"}},
		{"token", http.MethodPost, "/agent/token", a.tokenBody()},
	} {
		code, body := a.call(c.method, c.path, c.body)
		if !isFullDisk(t, code, body) {
			t.Errorf("%s on a full disk: %d %s; want 507 with the store's message", c.name, code, body)
		}
	}
	// The registration's session write is refused in its handler: 507 too.
	if code, body := newcomer.register(testInventory(newcomer.mac)); !isFullDisk(t, code, body) {
		t.Errorf("registration on a full disk: %d %s; want 507", code, body)
	}

	// What is not the disk's fault stays 401, with its challenge.
	if code, body := e.send(replay); code != http.StatusUnauthorized || !strings.Contains(body, "used before") {
		t.Errorf("replayed call on a full disk: %d %s; want 401", code, body)
	}
	forged := a.request(http.MethodGet, "/agent/decision", nil)
	forged.URL.RawQuery = "wait=1"
	if code, _ := e.send(forged); code != http.StatusUnauthorized {
		t.Errorf("altered call on a full disk: %d; want 401", code)
	}
	stranger := &agent{e: e, mac: a.mac, key: newKey(t)}
	req := stranger.request(http.MethodGet, "/agent/decision", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("unknown session on a full disk: %d %q; want 401 with a challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if s, err := e.db.GetSession(a.session()); err != nil || s.Seq != before.Seq {
		t.Errorf("session after refused calls: seq %d (was %d), %v; a refused call must not use up its number", s.Seq, before.Seq, err)
	}

	free.Store(1 << 40)
	if code, body := a.call(http.MethodGet, "/agent/decision", nil); code != http.StatusOK {
		t.Errorf("decision once space is back: %d %s", code, body)
	}
	if code, body := newcomer.register(testInventory(newcomer.mac)); code != http.StatusOK {
		t.Errorf("registration once space is back: %d %s", code, body)
	}
}
