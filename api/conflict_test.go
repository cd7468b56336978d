package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/api/client"
	"github.com/foundry-appliance/foundry/discovery-os/inventory"
	"github.com/foundry-appliance/foundry/store"
)

// spoofInventory is what a host that spoofs macA reports: one disk, at a
// by-path the genuine machine does not have.
func spoofInventory() inventory.Inventory {
	inv := testInventory(macA)
	inv.System.Serial = "SPOOF"
	inv.Disks = []inventory.Disk{{Name: "sda", Path: "/dev/sda", SizeBytes: 1 << 30, ByPath: "pci-0000:00:09.0-ata-1"}}
	return inv
}

// A second registration for one MAC is a registration of its own: it
// replaces nothing of the first, is shown as a MAC conflict, and approval
// binds to the registration whose token the administrator typed, with
// that registration's inventory frozen into the machine. Only the bound
// session is told the decision's details and may report.
func TestMACConflictApprovalBindsByToken(t *testing.T) {
	e := newEnv(t)
	e.setup()
	ctx := context.Background()
	genuine := e.inventoried(macA)
	e.clock.Add(time.Second)
	spoofer := genuine.newBoot()
	if code, body := spoofer.register(spoofInventory()); code != 200 {
		t.Fatalf("spoofed registration: %d %s", code, body)
	}
	m, err := e.admin.GetMachine(ctx, macA)
	if err != nil {
		t.Fatal(err)
	}
	if !m.MACConflict || len(m.Registrations) != 2 || m.Registrations[0].ID != genuine.session() || m.Registrations[1].ID != spoofer.session() {
		t.Fatalf("conflict not shown: conflict=%v %+v", m.MACConflict, m.Registrations)
	}
	if m.Registrations[0].Summary == nil || m.Registrations[1].Summary == nil || m.Registrations[1].Summary.Serial != "SPOOF" ||
		m.Registrations[0].Summary.Serial == "SPOOF" || m.Registrations[0].Summary.Disks != 3 || *m.Registrations[1].Summary != m.Summary {
		t.Fatalf("registration summaries: %+v %+v; machine %+v", m.Registrations[0].Summary, m.Registrations[1].Summary, m.Summary)
	}
	if l, err := e.admin.ListMachines(ctx, client.ListOptions{}); err != nil || len(l.Items) != 1 || !l.Items[0].MACConflict || len(l.Items[0].Registrations) != 2 {
		t.Fatalf("list: %+v %v", l, err)
	}
	// The genuine registration's token still works: the spoofer replaced
	// neither its hash nor its failure count.
	check, err := e.admin.VerifyToken(ctx, macA, genuine.tok.Value)
	if err != nil || check.Registration != genuine.session() {
		t.Fatalf("verify genuine token: %+v %v", check, err)
	}
	// The spoofer's own token would bind the spoofer: the token decides.
	if check, err := e.admin.VerifyToken(ctx, macA, spoofer.tok.Value); err != nil || check.Registration != spoofer.session() {
		t.Fatalf("verify spoofer token: %+v %v", check, err)
	}
	// The genuine disk is chosen from the genuine inventory, although the
	// machine shows the spoofer's (the latest) until approval.
	got, err := e.admin.Approve(ctx, macA, api.ApproveRequest{Token: genuine.tok.Value, Cluster: "rack1", Hostname: "node-01", SSHKeys: []string{goodKey},
		Disk: "/dev/disk/by-path/pci-0000:00:1f.2-ata-1"})
	if err != nil {
		t.Fatalf("approve genuine: %v", err)
	}
	if got.State != "approved" || !got.Registrations[0].Bound || got.Registrations[1].Bound {
		t.Fatalf("approved: %s %+v", got.State, got.Registrations)
	}
	stored := e.machine(macA)
	if stored.Session != genuine.session() || strings.Contains(string(stored.Inventory), "SPOOF") {
		t.Fatalf("bound %s, inventory %s", stored.Session, stored.Inventory)
	}
	// The spoofer waits, learns nothing, and cannot report.
	code, body := spoofer.call(http.MethodGet, "/agent/decision", nil)
	if d := decisionOf(t, body); code != 200 || d.Decision != "wait" || d.Hostname != "" || d.Image != nil || len(d.SSHKeys) != 0 || d.Message == "" {
		t.Fatalf("spoofer's decision: %d %s", code, body)
	}
	for _, c := range []struct {
		path string
		body any
	}{{"/agent/progress", map[string]any{"percent": 50}}, {"/agent/result", map[string]any{"success": true}}, {"/agent/result", map[string]any{"success": false, "message": "x"}}} {
		if code, body := spoofer.call(http.MethodPost, c.path, c.body); code != http.StatusForbidden {
			t.Fatalf("spoofer %s: %d %s", c.path, code, body)
		}
	}
	if m := e.machine(macA); m.State != store.StateApproved || m.Progress != 0 {
		t.Fatalf("the spoofer's reports changed the machine: %s %d", m.State, m.Progress)
	}
	// A further registration after approval leaves the frozen inventory.
	again := spoofer.newBoot()
	if code, body := again.register(spoofInventory()); code != 200 {
		t.Fatalf("register after approval: %d %s", code, body)
	}
	if m := e.machine(macA); strings.Contains(string(m.Inventory), "SPOOF") || m.Approval.Disk != "/dev/disk/by-path/pci-0000:00:1f.2-ata-1" {
		t.Fatalf("inventory after approval changed: %s", m.Inventory)
	}
	// The genuine agent gets the image with the approved stable path.
	_, body = genuine.call(http.MethodGet, "/agent/decision", nil)
	if d := decisionOf(t, body); d.Decision != "image" || d.Hostname != "node-01" || d.Image.Disk != "/dev/disk/by-path/pci-0000:00:1f.2-ata-1" {
		t.Fatalf("genuine decision: %s", body)
	}
	if code, body := genuine.call(http.MethodPost, "/agent/progress", map[string]any{"percent": 10}); code != 200 {
		t.Fatalf("genuine progress: %d %s", code, body)
	}
	// Ending the spoofer's registrations ends the conflict and their calls.
	for _, s := range []*agent{spoofer, again} {
		if _, err := e.admin.EndRegistration(ctx, macA, s.session()); err != nil {
			t.Fatalf("end registration: %v", err)
		}
		if code, _ := s.call(http.MethodGet, "/agent/decision", nil); code != http.StatusUnauthorized {
			t.Fatalf("ended registration still calls: %d", code)
		}
	}
	if m, _ := e.admin.GetMachine(ctx, macA); m.MACConflict || len(m.Registrations) != 1 {
		t.Fatalf("after ending: %v %+v", m.MACConflict, m.Registrations)
	}
	if _, err := e.admin.EndRegistration(ctx, macA, spoofer.session()); client.StatusOf(err) != 404 {
		t.Fatalf("ending an ended registration: %v", err)
	}
}

