package api_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/agentsig"
	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/api/client"
	"github.com/foundry-appliance/foundry/discovery-os/inventory"
	"github.com/foundry-appliance/foundry/discovery-os/token"
	"github.com/foundry-appliance/foundry/store"
)

// clock is a settable time source shared by the store and the server.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is a real server (httptest over Server.Handler) on a real Badger
// database in a temporary directory, with an admin and a viewer token.
type env struct {
	t      *testing.T
	db     *store.DB
	srv    *api.Server
	ts     *httptest.Server
	clock  *clock
	admin  *client.Client
	viewer *client.Client
	// adminToken is the admin's bearer secret.
	adminToken string
}

var labSegment = api.SegmentInfo{
	Name: "lab", Interface: "br0", Subnet: netip.MustParsePrefix("10.77.0.0/24"),
	RangeStart: netip.MustParseAddr("10.77.0.100"), RangeEnd: netip.MustParseAddr("10.77.0.200"),
	Router: netip.MustParseAddr("10.77.0.1"), DNS: []netip.Addr{netip.MustParseAddr("10.77.0.1")},
	Mode: "dhcp", Discovery: true,
}

func newEnv(t *testing.T, configure ...func(*api.Server)) *env {
	t.Helper()
	return newEnvWith(t, store.Options{}, configure...)
}

// newEnvWith is newEnv on a store opened with opt (its clock is the env's).
func newEnvWith(t *testing.T, opt store.Options, configure ...func(*api.Server)) *env {
	t.Helper()
	clk := &clock{now: time.Now().UTC().Truncate(time.Second)}
	opt.Now = clk.Now
	db, err := store.Open(t.TempDir(), opt)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	srv := &api.Server{Store: db, Segments: []api.SegmentInfo{labSegment}, Now: clk.Now, KeepAlive: time.Hour}
	for _, f := range configure {
		f(srv)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.CloseClientConnections()
		ts.Close()
		db.Close()
	})
	e := &env{t: t, db: db, srv: srv, ts: ts, clock: clk}
	e.adminToken = e.token("admin", store.RoleAdmin)
	e.admin = &client.Client{BaseURL: ts.URL, Token: e.adminToken}
	e.viewer = &client.Client{BaseURL: ts.URL, Token: e.token("viewer", store.RoleViewer)}
	return e
}

// token stores a new API token and returns its secret.
func (e *env) token(name string, role store.Role) string {
	e.t.Helper()
	secret, hash, err := api.NewAPIToken()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.db.CreateAPIToken(store.APIToken{ID: "id-" + name, Name: name, Role: role, Hash: hash}); err != nil {
		e.t.Fatalf("create token: %v", err)
	}
	return secret
}

// testInventory has three disks: sda (SATA), a removable USB stick, and
// an NVMe disk whose by-path sorts first, so the default disk is not sda.
func testInventory(mac string) inventory.Inventory {
	return inventory.Inventory{
		SchemaVersion: inventory.SchemaVersion,
		System:        inventory.System{Vendor: "QEMU", Product: "Standard PC (i440FX + PIIX, 1996)", Serial: "S-" + mac},
		CPU:           inventory.CPU{Model: "QEMU Virtual CPU", Sockets: 1, Cores: 2, Threads: 2},
		Memory:        inventory.Memory{TotalBytes: 2 << 30},
		Disks: []inventory.Disk{
			{Name: "sda", Path: "/dev/sda", SizeBytes: 8 << 30, ByPath: "pci-0000:00:1f.2-ata-1", Rotational: true},
			{Name: "sdb", Path: "/dev/sdb", SizeBytes: 16 << 30, ByPath: "pci-0000:00:01.2-usb-0:1:1.0-scsi-0:0:0:0", Removable: true},
			{Name: "nvme0n1", Path: "/dev/nvme0n1", SizeBytes: 64 << 30, ByPath: "pci-0000:00:04.0-nvme-1"},
		},
		NICs: []inventory.NIC{{Name: "ens3", MAC: mac, Link: true}},
	}
}

// agent is one simulated discovery agent: one boot's nonce and key.
type agent struct {
	e     *env
	mac   string
	nonce string
	key   ed25519.PrivateKey
	seq   atomic.Uint64
	tok   token.Token
}

// newKey is a fresh boot key.
func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// session is the ID of the agent's boot session (its key's).
func (a *agent) session() string { return agentsig.KeyID(a.key.Public().(ed25519.PublicKey)) }

// discover creates a discovered machine (as DHCP would) and its boot nonce.
func (e *env) discover(mac string) *agent {
	e.t.Helper()
	_, err := e.db.CreateMachine(store.Machine{
		MAC: mac, State: store.StateDiscovered, Hostname: "discovered-" + mac[9:11] + mac[12:14] + mac[15:17],
		Temporary: true, ExpiresAt: e.clock.Now().Add(24 * time.Hour), Segment: "lab",
	}, store.Audit{Actor: "dhcp", Action: "discover"})
	if err != nil {
		e.t.Fatalf("create machine: %v", err)
	}
	nonce, err := e.db.IssueNonce(mac, 2*time.Hour)
	if err != nil {
		e.t.Fatalf("issue nonce: %v", err)
	}
	return &agent{e: e, mac: mac, nonce: nonce, key: newKey(e.t)}
}

// newBoot is the agent of the machine's next boot: the nonce its DHCP
// exchange and discovery script would give it, and a new key.
func (a *agent) newBoot() *agent {
	a.e.t.Helper()
	nonce, err := a.e.db.IssueNonce(a.mac, 2*time.Hour)
	if err != nil {
		a.e.t.Fatalf("issue nonce: %v", err)
	}
	return &agent{e: a.e, mac: a.mac, nonce: nonce, key: newKey(a.e.t)}
}

