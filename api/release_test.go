package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/api/client"
	"github.com/foundry-appliance/foundry/store"
)

// ready approves mac with the netboot profile (ready at once) and returns
// its agent.
func (e *env) ready(mac string) *agent {
	e.t.Helper()
	a := e.inventoried(mac)
	if _, err := e.admin.Approve(context.Background(), mac, api.ApproveRequest{Token: a.tok.Value, Cluster: "rack2"}); err != nil {
		e.t.Fatalf("approve: %v", err)
	}
	if m := e.machine(mac); m.State != store.StateReady {
		e.t.Fatalf("netboot approval: %s", m.State)
	}
	return a
}

func (e *env) post(path string, body any) (int, string) {
	e.t.Helper()
	return e.raw(http.MethodPost, path, body, map[string]string{"Authorization": "Bearer " + e.adminToken})
}

// A released machine is discovered again, and every boot session of it
// is told to wipe the disks; only a registration whose own agent reported
// the wipe can be approved, so a spoofer's report spares nothing.
func TestReleaseWipesBeforeApproval(t *testing.T) {
	e := newEnv(t)
	e.setup()
	ctx := context.Background()
	old := e.ready(macA)
	if code, body := e.post("/machines/"+macA+"/release", map[string]any{"full": true}); code != 200 {
		t.Fatalf("release: %d %s", code, body)
	}
	m := e.machine(macA)
	if m.State != store.StateDiscovered || !m.Wipe || !m.WipeFull || len(e.sessions(macA)) != 0 {
		t.Fatalf("released: %s wipe %v full %v sessions %d", m.State, m.Wipe, m.WipeFull, len(e.sessions(macA)))
	}
	if code, _ := old.call(http.MethodGet, "/agent/decision", nil); code != http.StatusUnauthorized {
		t.Fatalf("the released boot's session: %d", code)
	}
	genuine := old.newBoot()
	if code, body := genuine.register(testInventory(macA)); code != 200 {
		t.Fatalf("register: %d %s", code, body)
	}
	e.clock.Add(time.Second)
	spoofer := genuine.newBoot()
	if code, body := spoofer.register(spoofInventory()); code != 200 {
		t.Fatalf("spoofed register: %d %s", code, body)
	}
	for _, a := range []*agent{genuine, spoofer} {
		_, body := a.call(http.MethodGet, "/agent/decision", nil)
		if d := decisionOf(t, body); d.Decision != "wipe" || d.Wipe == nil || !d.Wipe.Full || d.Hostname != "" {
			t.Fatalf("decision of a released machine's boot: %s", body)
		}
	}
	// Not wiped yet: approval is refused.
	if _, err := e.admin.Approve(ctx, macA, api.ApproveRequest{Token: genuine.tok.Value, Cluster: "rack1"}); client.StatusOf(err) != http.StatusConflict {
		t.Fatalf("approval before the wipe: %v", err)
	}
	// The spoofer's report marks only its own registration.
	if code, body := spoofer.call(http.MethodPost, "/agent/result", map[string]any{"success": true, "message": "wiped 1 disk"}); code != 200 {
		t.Fatalf("spoofer's wipe report: %d %s", code, body)
	}
	if _, body := genuine.call(http.MethodGet, "/agent/decision", nil); decisionOf(t, body).Decision != "wipe" {
		t.Fatalf("the genuine boot after the spoofer's report: %s", body)
	}
	if _, err := e.admin.Approve(ctx, macA, api.ApproveRequest{Token: genuine.tok.Value, Cluster: "rack1"}); client.StatusOf(err) != http.StatusConflict {
		t.Fatalf("approval of the genuine registration after only the spoofer wiped: %v", err)
	}
	if code, body := genuine.call(http.MethodPost, "/agent/result", map[string]any{"success": true, "message": "wiped 3 disks"}); code != 200 {
		t.Fatalf("genuine wipe report: %d %s", code, body)
	}
	if _, body := genuine.call(http.MethodGet, "/agent/decision", nil); decisionOf(t, body).Decision != "wait" {
		t.Fatalf("after the wipe: %s", body)
	}
	got, err := e.admin.Approve(ctx, macA, api.ApproveRequest{Token: genuine.tok.Value, Cluster: "rack1"})
	if err != nil || got.State != "approved" {
		t.Fatalf("approval after the wipe: %+v %v", got, err)
	}
	if m := e.machine(macA); m.Wipe || m.Session != genuine.session() {
		t.Fatalf("after approval: wipe %v session %s", m.Wipe, m.Session)
	}
	audit, err := e.admin.ListAudit(ctx, client.AuditOptions{MAC: macA, Action: "wiped"})
	if err != nil || len(audit.Items) != 2 {
		t.Fatalf("wipe audit: %+v %v", audit, err)
	}
}

