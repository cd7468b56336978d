package ipxe

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/lifecycle"
	"github.com/foundry-appliance/foundry/store"
	"github.com/foundry-appliance/foundry/test/syncbuf"
)

const (
	macDiscovered = "52:54:00:00:00:01"
	macRejected   = "52:54:00:00:00:02"
	macMenu       = "52:54:00:00:00:03"
	macUnknown    = "52:54:00:00:00:99"
)

// anyGrant grants every request a nonce, as if each came from the machine
// right after its DHCP exchange; grant_test.go tests the real rule.
type anyGrant struct{}

func (anyGrant) Take(string, netip.Addr) bool { return true }

// fixture is a real store with one machine per interesting state, and the
// script server mounted the way the API mounts it.
type fixture struct {
	db   *store.DB
	srv  *Server
	http *httptest.Server
	logs *syncbuf.Buffer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	a := store.Audit{Actor: "test", Action: "setup"}
	if _, err := db.CreateCluster(store.Cluster{Name: "lab"}, a); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateProfile(*profiles["debian"], a); err != nil {
		t.Fatal(err)
	}
	for _, m := range []store.Machine{
		{MAC: macDiscovered, State: store.StateDiscovered, Segment: "lab", Hostname: "discovered-000001", Temporary: true, ExpiresAt: time.Now().Add(time.Hour)},
		{MAC: macRejected, State: store.StateRejected, Hostname: "bad"},
		{MAC: macMenu, State: store.StateReady, Hostname: "web01", Cluster: "lab", Profile: "debian", Menu: store.BootMenu{Enabled: true}},
	} {
		if _, err := db.CreateMachine(m, a); err != nil {
			t.Fatal(err)
		}
	}
	logs := &syncbuf.Buffer{}
	srv := &Server{Store: db, BaseURL: testBase, Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Segments: map[string]lifecycle.Segment{"lab": {Discovery: true}, "prod": {}}, Grants: anyGrant{}}
	mux := http.NewServeMux()
	mux.Handle("/boot/", srv)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return &fixture{db: db, srv: srv, http: hs, logs: logs}
}

func (f *fixture) do(t *testing.T, method, path string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.http.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := f.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

var nonceRE = regexp.MustCompile(`foundry\.nonce=(\S+)`)

func nonceOf(t *testing.T, script string) string {
	t.Helper()
	m := nonceRE.FindStringSubmatch(script)
	if m == nil {
		t.Fatalf("no nonce in\n%s", script)
	}
	return m[1]
}

func TestServeUnknownCreatesNothing(t *testing.T) {
	f := newFixture(t)
	code, h, body := f.do(t, "GET", "/boot/"+macUnknown)
	if code != http.StatusOK || !strings.Contains(body, "is not known") || !strings.HasSuffix(body, "exit 1\n") {
		t.Fatalf("status %d, body\n%s", code, body)
	}
	if ct := h.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if _, err := f.db.GetMachine(macUnknown); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetMachine after script request: %v, want ErrNotFound", err)
	}
	if ms, _ := f.db.ListMachines(); len(ms) != 3 {
		t.Errorf("%d machines after script request, want 3", len(ms))
	}
}

func TestServeDiscoveryNonce(t *testing.T) {
	f := newFixture(t)
	code, h, body := f.do(t, "GET", "/boot/"+macDiscovered)
	if code != http.StatusOK || !strings.Contains(body, "foundry.mac="+macDiscovered+" ") {
		t.Fatalf("status %d, body\n%s", code, body)
	}
	if cc := h.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	first := nonceOf(t, body)
	if mac, err := f.db.CheckNonce(first); err != nil || mac != macDiscovered {
		t.Fatalf("CheckNonce(first) = %q, %v", mac, err)
	}
	// HEAD and Preview show the script without touching the nonce.
	if code, _, _ := f.do(t, "HEAD", "/boot/"+macDiscovered); code != http.StatusOK {
		t.Errorf("HEAD status %d", code)
	}
	sc, err := f.srv.Preview(macDiscovered, ModeNormal)
	if err != nil || !strings.Contains(sc.Text, "foundry.nonce="+PreviewNonce+" ") {
		t.Errorf("Preview = %v\n%s", err, sc.Text)
	}
	if _, err := f.db.CheckNonce(first); err != nil {
		t.Fatalf("HEAD or Preview revoked the nonce: %v", err)
	}
	// The next boot gets a new nonce; the old one stays usable (a MAC keeps
	// a few unused ones, store.MaxUnusedNonces), so that a second DHCP
	// exchange for the MAC cannot strand the machine that fetched the first.
	_, _, body = f.do(t, "GET", "/boot/"+strings.ToUpper(strings.ReplaceAll(macDiscovered, ":", "-")))
	second := nonceOf(t, body)
	if second == first {
		t.Fatal("second render reused the nonce")
	}
	if !strings.Contains(body, "foundry.mac="+macDiscovered+" ") {
		t.Errorf("MAC not normalised:\n%s", body)
	}
	if mac, err := f.db.CheckNonce(first); err != nil || mac != macDiscovered {
		t.Errorf("CheckNonce(first) after a new render = %q, %v", mac, err)
	}
	if mac, err := f.db.CheckNonce(second); err != nil || mac != macDiscovered {
		t.Errorf("CheckNonce(second) = %q, %v", mac, err)
	}
	if strings.Contains(f.logs.String(), first) || strings.Contains(f.logs.String(), second) {
		t.Error("a nonce was logged")
	}
}

