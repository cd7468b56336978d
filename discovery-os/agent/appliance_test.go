package agent

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/foundry-appliance/foundry/agentsig"
	"github.com/foundry-appliance/foundry/agentwire"
)

// fakeAppliance implements the agent API contract of docs/architecture.md
// and records what the agent sent. Like the appliance, it verifies every
// call's signature (package agentsig) against the key the registration
// brought with the boot nonce, and refuses a call number that is not above
// every one it accepted; unlike it, it fails the test when the agent
// breaks the protocol (a missing or stray nonce header, a bad signature,
// a number used again).
type fakeAppliance struct {
	t     *testing.T
	nonce string

	mu sync.Mutex
	// key is the session's public key, set by the first registration;
	// ended makes every call of the session refused.
	key   ed25519.PublicKey
	ended bool
	// calls lists the calls verified, in the order received.
	calls      []signedCall
	registered []agentwire.AgentRegister
	tokens     []agentwire.AgentToken
	waits      []int
	progress   []int
	results    []map[string]any
	decisions  []agentwire.Decision // served in order, then "wait"
	failNext   map[string]int
	// dropNext closes the connection, without an answer, after a call to
	// the path was accepted (its number used).
	dropNext map[string]int
	// onRegister runs (under mu) after a registration is recorded.
	onRegister func()
}

// signedCall is one verified call.
type signedCall struct {
	Path  string
	Seq   uint64
	Nonce string // the NonceHeader as received
}

func newFakeAppliance(t *testing.T, decisions ...agentwire.Decision) (*fakeAppliance, *httptest.Server) {
	f := &fakeAppliance{t: t, nonce: "nonce-123", decisions: decisions, failNext: map[string]int{}, dropNext: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/agent/register", f.handle(func(w http.ResponseWriter, r *http.Request) {
		var req agentwire.AgentRegister
		if !decode(w, r, &req) {
			return
		}
		f.registered = append(f.registered, req)
		if f.onRegister != nil {
			f.onRegister()
		}
		json.NewEncoder(w).Encode(map[string]string{"state": "inventoried"})
	}))
	mux.HandleFunc("POST /api/v1/agent/token", f.handle(func(w http.ResponseWriter, r *http.Request) {
		var th agentwire.AgentToken
		if !decode(w, r, &th) {
			return
		}
		f.tokens = append(f.tokens, th)
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("GET /api/v1/agent/decision", f.handle(func(w http.ResponseWriter, r *http.Request) {
		wait, err := strconv.Atoi(r.URL.Query().Get("wait"))
		if err != nil {
			problem(w, http.StatusBadRequest, "wait must be a number")
			return
		}
		f.waits = append(f.waits, wait)
		d := agentwire.Decision{Decision: agentwire.KindWait}
		if len(f.decisions) > 0 {
			d, f.decisions = f.decisions[0], f.decisions[1:]
		}
		json.NewEncoder(w).Encode(d)
	}))
	mux.HandleFunc("POST /api/v1/agent/progress", f.handle(func(w http.ResponseWriter, r *http.Request) {
		var p agentwire.AgentProgress
		if !decode(w, r, &p) {
			return
		}
		f.progress = append(f.progress, p.Percent)
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("POST /api/v1/agent/result", f.handle(func(w http.ResponseWriter, r *http.Request) {
		var res map[string]any
		if !decode(w, r, &res) {
			return
		}
		f.results = append(f.results, res)
		w.WriteHeader(http.StatusNoContent)
	}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return f, srv
}

// handle authenticates the call, injects failures and serialises
// handlers.
func (f *fakeAppliance) handle(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		seq, ok := f.authenticate(w, r)
		if !ok {
			return
		}
		f.calls = append(f.calls, signedCall{Path: r.URL.Path, Seq: seq, Nonce: r.Header.Get(agentwire.NonceHeader)})
		if f.dropNext[r.URL.Path] > 0 {
			f.dropNext[r.URL.Path]--
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				f.t.Errorf("hijack: %v", err)
				return
			}
			conn.Close()
			return
		}
		if f.failNext[r.URL.Path] > 0 {
			f.failNext[r.URL.Path]--
			problem(w, http.StatusServiceUnavailable, "appliance is starting")
			return
		}
		h(w, r)
	}
}

// authenticate checks the call as the appliance does (under mu) and
// returns its number; a refusal is answered here.
func (f *fakeAppliance) authenticate(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	pub := f.key
	nonce := r.Header.Get(agentwire.NonceHeader)
	if r.URL.Path == agentwire.PathRegister {
		if nonce == "" {
			f.t.Errorf("registration without the %s header", agentwire.NonceHeader)
		}
		if nonce != f.nonce {
			problem(w, http.StatusUnauthorized, "unknown boot nonce")
			return 0, false
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var k struct {
			PublicKey []byte `json:"public_key"`
		}
		if json.Unmarshal(body, &k) != nil || len(k.PublicKey) != ed25519.PublicKeySize {
			f.t.Errorf("registration without a public key: %s", body)
			problem(w, http.StatusUnprocessableEntity, "no public key")
			return 0, false
		}
		if f.key != nil && !f.key.Equal(ed25519.PublicKey(k.PublicKey)) {
			problem(w, http.StatusUnauthorized, "the nonce was used with another key")
			return 0, false
		}
		pub = k.PublicKey
	} else if nonce != "" {
		f.t.Errorf("%s %s carries the boot nonce; only the registration may", r.Method, r.URL.Path)
	}
	if pub == nil || f.ended {
		problem(w, http.StatusUnauthorized, "unknown or ended boot session")
		return 0, false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		f.t.Errorf("%s %s: read body: %v", r.Method, r.URL.Path, err)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	p, err := agentsig.Verify(r, pub, body)
	if err != nil {
		f.t.Errorf("%s %s: %v", r.Method, r.URL.Path, err)
		problem(w, http.StatusUnauthorized, err.Error())
		return 0, false
	}
	if n := len(f.calls); n > 0 && p.Seq <= f.calls[n-1].Seq {
		f.t.Errorf("%s %s: call number %d after %d", r.Method, r.URL.Path, p.Seq, f.calls[n-1].Seq)
		problem(w, http.StatusUnauthorized, "call number used before")
		return 0, false
	}
	f.key = pub
	return p.Seq, true
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		problem(w, http.StatusUnprocessableEntity, err.Error())
		return false
	}
	return true
}

func problem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"title": http.StatusText(status), "status": status, "detail": detail})
}