// A release that asks for the drives' own erase carries it to every boot's
// wipe decision and shows it pending; approval clears it with the wipe.
func TestReleaseSecureErase(t *testing.T) {
	e := newEnv(t)
	e.setup()
	ctx := context.Background()
	old := e.ready(macA)
	got, err := e.admin.ReleaseWith(ctx, macA, api.ReleaseRequest{SecureErase: true})
	if err != nil || got.Wipe == nil || !got.Wipe.SecureErase || got.Wipe.Full {
		t.Fatalf("release: %+v %v", got.Wipe, err)
	}
	a := old.newBoot()
	if code, body := a.register(testInventory(macA)); code != 200 {
		t.Fatalf("register: %d %s", code, body)
	}
	_, body := a.call(http.MethodGet, "/agent/decision", nil)
	if d := decisionOf(t, body); d.Decision != "wipe" || d.Wipe == nil || !d.Wipe.Secure || d.Wipe.Full {
		t.Fatalf("decision: %s", body)
	}
	if code, body := a.call(http.MethodPost, "/agent/result", map[string]any{"success": true, "message": "wiped 1 disks (the drive's secure erase: nvme0n1)"}); code != 200 {
		t.Fatalf("wipe report: %d %s", code, body)
	}
	if _, err := e.admin.Approve(ctx, macA, api.ApproveRequest{Token: a.tok.Value, Cluster: "rack2"}); err != nil {
		t.Fatal(err)
	}
	if m := e.machine(macA); m.Wipe || m.WipeSecure {
		t.Fatalf("after approval: wipe %v secure %v", m.Wipe, m.WipeSecure)
	}
	audit, err := e.admin.ListAudit(ctx, client.AuditOptions{MAC: macA, Action: "release"})
	if err != nil || len(audit.Items) != 1 || !strings.Contains(audit.Items[0].Detail, "secure erase") {
		t.Fatalf("release audit: %+v %v", audit, err)
	}
}

// Redeploy keeps the approval; the new boot gets nothing until the
// administrator binds it with its console token, and then the install.
func TestRedeployAndBind(t *testing.T) {
	e := newEnv(t)
	e.setup()
	old := e.ready(macA)
	approvedHost := e.machine(macA).Hostname
	if code, body := e.post("/machines/"+macA+"/redeploy", map[string]any{"profile": "nope"}); code != 422 {
		t.Fatalf("redeploy to a missing profile: %d %s", code, body)
	}
	if code, body := e.post("/machines/"+macA+"/redeploy", map[string]any{"profile": "disk-image"}); code != 200 {
		t.Fatalf("redeploy: %d %s", code, body)
	}
	m := e.machine(macA)
	if m.State != store.StateApproved || m.Profile != "disk-image" || m.Session != "" || m.Hostname != approvedHost {
		t.Fatalf("redeployed: %s %s session %q host %s", m.State, m.Profile, m.Session, m.Hostname)
	}
	a := old.newBoot()
	if code, body := a.register(testInventory(macA)); code != 200 {
		t.Fatalf("register: %d %s", code, body)
	}
	_, body := a.call(http.MethodGet, "/agent/decision", nil)
	if d := decisionOf(t, body); d.Decision != "wait" || d.Image != nil || !strings.Contains(d.Message, "bind") {
		t.Fatalf("the new boot before bind: %s", body)
	}
	if code, body := e.post("/machines/"+macA+"/bind", map[string]any{"token": "FOUNDRY-AAAA-AAAA-AAAA"}); code != 422 {
		t.Fatalf("bind with a wrong token: %d %s", code, body)
	}
	if code, body := e.post("/machines/"+macA+"/bind", map[string]any{"token": a.tok.Value}); code != 200 {
		t.Fatalf("bind: %d %s", code, body)
	}
	_, body = a.call(http.MethodGet, "/agent/decision", nil)
	if d := decisionOf(t, body); d.Decision != "image" || d.Hostname != approvedHost || d.FirstBootURL == "" {
		t.Fatalf("the bound boot: %s", body)
	}
	// A further boot (the machine restarted mid-install) takes over with
	// its own token; the replaced one may not report any more.
	b := a.newBoot()
	if code, body := b.register(testInventory(macA)); code != 200 {
		t.Fatalf("register: %d %s", code, body)
	}
	if code, body := e.post("/machines/"+macA+"/bind", map[string]any{"token": b.tok.Value}); code != 200 {
		t.Fatalf("bind the next boot: %d %s", code, body)
	}
	if code, _ := a.call(http.MethodPost, "/agent/progress", map[string]any{"percent": 5}); code != http.StatusUnauthorized {
		t.Fatalf("the replaced boot reported: %d", code)
	}
	if code, body := b.call(http.MethodPost, "/agent/progress", map[string]any{"percent": 5}); code != 200 {
		t.Fatalf("the bound boot's progress: %d %s", code, body)
	}
	// Redeploy to a netboot profile is ready at once; bind a ready machine is refused.
	if code, body := b.call(http.MethodPost, "/agent/result", map[string]any{"success": true}); code != 200 {
		t.Fatalf("result: %d %s", code, body)
	}
	if code, body := e.post("/machines/"+macA+"/bind", map[string]any{"token": b.tok.Value}); code != http.StatusConflict {
		t.Fatalf("bind while installed: %d %s", code, body)
	}
}

func TestRedeployNetbootIsReady(t *testing.T) {
	e := newEnv(t)
	e.setup()
	e.ready(macA)
	before, err := e.db.GetMachine(macA)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := e.post("/machines/"+macA+"/redeploy", nil); code != 200 || !strings.Contains(body, `"state":"ready"`) {
		t.Fatalf("redeploy netboot: %d %s", code, body)
	}
	// One commit of two steps, each audited with its own revision.
	audit, err := e.db.ListAudit(store.AuditFilter{MAC: macA})
	if err != nil || len(audit) < 2 {
		t.Fatalf("audit: %v %v", audit, err)
	}
	for i, want := range []struct {
		action string
		rev    uint64
	}{{"ready", before.Revision + 2}, {"redeploy", before.Revision + 1}} {
		if a := audit[i]; a.Action != want.action || a.Revision != want.rev {
			t.Errorf("audit entry %d: %s at revision %d, want %s at %d", i, a.Action, a.Revision, want.action, want.rev)
		}
	}
	if code, body := e.post("/machines/"+macA+"/bind", map[string]any{"token": "FOUNDRY-AAAA-AAAA-AAAA"}); code != http.StatusConflict {
		t.Fatalf("bind a ready machine: %d %s", code, body)
	}
}
