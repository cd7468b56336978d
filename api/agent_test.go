package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/api/client"
	"github.com/foundry-appliance/foundry/store"
)

func decisionOf(t *testing.T, body string) api.Decision {
	t.Helper()
	var d api.Decision
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatalf("decision: %v: %s", err, body)
	}
	return d
}

func TestAgentRegisterAndProvision(t *testing.T) {
	e := newEnv(t)
	e.setup()
	ctx := context.Background()
	a := e.discover(macA)
	inv := testInventory(macA)
	regBody := a.registerBody(inv)
	code, body := a.call(http.MethodPost, "/agent/register", regBody)
	if code != 200 || !strings.Contains(body, `"inventoried"`) {
		t.Fatalf("register: %d %s", code, body)
	}
	m := e.machine(macA)
	var got struct {
		Disks []struct{ Name string } `json:"disks"`
	}
	sess := e.sessions(macA)
	if err := json.Unmarshal(m.Inventory, &got); err != nil || len(got.Disks) != 3 || len(sess) != 1 || len(sess[0].Token.Hash) != 32 || sess[0].ID != a.session() {
		t.Fatalf("stored inventory/session: %s %+v", m.Inventory, sess)
	}
	if sess[0].Token.ExpiresAt.Sub(e.clock.Now()) != time.Hour {
		t.Errorf("token expiry %v after registration", sess[0].Token.ExpiresAt.Sub(e.clock.Now()))
	}
	// A retried registration (same nonce, same key) is answered alike and
	// opens nothing more.
	if code, body := a.call(http.MethodPost, "/agent/register", regBody); code != 200 || len(e.sessions(macA)) != 1 {
		t.Fatalf("retried registration: %d %s, %d sessions", code, body, len(e.sessions(macA)))
	}

	// The long-poll waits while the machine is inventoried and wakes on approval.
	done := a.longPoll(30)
	select {
	case r := <-done:
		t.Fatalf("long-poll returned before any decision: %d %s", r.code, r.body)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := e.admin.Approve(ctx, macA, api.ApproveRequest{Token: a.tok.Value, Cluster: "rack1", Hostname: "node-01", SSHKeys: []string{goodKey}}); err != nil {
		t.Fatalf("approve: %v", err)
	}
	var r pollResult
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("long-poll did not wake on approval")
	}
	d := decisionOf(t, r.body)
	if r.code != 200 || d.Decision != "image" || d.Hostname != "node-01" || d.Image == nil ||
		d.Image.Disk != "/dev/disk/by-path/pci-0000:00:04.0-nvme-1" || d.Image.DiskByPath != "/dev/disk/by-path/pci-0000:00:04.0-nvme-1" ||
		d.Image.URL != e.ts.URL+"/images/debian.raw.gz" || len(d.SSHKeys) != 1 || d.Network == nil || d.Network.Mode != "dhcp" {
		t.Fatalf("decision: %d %s", r.code, r.body)
	}
	if r.after > 5*time.Second {
		t.Errorf("long-poll woke after %v", r.after)
	}

	steps := []struct {
		path  string
		body  any
		state store.State
	}{
		{"/agent/progress", map[string]any{"percent": 40, "message": "writing"}, store.StateProvisioning},
		{"/agent/progress", map[string]any{"percent": 90}, store.StateProvisioning},
		{"/agent/result", map[string]any{"success": true, "message": "verified"}, store.StateProvisioning},
	}
	if code, body := a.call(http.MethodPost, "/agent/progress", map[string]any{"percent": 101}); code != 422 || !hasLocation(problem(t, body), "body.percent") {
		t.Errorf("percent 101: %d %s", code, body)
	}
	for _, s := range steps {
		if code, body := a.call(http.MethodPost, s.path, s.body); code != 200 {
			t.Fatalf("%s: %d %s", s.path, code, body)
		}
		if st := e.machine(macA).State; st != s.state {
			t.Fatalf("after %s: %s, want %s", s.path, st, s.state)
		}
	}
	if p := e.machine(macA).Progress; p != 100 {
		t.Errorf("progress after success: %d", p)
	}
	// Installed: the boot session has ended, so its key can neither read
	// the decision nor report for the machine again.
	for _, c := range []struct{ method, path string }{{http.MethodGet, "/agent/decision"}, {http.MethodPost, "/agent/result"}} {
		if code, body := a.call(c.method, c.path, map[string]any{"success": true}); code != http.StatusUnauthorized {
			t.Errorf("%s %s after the install: %d %s", c.method, c.path, code, body)
		}
	}
	// Written: the machine boots its disk until the installed system
	// reports its first boot with the secret its seed carries. A wrong
	// secret, another MAC, or the right one sent twice changes nothing.
	if m := e.machine(macA); !m.Installed || m.State != store.StateProvisioning {
		t.Fatalf("after the agent's success: installed %v, %s", m.Installed, m.State)
	}
	if !strings.HasPrefix(d.FirstBootURL, e.ts.URL+"/api/v1/first-boot/"+macA+"/") {
		t.Fatalf("first-boot URL %q", d.FirstBootURL)
	}
	report := func(u string) int {
		t.Helper()
		resp, err := http.Post(u, "application/x-www-form-urlencoded",
			strings.NewReader("instance_id=i-1&hostname=node-01&fqdn=node-01&pub_key_ed25519=ssh-ed25519+AAAAC3NzaC1lZDI1NTE5AAAAIGt6ZmZ5b3VyLWtleS1oZXJlLXBsZWFzZS1yZXBsYWNl+root%40node-01"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	before := e.machine(macA)
	for _, u := range []string{
		d.FirstBootURL[:len(d.FirstBootURL)-1] + "x",
		strings.Replace(d.FirstBootURL, macA, macB, 1),
		e.ts.URL + "/api/v1/first-boot/" + macA + "/",
	} {
		if code := report(u); code != http.StatusNotFound {
			t.Errorf("report to %s: %d, want 404", u, code)
		}
	}
	if m := e.machine(macA); m.Revision != before.Revision {
		t.Fatal("a refused first-boot report changed the machine")
	}
	if code := report(d.FirstBootURL); code != 200 {
		t.Fatalf("first-boot report: %d", code)
	}
	m = e.machine(macA)
	if m.State != store.StateReady || m.FirstBoot == nil || m.FirstBoot.Hostname != "node-01" || len(m.FirstBoot.SSHHostKeys) != 1 || m.ReadyAt.IsZero() || m.FirstBootSecret != "" {
		t.Fatalf("after the first-boot report: %s %+v", m.State, m.FirstBoot)
	}
	if code := report(d.FirstBootURL); code != http.StatusNotFound {
		t.Fatalf("the first-boot URL used twice: %d", code)
	}
	if v, err := e.admin.GetMachine(ctx, macA); err != nil || v.ReadyAt == nil || v.DeploySeconds == nil || strings.Contains(fmt.Sprint(v), d.FirstBootURL[len(d.FirstBootURL)-20:]) {
		t.Fatalf("machine view: %+v %v", v, err)
	}
	// A one-off discovery boot of a ready machine (a new boot, a new
	// nonce and key) is a registration of its own: the machine's inventory
	// stays the one frozen at approval, and the new boot is told to reboot
	// without the approval's details.
	frozen := e.machine(macA).Inventory
	a = a.newBoot()
	inv.Memory.TotalBytes = 4 << 30
	if code, body := a.register(inv); code != 200 || !strings.Contains(body, `"ready"`) {
		t.Fatalf("re-register ready machine: %d %s", code, body)
	}
	if m := e.machine(macA); m.State != store.StateReady || string(m.Inventory) != string(frozen) || m.Approval == nil {
		t.Errorf("after re-register: %s %s", m.State, m.Inventory)
	}
	if _, body := a.call(http.MethodGet, "/agent/decision", nil); decisionOf(t, body).Decision != "netboot" || decisionOf(t, body).Hostname != "" {
		t.Errorf("decision of another boot of a ready machine: %s", body)
	}
	a = a.newBoot()
	if code, body := a.register(inv); code != 200 {
		t.Fatalf("register: %d %s", code, body)
	}
	// Rediscover: back to discovery, registration makes it inventoried again.
	if _, err := e.admin.Rediscover(ctx, macA); err != nil {
		t.Fatalf("rediscover: %v", err)
	}
	// Rediscover ended that boot's session; the machine's next boot has a
	// new one.
	if code, body := a.call(http.MethodGet, "/agent/decision", nil); code != http.StatusUnauthorized {
		t.Fatalf("decision for the session rediscover ended: %d %s", code, body)
	}
	a = a.newBoot()
	if code, body := a.register(inv); code != 200 || !strings.Contains(body, `"inventoried"`) {
		t.Fatalf("register after rediscover: %d %s", code, body)
	}
}

func TestAgentFailureAndRetry(t *testing.T) {
	e := newEnv(t)
	e.setup()
	ctx := context.Background()
	a := e.inventoried(macA)
	if _, err := e.admin.Approve(ctx, macA, api.ApproveRequest{Token: a.tok.Value, Cluster: "rack1"}); err != nil {
		t.Fatal(err)
	}
	if code, body := a.call(http.MethodPost, "/agent/result", map[string]any{"success": false, "message": "sha256 mismatch"}); code != 200 {
		t.Fatalf("result: %d %s", code, body)
	}
	m := e.machine(macA)
	if m.State != store.StateFailed || m.Message != "sha256 mismatch" {
		t.Fatalf("after failure: %s %q", m.State, m.Message)
	}
	if _, body := a.call(http.MethodGet, "/agent/decision", nil); decisionOf(t, body).Decision != "wait" {
		t.Errorf("decision when failed: %s", body)
	}
	got, err := e.admin.Retry(ctx, macA)
	if err != nil || got.State != "provisioning" {
		t.Fatalf("retry: %+v %v", got, err)
	}
	if _, body := a.call(http.MethodGet, "/agent/decision", nil); decisionOf(t, body).Decision != "image" {
		t.Errorf("decision after retry: %s", body)
	}
	if _, err := e.admin.Retry(ctx, macA); err == nil || !strings.Contains(err.Error(), "provisioning") {
		t.Errorf("retry of a provisioning machine: %v", err)
	}
}

func TestAgentRefusals(t *testing.T) {
	e := newEnv(t)
	e.setup()
	a := e.discover(macA)
	b := e.discover(macB)
	before := e.machine(macB)
	cases := []struct {
		name   string
		nonce  string
		body   map[string]any
		status int
		loc    string
	}{
		{"nonce of another machine", a.nonce, map[string]any{"mac": macB, "inventory": testInventory(macB), "token": b.tokenBody()}, 403, "body.mac"},
		{"inventory not an object", b.nonce, map[string]any{"mac": macB, "inventory": []int{1}, "token": b.tokenBody()}, 422, "body.inventory"},
		{"short hash", b.nonce, map[string]any{"mac": macB, "inventory": testInventory(macB), "token": map[string]any{"salt": []byte("saltsalt"), "hash": []byte("short"), "expires_at": time.Now()}}, 422, "body.token.hash"},
		{"missing token", b.nonce, map[string]any{"mac": macB, "inventory": testInventory(macB)}, 422, "body.token"},
		{"bad mac", b.nonce, map[string]any{"mac": "zz", "inventory": testInventory(macB), "token": b.tokenBody()}, 422, "body.mac"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.body["public_key"] = b.key.Public()
			req := b.request(http.MethodPost, "/agent/register", tc.body)
			req.Header.Set(api.NonceHeader, tc.nonce)
			code, body := e.send(req)
			if code != tc.status || !hasLocation(problem(t, body), tc.loc) {
				t.Fatalf("%d %s", code, body)
			}
			if after := e.machine(macB); after.Revision != before.Revision {
				t.Error("refused registration changed the machine")
			}
		})
	}
	// The registration is signed by the key it registers; the nonce alone
	// admits nothing.
	for _, tc := range []struct {
		name   string
		req    func() *http.Request
		status int
	}{
		{"unsigned", func() *http.Request {
			return e.request(http.MethodPost, "/agent/register", b.registerBody(testInventory(macB)), map[string]string{api.NonceHeader: b.nonce})
		}, 401},
		{"signed by another key", func() *http.Request {
			body := b.registerBody(testInventory(macB))
			body["public_key"] = newKey(t).Public()
			return b.request(http.MethodPost, "/agent/register", body)
		}, 401},
		{"no public key", func() *http.Request {
			body := b.registerBody(testInventory(macB))
			delete(body, "public_key")
			return b.request(http.MethodPost, "/agent/register", body)
		}, 422},
		{"no nonce", func() *http.Request {
			r := b.request(http.MethodPost, "/agent/register", b.registerBody(testInventory(macB)))
			r.Header.Del(api.NonceHeader)
			return r
		}, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := e.send(tc.req()); code != tc.status {
				t.Fatalf("%d %s", code, body)
			}
			if after := e.machine(macB); after.Revision != before.Revision || len(e.sessions(macB)) != 0 {
				t.Error("refused registration changed the machine")
			}
		})
	}
	t.Run("body too large", func(t *testing.T) {
		huge := testInventory(macB)
		huge.Warnings = []string{strings.Repeat("x", 5<<20)}
		code, _ := b.call(http.MethodPost, "/agent/register", b.registerBody(huge))
		if code != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d", code)
		}
	})
	t.Run("rejected machine stays rejected", func(t *testing.T) {
		c := e.inventoried("52:54:00:00:00:0c")
		if _, err := e.admin.Reject(context.Background(), c.mac, "not ours"); err != nil {
			t.Fatal(err)
		}
		c = c.newBoot()
		code, body := c.register(testInventory(c.mac))
		if code != 200 || !strings.Contains(body, `"rejected"`) {
			t.Fatalf("%d %s", code, body)
		}
		if _, body := c.call(http.MethodGet, "/agent/decision", nil); decisionOf(t, body).Decision != "reject" {
			t.Fatalf("decision: %s", body)
		}
		// Told to power off, the boot session is over.
		if code, body := c.call(http.MethodGet, "/agent/decision", nil); code != http.StatusUnauthorized {
			t.Fatalf("decision after the reject was delivered: %d %s", code, body)
		}
		if m := e.machine(c.mac); m.State != store.StateRejected || m.Message != "not ours" {
			t.Fatalf("%s %q", m.State, m.Message)
		}
	})
}

