package api_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/api/client"
	"github.com/foundry-appliance/foundry/store"
)

// TestCredentials checks who may call what: viewers read, admins write,
// agent nonces and admin tokens never open each other's endpoints.
func TestCredentials(t *testing.T) {
	e := newEnv(t, func(s *api.Server) { s.AdminToken = "env-secret-for-automation" })
	e.setup()
	a := e.inventoried(macA)
	viewer := "Bearer " + e.viewer.Token
	admin := "Bearer " + e.adminToken
	approve := map[string]any{"token": a.tok.Value, "cluster": "rack1"}
	cases := []struct {
		name    string
		method  string
		path    string
		body    any
		headers map[string]string
		status  int
	}{
		{"viewer lists machines", "GET", "/machines", nil, map[string]string{"Authorization": viewer}, 200},
		{"viewer reads a machine", "GET", "/machines/" + macA, nil, map[string]string{"Authorization": viewer}, 200},
		{"viewer reads audit", "GET", "/audit", nil, map[string]string{"Authorization": viewer}, 200},
		{"viewer cannot approve", "POST", "/machines/" + macA + "/approve", approve, map[string]string{"Authorization": viewer}, 403},
		{"viewer cannot verify a token", "POST", "/machines/" + macA + "/verify-token", map[string]any{"token": "x"}, map[string]string{"Authorization": viewer}, 403},
		{"viewer cannot reject", "POST", "/machines/" + macA + "/reject", map[string]any{"reason": "x"}, map[string]string{"Authorization": viewer}, 403},
		{"viewer cannot delete", "DELETE", "/machines/" + macA, nil, map[string]string{"Authorization": viewer}, 403},
		{"viewer cannot create a cluster", "POST", "/clusters", map[string]any{"name": "x"}, map[string]string{"Authorization": viewer}, 403},
		{"viewer cannot list tokens", "GET", "/tokens", nil, map[string]string{"Authorization": viewer}, 403},
		{"viewer cannot create a token", "POST", "/tokens", map[string]any{"name": "x", "role": "admin"}, map[string]string{"Authorization": viewer}, 403},
		{"no credential", "GET", "/machines", nil, nil, 401},
		{"unknown token", "GET", "/machines", nil, map[string]string{"Authorization": "Bearer fdy_nope"}, 401},
		{"basic auth", "GET", "/machines", nil, map[string]string{"Authorization": "Basic YWRtaW46YWRtaW4="}, 401},
		{"nonce header on admin read", "GET", "/machines", nil, map[string]string{api.NonceHeader: a.nonce}, 401},
		{"nonce header on approve", "POST", "/machines/" + macA + "/approve", approve, map[string]string{api.NonceHeader: a.nonce}, 401},
		{"nonce as bearer on approve", "POST", "/machines/" + macA + "/approve", approve, map[string]string{"Authorization": "Bearer " + a.nonce}, 401},
		{"admin token on agent register", "POST", "/agent/register", map[string]any{"mac": macA}, map[string]string{"Authorization": admin}, 401},
		{"admin token on agent decision", "GET", "/agent/decision", nil, map[string]string{"Authorization": admin}, 401},
		{"admin token as nonce", "GET", "/agent/decision", nil, map[string]string{api.NonceHeader: e.adminToken}, 401},
		{"agent decision with the nonce alone", "GET", "/agent/decision", nil, map[string]string{api.NonceHeader: a.nonce}, 401},
		{"env token reads", "GET", "/tokens", nil, map[string]string{"Authorization": "Bearer env-secret-for-automation"}, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.machine(macA)
			code, body := e.raw(tc.method, tc.path, tc.body, tc.headers)
			if code != tc.status {
				t.Fatalf("status %d, want %d: %s", code, tc.status, body)
			}
			if code >= 400 {
				if p := problem(t, body); p.Status != code {
					t.Errorf("problem status %d", p.Status)
				}
				if after := e.machine(macA); after.Revision != before.Revision {
					t.Error("a refused call changed the machine")
				}
			}
		})
	}
	if m := e.machine(macA); m.State != store.StateInventoried {
		t.Fatalf("state after refused calls: %s", m.State)
	}
}

func TestTokensLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	nt, err := e.admin.CreateToken(ctx, "ci", "viewer")
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	if !strings.HasPrefix(nt.Secret, api.TokenPrefix) || len(nt.Secret) != len(api.TokenPrefix)+43 || nt.Role != "viewer" {
		t.Fatalf("new token: %+v", nt)
	}
	ci := &client.Client{BaseURL: e.ts.URL, Token: nt.Secret}
	if _, err := ci.ListMachines(ctx, client.ListOptions{}); err != nil {
		t.Fatalf("new viewer token: %v", err)
	}
	if _, err := e.admin.CreateToken(ctx, "ci", "admin"); client.StatusOf(err) != 409 {
		t.Errorf("duplicate name: %v", err)
	}
	if _, err := e.admin.CreateToken(ctx, "root", "superuser"); client.StatusOf(err) != 422 {
		t.Errorf("bad role: %v", err)
	}
	list, err := e.admin.ListTokens(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("list tokens: %+v %v", list, err)
	}
	if err := e.admin.RevokeToken(ctx, nt.ID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if _, err := ci.ListMachines(ctx, client.ListOptions{}); client.StatusOf(err) != 401 {
		t.Errorf("revoked token still works: %v", err)
	}
	audit, err := e.admin.ListAudit(ctx, client.AuditOptions{Action: "token-revoke"})
	if err != nil || len(audit.Items) != 1 || audit.Items[0].Actor != "token:admin" {
		t.Errorf("revoke audit: %+v %v", audit, err)
	}
}

func TestBootstrap(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got, err := api.Bootstrap(db, dir, "from-env"); err != nil || got != "" {
		t.Fatalf("with env token: %q %v", got, err)
	}
	secret, err := api.Bootstrap(db, dir, "")
	if err != nil || !strings.HasPrefix(secret, api.TokenPrefix) {
		t.Fatalf("first start: %q %v", secret, err)
	}
	st, err := os.Stat(filepath.Join(dir, "admin-token"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin-token file: %v %v", st, err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "admin-token"))
	if strings.TrimSpace(string(b)) != secret {
		t.Fatal("file does not hold the printed token")
	}
	if again, err := api.Bootstrap(db, dir, ""); err != nil || again != "" {
		t.Fatalf("second start printed a token: %q %v", again, err)
	}
	srv := &api.Server{Store: db}
	ts := newTestServer(t, srv)
	c := &client.Client{BaseURL: ts, Token: secret}
	if _, err := c.CreateToken(context.Background(), "ops", "admin"); err != nil {
		t.Fatalf("bootstrap token is not an admin: %v", err)
	}
	tokens, _ := db.ListAPITokens()
	for _, tk := range tokens {
		if strings.Contains(string(tk.Hash), secret) {
			t.Fatal("secret stored in plain")
		}
	}
}
