package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/agentsig"
	"github.com/foundry-appliance/foundry/agentwire"
	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/discovery-os/inventory"
	"github.com/foundry-appliance/foundry/discovery-os/token"
)

// cliAgent is one discovery boot's agent: it registers like boot does and
// then makes further signed calls (decision, result) in its session.
type cliAgent struct {
	e     *cliEnv
	key   ed25519.PrivateKey
	seq   uint64
	token string // the console token
	id    string // the registration's ID
}

func (e *cliEnv) agentBoot(mac string) *cliAgent {
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
	inv := inventory.Inventory{SchemaVersion: inventory.SchemaVersion, System: inventory.System{Vendor: "QEMU"},
		CPU: inventory.CPU{Threads: 2, Cores: 2}, Memory: inventory.Memory{TotalBytes: 2 << 30},
		Disks: []inventory.Disk{{Name: "sda", Path: "/dev/sda", SizeBytes: 8 << 30, ByPath: "pci-0000:00:1f.2-ata-1"}}}
	a := &cliAgent{e: e, key: key, token: tok.Value, id: agentsig.KeyID(pub)}
	code, body := a.call(http.MethodPost, "/agent/register", map[string]any{"mac": mac, "inventory": inv, "public_key": pub,
		"token": agentwire.NewAgentToken(tok, salt)}, nonce)
	if code != http.StatusOK {
		e.t.Fatalf("register: %d %s", code, body)
	}
	return a
}