func TestServeStates(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		path, want string
	}{
		{"/boot/" + macRejected, "was rejected by an administrator"},
		{"/boot/" + macMenu, "choose --timeout 5000 --default production selected"},
		{"/boot/" + macMenu + "?mode=production", "kernel " + testBase + "/images/debian/vmlinuz initrd=initrd "},
		{"/boot/" + macMenu + "?mode=discovery", "foundry.mac=" + macMenu + " "},
		{"/boot/" + macDiscovered + "?mode=production", "foundry.mac=" + macDiscovered + " "},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			code, _, body := f.do(t, "GET", tt.path)
			if code != http.StatusOK || !strings.Contains(body, tt.want) {
				t.Fatalf("status %d, want 200 with %q in\n%s", code, tt.want, body)
			}
			if errs := lint(body); len(errs) > 0 {
				t.Errorf("served script fails lint: %v", errs)
			}
		})
	}
	// The menu's rediscover item issued a nonce the agent can use.
	_, _, body := f.do(t, "GET", "/boot/"+macMenu+"?mode=discovery")
	if mac, err := f.db.CheckNonce(nonceOf(t, body)); err != nil || mac != macMenu {
		t.Errorf("CheckNonce = %q, %v", mac, err)
	}
}

func TestServeBadRequests(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		method, path string
		want         int
	}{
		{"GET", "/boot/zz", http.StatusBadRequest},
		{"GET", "/boot/52:54:00:12:34", http.StatusBadRequest},
		{"GET", "/boot/52:54:00:12:34:56:78:9a", http.StatusBadRequest},
		{"GET", "/boot/52:54:00:12:34:56%0Ashell", http.StatusBadRequest},
		{"GET", "/boot/%24%7Bnet0%2Fmac%7D", http.StatusBadRequest},
		{"GET", "/boot/" + macDiscovered + "?mode=shell", http.StatusBadRequest},
		{"GET", "/boot/", http.StatusNotFound},
		{"GET", "/boot/" + macDiscovered + "/x", http.StatusNotFound},
		{"POST", "/boot/" + macDiscovered, http.StatusMethodNotAllowed},
		{"DELETE", "/boot/" + macDiscovered, http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			code, _, body := f.do(t, tt.method, tt.path)
			if code != tt.want {
				t.Fatalf("status %d, want %d; body\n%s", code, tt.want, body)
			}
			if code == http.StatusBadRequest && (!strings.HasPrefix(body, "#!ipxe\n") || strings.Contains(body, "shell")) {
				t.Errorf("400 body is not the safe error script:\n%s", body)
			}
		})
	}
	// A bad request issued no nonce and created nothing.
	if ms, _ := f.db.ListMachines(); len(ms) != 3 {
		t.Errorf("%d machines, want 3", len(ms))
	}
}

// brokenStore fails where a real store could (disk errors) or holds data
// the API should have refused.
type brokenStore struct {
	machine    store.Machine
	machineErr error
	nonceErr   error
}

func (b brokenStore) GetMachine(string) (store.Machine, error) { return b.machine, b.machineErr }
func (b brokenStore) GetProfile(name string) (store.Profile, error) {
	if p, ok := profiles[name]; ok {
		return *p, nil
	}
	return store.Profile{}, store.ErrNotFound
}
func (b brokenStore) IssueNonce(string, time.Duration) (string, error) { return testNonce, b.nonceErr }

func TestServeErrors(t *testing.T) {
	tests := []struct {
		name string
		st   brokenStore
	}{
		{"machine read fails", brokenStore{machineErr: errors.New("badger: disk I/O")}},
		{"nonce fails", brokenStore{machine: store.Machine{MAC: testMAC}, nonceErr: errors.New("badger: disk I/O")}},
		{"hostname injection", brokenStore{machine: store.Machine{MAC: testMAC, State: store.StateReady, Hostname: "a\nshell", Profile: "debian"}}},
		{"profile missing", brokenStore{machine: store.Machine{MAC: testMAC, State: store.StateReady, Hostname: "a", Profile: "gone"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &syncbuf.Buffer{}
			srv := &Server{Store: tt.st, BaseURL: testBase, Logger: slog.New(slog.NewTextHandler(logs, nil)),
				Segments: map[string]lifecycle.Segment{"": {Discovery: true}}, Grants: anyGrant{}}
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, httptest.NewRequest("GET", "/boot/"+testMAC, nil))
			if rec.Code != http.StatusInternalServerError {
				t.Fatalf("status %d, want 500", rec.Code)
			}
			if body := rec.Body.String(); body != ErrorScript(testMAC) {
				t.Errorf("body is not the error script:\n%s", body)
			}
			if !strings.Contains(logs.String(), "level=ERROR") {
				t.Errorf("no error logged:\n%s", logs)
			}
			if errs := lint(rec.Body.String()); len(errs) > 0 {
				t.Errorf("error script fails lint: %v", errs)
			}
		})
	}
}

func TestScriptURL(t *testing.T) {
	hw, _ := net.ParseMAC("52:54:00:AB:CD:EF")
	for _, base := range []string{"http://10.77.0.1:8080", "http://10.77.0.1:8080/"} {
		s := &Server{BaseURL: base}
		if got, want := s.ScriptURL(hw), "http://10.77.0.1:8080/boot/52:54:00:ab:cd:ef"; got != want {
			t.Errorf("ScriptURL with base %q = %q, want %q", base, got, want)
		}
	}
}
