package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigStoreBackend(t *testing.T) {
	dir := t.TempDir()
	cert, key, ca := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), filepath.Join(dir, "ca.pem")
	for _, f := range []string{cert, key, ca} {
		if err := os.WriteFile(f, []byte("pem"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, err := parseConfig([]byte(goodConfig), fakeHost)
	if err != nil || c.Etcd != nil {
		t.Fatalf("default backend: %+v %v", c.Etcd, err)
	}
	c, err = parseConfig([]byte(goodConfig+`
store:
  backend: etcd
  etcd:
    endpoints: [https://10.0.0.1:2379, https://10.0.0.2:2379]
    cert: `+cert+`
    key: `+key+`
    ca: `+ca+`
    prefix: site-a/foundry/
    request_timeout: 3s
    max_txn_ops: 256
`), fakeHost)
	if err != nil {
		t.Fatal(err)
	}
	if e := c.Etcd; e == nil || len(e.Endpoints) != 2 || e.CertFile != cert || e.KeyFile != key || e.CAFile != ca ||
		e.Prefix != "site-a/foundry/" || e.RequestTimeout != 3*time.Second || e.MaxTxnOps != 256 {
		t.Fatalf("etcd section: %+v", c.Etcd)
	}
	if _, err := parseConfig([]byte(goodConfig+"store:\n  backend: badger\n"), fakeHost); err != nil {
		t.Errorf("backend badger: %v", err)
	}
	if _, err := parseConfig([]byte(goodConfig+"store:\n  backend: etcd\n  etcd: {endpoints: [http://127.0.0.1:2379]}\n"), fakeHost); err != nil {
		t.Errorf("plain etcd: %v", err)
	}
	for _, tc := range []struct{ section, want string }{
		{"backend: postgres", `store.backend: "postgres" is not one of badger, etcd`},
		{"backend: etcd", "store.etcd.endpoints: store.backend etcd needs"},
		{"etcd: {endpoints: [http://127.0.0.1:2379]}", "store.etcd: set only with store.backend: etcd"},
		{"backend: etcd\n  etcd: {endpoints: [10.0.0.1:2379]}", "is not a client URL"},
		{"backend: etcd\n  etcd: {endpoints: ['http://10.0.0.1']}", "is not a client URL"},
		{"backend: etcd\n  etcd: {endpoints: ['unix://10.0.0.1:2379']}", "the scheme is http or https"},
		{"backend: etcd\n  etcd: {endpoints: ['http://10.0.0.1:2379'], ca: " + ca + "}", "use https"},
		{"backend: etcd\n  etcd: {endpoints: ['https://10.0.0.1:2379'], cert: " + cert + "}", "cert and key are set together"},
		{"backend: etcd\n  etcd: {endpoints: ['https://10.0.0.1:2379'], ca: /nonexistent/ca.pem}", "store.etcd.ca:"},
		{"backend: etcd\n  etcd: {endpoints: ['http://10.0.0.1:2379'], prefix: foundry}", "must end in /"},
		{"backend: etcd\n  etcd: {endpoints: ['http://10.0.0.1:2379'], max_txn_ops: 10}", "below 64"},
		{"backend: etcd\n  etcd: {endpoints: ['http://10.0.0.1:2379'], request_timeout: soon}", "store.etcd.request_timeout"},
		{"backend: etcd\n  etcd: {endpoints: ['http://10.0.0.1:2379'], user: root}", "field user not found"},
	} {
		_, err := parseConfig([]byte(goodConfig+"store:\n  "+tc.section+"\n"), fakeHost)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error with %q", tc.section, err, tc.want)
		}
	}
}