// Ending the newest registration before approval puts the machine's
// inventory back to the newest remaining one's.
func TestEndingARegistrationRestoresTheInventory(t *testing.T) {
	e := newEnv(t)
	e.setup()
	genuine := e.inventoried(macA)
	e.clock.Add(time.Second)
	spoofer := genuine.newBoot()
	if code, body := spoofer.register(spoofInventory()); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	if !strings.Contains(string(e.machine(macA).Inventory), "SPOOF") {
		t.Fatal("the newest registration's inventory is not shown")
	}
	if _, err := e.admin.EndRegistration(context.Background(), macA, spoofer.session()); err != nil {
		t.Fatal(err)
	}
	if inv := string(e.machine(macA).Inventory); strings.Contains(inv, "SPOOF") || !strings.Contains(inv, "S-"+macA) {
		t.Fatalf("inventory after ending the spoofer's registration: %s", inv)
	}
}

// A disk that only the spoofer's inventory has is refused when approval
// binds to the genuine registration.
func TestApprovalDiskFromBoundRegistration(t *testing.T) {
	e := newEnv(t)
	e.setup()
	genuine := e.inventoried(macA)
	spoofer := genuine.newBoot()
	if code, body := spoofer.register(spoofInventory()); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	_, err := e.admin.Approve(context.Background(), macA, api.ApproveRequest{Token: genuine.tok.Value, Cluster: "rack1", Disk: "/dev/disk/by-path/pci-0000:00:09.0-ata-1"})
	var ce *client.Error
	if !asErr(err, &ce) || ce.StatusCode != 422 || !hasLocation(ce.Problem, "body.disk") {
		t.Fatalf("approval with the spoofer's disk: %v", err)
	}
	if e.machine(macA).State != store.StateInventoried {
		t.Fatal("machine changed")
	}
}

