package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/foundry-appliance/foundry/agentsig"
	"github.com/foundry-appliance/foundry/agentwire"
	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/discovery-os/inventory"
	"github.com/foundry-appliance/foundry/discovery-os/token"
	"github.com/foundry-appliance/foundry/store"
	"github.com/foundry-appliance/foundry/test/syncbuf"
)

// cliEnv is a real API server on a real store, and a way to run the CLI
// in-process against it.
type cliEnv struct {
	t      *testing.T
	db     *store.DB
	url    string
	admin  string
	viewer string
}

func newCLIEnv(t *testing.T, configure ...func(*api.Server)) *cliEnv {
	t.Helper()
	db, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := &api.Server{Store: db}
	for _, f := range configure {
		f(srv)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.CloseClientConnections()
		ts.Close()
		db.Close()
	})
	e := &cliEnv{t: t, db: db, url: ts.URL}
	e.admin = e.apiToken("admin", store.RoleAdmin)
	e.viewer = e.apiToken("viewer", store.RoleViewer)
	return e
}

func (e *cliEnv) apiToken(name string, role store.Role) string {
	secret, hash, err := api.NewAPIToken()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.db.CreateAPIToken(store.APIToken{ID: "id-" + name, Name: name, Role: role, Hash: hash}); err != nil {
		e.t.Fatal(err)
	}
	return secret
}