// A long poll re-checks its boot session when it wakes: a failed machine's
// agent waiting for a retry is told at once, not at the poll's end, that
// rediscover ended its session.
func TestLongPollSeesSessionEnd(t *testing.T) {
	e := newEnv(t)
	e.setup()
	ctx := context.Background()
	a := e.inventoried(macA)
	if _, err := e.admin.Approve(ctx, macA, api.ApproveRequest{Token: a.tok.Value, Cluster: "rack1"}); err != nil {
		t.Fatal(err)
	}
	if code, body := a.call(http.MethodPost, "/agent/result", map[string]any{"success": false, "message": "disk error"}); code != 200 {
		t.Fatalf("result: %d %s", code, body)
	}
	done := a.longPoll(30)
	select {
	case r := <-done:
		t.Fatalf("a failed machine's long poll returned at once: %d %s", r.code, r.body)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := e.admin.Rediscover(ctx, macA); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.code != http.StatusUnauthorized || r.after > 5*time.Second {
			t.Fatalf("after rediscover the long poll answered %d after %v: %s", r.code, r.after, r.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the long poll kept waiting after its session ended")
	}
}

// pollResult is a long poll's answer and how long it took.
type pollResult struct {
	code  int
	body  string
	after time.Duration
}

// longPoll asks for the decision with ?wait=seconds in the background.
func (a *agent) longPoll(seconds int) <-chan pollResult {
	done := make(chan pollResult, 1)
	start := time.Now()
	go func() {
		code, body := a.call(http.MethodGet, fmt.Sprintf("/agent/decision?wait=%d", seconds), nil)
		done <- pollResult{code, body, time.Since(start)}
	}()
	return done
}

// Progress arrives every few seconds; the audit log keeps the report that
// starts provisioning and one per ten percent, not every step.
func TestProgressAuditIsThinned(t *testing.T) {
	e := newEnv(t)
	e.setup()
	ctx := context.Background()
	a := e.inventoried(macA)
	if _, err := e.admin.Approve(ctx, macA, api.ApproveRequest{Token: a.tok.Value, Cluster: "rack1"}); err != nil {
		t.Fatal(err)
	}
	for p := 1; p <= 25; p++ {
		if code, body := a.call(http.MethodPost, "/agent/progress", map[string]any{"percent": p}); code != 200 {
			t.Fatalf("progress %d: %d %s", p, code, body)
		}
	}
	if m := e.machine(macA); m.Progress != 25 {
		t.Fatalf("progress %d, want 25 (every report is kept in the record)", m.Progress)
	}
	audit, err := e.admin.ListAudit(ctx, client.AuditOptions{MAC: macA, Action: "progress"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range audit.Items {
		got = append(got, it.Detail)
	}
	if len(got) != 3 {
		t.Fatalf("progress audit entries %q, want three (1%%, 10%%, 20%%)", got)
	}
}
