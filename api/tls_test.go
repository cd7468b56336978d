package api

import (
	"bytes"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSelfSignedNamesAdvertisedHost: the generated certificate verifies,
// with itself as the only root, for every TLS host (the advertised one);
// a kept certificate is reused while it fits and regenerated, with a
// warning, when a host changes or it has expired.
func TestSelfSignedNamesAdvertisedHost(t *testing.T) {
	dir := t.TempDir()
	certFile := filepath.Join(dir, "tls", "cert.pem")
	now := time.Now()
	start := func(hosts []string, at time.Time) (pem []byte, logs string) {
		t.Helper()
		var buf bytes.Buffer
		s := &Server{DataDir: dir, SelfSigned: true, TLSHosts: hosts, Now: func() time.Time { return at },
			log: slog.New(slog.NewTextHandler(&buf, nil))}
		cfg, err := s.tlsConfig()
		if err != nil {
			t.Fatal(err)
		}
		leaf := cfg.Certificates[0].Leaf
		roots := x509.NewCertPool()
		roots.AddCert(leaf)
		for _, h := range hosts {
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: roots, CurrentTime: at}); err != nil {
				t.Errorf("certificate does not verify for %s: %v", h, err)
			}
		}
		pem, err = os.ReadFile(certFile)
		if err != nil {
			t.Fatal(err)
		}
		return pem, buf.String()
	}

	first, logs := start([]string{"10.77.0.1"}, now)
	if !strings.Contains(logs, "generated a self-signed tls certificate") {
		t.Errorf("first start logged:\n%s", logs)
	}
	if again, logs := start([]string{"10.77.0.1"}, now); !bytes.Equal(again, first) || strings.Contains(logs, "regenerated") {
		t.Errorf("a fitting certificate was replaced:\n%s", logs)
	}
	moved, logs := start([]string{"boot.example"}, now)
	if bytes.Equal(moved, first) || !strings.Contains(logs, "regenerated the self-signed tls certificate") ||
		!strings.Contains(logs, "does not name boot.example") {
		t.Errorf("advertise moved to boot.example: certificate replaced %t, log:\n%s", !bytes.Equal(moved, first), logs)
	}
	if _, logs := start([]string{"boot.example"}, now.AddDate(11, 0, 0)); !strings.Contains(logs, "regenerated") {
		t.Errorf("an expired certificate was kept:\n%s", logs)
	}
}

func TestUnfit(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	if err := writeSelfSigned(dir, []string{"10.77.0.1", "boot.example"}, now); err != nil {
		t.Fatal(err)
	}
	s := &Server{TLSCert: filepath.Join(dir, "cert.pem"), TLSKey: filepath.Join(dir, "key.pem"), log: slog.New(slog.DiscardHandler)}
	cfg, err := s.tlsConfig()
	if err != nil {
		t.Fatal(err)
	}
	leaf := cfg.Certificates[0].Leaf
	for _, tc := range []struct {
		hosts []string
		at    time.Time
		want  string
	}{
		{[]string{"10.77.0.1", "boot.example", "localhost", "::1"}, now, ""},
		{[]string{"10.77.0.2"}, now, "does not name 10.77.0.2"},
		{[]string{"other.example"}, now, "does not name other.example"},
		{nil, now.Add(-2 * time.Hour), "valid only from"},
		{nil, now.AddDate(10, 0, 1), "valid only from"},
	} {
		if got := unfit(leaf, tc.hosts, tc.at); !strings.Contains(got, tc.want) || (tc.want == "") != (got == "") {
			t.Errorf("unfit(%v, %v) = %q, want %q", tc.hosts, tc.at, got, tc.want)
		}
	}
}
