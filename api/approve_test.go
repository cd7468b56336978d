package api_test

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/api/client"
	"github.com/foundry-appliance/foundry/discovery-os/token"
	"github.com/foundry-appliance/foundry/store"
)

const (
	macA     = "52:54:00:12:34:56"
	macB     = "52:54:00:ab:cd:ef"
	goodKey  = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl admin@example"
	goodKey2 = `from="10.0.0.0/8" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops`
)

// TestApprovalRulesRefuse sends one bad approval per rule and checks the
// status, the field named in errors[].location, and that the stored
// machine is byte-for-byte unchanged.
func TestApprovalRulesRefuse(t *testing.T) {
	e := newEnv(t)
	e.setup()
	a := e.inventoried(macA)
	other := e.inventoried(macB)
	if _, err := e.admin.Approve(context.Background(), macB, api.ApproveRequest{Token: other.tok.Value, Cluster: "rack1", Hostname: "taken",
		Network: &api.Network{Mode: "static", Address: "10.77.0.60/24"}}); err != nil {
		t.Fatalf("approve other machine: %v", err)
	}
	good := func() map[string]any {
		return map[string]any{"token": a.tok.Value, "cluster": "rack1", "hostname": "node-01"}
	}
	with := func(k string, v any) map[string]any {
		b := good()
		b[k] = v
		return b
	}
	without := func(k string) map[string]any {
		b := good()
		delete(b, k)
		return b
	}
	static := func(n map[string]any) map[string]any { return with("network", n) }
	cases := []struct {
		name   string
		mac    string
		body   map[string]any
		status int
		loc    string
	}{
		{"missing cluster", macA, without("cluster"), 422, "body.cluster"},
		{"empty cluster", macA, with("cluster", ""), 422, "body.cluster"},
		{"unknown cluster", macA, with("cluster", "nope"), 422, "body.cluster"},
		{"unknown profile", macA, with("profile", "nope"), 422, "body.profile"},
		{"cluster without default profile", macA, with("cluster", "bare"), 422, "body.profile"},
		{"hostname starts with hyphen", macA, with("hostname", "-node"), 422, "body.hostname"},
		{"hostname empty label", macA, with("hostname", "a..b"), 422, "body.hostname"},
		{"hostname label too long", macA, with("hostname", strings.Repeat("a", 64)), 422, "body.hostname"},
		{"hostname too long", macA, with("hostname", strings.Repeat(strings.Repeat("a", 60)+".", 5)+"a"), 422, "body.hostname"},
		{"hostname underscore", macA, with("hostname", "node_1"), 422, "body.hostname"},
		{"hostname injection", macA, with("hostname", "x\nchain http://evil"), 422, "body.hostname"},
		{"hostname taken", macA, with("hostname", "TAKEN"), 422, "body.hostname"},
		{"disk unknown", macA, with("disk", "/dev/sdz"), 422, "body.disk"},
		{"ssh key garbage", macA, with("ssh_keys", []string{goodKey, "ssh-rsa not-base64"}), 422, "body.ssh_keys[1]"},
		{"ssh key two lines", macA, with("ssh_keys", []string{goodKey + "\n" + goodKey}), 422, "body.ssh_keys[0]"},
		{"network mode", macA, static(map[string]any{"mode": "bridge"}), 422, "body.network.mode"},
		{"static without address", macA, static(map[string]any{"mode": "static"}), 422, "body.network.address"},
		{"static not a prefix", macA, static(map[string]any{"mode": "static", "address": "10.77.0.50"}), 422, "body.network.address"},
		{"static outside subnet", macA, static(map[string]any{"mode": "static", "address": "10.78.0.50/24"}), 422, "body.network.address"},
		{"static wider prefix", macA, static(map[string]any{"mode": "static", "address": "10.77.0.50/16"}), 422, "body.network.address"},
		{"static in dhcp range", macA, static(map[string]any{"mode": "static", "address": "10.77.0.150/24"}), 422, "body.network.address"},
		{"static network address", macA, static(map[string]any{"mode": "static", "address": "10.77.0.0/24"}), 422, "body.network.address"},
		{"static broadcast", macA, static(map[string]any{"mode": "static", "address": "10.77.0.255/24"}), 422, "body.network.address"},
		{"static router", macA, static(map[string]any{"mode": "static", "address": "10.77.0.1/24"}), 422, "body.network.address"},
		{"static taken", macA, static(map[string]any{"mode": "static", "address": "10.77.0.60/24"}), 422, "body.network.address"},
		{"gateway outside", macA, static(map[string]any{"mode": "static", "address": "10.77.0.50/24", "gateway": "192.168.1.1"}), 422, "body.network.gateway"},
		{"gateway garbage", macA, static(map[string]any{"mode": "static", "address": "10.77.0.50/24", "gateway": "gw"}), 422, "body.network.gateway"},
		{"dns garbage", macA, static(map[string]any{"mode": "static", "address": "10.77.0.50/24", "dns": []string{"1.1.1.1", "dns.example"}}), 422, "body.network.dns[1]"},
		{"address with dhcp", macA, static(map[string]any{"mode": "dhcp", "address": "10.77.0.50/24"}), 422, "body.network.address"},
		{"missing token", macA, without("token"), 422, "body.token"},
		{"unknown field", macA, with("colour", "red"), 422, "body.colour"},
		{"not inventoried", macB, good(), 409, ""},
		{"unknown machine", "52:54:00:00:00:01", good(), 404, ""},
		{"bad mac", "not-a-mac", good(), 422, "path.mac"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.machine(macA)
			beforeB := e.machine(macB)
			code, body := e.raw(http.MethodPost, "/machines/"+tc.mac+"/approve", tc.body, map[string]string{"Authorization": "Bearer " + e.adminToken})
			if code != tc.status {
				t.Fatalf("status %d, want %d: %s", code, tc.status, body)
			}
			p := problem(t, body)
			if p.Status != tc.status {
				t.Errorf("problem status %d, want %d", p.Status, tc.status)
			}
			if tc.loc != "" && !hasLocation(p, tc.loc) {
				t.Errorf("no error at %s: %s", tc.loc, body)
			}
			if after := e.machine(macA); !reflect.DeepEqual(before, after) {
				t.Errorf("machine changed by a refused approval:\nbefore %+v\nafter  %+v", before, after)
			}
			if after := e.machine(macB); !reflect.DeepEqual(beforeB, after) {
				t.Errorf("other machine changed by a refused approval")
			}
		})
	}
}

