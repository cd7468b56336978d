package api_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/foundry-appliance/foundry/api"
)

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestPlainEndpoints(t *testing.T) {
	images := t.TempDir()
	if err := os.MkdirAll(filepath.Join(images, "discovery"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(images, "discovery", "vmlinuz"), []byte("kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(images, "escape")); err != nil {
		t.Fatal(err)
	}
	notReady := errors.New("dhcp not started")
	var readyErr error = notReady
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(s *api.Server) {
		s.ImageDir = images
		s.Registry = reg
		s.Ready = func() error { return readyErr }
		s.Boot = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "#!ipxe\n# "+r.URL.Path) })
	})
	c := e.ts.Client()
	cases := []struct {
		path   string
		status int
		has    string
	}{
		{"/healthz", 200, "ok"},
		{"/readyz", 503, "dhcp not started"},
		{"/images/discovery/vmlinuz", 200, "kernel"},
		{"/images/discovery/", 404, ""},
		{"/images/", 404, ""},
		{"/images/../harness_test.go", 404, ""},
		{"/images/escape", 404, ""},
		{"/boot/52:54:00:12:34:56", 200, "#!ipxe"},
		{"/", 200, "Foundry"},
		{"/nothing-here", 404, ""},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			code, body := get(t, c, e.ts.URL+tc.path)
			if code != tc.status || !strings.Contains(body, tc.has) {
				t.Fatalf("%d %q", code, body)
			}
			if strings.Contains(body, "secret") {
				t.Fatal("served a file outside the image directory")
			}
		})
	}
	readyErr = nil
	if code, _ := get(t, c, e.ts.URL+"/readyz"); code != 200 {
		t.Errorf("readyz when ready: %d", code)
	}
	code, body := get(t, c, e.ts.URL+"/metrics")
	if code != 200 || !strings.Contains(body, `foundry_http_requests_total{code="200",method="GET",route="/healthz"} 1`) ||
		!strings.Contains(body, `route="/images/"`) {
		t.Errorf("metrics: %d\n%s", code, body)
	}
}

// TestServeTLS runs Serve with a self-signed certificate on loopback,
// checks it against the persisted certificate, and shuts down gracefully
// while an event stream is open.
func TestServeTLS(t *testing.T) {
	e := newEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	srv := &api.Server{Store: e.db, Listen: addr, DataDir: dir, SelfSigned: true}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	var pool *x509.CertPool
	for i := 0; i < 100; i++ {
		if pem, err := os.ReadFile(filepath.Join(dir, "tls", "cert.pem")); err == nil {
			pool = x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			if conn, err := net.Dial("tcp", addr); err == nil {
				conn.Close()
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if pool == nil {
		t.Fatal("no self-signed certificate written")
	}
	if st, err := os.Stat(filepath.Join(dir, "tls", "key.pem")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if code, body := get(t, c, "https://"+addr+"/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Fatalf("healthz over tls: %d %q", code, body)
	}
	req, _ := http.NewRequest(http.MethodGet, "https://"+addr+api.Prefix+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+e.adminToken)
	resp, err := c.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("open stream: %v", err)
	}
	defer resp.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not shut down with an open event stream")
	}
}

// A machine that is still downloading its kernel when the appliance stops
// must not make the stop fail: after the grace period its connection is
// closed and Serve returns nil.
func TestServeStopsDespiteStalledDownload(t *testing.T) {
	e := newEnv(t)
	images := t.TempDir()
	if err := os.WriteFile(filepath.Join(images, "big"), make([]byte, 64<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	srv := &api.Server{Store: e.db, Listen: addr, ImageDir: images, ShutdownGrace: 200 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	var resp *http.Response
	for i := 0; i < 100; i++ {
		if resp, err = http.Get("http://" + addr + "/images/big"); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("start download: %v", err)
	}
	defer resp.Body.Close()
	// Read one byte and stall, as a slow client would.
	if _, err := resp.Body.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve returned %v, want nil after closing the stalled download", err)
		}
		if took := time.Since(start); took < 200*time.Millisecond {
			t.Errorf("Serve returned after %v, before the grace period", took)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not stop with a stalled download")
	}
}
