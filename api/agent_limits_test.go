package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"testing"

	"github.com/foundry-appliance/foundry/agentsig"
	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/store"
)

// Limits as the agent API states them (api/agent.go): the register body
// takes at most half of a store record, the other calls 16 KiB.
const (
	registerLimit = store.MaxRecord / 2
	agentLimit    = 16 << 10
)

// registerBody is a register call of exactly size bytes whose inventory is
// {"a":[<shape>,<shape>,…,0]}: a shape such as "{}," costs a generic JSON
// decoder about 50 bytes of allocation per byte.
func registerBody(t *testing.T, a *agent, size int, shape string) []byte {
	t.Helper()
	tb, err := json.Marshal(a.tokenBody())
	if err != nil {
		t.Fatal(err)
	}
	pk, err := json.Marshal(a.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	head := `{"mac":"` + a.mac + `","public_key":` + string(pk) + `,"token":` + string(tb) + `,"inventory":{"a":[`
	tail := `0]}}`
	room := size - len(head) - len(tail)
	if room < 0 {
		t.Fatalf("size %d is too small", size)
	}
	fill := strings.Repeat(shape, room/len(shape)) + strings.Repeat(" ", room%len(shape))
	b := []byte(head + fill + tail)
	if len(b) != size || !json.Valid(b) {
		t.Fatalf("body of %d bytes (want %d), valid %v", len(b), size, json.Valid(b))
	}
	return b
}

// hidden hides a reader's length, so that the request is sent without a
// Content-Length, as a chunked body is.
type hidden struct{ io.Reader }

// serve runs one agent request, signed by a, through the handler in this
// goroutine and returns its status and the bytes the process allocated
// meanwhile (the signing is not counted).
func serve(h http.Handler, a *agent, path string, body io.Reader) (int, uint64) {
	req := a.signedRequest(path, body)
	rec := httptest.NewRecorder()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	h.ServeHTTP(rec, req)
	runtime.ReadMemStats(&after)
	return rec.Code, after.TotalAlloc - before.TotalAlloc
}

// minAlloc is the least allocation of nine identical requests: the measure
// is process-wide, and Badger's goroutines add noise (about 2 MiB at a
// time), never less.
func minAlloc(t *testing.T, want int, run func() (int, uint64)) uint64 {
	t.Helper()
	least := ^uint64(0)
	for range 9 {
		code, n := run()
		if code != want {
			t.Fatalf("status %d, want %d", code, want)
		}
		least = min(least, n)
	}
	return least
}

// TestAgentBodyLimits: every agent body is capped below what the store can
// keep; a body above its cap is refused with a 413 problem, before it is
// read when it declares its length, and the machine is unchanged.
func TestAgentBodyLimits(t *testing.T) {
	e := newEnv(t)
	e.setup()
	a := e.inventoried(macA)
	if registerLimit >= store.MaxRecord {
		t.Fatalf("register limit %d is not below the store's record limit %d", registerLimit, store.MaxRecord)
	}
	before := e.machine(macA)
	h := e.srv.Handler()
	for _, c := range []struct {
		path  string
		limit int
	}{
		{"/agent/register", registerLimit},
		{"/agent/token", agentLimit},
		{"/agent/progress", agentLimit},
		{"/agent/result", agentLimit},
	} {
		big := bytes.Repeat([]byte(" "), c.limit)
		for _, declared := range []bool{true, false} {
			var body io.Reader = bytes.NewReader(big)
			if !declared {
				body = hidden{body}
			}
			req := a.signedRequest(c.path, body)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Header().Get("Content-Type"), "problem+json") {
				t.Errorf("%s, %d bytes, length declared %v: %d %s", c.path, len(big), declared, rec.Code, rec.Header().Get("Content-Type"))
			}
		}
	}
	if after := e.machine(macA); after.Revision != before.Revision {
		t.Error("a refused body changed the machine")
	}
}

// TestRegisterLimitFitsTheStore: the largest register body the API accepts
// is stored, and the record still has room for the largest approval and
// message; an inventory that JSON escaping would inflate is stored as
// received too (the store keeps inventories raw, on keys of their own).
func TestRegisterLimitFitsTheStore(t *testing.T) {
	e := newEnv(t)
	a := e.discover(macA)
	h := e.srv.Handler()
	code, _ := serve(h, a, "/agent/register", bytes.NewReader(registerBody(t, a, registerLimit-1, "{},")))
	if code != http.StatusOK {
		t.Fatalf("largest register body: %d", code)
	}
	m := e.machine(macA)
	if m.State != store.StateInventoried || len(m.Inventory) < registerLimit-1024 {
		t.Fatalf("stored %s with an inventory of %d bytes", m.State, len(m.Inventory))
	}
	// An approval body is at most 64 KiB: keys and a disk path fill it.
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGt6ZmZ5b3VyLWtleS1oZXJlLXBsZWFzZS1yZXBsYWNl admin@example"
	keys := make([]string, (64<<10)/len(key))
	for i := range keys {
		keys[i] = key
	}
	_, err := e.db.UpdateMachine(macA, store.Audit{Actor: "test"}, func(m *store.Machine) error {
		m.Approval = &store.Approval{Disk: "/dev/" + strings.Repeat("d", 4000), SSHKeys: keys,
			Network: store.Network{Mode: "static", Address: netip.MustParsePrefix("10.77.0.50/24")}}
		m.Message = strings.Repeat("m", 4096)
		return nil
	})
	if err != nil {
		t.Fatalf("the largest registration leaves no room for an approval: %v", err)
	}
	b := e.discover(macB)
	code, _ = serve(h, b, "/agent/register", bytes.NewReader(registerBody(t, b, registerLimit-1, `"<>",`)))
	if code != http.StatusOK {
		t.Fatalf("inventory that escaping would inflate: %d, want 200", code)
	}
	if m := e.machine(macB); !bytes.Contains(m.Inventory, []byte(`"<>"`)) {
		t.Errorf("inventory not stored as received: %.80s", m.Inventory)
	}
}

