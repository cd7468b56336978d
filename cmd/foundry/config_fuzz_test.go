package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/foundry-appliance/foundry/dhcp"
	"github.com/foundry-appliance/foundry/ipxe"
	"github.com/foundry-appliance/foundry/store"
)

// FuzzConfig: whatever the configuration file holds, check-config refuses
// it with errors that name keys, or accepts it; an accepted file passes
// every check serve runs before it listens, gives machines a URL the boot
// scripts can carry, and reads the same after a write and a read (the
// YAML layer keeps every value).
func FuzzConfig(f *testing.F) {
	f.Add([]byte(goodConfig))
	f.Add([]byte(""))
	f.Add([]byte("http: {advertise: 'http://10.99.0.1:8080/'}\n"))
	f.Add([]byte("segments:\n  - {name: office, interface: eth1, subnet: 192.0.2.0/24, mode: proxy, discovery: true}"))
	f.Add([]byte("http: {advertise: 'http://10.99.0.1:8080', tls: {self_signed: true}}\ndiscovery: {ttl: 90m}\nimage_max_size: 64 GiB\nlog_level: debug\n"))
	f.Add([]byte("audit: {max_entries: 0, max_age: 0s}\ndhcp: {max_discovered: 5, rate_limit: {mac_table: 10}}\n" +
		"segments:\n  - {name: lab, interface: br0, subnet: 10.77.0.0/24, range: [10.77.0.10, 10.77.0.20], lease_time: 10s, max_discovered: 3}"))
	f.Add([]byte("gitops: {repository: /srv/git/hw.git, branch: main, directory: hardware, pull_interval: 1m}\n"))
	f.Add([]byte("segments: [{name: a, subnet: 10.0.0.0/33}]\nbogus: 1\n"))
	f.Add([]byte("&a [*a]"))
	db, err := store.Open("", store.Options{InMemory: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	f.Fuzz(func(t *testing.T, raw []byte) {
		// Keys naming files are read as configured: keep the fuzzer off
		// the live system's devices and pseudo-files.
		if bytes.Contains(raw, []byte("/dev")) || bytes.Contains(raw, []byte("/proc")) || bytes.Contains(raw, []byte("/sys")) || len(raw) > 16<<10 {
			return
		}
		cfg, err := parseConfig(raw, fakeHost)
		if err != nil {
			var problems configErrors
			if errors.As(err, &problems) {
				for _, p := range problems {
					if !strings.Contains(p, ": ") {
						t.Fatalf("problem %q names no key", p)
					}
				}
			}
			return
		}
		// What serve does before it opens a socket.
		if len(cfg.Segments) > 0 {
			srv := &dhcp.Server{Segments: cfg.Segments, Leases: db, Machines: db, Relays: cfg.Relays, Limits: cfg.Limits}
			if err := srv.Check(fakeHost); err != nil {
				t.Fatalf("check-config accepted what serve refuses: %v\n%s", err, raw)
			}
		}
		segmentInfo(cfg.Segments)
		hardwareSegments(cfg.Segments)
		tlsHosts(cfg.Advertise)
		newLogger(io.Discard, cfg.LogLevel)
		if _, err := ipxe.Render(ipxe.Input{MAC: "52:54:00:12:34:56", BaseURL: cfg.Advertise}); err != nil {
			t.Fatalf("check-config accepted advertise %q, which no boot script can carry: %v", cfg.Advertise, err)
		}
		// Written back and read again: the same configuration.
		var file fileConfig
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		if err := dec.Decode(&file); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		out, err := yaml.Marshal(file)
		if err != nil {
			t.Fatalf("marshal %+v: %v", file, err)
		}
		again, err := parseConfig(out, fakeHost)
		if err != nil {
			t.Fatalf("accepted\n%s\nrefused once written back as\n%s\n%v", raw, out, err)
		}
		if a, b := configText(cfg), configText(again); a != b {
			t.Fatalf("accepted\n%s\nreads differently once written back as\n%s\n%s\n%s", raw, out, a, b)
		}
	})
}

// configText renders c for comparison: an empty list reads as no list
// (both are "[]"), and the gitops section by value.
func configText(c config) string {
	g := c.GitOps
	c.GitOps = nil
	if g == nil {
		return fmt.Sprintf("%+v", c)
	}
	return fmt.Sprintf("%+v gitops %+v", c, *g)
}