// inventoried discovers mac and registers it with a fresh token.
func (e *env) inventoried(mac string) *agent {
	e.t.Helper()
	a := e.discover(mac)
	if code, body := a.register(testInventory(mac)); code != http.StatusOK {
		e.t.Fatalf("register: %d %s", code, body)
	}
	return a
}

func (a *agent) tokenBody() map[string]any {
	a.e.t.Helper()
	tok, err := token.New(rand.Reader, a.e.clock.Now())
	if err != nil {
		a.e.t.Fatal(err)
	}
	salt, err := token.NewSalt(rand.Reader)
	if err != nil {
		a.e.t.Fatal(err)
	}
	a.tok = tok
	return map[string]any{"salt": salt, "hash": token.Hash(tok.Value, salt), "iterations": token.Iterations, "expires_at": tok.ExpiresAt}
}

// tokenBodyCount is tokenBody with its hash made with n PBKDF2 iterations
// and n sent as its count; n == 0 sends no count and hashes with the legacy
// count, as agents did before they sent one.
func (a *agent) tokenBodyCount(n int) map[string]any {
	a.e.t.Helper()
	body := a.tokenBody()
	body["hash"] = token.Derive(a.tok.Value, body["salt"].([]byte), n)
	body["iterations"] = n
	if n == 0 {
		delete(body, "iterations")
	}
	return body
}

func (a *agent) register(inv inventory.Inventory) (int, string) {
	return a.call(http.MethodPost, "/agent/register", a.registerBody(inv))
}

func (a *agent) registerBody(inv inventory.Inventory) map[string]any {
	return map[string]any{"mac": a.mac, "inventory": inv, "token": a.tokenBody(), "public_key": a.key.Public()}
}

// call sends an agent request, signed with the agent's key and its next
// call number, with the nonce on the registration; it returns status and
// body.
func (a *agent) call(method, path string, body any) (int, string) {
	a.e.t.Helper()
	return a.e.send(a.request(method, path, body))
}

// request builds a signed agent request (the test may alter it after).
func (a *agent) request(method, path string, body any) *http.Request {
	a.e.t.Helper()
	req := a.e.request(method, path, body, nil)
	if strings.HasSuffix(path, "/agent/register") {
		req.Header.Set(api.NonceHeader, a.nonce)
	}
	if err := agentsig.Sign(req, a.key, a.seq.Add(1)); err != nil {
		a.e.t.Fatal(err)
	}
	return req
}

// raw sends a request to /api/v1+path with the given headers.
func (e *env) raw(method, path string, body any, headers map[string]string) (int, string) {
	e.t.Helper()
	return e.send(e.request(method, path, body, headers))
}

// request builds a request to /api/v1+path with the given headers.
func (e *env) request(method, path string, body any, headers map[string]string) *http.Request {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, e.ts.URL+api.Prefix+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return req
}

// send sends req and returns status and body.
func (e *env) send(req *http.Request) (int, string) {
	e.t.Helper()
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// machine reads the stored record (token included).
func (e *env) machine(mac string) store.Machine {
	e.t.Helper()
	m, err := e.db.GetMachine(mac)
	if err != nil {
		e.t.Fatalf("get machine %s: %v", mac, err)
	}
	return m
}

// setup creates the usual clusters and profiles.
func (e *env) setup() {
	e.t.Helper()
	ctx := context.Background()
	for _, p := range []api.ProfileCreate{
		{Name: "netboot", ProfileFields: api.ProfileFields{Kind: "netboot", Kernel: "/images/prod/vmlinuz", Initrd: "/images/prod/initrd", Cmdline: "console=ttyS0 marker=prod"}},
		{Name: "disk-image", ProfileFields: api.ProfileFields{Kind: "image", ImageURL: "/images/debian.raw.gz", ImageSHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}},
	} {
		if _, err := e.admin.CreateProfile(ctx, p); err != nil {
			e.t.Fatalf("create profile %s: %v", p.Name, err)
		}
	}
	for _, c := range []api.ClusterCreate{
		{Name: "rack1", ClusterFields: api.ClusterFields{DefaultProfile: "disk-image"}},
		{Name: "rack2", ClusterFields: api.ClusterFields{DefaultProfile: "netboot"}},
		{Name: "bare"},
	} {
		if _, err := e.admin.CreateCluster(ctx, c); err != nil {
			e.t.Fatalf("create cluster %s: %v", c.Name, err)
		}
	}
}

// problem decodes an RFC 9457 body.
func problem(t *testing.T, body string) client.Problem {
	t.Helper()
	var p client.Problem
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("not a problem document: %v: %s", err, body)
	}
	return p
}

func hasLocation(p client.Problem, loc string) bool {
	for _, d := range p.Errors {
		if d.Location == loc {
			return true
		}
	}
	return false
}

// newTestServer serves srv over httptest and returns its URL.
func newTestServer(t *testing.T, srv *api.Server) string {
	t.Helper()
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.CloseClientConnections()
		ts.Close()
	})
	return ts.URL
}

// sessions returns the live sessions of mac from the store.
func (e *env) sessions(mac string) []store.Session {
	e.t.Helper()
	ss, err := e.db.MachineSessions(mac)
	if err != nil {
		e.t.Fatalf("sessions of %s: %v", mac, err)
	}
	return ss
}