func TestApproveHappyPath(t *testing.T) {
	e := newEnv(t)
	e.setup()
	ctx := context.Background()
	t.Run("image profile, defaults", func(t *testing.T) {
		a := e.inventoried(macA)
		m, err := e.admin.Approve(ctx, macA, api.ApproveRequest{Token: strings.ToLower(strings.ReplaceAll(a.tok.Value, "-", " ")),
			Cluster: "rack1", Hostname: "Node-01.Lab", SSHKeys: []string{goodKey, goodKey2},
			Network: &api.Network{Mode: "static", Address: "10.77.0.50/24", DNS: []string{"9.9.9.9"}}})
		if err != nil {
			t.Fatalf("approve: %v", err)
		}
		if m.State != "approved" || m.Temporary || m.ExpiresAt != nil || m.Cluster != "rack1" || m.Profile != "disk-image" || m.Hostname != "node-01.lab" {
			t.Errorf("approved machine: %+v", m)
		}
		ap := m.Approval
		if ap == nil || ap.ApprovedBy != "token:admin" || ap.Disk != "/dev/disk/by-path/pci-0000:00:04.0-nvme-1" ||
			ap.Network.Address != "10.77.0.50/24" || ap.Network.Gateway != "10.77.0.1" || len(ap.Network.DNS) != 1 || ap.Network.DNS[0] != "9.9.9.9" ||
			len(ap.SSHKeys) != 2 || ap.TokenBypassed {
			t.Errorf("approval: %+v", ap)
		}
		stored := e.machine(macA)
		if stored.State != store.StateApproved || stored.Temporary || !stored.ExpiresAt.IsZero() {
			t.Errorf("stored: %+v", stored)
		}
		audit, err := e.admin.ListAudit(ctx, client.AuditOptions{MAC: macA, Action: "approve"})
		if err != nil || len(audit.Items) != 1 || audit.Items[0].Actor != "token:admin" {
			t.Errorf("approve audit: %+v %v", audit, err)
		}
	})
	t.Run("netboot profile becomes ready", func(t *testing.T) {
		a := e.inventoried(macB)
		m, err := e.admin.Approve(ctx, macB, api.ApproveRequest{Token: a.tok.Value, Cluster: "rack2", Disk: "sda"})
		if err != nil {
			t.Fatalf("approve: %v", err)
		}
		if m.State != "ready" || m.Profile != "netboot" || m.Approval.Disk != "/dev/disk/by-path/pci-0000:00:1f.2-ata-1" || m.Approval.Network.Mode != "dhcp" {
			t.Errorf("netboot approval: %+v %+v", m, m.Approval)
		}
		if m.Hostname != "discovered-abcdef" {
			t.Errorf("hostname default: %q", m.Hostname)
		}
		// Approved and ready in one commit, each step audited with the
		// revision it made.
		audit, err := e.db.ListAudit(store.AuditFilter{MAC: macB})
		if err != nil || len(audit) < 2 {
			t.Fatalf("audit: %+v %v", audit, err)
		}
		ready, approve := audit[0], audit[1]
		if ready.Action != "ready" || approve.Action != "approve" || ready.Revision != m.Revision || approve.Revision != m.Revision-1 ||
			ready.Actor != "token:admin" || !strings.Contains(approve.Detail, "profile=netboot") {
			t.Errorf("audit: %+v then %+v, want approve at revision %d and ready at %d", approve, ready, m.Revision-1, m.Revision)
		}
	})
}

