package api_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/gitops"
	"github.com/foundry-appliance/foundry/hardware"
	"github.com/foundry-appliance/foundry/store"
)

// fakeGitOps stands in for the exporter: a status, declarations by MAC
// and the shared webhook secret.
type fakeGitOps struct {
	mu       sync.Mutex
	status   gitops.Status
	decl     map[string]hardware.Declaration
	secret   string
	webhooks int
}

func (f *fakeGitOps) Status() gitops.Status { return f.status }

func (f *fakeGitOps) Webhook(h http.Header, body []byte) error {
	if !gitops.VerifyWebhook(f.secret, h, body) {
		return gitops.ErrWebhook
	}
	f.mu.Lock()
	f.webhooks++
	f.mu.Unlock()
	return nil
}

func (f *fakeGitOps) Declaration(mac string) (hardware.Declaration, string, bool) {
	d, ok := f.decl[mac]
	return d, "declared in hardware/node.yaml by Dana <dana@example.org> (commit 0123456789ab)", ok
}

func TestGitOpsStatus(t *testing.T) {
	off := newEnv(t)
	code, body := off.raw("GET", "/gitops", nil, map[string]string{"Authorization": "Bearer " + off.viewer.Token})
	if code != 200 || !strings.Contains(body, `"enabled":false`) {
		t.Fatalf("without gitops: %d %s", code, body)
	}
	g := &fakeGitOps{status: gitops.Status{Remote: "ssh://git@h/fleet.git", Branch: "main", Directory: "hardware", Pending: 3, LastError: "dial tcp: connection refused"}}
	on := newEnv(t, func(s *api.Server) { s.GitOps = g })
	code, body = on.raw("GET", "/gitops", nil, map[string]string{"Authorization": "Bearer " + on.viewer.Token})
	var st api.GitOpsStatus
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil || !st.Enabled || st.Pending != 3 || st.LastError == "" || st.Remote != "ssh://git@h/fleet.git" {
		t.Fatalf("with gitops: %d %s", code, body)
	}
	if code, _ := on.raw("GET", "/gitops", nil, nil); code != 401 {
		t.Errorf("without a token: %d", code)
	}
}

func TestGitOpsWebhook(t *testing.T) {
	g := &fakeGitOps{secret: "0123456789abcdef-secret"}
	e := newEnv(t, func(s *api.Server) { s.GitOps = g })
	body := map[string]any{"ref": "refs/heads/main"}
	raw, _ := json.Marshal(body)
	mac := hmac.New(sha256.New, []byte(g.secret))
	mac.Write(raw)
	good := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	for _, tc := range []struct {
		name    string
		headers map[string]string
		code    int
	}{
		{"GitHub signature", map[string]string{"X-Hub-Signature-256": good}, 204},
		{"GitLab token", map[string]string{"X-Gitlab-Token": g.secret}, 204},
		{"wrong signature", map[string]string{"X-Hub-Signature-256": "sha256=" + strings.Repeat("00", 32)}, 401},
		{"wrong token", map[string]string{"X-Gitlab-Token": "guess"}, 401},
		{"no proof", nil, 401},
		{"an admin token is no proof", map[string]string{"Authorization": "Bearer " + e.adminToken}, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, resp := e.raw("POST", "/gitops/webhook", body, tc.headers); code != tc.code {
				t.Fatalf("%d %s, want %d", code, resp, tc.code)
			}
		})
	}
	if g.webhooks != 2 {
		t.Errorf("%d fetches asked for, want 2", g.webhooks)
	}
	off := newEnv(t)
	if code, _ := off.raw("POST", "/gitops/webhook", body, map[string]string{"X-Gitlab-Token": g.secret}); code != 404 {
		t.Errorf("without gitops: %d", code)
	}
}

