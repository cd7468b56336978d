package pxe

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pin/tftp/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/foundry-appliance/foundry/test/syncbuf"
)

// fixture is a served directory next to a file that must stay unreachable.
type fixture struct {
	root    string
	files   map[string][]byte // relative name → content
	outside string            // absolute path of a secret outside root
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	f := fixture{root: root, files: map[string][]byte{}, outside: filepath.Join(dir, "secret")}
	must(t, os.WriteFile(f.outside, []byte("SECRET"), 0o644))
	must(t, os.MkdirAll(filepath.Join(root, "sub"), 0o755))
	add := func(name string, size int) {
		b := make([]byte, size)
		rand.Read(b)
		f.files[name] = b
		must(t, os.WriteFile(filepath.Join(root, name), b, 0o644))
	}
	add("undionly.kpxe", 70_001) // odd size: last block short
	add("ipxe.efi", 1432*40)     // exact multiple of 1432: final empty block
	add("snponly.efi", 512*3+1)  // one byte into the last block
	add("sub/nested.bin", 2048)  // a subdirectory is fine
	add("empty.bin", 0)          // zero bytes: one empty DATA block
	must(t, os.Symlink("ipxe.efi", filepath.Join(root, "link.efi")))
	f.files["link.efi"] = f.files["ipxe.efi"]
	must(t, os.Symlink("../secret", filepath.Join(root, "escape")))
	must(t, os.Symlink(f.outside, filepath.Join(root, "abslink")))
	must(t, os.Symlink("..", filepath.Join(root, "up")))
	return f
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// running is a server on an ephemeral loopback port.
type running struct {
	addr   string
	cancel context.CancelFunc
	done   chan error
	logs   *syncbuf.Buffer
}

func start(t *testing.T, s *Server) *running {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	must(t, err)
	logs := &syncbuf.Buffer{}
	if s.Logger == nil {
		s.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{addr: conn.LocalAddr().String(), cancel: cancel, done: make(chan error, 1), logs: logs}
	go func() { r.done <- s.ServeConn(ctx, conn) }()
	// ServeConn logs "tftp serving" once the socket is fully set up; a
	// request sent earlier would be served with 512-byte blocks.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), "tftp serving"); {
		if time.Now().After(deadline) {
			t.Fatal("server did not start")
		}
		time.Sleep(time.Millisecond)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Error("server did not stop")
		}
	})
	return r
}

func client(t *testing.T, addr string, blksize int) *tftp.Client {
	t.Helper()
	c, err := tftp.NewClient(addr)
	must(t, err)
	c.SetTimeout(time.Second)
	c.SetRetries(2)
	if blksize > 0 {
		c.SetBlockSize(blksize)
	}
	c.RequestTSize(true)
	return c
}

// fetch downloads name and returns its content and the tsize the server
// announced (-1 when none).
func fetch(c *tftp.Client, name string) ([]byte, int64, error) {
	wt, err := c.Receive(name, "octet")
	if err != nil {
		return nil, -1, err
	}
	size := int64(-1)
	if n, ok := wt.(tftp.IncomingTransfer).Size(); ok {
		size = n
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return nil, size, err
	}
	return buf.Bytes(), size, nil
}

// gather flattens a registry into "name{label="v"}" → value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	must(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += fmt.Sprintf("{%s=%q}", l.GetName(), l.GetValue())
			}
			out[key] = m.GetCounter().GetValue()
		}
	}
	return out
}
