package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/discovery-os/inventory"
	"github.com/foundry-appliance/foundry/discovery-os/token"
)

var nonceRE = regexp.MustCompile(`foundry\.nonce=([A-Za-z0-9_-]+)`)

// cli runs the foundry binary as an administrator would, against the
// appliance, and returns its output and exit code.
func cli(t *testing.T, a *appliance, apiToken string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, foundryBin, args...)
	cmd.Env = append(os.Environ(), "FOUNDRY_URL="+a.base, "FOUNDRY_TOKEN="+apiToken)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("foundry %v: %v", args, err)
	return "", 0
}

// registerAgent does what the discovery agent does after booting: it posts
// an inventory and the hash of a fresh console token, authenticated by the
// nonce from its kernel command line, which it fetched from ns, where it
// has just taken its DHCP lease. It returns the console token.
func registerAgent(t *testing.T, a *appliance, ns, mac string) string {
	t.Helper()
	code, script := getFrom(t, ns, a.base+"/boot/"+mac)
	m := nonceRE.FindStringSubmatch(script)
	if code != 200 || m == nil {
		t.Fatalf("no discovery nonce for %s (%d):\n%s", mac, code, script)
	}
	tok, err := token.New(rand.Reader, time.Now())
	must(t, err)
	salt, err := token.NewSalt(rand.Reader)
	must(t, err)
	inv := inventory.Inventory{
		SchemaVersion: inventory.SchemaVersion,
		CollectedAt:   time.Now(),
		Memory:        inventory.Memory{TotalBytes: 2 << 30, UsableBytes: 2 << 30},
		Disks: []inventory.Disk{{Name: "vda", Path: "/dev/vda", SizeBytes: 8 << 30,
			ByPath: "/dev/disk/by-path/pci-0000:00:04.0", Rotational: true}},
		NICs: []inventory.NIC{{Name: "eth0", MAC: mac, Driver: "virtio_net", Link: true, OperState: "up"}},
	}
	body, err := json.Marshal(map[string]any{"mac": mac, "inventory": inv,
		"token": map[string]any{"salt": salt, "hash": token.Hash(tok.Value, salt), "expires_at": tok.ExpiresAt}})
	must(t, err)
	req, err := http.NewRequest("POST", a.base+"/api/v1/agent/register", bytes.NewReader(body))
	must(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Foundry-Nonce", m[1])
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("agent register: %s", resp.Status)
	}
	// The nonce is the agent's credential, never an administrator's.
	for _, h := range []http.Header{{"X-Foundry-Nonce": {m[1]}}, {"Authorization": {"Bearer " + m[1]}}} {
		req, _ := http.NewRequest("GET", a.base+"/api/v1/machines", nil)
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("agent nonce on an admin path (%v): %s, want 401", h, resp.Status)
		}
	}
	return tok.Value
}

type machineJSON struct {
	MAC       string `json:"mac"`
	State     string `json:"state"`
	Hostname  string `json:"hostname"`
	Temporary bool   `json:"temporary"`
	Cluster   string `json:"cluster"`
	Profile   string `json:"profile"`
}

func showMachine(t *testing.T, a *appliance, mac string) machineJSON {
	t.Helper()
	out, code := cli(t, a, adminToken, "machines", "show", mac, "-o", "json")
	if code != 0 {
		t.Fatalf("machines show: exit %d\n%s", code, out)
	}
	var m machineJSON
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("machines show -o json: %v\n%s", err, out)
	}
	return m
}

// The approval path an administrator takes from the CLI, against the real
// appliance: refused with a wrong console token and with a viewer token,
// accepted with the token from the console; the record survives a restart.
func TestCLIApprovalAgainstServe(t *testing.T) {
	labNet, _, a := coreLab(t)
	const mac = "52:54:00:dd:00:01"
	ns := labNet.client(mac)
	must(t, newDHClient(t, ns).once(40*time.Second))
	consoleToken := registerAgent(t, a, ns, mac)
	if m := showMachine(t, a, mac); m.State != "inventoried" || !m.Temporary {
		t.Fatalf("after registration: %+v", m)
	}

	for _, args := range [][]string{
		{"profiles", "create", "prod", "--kind", "netboot", "--kernel", "http://10.77.0.1:8080/images/discovery/vmlinuz",
			"--initrd", "http://10.77.0.1:8080/images/discovery/initrd", "--cmdline", "console=ttyS0 marker=cli"},
		{"clusters", "create", "rack1", "--default-profile", "prod"},
	} {
		if out, code := cli(t, a, adminToken, args...); code != 0 {
			t.Fatalf("foundry %v: exit %d\n%s", args, code, out)
		}
	}

	approve := []string{"machines", "approve", mac, "--cluster", "rack1", "--hostname", "node-01"}
	out, code := cli(t, a, adminToken, append(approve, "--console-token", "FOUNDRY-AAAA-BBBB-CCCC")...)
	if code != 4 || !strings.Contains(out, "body.token") {
		t.Fatalf("wrong console token: exit %d, want 4 naming body.token\n%s", code, out)
	}
	if m := showMachine(t, a, mac); m.State != "inventoried" || m.Hostname != "discovered-dd0001" {
		t.Fatalf("a refused approval changed the machine: %+v", m)
	}

	viewer, code := cli(t, a, adminToken, "tokens", "create", "auditor", "--role", "viewer")
	viewer = strings.TrimSpace(strings.SplitN(viewer, "\n", 2)[0])
	if code != 0 || !strings.HasPrefix(viewer, "fdy_") {
		t.Fatalf("tokens create: exit %d\n%s", code, viewer)
	}
	if out, code := cli(t, a, viewer, "machines", "ls"); code != 0 || !strings.Contains(out, mac) {
		t.Fatalf("viewer cannot list: exit %d\n%s", code, out)
	}
	if out, code := cli(t, a, viewer, append(approve, "--console-token", consoleToken)...); code != 5 {
		t.Fatalf("viewer approval: exit %d, want 5 (not authorised)\n%s", code, out)
	}

	if out, code := cli(t, a, adminToken, append(approve, "--console-token", strings.ToLower(consoleToken))...); code != 0 {
		t.Fatalf("approval with the console token: exit %d\n%s", code, out)
	}
	m := showMachine(t, a, mac)
	if m.State != "ready" || m.Hostname != "node-01" || m.Temporary || m.Cluster != "rack1" || m.Profile != "prod" {
		t.Fatalf("after approval: %+v", m)
	}
	if code, script := get(t, a.base+"/boot/"+mac); code != 200 || !strings.Contains(script, "marker=cli") {
		t.Fatalf("approved machine's script is not production (%d):\n%s", code, script)
	}
	out, code = cli(t, a, adminToken, "audit", "--mac", mac, "-o", "json")
	if code != 0 || !strings.Contains(out, `"token:env"`) || !strings.Contains(out, "approve") {
		t.Fatalf("audit has no approval by the env token: exit %d\n%s", code, out)
	}

	leasesBefore, _ := cli(t, a, adminToken, "machines", "ls", "-o", "json")
	a.restart()
	leasesAfter, _ := cli(t, a, adminToken, "machines", "ls", "-o", "json")
	if leasesBefore != leasesAfter {
		t.Errorf("machine list changed across a restart:\nbefore %s\nafter  %s", leasesBefore, leasesAfter)
	}
}
