package agent

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/foundry-appliance/foundry/agentwire"
)

// fakeAppliance implements the agent API contract of docs/architecture.md
// and records what the agent sent.
type fakeAppliance struct {
	t     *testing.T
	nonce string

	mu         sync.Mutex
	registered []agentwire.AgentRegister
	tokens     []agentwire.AgentToken
	waits      []int
	progress   []int
	results    []map[string]any
	decisions  []agentwire.Decision // served in order, then "wait"
	failNext   map[string]int
	// onRegister runs (under mu) after a registration is recorded.
	onRegister func()
}

func newFakeAppliance(t *testing.T, decisions ...agentwire.Decision) (*fakeAppliance, *httptest.Server) {
	f := &fakeAppliance{t: t, nonce: "nonce-123", decisions: decisions, failNext: map[string]int{}}
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
		var p struct {
			Percent int    `json:"percent"`
			Message string `json:"message"`
		}
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

// handle checks the nonce, injects failures and serialises handlers.
func (f *fakeAppliance) handle(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if r.Header.Get(agentwire.NonceHeader) != f.nonce {
			problem(w, http.StatusUnauthorized, "unknown boot nonce")
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
