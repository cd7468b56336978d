package pxe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestFetchByteIdentical(t *testing.T) {
	f := newFixture(t)
	srv := start(t, &Server{Root: f.root})
	names := []string{"undionly.kpxe", "ipxe.efi", "snponly.efi", "sub/nested.bin", "empty.bin", "link.efi", "/undionly.kpxe"}
	for _, bs := range []int{0, 512, 1432, 1468} {
		for _, name := range names {
			t.Run(fmt.Sprintf("blksize=%d/%s", bs, name), func(t *testing.T) {
				want := f.files[strings.TrimPrefix(name, "/")]
				got, tsize, err := fetch(client(t, srv.addr, bs), name)
				if err != nil {
					t.Fatalf("fetch: %v", err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("content differs: got %d bytes, want %d", len(got), len(want))
				}
				// tsize 0 is the request itself; the server omits it for an
				// empty file, which the client reports as "no size".
				if len(want) > 0 && tsize != int64(len(want)) {
					t.Errorf("tsize = %d, want %d", tsize, len(want))
				}
			})
		}
	}
}

func TestConcurrentFetches(t *testing.T) {
	f := newFixture(t)
	srv := start(t, &Server{Root: f.root})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			name := []string{"undionly.kpxe", "ipxe.efi"}[i%2]
			got, _, err := fetch(client(t, srv.addr, 1432), name)
			if err == nil && !bytes.Equal(got, f.files[name]) {
				err = fmt.Errorf("%s: content differs", name)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestRefused(t *testing.T) {
	f := newFixture(t)
	srv := start(t, &Server{Root: f.root})
	tests := []struct {
		name, req, want string
	}{
		{"missing file", "missing.kpxe", "file not found"},
		{"dot-dot", "../etc/passwd", "invalid file name"},
		{"rooted dot-dot", "/../x", "invalid file name"},
		{"inner dot-dot", "a/../../x", "invalid file name"},
		{"dot-dot to secret", "../secret", "invalid file name"},
		{"absolute system file", "//etc/passwd", "file not found"},
		{"NUL", "\x00", "invalid file name"},
		{"backslash", "..\\secret", "invalid file name"},
		{"control byte", "ipxe\n.efi", "invalid file name"},
		{"relative symlink out of root", "escape", "access violation"},
		{"absolute symlink out of root", "abslink", "access violation"},
		{"symlinked parent", "up/secret", "access violation"},
		{"directory", "sub", "access violation"},
		{"directory with slash", "sub/", "invalid file name"},
		{"dot", ".", "invalid file name"},
		{"empty", "", "invalid file name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := fetch(client(t, srv.addr, 0), tt.req)
			if err == nil {
				t.Fatalf("fetch %q succeeded with %d bytes", tt.req, len(got))
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
	// None of that hurt the server.
	if _, _, err := fetch(client(t, srv.addr, 0), "snponly.efi"); err != nil {
		t.Fatalf("fetch after refusals: %v", err)
	}
}

// TestReadErrorHidesThePath: a file that cannot be read is refused to the
// client as "read error", not with the read error's text, which names the
// file on the appliance (pin/tftp sends a reader's error as it is). The
// file is /proc/self/mem, a regular file whose first byte is never mapped:
// every read of it fails (EIO) as a failing disk's would.
func TestReadErrorHidesThePath(t *testing.T) {
	if _, err := os.ReadFile("/proc/self/mem"); err == nil {
		t.Skip("/proc/self/mem reads here; no file fails to read")
	}
	srv := start(t, &Server{Root: "/proc/self"})
	_, _, err := fetch(client(t, srv.addr, 0), "mem")
	if err == nil {
		t.Fatal("fetch of an unreadable file succeeded")
	}
	if !strings.Contains(err.Error(), "read error") || strings.Contains(err.Error(), "/proc") || strings.Contains(err.Error(), "input/output") {
		t.Errorf("the client was told %q, want only \"read error\"", err)
	}
	// pin/tftp calls the failure hook before it sends the ERROR packet.
	if logs := srv.logs.String(); !strings.Contains(logs, "reason=read") || !strings.Contains(logs, "input/output error") {
		t.Errorf("the refusal and its cause are not in the log:\n%s", logs)
	}
	// The server goes on serving.
	if _, _, err := fetch(client(t, srv.addr, 0), "status"); err != nil {
		t.Fatalf("fetch after a read error: %v", err)
	}
}

func TestWriteRefused(t *testing.T) {
	f := newFixture(t)
	srv := start(t, &Server{Root: f.root})
	for _, name := range []string{"new.bin", "ipxe.efi"} {
		t.Run(name, func(t *testing.T) {
			rf, err := client(t, srv.addr, 0).Send(name, "octet")
			if err == nil {
				_, err = rf.ReadFrom(strings.NewReader("overwritten"))
			}
			if err == nil || !strings.Contains(err.Error(), "read-only") {
				t.Fatalf("write %s: err = %v, want a read-only refusal", name, err)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(f.root, "new.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("new.bin exists after a refused write: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(f.root, "ipxe.efi"))
	must(t, err)
	if !bytes.Equal(got, f.files["ipxe.efi"]) {
		t.Error("ipxe.efi changed")
	}
}

func TestCancelStops(t *testing.T) {
	f := newFixture(t)
	srv := start(t, &Server{Root: f.root})
	if _, _, err := fetch(client(t, srv.addr, 0), "ipxe.efi"); err != nil {
		t.Fatal(err)
	}
	srv.cancel()
	select {
	case err := <-srv.done:
		if err != nil {
			t.Fatalf("ServeConn after cancel = %v, want nil", err)
		}
		srv.done <- err // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("ServeConn did not return after cancel")
	}
	c := client(t, srv.addr, 0)
	c.SetTimeout(200 * time.Millisecond)
	if _, _, err := fetch(c, "ipxe.efi"); err == nil {
		t.Fatal("fetch succeeded after shutdown")
	}
}

func TestServeErrors(t *testing.T) {
	tests := []struct {
		name string
		s    Server
	}{
		{"no root", Server{}},
		{"missing root", Server{Root: filepath.Join(t.TempDir(), "nope")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
			must(t, err)
			if err := tt.s.ServeConn(context.Background(), conn); err == nil {
				t.Fatal("ServeConn succeeded")
			}
			// ServeConn owns conn and closed it.
			if _, err := conn.WriteTo([]byte{0}, conn.LocalAddr()); !errors.Is(err, net.ErrClosed) {
				t.Errorf("conn still open: %v", err)
			}
		})
	}
	t.Run("address in use", func(t *testing.T) {
		conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
		must(t, err)
		defer conn.Close()
		s := &Server{Root: t.TempDir(), Addr: conn.LocalAddr().String()}
		if err := s.Serve(context.Background()); err == nil || !strings.Contains(err.Error(), "listen tftp") {
			t.Fatalf("Serve = %v, want a listen error", err)
		}
	})
}

func TestMetricsAndLogs(t *testing.T) {
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	srv := start(t, &Server{Root: f.root, Registerer: reg})
	if _, _, err := fetch(client(t, srv.addr, 1468), "undionly.kpxe"); err != nil {
		t.Fatal(err)
	}
	fetch(client(t, srv.addr, 0), "missing")
	fetch(client(t, srv.addr, 0), "../x")
	client(t, srv.addr, 0).Send("w", "octet")

	want := map[string]float64{
		"foundry_tftp_transfers_total":                  1,
		"foundry_tftp_sent_bytes_total":                 float64(len(f.files["undionly.kpxe"])),
		`foundry_tftp_errors_total{reason="not_found"}`: 1,
		`foundry_tftp_errors_total{reason="bad_name"}`:  1,
		`foundry_tftp_errors_total{reason="write"}`:     1,
		`foundry_tftp_errors_total{reason="denied"}`:    0,
	}
	// The hook runs on the server after the client has its last block.
	deadline := time.Now().Add(3 * time.Second)
	for {
		got := gather(t, reg)
		diff := ""
		for k, v := range want {
			if got[k] != v {
				diff += fmt.Sprintf(" %s=%v (want %v)", k, got[k], v)
			}
		}
		if diff == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics:%s", diff)
		}
		time.Sleep(20 * time.Millisecond)
	}
	logs := srv.logs.String()
	for _, s := range []string{"msg=\"tftp transfer\" file=undionly.kpxe", "blksize=1468", "reason=not_found", "reason=write"} {
		if !strings.Contains(logs, s) {
			t.Errorf("log lacks %q:\n%s", s, logs)
		}
	}
	// A second server on the same registry shares the counters.
	start(t, &Server{Root: f.root, Registerer: reg})
}

// TestJunkFloodLogsOnce: datagrams that cannot be requests are dropped
// by the kernel's filter and counted there (foundry_tftp_dropped_total);
// requests that pass it but are refused are each counted by reason, but
// the log gets one warning for them, not one per datagram (a flood wrote
// 15,000 lines in 5 s before). A real transfer still works after them.
func TestJunkFloodLogsOnce(t *testing.T) {
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	srv := start(t, &Server{Root: f.root, Registerer: reg})
	conn, err := net.Dial("udp4", srv.addr)
	must(t, err)
	defer conn.Close()
	const junk = 200
	for i := range junk {
		// Not a request (opcode 9), and a read request with no file name
		// (a request that passes the filter always parses: it ends in NUL).
		for _, d := range []string{fmt.Sprintf("\x00\x09junk %d", i), "\x00\x01\x00octet\x00"} {
			if _, err := conn.Write([]byte(d)); err != nil {
				t.Fatal(err)
			}
		}
		if i%25 == 0 {
			time.Sleep(time.Millisecond) // not the kernel's drops under test
		}
	}
	want := map[string]float64{
		"foundry_tftp_dropped_total":                   junk,
		`foundry_tftp_errors_total{reason="bad_name"}`: junk,
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := gather(t, reg)
		if got["foundry_tftp_dropped_total"] == want["foundry_tftp_dropped_total"] &&
			got[`foundry_tftp_errors_total{reason="bad_name"}`] == want[`foundry_tftp_errors_total{reason="bad_name"}`] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d junk datagrams and %d empty read requests: %v, want %v", junk, junk, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := strings.Count(srv.logs.String(), "tftp request failed"); n != 1 {
		t.Errorf("%d warnings for %d bad requests, want 1:\n%s", n, junk, srv.logs.String())
	}
	// A real transfer still works and is still logged.
	if _, _, err := fetch(client(t, srv.addr, 0), "undionly.kpxe"); err != nil {
		t.Fatal(err)
	}
}
