package kv

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"time"
)

// clientTLS is the client side of EtcdOptions' TLS files.
func clientTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA %s: no PEM certificate", caFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// diagnose says why the first endpoint that refuses a connection does,
// when a plain dial tells more than gRPC's "deadline exceeded": no
// listener, a TLS handshake failure, a client certificate refused.
func diagnose(endpoints []string, tc *tls.Config, timeout time.Duration) error {
	for _, ep := range endpoints {
		host, secure := ep, false
		if u, err := url.Parse(ep); err == nil && u.Host != "" {
			host, secure = u.Host, u.Scheme == "https"
		}
		if secure && tc == nil {
			return fmt.Errorf("%s is https and no TLS file is set", ep)
		}
		conn, err := net.DialTimeout("tcp", host, timeout)
		if err != nil {
			return err
		}
		defer conn.Close()
		if tc == nil {
			continue
		}
		tc := tc.Clone()
		if tc.ServerName == "" {
			tc.ServerName, _, _ = net.SplitHostPort(host)
		}
		tconn := tls.Client(conn, tc)
		tconn.SetDeadline(time.Now().Add(timeout))
		if err := tconn.Handshake(); err != nil {
			return fmt.Errorf("%s: %w", ep, err)
		}
		// With TLS 1.3 a server refuses a client certificate after the
		// handshake; an HTTP/2 server otherwise waits for the client.
		tconn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		var ne net.Error
		if _, err := tconn.Read(make([]byte, 1)); err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			return fmt.Errorf("%s: %w", ep, err)
		}
	}
	return nil
}