// TestRegisterAllocation measures what one register call allocates. Before
// the generic validation pass was skipped, a 4 MiB body of [{},{},…]
// allocated about 225 MiB and a 512 KiB one about 25 MiB; now the largest
// accepted body allocates a small multiple of itself (about 5x: the read
// buffer, the raw inventory, the store's encoding), and a refused one
// almost nothing.
func TestRegisterAllocation(t *testing.T) {
	e := newEnv(t)
	a := e.discover(macA)
	h := e.srv.Handler()
	for _, shape := range []string{"{},", "[],", "0,"} {
		body := registerBody(t, a, registerLimit-1, shape)
		n := minAlloc(t, http.StatusOK, func() (int, uint64) { return serve(h, a, "/agent/register", bytes.NewReader(body)) })
		t.Logf("accepted %d-byte body of %q: %.1f MiB allocated", len(body), shape, float64(n)/(1<<20))
		if limit := uint64(16 * len(body)); n > limit {
			t.Errorf("accepted %d-byte body of %q allocated %d bytes, more than %d", len(body), shape, n, limit)
		}
	}
	huge := registerBody(t, a, 4<<20, "{},")
	n := minAlloc(t, http.StatusRequestEntityTooLarge, func() (int, uint64) { return serve(h, a, "/agent/register", bytes.NewReader(huge)) })
	t.Logf("refused 4 MiB body with its length declared: %.2f MiB allocated", float64(n)/(1<<20))
	if n > 256<<10 {
		t.Errorf("refusing a declared 4 MiB body allocated %d bytes", n)
	}
	n = minAlloc(t, http.StatusRequestEntityTooLarge, func() (int, uint64) {
		return serve(h, a, "/agent/register", hidden{bytes.NewReader(huge)})
	})
	t.Logf("refused 4 MiB body without a length: %.2f MiB allocated", float64(n)/(1<<20))
	if limit := uint64(4 * registerLimit); n > limit {
		t.Errorf("refusing an undeclared 4 MiB body allocated %d bytes, more than %d", n, limit)
	}
}

// signedRequest is a POST of body to path as a's agent sends it: signed,
// with the nonce on the registration, its length declared unless body
// hides it.
func (a *agent) signedRequest(path string, body io.Reader) *http.Request {
	a.e.t.Helper()
	_, hide := body.(hidden)
	req := httptest.NewRequest(http.MethodPost, api.Prefix+path, body)
	if path == "/agent/register" {
		req.Header.Set(api.NonceHeader, a.nonce)
	}
	req.Header.Set("Content-Type", "application/json")
	if err := agentsig.Sign(req, a.key, a.seq.Add(1)); err != nil {
		a.e.t.Fatal(err)
	}
	if hide {
		req.ContentLength = -1
		req.Body = io.NopCloser(hidden{req.Body})
	}
	return req
}

// TestNoBodyBufferWithoutCredential: a caller without a live nonce or
// session is refused before its body is read, so it cannot make the
// appliance reserve the half-megabyte body buffer.
func TestNoBodyBufferWithoutCredential(t *testing.T) {
	e := newEnv(t)
	a := e.discover(macA)
	h := e.srv.Handler()
	stranger := &agent{e: e, mac: macA, nonce: "not-a-nonce", key: newKey(t)}
	body := registerBody(t, a, registerLimit-1, "{},")
	for _, tc := range []struct {
		name string
		who  *agent
		path string
	}{
		{"register with an unknown nonce", stranger, "/agent/register"},
		{"progress signed by an unknown key", stranger, "/agent/progress"},
	} {
		n := minAlloc(t, http.StatusUnauthorized, func() (int, uint64) {
			return serve(h, tc.who, tc.path, hidden{bytes.NewReader(body)})
		})
		t.Logf("%s: %.1f KiB allocated", tc.name, float64(n)/1024)
		if n > 64<<10 {
			t.Errorf("%s allocated %d bytes before refusing", tc.name, n)
		}
	}
}