// TestTokenIterationCount: the console token is checked with the PBKDF2
// count its agent hashed it with, a hash sent without a count (an agent, or
// a stored registration, from before the count was sent) with the legacy
// one, and a count out of range is refused when it arrives and stores
// nothing.
func TestTokenIterationCount(t *testing.T) {
	e := newEnv(t)
	e.setup()
	ctx := context.Background()
	for i, tc := range []struct {
		name   string
		count  int // sent and hashed with
		stored int
	}{
		{"no count: an agent before it was sent", 0, 0},
		{"the agents' count", token.Iterations, token.Iterations},
		{"another count in range", 20000, 20000},
		{"the highest", token.MaxIterations, token.MaxIterations},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mac := fmt.Sprintf("52:54:00:00:10:%02x", i)
			a := e.discover(mac)
			body := a.registerBody(testInventory(mac))
			body["token"] = a.tokenBodyCount(tc.count)
			if code, out := a.call(http.MethodPost, "/agent/register", body); code != http.StatusOK {
				t.Fatalf("register: %d %s", code, out)
			}
			if got := e.sessions(mac)[0].Token.Iterations; got != tc.stored {
				t.Fatalf("stored count %d, want %d", got, tc.stored)
			}
			if _, err := e.admin.Approve(ctx, mac, api.ApproveRequest{Token: a.tok.Value, Cluster: "rack1"}); err != nil {
				t.Fatalf("approve with the console token: %v", err)
			}
		})
	}
	t.Run("a count that does not match the hash is a wrong token", func(t *testing.T) {
		const mac = "52:54:00:00:10:ff"
		a := e.discover(mac)
		body := a.registerBody(testInventory(mac))
		tb := a.tokenBodyCount(token.Iterations)
		tb["iterations"] = 20000
		body["token"] = tb
		if code, out := a.call(http.MethodPost, "/agent/register", body); code != http.StatusOK {
			t.Fatalf("register: %d %s", code, out)
		}
		_, err := e.admin.Approve(ctx, mac, api.ApproveRequest{Token: a.tok.Value, Cluster: "rack1"})
		if client.StatusOf(err) != http.StatusUnprocessableEntity || e.sessions(mac)[0].Token.Failures != 1 {
			t.Fatalf("approve: %v, failures %d", err, e.sessions(mac)[0].Token.Failures)
		}
	})
	// Out of range: too cheap to protect the hash, or a cost every approval
	// of the machine would pay. Refused on both calls that carry a token.
	a := e.inventoried(macA)
	before, sessions := e.machine(macA), e.sessions(macA)
	for _, n := range []int{-1, 1, token.MinIterations - 1, token.MaxIterations + 1, 1 << 30} {
		t.Run(fmt.Sprintf("count %d", n), func(t *testing.T) {
			tb := a.tokenBody()
			tb["iterations"] = n
			if code, out := a.call(http.MethodPost, "/agent/token", tb); code != http.StatusUnprocessableEntity ||
				!hasLocation(problem(t, out), "body.iterations") {
				t.Errorf("token: %d %s", code, out)
			}
			b := e.discover(fmt.Sprintf("52:54:00:00:11:%02x", n&0xff))
			body := b.registerBody(testInventory(b.mac))
			tb = b.tokenBody()
			tb["iterations"] = n
			body["token"] = tb
			if code, out := b.call(http.MethodPost, "/agent/register", body); code != http.StatusUnprocessableEntity ||
				!hasLocation(problem(t, out), "body.token.iterations") {
				t.Errorf("register: %d %s", code, out)
			}
			if len(e.sessions(b.mac)) != 0 {
				t.Error("a refused registration was stored")
			}
		})
	}
	if after, now := e.machine(macA), e.sessions(macA); after.Revision != before.Revision || len(now) != 1 ||
		!reflect.DeepEqual(now[0].Token, sessions[0].Token) {
		t.Errorf("a refused token changed the machine or its registration's token:\n%+v\n%+v", sessions, now)
	}
}

