package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/store"
)

// appliance is a running `foundry serve`.
type appliance struct {
	URL     string
	DataDir string
	Admin   string
	log     *bytes.Buffer
	// nonces are the seeded machines' boot nonces, by MAC.
	nonces map[string]string
	bin    string
	config string
	// stop ends the running serve and waits for it; it may be called
	// more than once.
	stop func()
	// owner is the test that started the appliance: serve runs until it
	// ends, even when a subtest restarts it.
	owner *testing.T
}

// repoRoot is the module root (where go.mod is).
func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// buildFoundry builds the appliance binary the way the Makefile does, or
// returns FOUNDRY_E2E_BIN when that names one already built.
func buildFoundry(t *testing.T, root string) string {
	t.Helper()
	if bin := os.Getenv("FOUNDRY_E2E_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(t.TempDir(), "foundry")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/foundry")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/foundry: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// seedDiscovered creates machine records exactly as the DHCP server does
// for an unknown MAC on a discovery segment, and the boot nonce each
// machine's discovery script would have carried (the appliance issues one
// only to the address it has just leased the machine, which these
// simulated machines never had). It runs before serve starts: Badger
// allows one process per database.
func seedDiscovered(t *testing.T, dataDir string, macs ...string) map[string]string {
	t.Helper()
	db, err := store.Open(filepath.Join(dataDir, "db"), store.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	defer db.Close()
	now := time.Now()
	nonces := map[string]string{}
	for _, mac := range macs {
		m := store.Machine{
			MAC: mac, State: store.StateDiscovered, Temporary: true, ExpiresAt: now.Add(24 * time.Hour),
			Hostname: "discovered-" + strings.ReplaceAll(mac[9:], ":", ""),
			Segment:  "lab", Arch: "uefi-x64", FirstSeen: now, LastSeen: now,
		}
		if _, err := db.CreateMachine(m, store.Audit{Actor: "dhcp", Action: "discover", Detail: "segment lab, arch uefi-x64"}); err != nil {
			t.Fatalf("seed %s: %v", mac, err)
		}
		n, err := db.IssueNonce(mac, time.Hour)
		if err != nil {
			t.Fatalf("seed nonce for %s: %v", mac, err)
		}
		nonces[mac] = n
	}
	return nonces
}

// labSegment creates the veth pair lab0 (10.77.0.1/24) – lab1 and returns
// the configuration of segment lab on it. Only for a test inside its own
// network namespace (nstest.Reexec): the DHCP server it starts can reach
// nothing but that namespace.
func labSegment(t *testing.T) string {
	t.Helper()
	for _, args := range [][]string{
		{"link", "add", "lab0", "type", "veth", "peer", "name", "lab1"},
		{"addr", "add", "10.77.0.1/24", "dev", "lab0"},
		{"link", "set", "lab1", "up"},
		{"link", "set", "lab0", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return "segments:\n  - name: lab\n    interface: lab0\n    subnet: 10.77.0.0/24\n    range: [10.77.0.100, 10.77.0.200]\n" +
		"    router: 10.77.0.1\n    mode: dhcp\n    discovery: true\n"
}

// startAppliance runs `foundry serve`, HTTP and TFTP on loopback, until the
// test ends. Without seeded machines it serves no segment (so no DHCP and
// no raw sockets); with them it serves segment lab (labSegment), where the
// seeded machines were discovered.
func startAppliance(t *testing.T, bin string, seed ...string) *appliance {
	t.Helper()
	return startApplianceWith(t, bin, "", seed...)
}

// startApplianceWith is startAppliance with extra configuration (YAML
// appended to the file).
func startApplianceWith(t *testing.T, bin, extra string, seed ...string) *appliance {
	t.Helper()
	dir := t.TempDir()
	dataDir, imageDir := filepath.Join(dir, "data"), filepath.Join(dir, "images")
	// TFTP serves image_dir/ipxe; empty is fine here.
	if err := os.MkdirAll(filepath.Join(imageDir, "ipxe"), 0o755); err != nil {
		t.Fatal(err)
	}
	nonces := seedDiscovered(t, dataDir, seed...)
	port := freePort(t, "tcp")
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	cfg := fmt.Sprintf("data_dir: %s\nimage_dir: %s\nhttp:\n  listen: 127.0.0.1:%d\n  advertise: %s\ntftp:\n  listen: 127.0.0.1:%d\n",
		dataDir, imageDir, port, url, freePort(t, "udp"))
	if len(seed) > 0 {
		cfg += labSegment(t)
	}
	cfg += extra
	cfgPath := filepath.Join(dir, "foundry.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &appliance{
		URL: url, DataDir: dataDir, Admin: "e2e-admin-token-" + strings.Repeat("x", 16), log: &bytes.Buffer{}, nonces: nonces,
		bin: bin, config: cfgPath, owner: t,
	}
	// Registered first, so that it runs last: after serve has stopped.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("foundry serve log:\n%s", a.log.String())
		}
	})
	a.start(t)
	// The binary must serve the dashboard, not the API's placeholder.
	res, err := http.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !bytes.Contains(page, []byte(`<div id="app">`)) {
		t.Fatalf("foundry serve does not serve the dashboard at / (cmd/foundry must set api.Server.UI to ui.Handler()); it served:\n%s", page)
	}
	return a
}

// start runs `foundry serve` with the appliance's configuration until the
// test ends or stop is called, and waits until it is ready.
func (a *appliance) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, a.bin, "serve", "--config", a.config)
	cmd.Env = append(os.Environ(), "FOUNDRY_ADMIN_TOKEN="+a.Admin)
	cmd.Stdout, cmd.Stderr = a.log, a.log
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 15 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start foundry serve: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	a.stop = func() {
		once.Do(func() {
			cancel()
			<-exited
		})
	}
	a.owner.Cleanup(a.stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err // for stop
			t.Fatalf("foundry serve exited: %v", err)
		default:
		}
		res, err := http.Get(a.URL + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("foundry serve not ready after 30 s: %v\n%s", err, a.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// offline stops serve, runs fn on its database (Badger allows one
// process per database) and starts serve again on the same address.
func (a *appliance) offline(t *testing.T, fn func(db *store.DB)) {
	t.Helper()
	a.stop()
	db, err := store.Open(filepath.Join(a.DataDir, "db"), store.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	fn(db)
	if err := db.Close(); err != nil {
		t.Fatalf("close store: %v", err)
	}
	a.start(t)
}

// call makes an API request with a bearer token and decodes the JSON
// answer into out when it is not nil.
func (a *appliance) call(t *testing.T, method, path, bearer string, body, out any) int {
	t.Helper()
	req := a.request(t, method, path, body)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return a.send(t, http.DefaultClient, req, out)
}

// request builds an API request with a JSON body when body is not nil.
func (a *appliance) request(t *testing.T, method, path string, body any) *http.Request {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// send sends req with c and decodes a JSON answer into out when it is
// not nil; it returns the status.
func (a *appliance) send(t *testing.T, c *http.Client, req *http.Request, out any) int {
	t.Helper()
	method, path := req.Method, req.URL.RequestURI()
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	if res.StatusCode >= 300 {
		t.Logf("%s %s → %d %s", method, path, res.StatusCode, b)
	}
	return res.StatusCode
}

// must is call that fails the test unless the status is want.
func (a *appliance) must(t *testing.T, want int, method, path, bearer string, body, out any) {
	t.Helper()
	if got := a.call(t, method, path, bearer, body, out); got != want {
		t.Fatalf("%s %s: status %d, want %d", method, path, got, want)
	}
}

var nonceRe = regexp.MustCompile(`foundry\.nonce=(\S+)`)

// bootNonce is the seeded machine's boot nonce. Asking the appliance for
// the script from here would give none: this is not the machine's address.
func (a *appliance) bootNonce(t *testing.T, mac string) string {
	t.Helper()
	res, err := http.Get(a.URL + "/boot/" + mac)
	if err != nil {
		t.Fatalf("GET /boot/%s: %v", mac, err)
	}
	defer res.Body.Close()
	if b, _ := io.ReadAll(res.Body); res.StatusCode != http.StatusOK || nonceRe.Match(b) {
		t.Fatalf("GET /boot/%s from the test host: status %d, a nonce handed out:\n%s", mac, res.StatusCode, b)
	}
	n, ok := a.nonces[mac]
	if !ok {
		t.Fatalf("%s was not seeded", mac)
	}
	return n
}
