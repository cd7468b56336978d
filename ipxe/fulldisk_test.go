package ipxe

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/bootgrant"
	"github.com/foundry-appliance/foundry/lifecycle"
	"github.com/foundry-appliance/foundry/store"
	"github.com/foundry-appliance/foundry/test/syncbuf"
)

// fullDiskFixture is newFixture on a store whose free space the test sets,
// with the real grant table.
func fullDiskFixture(t *testing.T) (*fixture, *atomic.Int64, *bootgrant.Table) {
	t.Helper()
	free := new(atomic.Int64)
	free.Store(1 << 40)
	db, err := store.Open(t.TempDir(), store.Options{SpaceReserve: 4 << 20,
		FreeSpace: func(string) (int64, error) { return free.Load(), nil }})
	if err != nil {
		t.Fatal(err)
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
		{MAC: macMenu, State: store.StateReady, Hostname: "web01", Cluster: "lab", Profile: "debian"},
	} {
		if _, err := db.CreateMachine(m, a); err != nil {
			t.Fatal(err)
		}
	}
	grants := &bootgrant.Table{}
	logs := &syncbuf.Buffer{}
	srv := &Server{Store: db, BaseURL: testBase, Logger: slog.New(slog.NewTextHandler(logs, nil)), FullDiskRetry: 7 * time.Second,
		Segments: map[string]lifecycle.Segment{"lab": {Discovery: true}}, Grants: grants}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &fixture{db: db, srv: srv, http: hs, logs: logs}, free, grants
}

// A discovery boot needs a nonce, a write: on a full data disk it gets a
// 503 whose Retry-After makes iPXE ask again, and a script saying why,
// with its DHCP grant kept for that retry; once space is freed the retry
// gets its discovery script. A production boot writes nothing and is
// served all along.
func TestServeDiscoveryOnFullDisk(t *testing.T) {
	f, free, grants := fullDiskFixture(t)
	grants.Grant(macDiscovered, netip.MustParseAddr("127.0.0.1"))
	free.Store(1 << 20)

	code, h, body := f.do(t, "GET", "/boot/"+macDiscovered)
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") != "7" {
		t.Errorf("discovery on a full disk: %d, Retry-After %q; want 503 and 7", code, h.Get("Retry-After"))
	}
	if !strings.HasPrefix(body, "#!ipxe\n") || !strings.Contains(body, "data disk of the appliance is full") ||
		!strings.Contains(body, macDiscovered) || strings.Contains(body, "foundry.nonce") {
		t.Errorf("discovery on a full disk, script:\n%s", body)
	}
	if problems := lint(body); len(problems) > 0 {
		t.Errorf("the full-disk script does not lint: %v\n%s", problems, body)
	}
	if !strings.Contains(f.logs.String(), "data disk is full") {
		t.Errorf("the refusal is not logged:\n%s", f.logs.String())
	}
	if code, _, body := f.do(t, "GET", "/boot/"+macMenu); code != http.StatusOK || !strings.Contains(body, "production boot of web01") {
		t.Errorf("production boot on a full disk: %d\n%s", code, body)
	}

	free.Store(1 << 40)
	code, _, body = f.do(t, "GET", "/boot/"+macDiscovered)
	if code != http.StatusOK {
		t.Fatalf("discovery once space is freed: %d\n%s", code, body)
	}
	if mac, err := f.db.CheckNonce(nonceOf(t, body)); err != nil || mac != macDiscovered {
		t.Errorf("the retry's nonce: %q, %v; want one for %s (the grant kept through the refusal)", mac, err, macDiscovered)
	}
}

// A nonce write that the disk refuses after the store said it had room
// (another writer filled it in between) is answered the same way.
func TestServeNonceRefusedByFullDisk(t *testing.T) {
	full := fmt.Errorf("issue nonce: %w: 1 MiB free", store.ErrNoSpace)
	srv := &Server{Store: brokenStore{machine: store.Machine{MAC: macDiscovered, State: store.StateDiscovered}, nonceErr: full},
		BaseURL: testBase, Segments: map[string]lifecycle.Segment{"": {Discovery: true}}, Grants: anyGrant{}}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/boot/"+macDiscovered, nil)
	srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "30" || !strings.Contains(rec.Body.String(), "data disk of the appliance is full") {
		t.Errorf("nonce refused by a full disk: %d, Retry-After %q\n%s", rec.Code, rec.Header().Get("Retry-After"), rec.Body.String())
	}
}