// run executes `foundry <args…>` in-process; it returns stdout, stderr
// and the exit code main would use.
func (e *cliEnv) run(ctx context.Context, args ...string) (string, string, int) {
	e.t.Helper()
	root := &cobra.Command{Use: "foundry", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(cliCommands()...)
	var out, errOut syncbuf.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	code := 0
	if err != nil {
		code = exitCode(err)
		errOut.Write([]byte(err.Error()))
	}
	return out.String(), errOut.String(), code
}

// registerMachine plays DHCP and the discovery agent for mac; it returns
// the console token.
func (e *cliEnv) registerMachine(mac string) string {
	e.t.Helper()
	if _, err := e.db.CreateMachine(store.Machine{MAC: mac, State: store.StateDiscovered, Hostname: "discovered-123456",
		Temporary: true, ExpiresAt: time.Now().Add(time.Hour), Segment: "lab"}, store.Audit{Actor: "dhcp"}); err != nil {
		e.t.Fatal(err)
	}
	code, _ := e.boot(mac, inventory.System{Vendor: "QEMU", Product: "Standard PC"})
	return code
}

// boot plays one discovery boot of the known machine mac: the nonce its
// DHCP exchange gets, a new Ed25519 key, and the agent's registration
// (call number 1) signed with that key. It returns the console token and
// the registration's ID. A second boot for one MAC (another host, or the
// same one rebooted) is a second registration.
func (e *cliEnv) boot(mac string, sys inventory.System) (code, id string) {
	e.t.Helper()
	nonce, err := e.db.IssueNonce(mac, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	tok, _ := token.New(rand.Reader, time.Now())
	salt, _ := token.NewSalt(rand.Reader)
	inv := inventory.Inventory{SchemaVersion: inventory.SchemaVersion, System: sys,
		CPU: inventory.CPU{Threads: 2, Cores: 2}, Memory: inventory.Memory{TotalBytes: 2 << 30},
		Disks: []inventory.Disk{{Name: "sda", Path: "/dev/sda", SizeBytes: 8 << 30, ByPath: "pci-0000:00:1f.2-ata-1"}}}
	b, _ := json.Marshal(map[string]any{"mac": mac, "inventory": inv, "public_key": pub,
		"token": agentwire.NewAgentToken(tok, salt)})
	req, _ := http.NewRequest(http.MethodPost, e.url+api.Prefix+"/agent/register", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(api.NonceHeader, nonce)
	if err := agentsig.Sign(req, key, 1); err != nil {
		e.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("register: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		e.t.Fatalf("register: %s: %s", resp.Status, body)
	}
	return tok.Value, agentsig.KeyID(pub)
}

func TestCLIRoundTrip(t *testing.T) {
	e := newCLIEnv(t)
	ctx := context.Background()
	t.Setenv("FOUNDRY_URL", e.url)
	t.Setenv("FOUNDRY_TOKEN", e.admin)
	const mac = "52:54:00:12:34:56"
	code := e.registerMachine(mac)

	steps := []struct {
		name string
		args []string
		exit int
		out  string // substring of stdout
		err  string // substring of stderr
	}{
		{"create profile", []string{"profiles", "create", "prod", "--kind", "netboot", "--kernel", "/images/prod/vmlinuz", "--cmdline", "console=ttyS0"}, 0, "netboot", ""},
		{"bad profile names the field", []string{"profiles", "create", "bad", "--kind", "netboot"}, 4, "", "body.kernel"},
		{"create cluster", []string{"clusters", "create", "rack1", "--default-profile", "prod"}, 0, "rack1", ""},
		{"update cluster", []string{"clusters", "update", "rack1", "--description", "row B"}, 0, "row B", ""},
		{"list clusters", []string{"clusters", "ls"}, 0, "rack1", ""},
		{"list profiles", []string{"profiles", "ls"}, 0, "/images/prod/vmlinuz", ""},
		{"list machines", []string{"machines", "ls"}, 0, "inventoried", ""},
		{"show machine", []string{"machines", "show", mac}, 0, "valid until", ""},
		{"wrong token", []string{"machines", "approve", mac, "--console-token", "FOUNDRY-AAAA-BBBB-CCCC", "--cluster", "rack1"}, 4, "", "body.token"},
		{"unknown cluster", []string{"machines", "approve", mac, "--console-token", code, "--cluster", "nope"}, 4, "", "body.cluster"},
		{"bad hostname", []string{"machines", "approve", mac, "--console-token", code, "--cluster", "rack1", "--hostname", "bad_name"}, 4, "", "body.hostname"},
		{"approve", []string{"machines", "approve", mac, "--console-token", code, "--cluster", "rack1", "--hostname", "node-01"}, 0, "approved " + mac + " as node-01", ""},
		{"approve again", []string{"machines", "approve", mac, "--console-token", code, "--cluster", "rack1"}, 4, "", "only an inventoried machine"},
		{"unknown machine", []string{"machines", "show", "52:54:00:00:00:99"}, 3, "", "not found"},
		{"cluster in use", []string{"clusters", "delete", "rack1"}, 4, "", "in use"},
		{"audit", []string{"audit", "--mac", mac, "--action", "approve"}, 0, "token:admin", ""},
		{"audit bad since", []string{"audit", "--since", "yesterday"}, 2, "", "--since"},
		{"no args", []string{"machines", "show"}, 2, "", "MAC"},
		{"bad output", []string{"machines", "ls", "-o", "yaml"}, 2, "", "table or json"},
		{"unknown flag", []string{"machines", "ls", "--colour"}, 2, "", "colour"},
		{"viewer cannot delete", []string{"machines", "delete", mac, "--token", e.viewer}, 5, "", "viewer"},
		{"unknown token", []string{"machines", "ls", "--token", "fdy_nope"}, 5, "", "unknown or revoked"},
		{"unreachable", []string{"machines", "ls", "--server", "http://127.0.0.1:1"}, 1, "", "connect"},
		{"rediscover", []string{"machines", "rediscover", mac}, 0, "sent back to discovery", ""},
		{"delete", []string{"machines", "delete", mac}, 0, "deleted " + mac, ""},
		{"delete cluster", []string{"clusters", "delete", "rack1"}, 0, "deleted cluster rack1", ""},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			out, errOut, exit := e.run(ctx, s.args...)
			if exit != s.exit || !strings.Contains(out, s.out) || !strings.Contains(errOut, s.err) {
				t.Fatalf("foundry %s: exit %d (want %d)\nstdout: %s\nstderr: %s", strings.Join(s.args, " "), exit, s.exit, out, errOut)
			}
		})
	}
}

func TestCLIJSONAndTokens(t *testing.T) {
	e := newCLIEnv(t)
	ctx := context.Background()
	flags := []string{"--server", e.url, "--token", e.admin, "-o", "json"}
	run := func(args ...string) string {
		t.Helper()
		out, errOut, exit := e.run(ctx, append(args, flags...)...)
		if exit != 0 {
			t.Fatalf("foundry %v: exit %d: %s", args, exit, errOut)
		}
		return out
	}
	const mac = "52:54:00:ab:cd:ef"
	code := e.registerMachine(mac)
	var list api.MachineList
	if err := json.Unmarshal([]byte(run("machines", "ls", "--state", "inventoried")), &list); err != nil || list.Total != 1 || list.Items[0].MAC != mac || list.Items[0].Summary.Vendor != "QEMU" {
		t.Fatalf("machines ls -o json: %+v %v", list, err)
	}
	var m api.Machine
	if err := json.Unmarshal([]byte(run("machines", "show", mac)), &m); err != nil || len(m.Inventory) == 0 {
		t.Fatalf("machines show -o json: %+v %v", m, err)
	}
	run("profiles", "create", "img", "--kind", "image", "--image-url", "/images/x.raw.zst", "--image-sha256", strings.Repeat("ab", 32))
	run("clusters", "create", "c1")
	// No segment is configured here, so a static address cannot be checked.
	if _, errOut, exit := e.run(ctx, append([]string{"machines", "approve", mac, "--console-token", code, "--cluster", "c1", "--profile", "img",
		"--static", "10.77.0.50/24"}, flags...)...); exit != 4 || !strings.Contains(errOut, "body.network.mode") {
		t.Fatalf("static without a segment: exit %d: %s", exit, errOut)
	}
	if err := json.Unmarshal([]byte(run("machines", "approve", mac, "--console-token", code, "--cluster", "c1", "--profile", "img")), &m); err != nil ||
		m.State != "approved" || m.Approval.Disk != "/dev/disk/by-path/pci-0000:00:1f.2-ata-1" {
		t.Fatalf("approve -o json: %+v %v", m, err)
	}
	var nt api.NewToken
	if err := json.Unmarshal([]byte(run("tokens", "create", "ci", "--role", "viewer")), &nt); err != nil || !strings.HasPrefix(nt.Secret, "fdy_") {
		t.Fatalf("tokens create: %+v %v", nt, err)
	}
	if out, _, exit := e.run(ctx, "tokens", "ls", "--server", e.url, "--token", nt.Secret); exit != 5 || out != "" {
		t.Errorf("viewer listing tokens: exit %d", exit)
	}
	run("tokens", "revoke", nt.ID)
	var tokens []api.APIToken
	if err := json.Unmarshal([]byte(run("tokens", "ls")), &tokens); err != nil || len(tokens) != 2 {
		t.Fatalf("tokens after revoke: %+v %v", tokens, err)
	}
	var audit api.AuditList
	if err := json.Unmarshal([]byte(run("audit", "--action", "token-revoke", "--since", "1h")), &audit); err != nil || len(audit.Items) != 1 {
		t.Fatalf("audit -o json: %+v %v", audit, err)
	}
}

func TestCLIWatch(t *testing.T) {
	e := newCLIEnv(t)
	const mac = "52:54:00:00:00:07"
	e.registerMachine(mac)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	root := &cobra.Command{Use: "foundry", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(cliCommands()...)
	var out syncbuf.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"machines", "watch", mac, "--server", e.url, "--token", e.viewer, "-o", "json"})
	done := make(chan error, 1)
	wctx, stop := context.WithCancel(ctx)
	go func() { done <- root.ExecuteContext(wctx) }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(out.String(), `"ip":"10.77.0.9"`) {
		if _, err := e.db.UpdateMachine(mac, store.Audit{Actor: "test"}, func(m *store.Machine) error { m.IP = "10.77.0.9"; return nil }); err != nil {
			t.Fatal(err)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("watch printed no change: %q", out.String())
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("watch ended with %v", err)
	}
	line := strings.SplitN(out.String(), "\n", 2)[0]
	var ev api.MachineEvent
	if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.Type != "updated" || ev.Machine.MAC != mac {
		t.Fatalf("watch line %q: %v", line, err)
	}
}