// call sends a signed agent call (nonce only for the registration).
func (a *cliAgent) call(method, path string, body any, nonce ...string) (int, string) {
	a.e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, a.e.url+api.Prefix+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if len(nonce) > 0 {
		req.Header.Set(api.NonceHeader, nonce[0])
	}
	a.seq++
	if err := agentsig.Sign(req, a.key, a.seq); err != nil {
		a.e.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (a *cliAgent) decision() api.Decision {
	a.e.t.Helper()
	code, body := a.call(http.MethodGet, "/agent/decision", nil)
	var d api.Decision
	if code != http.StatusOK || json.Unmarshal([]byte(body), &d) != nil {
		a.e.t.Fatalf("decision: %d %s", code, body)
	}
	return d
}

// A ready machine is redeployed with an image profile, its new boot bound
// with the console token, installed and reported by its first boot; then
// released, wiped in discovery and approved again. At each step the CLI
// says what happens next and `machines show` what is pending.
func TestCLIRedeployBindRelease(t *testing.T) {
	e := newCLIEnv(t)
	ctx := context.Background()
	t.Setenv("FOUNDRY_URL", e.url)
	t.Setenv("FOUNDRY_TOKEN", e.admin)
	const mac = "52:54:00:12:34:5a"
	run := func(wantExit int, args ...string) (string, string) {
		t.Helper()
		out, errOut, exit := e.run(ctx, args...)
		if exit != wantExit {
			t.Fatalf("foundry %s: exit %d (want %d)\nstdout: %s\nstderr: %s", strings.Join(args, " "), exit, wantExit, out, errOut)
		}
		return out, errOut
	}
	has := func(what, out string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s lacks %q:\n%s", what, w, out)
			}
		}
	}
	lacks := func(what, out string, unwanted ...string) {
		t.Helper()
		for _, w := range unwanted {
			if strings.Contains(out, w) {
				t.Errorf("%s has %q:\n%s", what, w, out)
			}
		}
	}
	show := func() api.Machine {
		t.Helper()
		out, _ := run(0, "machines", "show", mac, "-o", "json")
		var m api.Machine
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}

	code := e.registerMachine(mac)
	run(0, "profiles", "create", "net", "--kind", "netboot", "--kernel", "/images/prod/vmlinuz")
	run(0, "profiles", "create", "img", "--kind", "image", "--image-url", "/images/x.raw.zst", "--image-sha256", strings.Repeat("ab", 32))
	run(0, "clusters", "create", "c1", "--default-profile", "net")
	run(0, "machines", "approve", mac, "--console-token", code, "--cluster", "c1", "--hostname", "node-01")
	if m := show(); m.State != "ready" {
		t.Fatalf("netboot approval: %s", m.State)
	}

	// Help says what comes after each command.
	out, _ := run(0, "machines", "redeploy", "--help")
	has("redeploy --help", out, "boot the machine into discovery", "foundry machines bind MAC --console-token TOKEN")
	out, _ = run(0, "machines", "release", "--help")
	has("release --help", out, "boot it into discovery", "--full", "--secure-erase", "approve it as a new machine")

	// Redeploy with the image profile: approved, waiting for a bound boot.
	run(4, "machines", "redeploy", mac, "--profile", "nope")
	out, _ = run(0, "machines", "redeploy", mac, "--profile", "img")
	has("redeploy", out, "redeployed "+mac+" with profile img: approved", "next: boot it into discovery", "foundry machines bind "+mac+" --console-token TOKEN")
	run(2, "machines", "bind", mac)

	a := e.agentBoot(mac)
	if d := a.decision(); d.Decision != "wait" {
		t.Fatalf("an unbound boot's decision: %+v", d)
	}
	_, errOut := run(4, "machines", "bind", mac, "--console-token", "FOUNDRY-AAAA-AAAA-AAAA")
	has("bind with a wrong token", errOut, "bind refused")
	out, _ = run(0, "machines", "bind", mac, "--console-token", a.token)
	has("bind", out, "bound "+mac+" to registration "+shortID(a.id), ": approved; its agent now installs profile img")
	d := a.decision()
	if d.Decision != "image" || d.FirstBootURL == "" || d.Hostname != "node-01" {
		t.Fatalf("the bound boot's decision: %+v", d)
	}

	// The image is written: the machine waits for its installed system.
	if code, body := a.call(http.MethodPost, "/agent/result", map[string]any{"success": true, "message": "image written"}); code != http.StatusOK {
		t.Fatalf("result: %d %s", code, body)
	}
	out, _ = run(0, "machines", "show", mac)
	has("show after the install", out, "Installed:", "waiting for the installed system's first-boot report")
	lacks("show after the install", out, "Ready at:", "known_hosts", "Progress:")
	out, _ = run(0, "machines", "ls")
	has("ls after the install", out, "installed, waiting for its first boot")

	// The installed system's first boot reports its host keys.
	const hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl root@node-01"
	resp, err := http.PostForm(d.FirstBootURL, url.Values{"hostname": {"node-01"}, "instance_id": {"iid"}, "pub_key_ed25519": {hostKey}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("first boot report: %s", resp.Status)
	}
	m := show()
	if m.State != "ready" || m.DeploySeconds == nil || m.FirstBoot == nil {
		t.Fatalf("after the first boot: %+v", m)
	}
	out, _ = run(0, "machines", "show", mac)
	has("show when ready", out, "Ready at:", " after approval)", "First boot:", "as node-01",
		"SSH host keys from the first boot (known_hosts lines):\nnode-01 "+hostKey+"\n")
	lacks("show when ready", out, "Installed:", "Wipe:")

	// Release with a full wipe: every boot wipes before approval.
	out, _ = run(0, "machines", "release", mac, "--full")
	has("release", out, "released "+mac+": discovered", "wipes every byte of every fixed disk", "approve it again with its console token")
	if m := show(); m.State != "discovered" || m.Wipe == nil || !m.Wipe.Full || len(m.Registrations) != 0 {
		t.Fatalf("released: %+v", m)
	}
	out, _ = run(0, "machines", "show", mac)
	has("show when released", out, "Wipe:", "pending: every byte of every fixed disk at the next discovery boot; no registration has wiped yet")
	lacks("show when released", out, "Ready at:", "First boot:", "known_hosts", "Progress:")
	out, _ = run(0, "machines", "ls")
	has("ls when released", out, "released: wipe pending")

	b := e.agentBoot(mac)
	if d := b.decision(); d.Decision != "wipe" || d.Wipe == nil || !d.Wipe.Full {
		t.Fatalf("a released machine's boot: %+v", d)
	}
	_, errOut = run(4, "machines", "approve", mac, "--console-token", b.token, "--cluster", "c1")
	has("approval before the wipe", errOut, "has not wiped")
	if code, body := b.call(http.MethodPost, "/agent/result", map[string]any{"success": true, "message": "wiped 1 disk"}); code != http.StatusOK {
		t.Fatalf("wipe report: %d %s", code, body)
	}
	out, _ = run(0, "machines", "show", mac)
	has("show after the wipe", out, "wiped by registration "+shortID(b.id)+": approve it with its console token")
	if m := show(); len(m.Registrations) != 1 || m.Registrations[0].WipedAt == nil {
		t.Fatalf("the wiped registration: %+v", m.Registrations)
	}
	run(0, "machines", "approve", mac, "--console-token", b.token, "--cluster", "c1")
	if m := show(); m.State != "ready" || m.Wipe != nil {
		t.Fatalf("approved again: %s wipe %+v", m.State, m.Wipe)
	}

	// A netboot redeploy is ready at once.
	out, _ = run(0, "machines", "redeploy", mac)
	has("netboot redeploy", out, "redeployed "+mac+" with profile net: ready", "next: its next PXE boot gets the production script")

	// Release with the drives' own erase: the boot's decision carries it.
	out, _ = run(0, "machines", "release", mac, "--secure-erase")
	has("secure release", out, "wipes every fixed disk with the drive's own secure erase")
	out, _ = run(0, "machines", "show", mac)
	has("show when released for a secure erase", out, "pending: every fixed disk with the drive's own secure erase")
	if d := e.agentBoot(mac).decision(); d.Decision != "wipe" || d.Wipe == nil || !d.Wipe.Secure || d.Wipe.Full {
		t.Fatalf("a boot after a secure release: %+v", d)
	}
}

func TestKnownHostsAndDeployTime(t *testing.T) {
	secs := func(f float64) *float64 { return &f }
	at := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	keys := []string{"ssh-ed25519 AAAA1 root@n1", "ecdsa-sha2-nistp256 AAAA2"}
	for _, tc := range []struct {
		name string
		m    api.Machine
		want []string
	}{
		{"no report", api.Machine{State: "ready", Hostname: "n1", IP: "10.0.0.9"}, nil},
		{"reported name and the last address", api.Machine{State: "ready", Hostname: "n1", IP: "10.0.0.9", FirstBoot: &api.FirstBoot{At: at, Hostname: "n1.lab", SSHHostKeys: keys}},
			[]string{"n1.lab,10.0.0.9 " + keys[0], "n1.lab,10.0.0.9 " + keys[1]}},
		{"static address wins", api.Machine{State: "ready", Hostname: "n1", IP: "10.77.0.123", FirstBoot: &api.FirstBoot{At: at, SSHHostKeys: keys[:1]},
			Approval: &api.Approval{ApprovedAt: at.Add(-time.Minute), Network: api.Network{Mode: "static", Address: "10.77.0.50/24"}}},
			[]string{"n1,10.77.0.50 " + keys[0]}},
		// The keys of a system being wiped, or replaced by a later
		// (netboot) approval, would only mislead.
		{"released", api.Machine{State: "discovered", Hostname: "n1", FirstBoot: &api.FirstBoot{At: at, SSHHostKeys: keys}}, nil},
		{"approved again since", api.Machine{State: "ready", Hostname: "n1", FirstBoot: &api.FirstBoot{At: at, SSHHostKeys: keys},
			Approval: &api.Approval{ApprovedAt: at.Add(time.Hour)}}, nil},
	} {
		if got := knownHosts(tc.m); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct {
		m    api.Machine
		want string
	}{
		{api.Machine{}, ""},
		{api.Machine{State: "ready", ReadyAt: &at}, "2026-01-02T15:04:05Z"},
		{api.Machine{State: "ready", ReadyAt: &at, DeploySeconds: secs(252.4)}, "2026-01-02T15:04:05Z (4m12s after approval)"},
		{api.Machine{State: "discovered", ReadyAt: &at, DeploySeconds: secs(252.4)}, ""},
	} {
		if got := readyText(tc.m); got != tc.want {
			t.Errorf("readyText(%+v) = %q, want %q", tc.m, got, tc.want)
		}
	}
}