func TestTokenLockout(t *testing.T) {
	e := newEnv(t)
	e.setup()
	a := e.inventoried(macA)
	ctx := context.Background()
	wrong := []string{"FOUNDRY-AAAA-AAAA-AAAA", "garbage", "FOUNDRY-2222-3333-4444", "foundry-bbbb-cccc-dddd", "FOUNDRY-ZZZZ-ZZZZ-ZZZZ"}
	for i, w := range wrong {
		_, err := e.admin.Approve(ctx, macA, api.ApproveRequest{Token: w, Cluster: "rack1"})
		var ce *client.Error
		if !asErr(err, &ce) || ce.StatusCode != 422 || !hasLocation(ce.Problem, "body.token") {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
		if got := e.sessions(macA)[0].Token.Failures; got != i+1 {
			t.Fatalf("failures after attempt %d: %d", i+1, got)
		}
		if e.machine(macA).State != store.StateInventoried {
			t.Fatal("a wrong token changed the state")
		}
	}
	_, err := e.admin.Approve(ctx, macA, api.ApproveRequest{Token: a.tok.Value, Cluster: "rack1"})
	if client.StatusOf(err) != http.StatusLocked || !strings.Contains(err.Error(), "locked until the machine registers a new token") {
		t.Fatalf("right token after lockout: %v", err)
	}
	if _, err := e.admin.VerifyToken(ctx, macA, a.tok.Value); client.StatusOf(err) != http.StatusLocked {
		t.Fatalf("verify after lockout: %v", err)
	}
	if got := e.sessions(macA)[0].Token.Failures; got != 5 {
		t.Fatalf("a locked attempt counted: %d", got)
	}
	// The agent replaces its token: approval opens again.
	if code, body := a.call(http.MethodPost, "/agent/token", a.tokenBody()); code != 200 {
		t.Fatalf("new token: %d %s", code, body)
	}
	if _, err := e.admin.VerifyToken(ctx, macA, a.tok.Value); err != nil {
		t.Fatalf("verify new token: %v", err)
	}
	if _, err := e.admin.Approve(ctx, macA, api.ApproveRequest{Token: a.tok.Value, Cluster: "rack1"}); err != nil {
		t.Fatalf("approve with new token: %v", err)
	}
}

func TestTokenExpired(t *testing.T) {
	e := newEnv(t)
	e.setup()
	a := e.inventoried(macA)
	e.clock.Add(61 * time.Minute)
	before := e.machine(macA)
	_, err := e.admin.Approve(context.Background(), macA, api.ApproveRequest{Token: a.tok.Value, Cluster: "rack1"})
	var ce *client.Error
	if !asErr(err, &ce) || ce.StatusCode != 422 || !hasLocation(ce.Problem, "body.token") || !strings.Contains(ce.Problem.Detail, "expired") {
		t.Fatalf("expired token: %v", err)
	}
	if after := e.machine(macA); !reflect.DeepEqual(before, after) {
		t.Error("an expired token changed the machine")
	}
}

func TestApprovalWithoutTokenSwitch(t *testing.T) {
	e := newEnv(t, func(s *api.Server) { s.AllowApprovalWithoutToken = true })
	e.setup()
	e.inventoried(macA)
	m, err := e.admin.Approve(context.Background(), macA, api.ApproveRequest{Cluster: "rack1"})
	if err != nil {
		t.Fatalf("approve without token: %v", err)
	}
	if !m.Approval.TokenBypassed {
		t.Error("bypass not recorded")
	}
	audit, err := e.admin.ListAudit(context.Background(), client.AuditOptions{MAC: macA, Action: "approve"})
	if err != nil || len(audit.Items) != 1 || !strings.Contains(audit.Items[0].Detail, "WITHOUT the console token") {
		t.Errorf("bypass not audited: %+v %v", audit, err)
	}
	// Off by default: the same call is refused.
	e2 := newEnv(t)
	e2.setup()
	e2.inventoried(macA)
	if _, err := e2.admin.Approve(context.Background(), macA, api.ApproveRequest{Cluster: "rack1"}); client.StatusOf(err) != 422 {
		t.Errorf("approval without token with the switch off: %v", err)
	}
}

func asErr(err error, target **client.Error) bool {
	if err == nil {
		return false
	}
	e, ok := err.(*client.Error)
	if ok {
		*target = e
	}
	return ok
}