// With the console token required (the default), a declaration supplies
// what the administrator leaves out; what they give wins.
func TestApproveFillsFromDeclaration(t *testing.T) {
	g := &fakeGitOps{decl: map[string]hardware.Declaration{}}
	e := newEnv(t, func(s *api.Server) { s.GitOps = g })
	e.setup()
	ctx := context.Background()
	const a, b = "52:54:00:77:00:01", "52:54:00:77:00:02"
	for _, mac := range []string{a, b} {
		g.decl[mac] = hardware.Declaration{MAC: mac, Cluster: "rack2", Profile: "netboot", Hostname: "node-" + mac[15:],
			Network: "static", Address: "10.77.0.5" + mac[16:] + "/24", Gateway: "10.77.0.1", SSHKeys: []string{goodKey}}
	}
	ag := e.inventoried(a)
	if _, err := e.admin.Approve(ctx, a, api.ApproveRequest{}); err == nil || !strings.Contains(err.Error(), "body.token") {
		t.Fatalf("no token: %v", err)
	}
	m, err := e.admin.Approve(ctx, a, api.ApproveRequest{Token: ag.tok.Value})
	if err != nil {
		t.Fatal(err)
	}
	if m.Hostname != "node-01" || m.Cluster != "rack2" || m.Profile != "netboot" || m.State != "ready" || m.Approval == nil || m.Approval.Network.Address != "10.77.0.51/24" {
		t.Fatalf("approved from the declaration: %+v %+v", m, m.Approval)
	}
	es, _ := e.db.ListAudit(store.AuditFilter{MAC: a, Action: "approve"})
	if len(es) != 1 || es[0].Actor != "token:admin" || !strings.Contains(es[0].Detail, "declared in hardware/node.yaml by Dana") {
		t.Errorf("audit %+v", es)
	}
	bg := e.inventoried(b)
	if v, err := e.viewer.GetMachine(ctx, b); err != nil || v.Declared == nil || v.Declared.Hostname != "node-02" || !strings.Contains(v.Declared.Origin, "Dana") {
		t.Fatalf("a waiting machine shows its declaration: %+v %v", v.Declared, err)
	}
	m, err = e.admin.Approve(ctx, b, api.ApproveRequest{Token: bg.tok.Value, Hostname: "chosen", Network: &api.Network{Mode: "dhcp"}})
	if err != nil || m.Hostname != "chosen" || m.Approval.Network.Mode != "dhcp" || m.Declared != nil {
		t.Fatalf("the administrator's values (and no declaration once approved): %+v %v", m, err)
	}
}

// Approval by a declaration alone (approve_without_token): the same rules,
// and never for a MAC with two registrations.
func TestApproveDeclared(t *testing.T) {
	e := newEnv(t)
	e.setup()
	ctx := context.Background()
	decl := func(mac, host, addr string) hardware.Declaration {
		return hardware.Declaration{MAC: mac, Cluster: "rack2", Profile: "netboot", Hostname: host, Network: "static", Address: addr}
	}
	const by, why = "git:dana@example.org", "declared in hardware/x.yaml by Dana"

	const ok = "52:54:00:78:00:01"
	e.inventoried(ok)
	if err := e.srv.ApproveDeclared(ctx, ok, decl(ok, "node-1", "10.77.0.51/24"), by, why); err != nil {
		t.Fatal(err)
	}
	m := e.machine(ok)
	if m.State != store.StateReady || m.Hostname != "node-1" || m.Approval.ApprovedBy != by || !m.Approval.TokenBypassed || m.Approval.Network.Address.String() != "10.77.0.51/24" {
		t.Fatalf("declared approval: %+v %+v", m, m.Approval)
	}
	es, _ := e.db.ListAudit(store.AuditFilter{MAC: ok, Action: "approve"})
	if len(es) != 1 || es[0].Actor != by || !strings.Contains(es[0].Detail, why) || strings.Contains(es[0].Detail, "allow_approval_without_token") {
		t.Errorf("audit %+v", es)
	}

	const twice = "52:54:00:78:00:02"
	a := e.inventoried(twice)
	if code, body := a.newBoot().register(testInventory(twice)); code != 200 {
		t.Fatalf("second registration: %d %s", code, body)
	}
	err := e.srv.ApproveDeclared(ctx, twice, decl(twice, "node-2", "10.77.0.52/24"), by, why)
	if err == nil || !strings.Contains(err.Error(), "MAC conflict") || e.machine(twice).State != store.StateInventoried {
		t.Fatalf("MAC conflict: %v, %s", err, e.machine(twice).State)
	}

	const rule = "52:54:00:78:00:03"
	e.inventoried(rule)
	err = e.srv.ApproveDeclared(ctx, rule, decl(rule, "node-3", "10.77.0.150/24"), by, why)
	if err == nil || !strings.Contains(err.Error(), "DHCP range") || e.machine(rule).State != store.StateInventoried {
		t.Fatalf("static address in the DHCP range: %v", err)
	}
	err = e.srv.ApproveDeclared(ctx, rule, decl(rule, "node-1", "10.77.0.53/24"), by, why)
	if err == nil || !strings.Contains(err.Error(), "node-1") {
		t.Fatalf("a host name another machine has: %v", err)
	}

	const early = "52:54:00:78:00:04"
	e.discover(early)
	if err := e.srv.ApproveDeclared(ctx, early, decl(early, "node-4", "10.77.0.54/24"), by, why); err == nil || !strings.Contains(err.Error(), "discovered") {
		t.Fatalf("not yet registered: %v", err)
	}
}
