package test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/agentsig"
	"github.com/foundry-appliance/foundry/agentwire"
	"github.com/foundry-appliance/foundry/discovery-os/agent"
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

// nsHTTP is an HTTP client whose connections are made from inside client
// namespace ns ("" = the test's own), the way a booting machine calls the
// appliance. When tap is not nil it records every byte the client writes,
// one entry per connection: what a host on the segment could sniff.
func nsHTTP(ns string, tap *wireTap) *http.Client {
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			var err error
			if ns == "" {
				var d net.Dialer
				c, err = d.DialContext(ctx, network, addr)
			} else {
				c, err = dialIn(ctx, ns, network, addr)
			}
			if err != nil || tap == nil {
				return c, err
			}
			return tap.conn(c), nil
		},
	}}
}

// wireTap keeps the bytes written on each connection, in order.
type wireTap struct {
	mu    sync.Mutex
	conns []*bytes.Buffer
}

func (w *wireTap) conn(c net.Conn) net.Conn {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := new(bytes.Buffer)
	w.conns = append(w.conns, b)
	return &tappedConn{Conn: c, mu: &w.mu, out: b}
}

// last returns a copy of the bytes of the most recent connection.
func (w *wireTap) last() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.conns) == 0 {
		return nil
	}
	return bytes.Clone(w.conns[len(w.conns)-1].Bytes())
}

type tappedConn struct {
	net.Conn
	mu  *sync.Mutex
	out *bytes.Buffer
}

func (c *tappedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.out.Write(p)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// discoveryNonce fetches mac's boot script from client namespace ns, where
// the machine has just taken its DHCP lease (the appliance gives a nonce
// only there), and returns the nonce on its kernel command line.
func discoveryNonce(t *testing.T, a *appliance, ns, mac string) string {
	t.Helper()
	code, script := getFrom(t, ns, a.base+"/boot/"+mac)
	m := nonceRE.FindStringSubmatch(script)
	if code != 200 || m == nil {
		t.Fatalf("no discovery nonce for %s (%d):\n%s", mac, code, script)
	}
	return m[1]
}

// bootAgent is one discovery boot's agent: the real agent client
// (discovery-os/agent) with the boot's fresh Ed25519 key and nonce, calling
// from the namespace the machine booted in, and the console token it shows.
type bootAgent struct {
	*agent.Client
	Console string
	salt    []byte
	expires time.Time
}

// newBootAgent makes the agent of a new boot that got nonce, calling base
// from namespace ns through tap (both may be empty).
func newBootAgent(t *testing.T, base, ns, nonce string, tap *wireTap) *bootAgent {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	must(t, err)
	tok, err := token.New(rand.Reader, time.Now())
	must(t, err)
	salt, err := token.NewSalt(rand.Reader)
	must(t, err)
	return &bootAgent{
		Client:  &agent.Client{BaseURL: base, Nonce: nonce, Key: key, HTTP: nsHTTP(ns, tap)},
		Console: tok.Value, salt: salt, expires: tok.ExpiresAt,
	}
}

// session is the boot session's ID: the key's ID.
func (b *bootAgent) session() string {
	return agentsig.KeyID(b.Key.Public().(ed25519.PublicKey))
}

// tokenHash is what the agent sends for its console token.
func (b *bootAgent) tokenHash() agentwire.AgentToken {
	return agentwire.NewAgentToken(token.Token{Value: b.Console, ExpiresAt: b.expires}, b.salt)
}

// register opens the boot's session with inv, as the agent does after
// booting, and returns the machine's state.
func (b *bootAgent) register(mac string, inv inventory.Inventory) (string, error) {
	raw, err := json.Marshal(inv)
	if err != nil {
		return "", err
	}
	return b.Register(context.Background(), agentwire.AgentRegister{MAC: mac, Inventory: raw, Token: b.tokenHash()})
}

// testInventory is a small virtual machine's inventory with one disk at
// /dev/disk/by-path/<byPath>.
func testInventory(mac, serial, byPath string) inventory.Inventory {
	return inventory.Inventory{
		SchemaVersion: inventory.SchemaVersion,
		CollectedAt:   time.Now(),
		System:        inventory.System{Vendor: "QEMU", Serial: serial},
		Memory:        inventory.Memory{TotalBytes: 2 << 30, UsableBytes: 2 << 30},
		Disks: []inventory.Disk{{Name: "vda", Path: "/dev/vda", SizeBytes: 8 << 30,
			ByPath: byPath, Rotational: true}},
		NICs: []inventory.NIC{{Name: "eth0", MAC: mac, Driver: "virtio_net", Link: true, OperState: "up"}},
	}
}

// registerAgent does what the discovery agent does after booting: with the
// nonce from its boot script, fetched from ns, where it has just taken its
// DHCP lease, it registers a fresh key, an inventory and the hash of a
// fresh console token, the call signed with that key. It returns the
// console token.
func registerAgent(t *testing.T, a *appliance, ns, mac string) string {
	t.Helper()
	nonce := discoveryNonce(t, a, ns, mac)
	b := newBootAgent(t, a.base, ns, nonce, nil)
	if _, err := b.register(mac, testInventory(mac, "", "pci-0000:00:04.0")); err != nil {
		t.Fatalf("agent register: %v", err)
	}
	// The nonce is the agent's credential, never an administrator's.
	for _, h := range []http.Header{{"X-Foundry-Nonce": {nonce}}, {"Authorization": {"Bearer " + nonce}}} {
		req, _ := http.NewRequest("GET", a.base+"/api/v1/machines", nil)
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("agent nonce on an admin path (%v): %s, want 401", h, resp.Status)
		}
	}
	return b.Console
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
