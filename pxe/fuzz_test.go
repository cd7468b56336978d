package pxe

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fuzzRoot is a served directory with a subdirectory and symbolic links
// that stay inside or lead out of it, next to a secret.
func fuzzRoot(f *testing.F) (root string, files map[string][]byte) {
	dir := f.TempDir()
	root = filepath.Join(dir, "root")
	files = map[string][]byte{"undionly.kpxe": bytes.Repeat([]byte("U"), 1500), "ipxe.efi": []byte("EFI"), "sub/nested.bin": []byte("N")}
	for _, err := range []error{
		os.WriteFile(filepath.Join(dir, "secret"), []byte("SECRET"), 0o644),
		os.MkdirAll(filepath.Join(root, "sub"), 0o755),
		os.Symlink("ipxe.efi", filepath.Join(root, "link.efi")),
		os.Symlink("../secret", filepath.Join(root, "escape")),
		os.Symlink(filepath.Join(dir, "secret"), filepath.Join(root, "abslink")),
		os.Symlink("..", filepath.Join(root, "up")),
	} {
		if err != nil {
			f.Fatal(err)
		}
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(root, name), b, 0o644); err != nil {
			f.Fatal(err)
		}
	}
	files["link.efi"] = files["ipxe.efi"]
	return root, files
}

// FuzzOpen: a requested name is either refused or opens one of the
// served files, by a clean relative name; never the secret beside the
// root, whatever the name does with slashes, dots, links or bytes.
func FuzzOpen(f *testing.F) {
	for _, s := range []string{"undionly.kpxe", "/ipxe.efi", "//sub/nested.bin", "sub/../ipxe.efi", "escape", "abslink", "up/secret",
		"../secret", "./ipxe.efi", "sub\\..\\..\\secret", "link.efi", "ipxe.efi\x00.png", "sub/", ""} {
		f.Add(s)
	}
	root, files := fuzzRoot(f)
	r, err := os.OpenRoot(root)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { r.Close() })
	h := &handler{root: r, log: slog.New(slog.DiscardHandler), metrics: &metrics{}}
	f.Fuzz(func(t *testing.T, name string) {
		rel, err := cleanName(name)
		if err == nil && (!fs.ValidPath(rel) || rel == "." || strings.HasPrefix(rel, "/") || strings.ContainsAny(rel, "\\\x00 ")) {
			t.Fatalf("cleanName(%q) = %q", name, rel)
		}
		fh, size, err := h.open(name)
		if err != nil {
			return
		}
		defer fh.Close()
		got, _ := io.ReadAll(fh)
		want, ok := files[rel]
		if !ok || !bytes.Equal(got, want) || size != int64(len(want)) {
			t.Fatalf("open(%q) served %d bytes %q as %q", name, size, got, rel)
		}
	})
}

// FuzzRequest sends any datagram to a running server: it never answers
// with the secret, and a well-formed request right after it is still
// served.
func FuzzRequest(f *testing.F) {
	rrq := func(parts ...string) []byte {
		b := []byte{0, 1}
		for _, p := range parts {
			b = append(append(b, p...), 0)
		}
		return b
	}
	f.Add(rrq("undionly.kpxe", "octet", "blksize", "1468", "tsize", "0"))
	f.Add(rrq("escape", "octet"))
	f.Add(rrq("ipxe.efi", "netascii", "blksize", "8", "timeout", "0", "windowsize", "65535"))
	f.Add(append([]byte{0, 2}, rrq("x", "octet")[2:]...))              // WRQ
	f.Add([]byte{0, 4, 0, 1})                                          // a stray ACK
	f.Add([]byte{0, 1, 'a'})                                           // no terminator
	f.Add(rrq("ipxe.efi", "octet", "blksize", "99999999999999999999")) // out of range
	root, files := fuzzRoot(f)
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// Short retransmission so that transfers the fuzzer starts and never
	// acknowledges end at once.
	srv := &Server{Root: root, Timeout: 20 * time.Millisecond, Retries: 1}
	go func() { done <- srv.ServeConn(ctx, conn) }()
	f.Cleanup(func() { cancel(); <-done })
	addr := conn.LocalAddr().(*net.UDPAddr)
	// One socket sends the fuzzed datagrams, another the plain requests,
	// for the whole run: a socket of the last input must not come back
	// (a reused port) to the next and read what was meant for the other.
	fuzzer, probe := udp(f), udp(f)
	f.Fuzz(func(t *testing.T, dgram []byte) {
		drain(fuzzer)
		if _, err := fuzzer.WriteToUDP(dgram, addr); err != nil {
			return // too large for a datagram
		}
		first := firstBlock(t, probe, addr, "undionly.kpxe")
		if !bytes.Equal(first, files["undionly.kpxe"][:512]) {
			t.Fatalf("after %q the next request got %q", dgram, first)
		}
		buf := make([]byte, 65536)
		fuzzer.SetReadDeadline(time.Now().Add(time.Millisecond))
		if n, _, err := fuzzer.ReadFromUDP(buf); err == nil && bytes.Contains(buf[:n], []byte("SECRET")) {
			t.Fatalf("%q was answered with the secret: %q", dgram, buf[:n])
		}
	})
}

func udp(f *testing.F) *net.UDPConn {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { c.Close() })
	return c
}

// drain discards what earlier transfers left for c.
func drain(c *net.UDPConn) {
	buf := make([]byte, 65536)
	for {
		c.SetReadDeadline(time.Now())
		if _, _, err := c.ReadFromUDP(buf); err != nil {
			return
		}
	}
}

// firstBlock requests name (512-byte blocks) from c and returns the
// first DATA block, then ends the transfer with an ERROR. Answers left
// over from earlier transfers (their timeouts) are skipped.
func firstBlock(t *testing.T, c *net.UDPConn, addr *net.UDPAddr, name string) []byte {
	drain(c)
	req := append(append(append([]byte{0, 1}, name...), 0), "octet\x00"...)
	buf := make([]byte, 65536)
	for try := 0; try < 3; try++ {
		if _, err := c.WriteToUDP(req, addr); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(time.Second); ; {
			c.SetReadDeadline(deadline)
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				break // the request or its answer was dropped; ask again
			}
			if n >= 4 && binary.BigEndian.Uint16(buf) == 3 && binary.BigEndian.Uint16(buf[2:]) == 1 {
				c.WriteToUDP([]byte("\x00\x05\x00\x00done\x00"), from)
				return append([]byte{}, buf[4:n]...)
			}
		}
	}
	t.Fatal("the server no longer answers")
	return nil
}
