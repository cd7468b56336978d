package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// tlsConfig loads the configured certificate, or the self-signed one kept
// under DataDir/tls/: generated on first use, and again at start when the
// kept one no longer fits (it does not name one of TLSHosts, such as the
// advertised host, or it has expired), since booting machines check the
// certificate against the address they were given.
func (s *Server) tlsConfig() (*tls.Config, error) {
	certFile, keyFile := s.TLSCert, s.TLSKey
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("tls needs both a certificate and a key file")
	}
	selfSigned := certFile == ""
	if selfSigned {
		dir := filepath.Join(s.DataDir, "tls")
		certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if err := writeSelfSigned(dir, s.TLSHosts, s.now()); err != nil {
				return nil, err
			}
			s.log.Info("generated a self-signed tls certificate", "file", certFile, "hosts", s.TLSHosts)
		case err != nil:
			return nil, fmt.Errorf("load tls certificate: %w", err)
		default:
			if why := unfit(cert.Leaf, s.TLSHosts, s.now()); why != "" {
				if err := writeSelfSigned(dir, s.TLSHosts, s.now()); err != nil {
					return nil, err
				}
				s.log.Warn("regenerated the self-signed tls certificate: clients that pinned the old one must take the new one",
					"file", certFile, "reason", why)
			}
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load tls certificate: %w", err)
	}
	if why := unfit(cert.Leaf, s.TLSHosts, s.now()); why != "" && !selfSigned {
		// The administrator's certificate is theirs to replace.
		s.log.Warn("the tls certificate will not verify for booting machines", "file", certFile, "reason", why)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// unfit says why cert cannot serve hosts at now, or "" when it can.
func unfit(cert *x509.Certificate, hosts []string, now time.Time) string {
	if cert == nil {
		return "no certificate"
	}
	if now.After(cert.NotAfter) || now.Before(cert.NotBefore) {
		return fmt.Sprintf("valid only from %s to %s", cert.NotBefore.Format(time.RFC3339), cert.NotAfter.Format(time.RFC3339))
	}
	for _, h := range hosts {
		if err := cert.VerifyHostname(h); err != nil {
			return fmt.Sprintf("does not name %s", h)
		}
	}
	return ""
}

// writeSelfSigned creates an ECDSA P-256 certificate valid for ten years
// for localhost, the loopback addresses, the host name and hosts; the key
// file is written with mode 0600.
func writeSelfSigned(dir string, hosts []string, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate tls key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return fmt.Errorf("generate certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Foundry appliance"}, CommonName: "foundry"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	names := append([]string{"localhost", "127.0.0.1", "::1"}, hosts...)
	if h, err := os.Hostname(); err == nil && h != "" {
		names = append(names, h)
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode tls key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create tls directory: %w", err)
	}
	// The key is written first: a certificate without its key would be
	// taken as "already generated" on the next start.
	if err := writePEM(filepath.Join(dir, "key.pem"), "PRIVATE KEY", keyDER, 0o600); err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, "cert.pem"), "CERTIFICATE", der, 0o644)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := pem.Encode(f, &pem.Block{Type: typ, Bytes: der}); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", path, err)
	}
	return nil
}