// The lockout is per registration: wrong tokens count against every
// registration they were compared with, and a spoofer that sends a new
// token unlocks only its own.
func TestLockoutPerRegistration(t *testing.T) {
	e := newEnv(t)
	e.setup()
	ctx := context.Background()
	genuine := e.inventoried(macA)
	spoofer := genuine.newBoot()
	if code, body := spoofer.register(spoofInventory()); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	for range 5 {
		if _, err := e.admin.Approve(ctx, macA, api.ApproveRequest{Token: "FOUNDRY-AAAA-AAAA-AAAA", Cluster: "rack1"}); client.StatusOf(err) != 422 {
			t.Fatalf("wrong token: %v", err)
		}
	}
	if _, err := e.admin.Approve(ctx, macA, api.ApproveRequest{Token: genuine.tok.Value, Cluster: "rack1"}); client.StatusOf(err) != http.StatusLocked {
		t.Fatalf("locked: %v", err)
	}
	// The spoofer's new token resets its own count, not the genuine one's.
	if code, body := spoofer.call(http.MethodPost, "/agent/token", spoofer.tokenBody()); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	for _, s := range e.sessions(macA) {
		want := 5
		if s.ID == spoofer.session() {
			want = 0
		}
		if s.Token.Failures != want {
			t.Errorf("session %s failures %d, want %d", s.ID[:8], s.Token.Failures, want)
		}
	}
	if _, err := e.admin.Approve(ctx, macA, api.ApproveRequest{Token: genuine.tok.Value, Cluster: "rack1"}); client.StatusOf(err) != 422 {
		t.Fatalf("genuine token of a locked registration: %v", err)
	}
	if e.machine(macA).State != store.StateInventoried {
		t.Fatal("a locked registration was approved")
	}
}

// Approval without the console token (the lab switch) cannot tell two
// registrations apart, so it refuses.
func TestApprovalWithoutTokenRefusesConflict(t *testing.T) {
	e := newEnv(t, func(s *api.Server) { s.AllowApprovalWithoutToken = true })
	e.setup()
	a := e.inventoried(macA)
	if code, body := a.newBoot().register(spoofInventory()); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	_, err := e.admin.Approve(context.Background(), macA, api.ApproveRequest{Cluster: "rack1"})
	if client.StatusOf(err) != http.StatusConflict || !strings.Contains(err.Error(), "MAC conflict") {
		t.Fatalf("approval without token with two registrations: %v", err)
	}
}

// A signed request seen on the wire can be neither sent again nor altered;
// a call numbered below the last is refused.
func TestSignedCallsResistReplay(t *testing.T) {
	e := newEnv(t)
	e.setup()
	a := e.inventoried(macA)
	req := a.request(http.MethodGet, "/agent/decision", nil)
	replay := req.Clone(context.Background())
	if code, body := e.send(req); code != 200 {
		t.Fatalf("first: %d %s", code, body)
	}
	if code, body := e.send(replay); code != http.StatusUnauthorized || !strings.Contains(body, "replayed") {
		t.Fatalf("replay: %d %s", code, body)
	}
	before := e.machine(macA)
	// A token body altered in flight: the digest no longer matches.
	tok := a.request(http.MethodPost, "/agent/token", a.tokenBody())
	altered := a.tokenBody()
	alteredReq := e.request(http.MethodPost, "/agent/token", altered, nil)
	alteredReq.Header = tok.Header.Clone()
	if code, body := e.send(alteredReq); code != http.StatusUnauthorized {
		t.Fatalf("altered body: %d %s", code, body)
	}
	// A path altered in flight.
	p := a.request(http.MethodPost, "/agent/progress", map[string]any{"percent": 1})
	p.URL.Path = api.Prefix + "/agent/result"
	if code, body := e.send(p); code != http.StatusUnauthorized {
		t.Fatalf("altered path: %d %s", code, body)
	}
	if after := e.machine(macA); after.Revision != before.Revision {
		t.Error("a refused call changed the machine")
	}
	// The nonce is spent: it registers no other key.
	other := &agent{e: e, mac: macA, nonce: a.nonce, key: newKey(t)}
	if code, body := other.register(testInventory(macA)); code != http.StatusUnauthorized {
		t.Fatalf("second key with a used nonce: %d %s", code, body)
	}
	if n := len(e.sessions(macA)); n != 1 {
		t.Fatalf("%d sessions", n)
	}
}
