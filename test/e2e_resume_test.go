package test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/foundry-appliance/foundry/discovery-os/agent"
)

// Issue 10, "an interrupted image download resumes": the agent's own
// download code (agent.ImageWriter, as provision runs it) fetches a library
// image from the real `foundry serve` through a TCP proxy that cuts the
// connection midway, more than once, one cut falling inside the answer's
// header. The agent asks for the rest each time (Range from where it
// stopped, If-Range with the file's Last-Modified), the appliance answers
// 206, and the disk ends byte-identical with the checksum verified. When
// the file changes on the appliance between the cut and the resume, the
// appliance answers the resume with the whole file (200) and the install
// fails with the disk's start zeroed.
func TestE2EImageDownloadResumes(t *testing.T) {
	const base = "http://127.0.0.1:18180"
	images := imageDir(t)
	lib := filepath.Join(images, "library")
	must(t, os.MkdirAll(lib, 0o755))
	raw := resumeTestImage(24 << 20)
	var zst bytes.Buffer
	zw, err := zstd.NewWriter(&zst)
	must(t, err)
	_, err = zw.Write(raw)
	must(t, err)
	must(t, zw.Close())
	files := map[string][]byte{"resume.raw": raw, "resume.raw.zst": zst.Bytes()}
	for name, b := range files {
		must(t, os.WriteFile(filepath.Join(lib, name), b, 0o644))
	}
	startAppliance(t, filepath.Join(t.TempDir(), "data"), images,
		"http:\n  listen: \"127.0.0.1:18180\"\n  advertise: \""+base+"\"\ntftp:\n  listen: \"127.0.0.1:16969\"\n", base)

	for _, name := range []string{"resume.raw", "resume.raw.zst"} {
		file := files[name]
		t.Run(name, func(t *testing.T) {
			mod := fileModTime(t, filepath.Join(lib, name))
			// Cuts count the bytes the appliance sent on each connection,
			// header included: a third of the file, then inside the next
			// answer's header, then two thirds of the rest.
			p := newCuttingProxy(t, "127.0.0.1:18180", len(file)/3, 100, len(file)/3)
			disk := filepath.Join(t.TempDir(), "disk")
			must(t, os.WriteFile(disk, bytes.Repeat([]byte{0xee}, len(raw)+1<<20), 0o644))
			d, err := os.OpenFile(disk, os.O_WRONLY, 0)
			must(t, err)
			defer d.Close()
			var last agent.Transfer
			w := agent.ImageWriter{HTTP: &http.Client{Timeout: time.Minute}, Backoff: 50 * time.Millisecond,
				Progress: func(tr agent.Transfer) { last = tr }}
			start := time.Now()
			n, err := w.Write(context.Background(), p.url+"/images/library/"+name, hexSHA256(file), d)
			took := time.Since(start)
			if err != nil {
				t.Fatalf("write: %v\nrequests:\n%s", err, strings.Join(p.requests(), "\n"))
			}
			got, err := os.ReadFile(disk)
			must(t, err)
			if n != int64(len(raw)) || !bytes.Equal(got[:len(raw)], raw) {
				t.Fatalf("wrote %d bytes; the disk holds the image: %v", n, bytes.Equal(got[:len(raw)], raw))
			}
			if !bytes.Equal(got[len(raw):], bytes.Repeat([]byte{0xee}, 1<<20)) {
				t.Error("bytes after the image were touched")
			}
			reqs := p.requests()
			if len(reqs) != 4 || last.Resumes != 3 || last.Done != int64(len(file)) {
				t.Fatalf("%d requests, %d resumes, %d of %d bytes; requests:\n%s", len(reqs), last.Resumes, last.Done, len(file), strings.Join(reqs, "\n"))
			}
			// Every resume asks for the rest from further on, on the
			// condition of the file's Last-Modified; the appliance answers
			// the first with the whole file and the others with the rest.
			rangeRE := regexp.MustCompile(`^GET /images/library/\S+ Range="bytes=(\d+)-" If-Range="(.*)" -> (.*)$`)
			prev := -1
			for i, r := range reqs {
				m := rangeRE.FindStringSubmatch(r)
				switch {
				case i == 0 && !strings.HasSuffix(r, `Range="" If-Range="" -> HTTP/1.1 200 OK`):
					t.Errorf("first request %q", r)
				case i == 0:
				case m == nil || m[2] != mod.UTC().Format(http.TimeFormat):
					t.Errorf("resume %d: %q, want Range and If-Range %q", i, r, mod.UTC().Format(http.TimeFormat))
				default:
					off, _ := strconv.Atoi(m[1])
					if off < prev || off >= len(file) {
						t.Errorf("resume %d from %d after %d (file %d bytes)", i, off, prev, len(file))
					}
					prev = off
					// The answer cut inside its header shows no status.
					if i != 2 && m[3] != "HTTP/1.1 206 Partial Content" {
						t.Errorf("resume %d answered %q", i, m[3])
					}
				}
			}
			t.Logf("%s: %d bytes (%d written) through 3 cuts in %v; requests:\n%s", name, len(file), n, took.Round(time.Millisecond), strings.Join(reqs, "\n"))
		})
	}

	t.Run("file changed", func(t *testing.T) {
		name := "resume.raw.zst"
		file := files[name]
		p := newCuttingProxy(t, "127.0.0.1:18180", len(file)/2)
		// Before the agent can resume, the file is touched.
		p.afterCut = func(int) {
			later := time.Now().Add(time.Hour)
			must(t, os.Chtimes(filepath.Join(lib, name), later, later))
		}
		disk := filepath.Join(t.TempDir(), "disk")
		must(t, os.WriteFile(disk, bytes.Repeat([]byte{0xee}, len(raw)), 0o644))
		d, err := os.OpenFile(disk, os.O_WRONLY, 0)
		must(t, err)
		defer d.Close()
		w := agent.ImageWriter{HTTP: &http.Client{Timeout: time.Minute}, Backoff: 50 * time.Millisecond}
		_, err = w.Write(context.Background(), p.url+"/images/library/"+name, hexSHA256(file), d)
		reqs := p.requests()
		if err == nil || !strings.Contains(err.Error(), "whole file") {
			t.Fatalf("err = %v, want the install failed on a 200 to the resume; requests:\n%s", err, strings.Join(reqs, "\n"))
		}
		if len(reqs) != 2 || !strings.HasSuffix(reqs[1], "-> HTTP/1.1 200 OK") || !strings.Contains(reqs[1], `Range="bytes=`) {
			t.Errorf("requests:\n%s", strings.Join(reqs, "\n"))
		}
		got, err := os.ReadFile(disk)
		must(t, err)
		if !bytes.Equal(got[:1<<20], make([]byte, 1<<20)) {
			t.Error("the failed install left the disk's start as it wrote it")
		}
	})
}

// resumeTestImage is n bytes: a random quarter (incompressible, as a
// kernel) and the rest a repeating pattern (as a file system's metadata).
func resumeTestImage(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(10, 10))
	for i := 0; i < n/4; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n / 4; i < n; i++ {
		b[i] = byte(i / 4096)
	}
	return b
}

func hexSHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func fileModTime(t *testing.T, path string) time.Time {
	t.Helper()
	st, err := os.Stat(path)
	must(t, err)
	return st.ModTime()
}

// cuttingProxy forwards TCP connections to the appliance; the i-th
// connection's answer is cut (both directions closed) after cuts[i] bytes
// from the appliance, and afterCut(i) runs just before it is. It records
// each request's line, Range and If-Range, and the answer's status line.
type cuttingProxy struct {
	t        *testing.T
	url      string
	target   string
	cuts     []int
	afterCut func(int)

	mu    sync.Mutex
	conns []*capture
}

// capture keeps the start of one connection's request and answer.
type capture struct{ req, resp bytes.Buffer }

func newCuttingProxy(t *testing.T, target string, cuts ...int) *cuttingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	p := &cuttingProxy{t: t, url: "http://" + ln.Addr().String(), target: target, cuts: cuts}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			i := len(p.conns)
			p.conns = append(p.conns, &capture{})
			p.mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); p.serve(i, c) }()
		}
	}()
	return p
}

func (p *cuttingProxy) serve(i int, c net.Conn) {
	defer c.Close()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		p.t.Errorf("proxy: dial appliance: %v", err)
		return
	}
	defer up.Close()
	// The test's cleanup ends connections the client keeps alive.
	p.t.Cleanup(func() { c.Close(); up.Close() })
	cp := p.conns[i]
	go func() {
		io.Copy(io.MultiWriter(up, p.keep(&cp.req)), c)
		up.(*net.TCPConn).CloseWrite()
	}()
	var src io.Reader = up
	cut := i < len(p.cuts)
	if cut {
		src = io.LimitReader(up, int64(p.cuts[i]))
	}
	io.Copy(io.MultiWriter(c, p.keep(&cp.resp)), src)
	if cut && p.afterCut != nil {
		p.afterCut(i) // before the client can see the cut and resume
	}
}

// keep writes the first 4 KiB written to it into b, under the proxy's lock.
func (p *cuttingProxy) keep(b *bytes.Buffer) io.Writer {
	return writerFunc(func(data []byte) (int, error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if room := 4096 - b.Len(); room > 0 {
			b.Write(data[:min(room, len(data))])
		}
		return len(data), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

var headerRE = map[string]*regexp.Regexp{
	"Range":    regexp.MustCompile(`(?im)^Range: (.*?)\r$`),
	"If-Range": regexp.MustCompile(`(?im)^If-Range: (.*?)\r$`),
}

// requests describes each connection: "GET /path Range="…" If-Range="…"
// -> <status line>".
func (p *cuttingProxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, cp := range p.conns {
		req, resp := cp.req.String(), cp.resp.String()
		line, _, _ := strings.Cut(req, "\r\n")
		method, rest, _ := strings.Cut(line, " ")
		path, _, _ := strings.Cut(rest, " ")
		header := func(name string) string {
			if m := headerRE[name].FindStringSubmatch(req); m != nil {
				return m[1]
			}
			return ""
		}
		status, _, complete := strings.Cut(resp, "\r\n")
		if !complete {
			status = fmt.Sprintf("(cut inside the status line after %d bytes)", len(resp))
		}
		out = append(out, fmt.Sprintf("%s %s Range=%q If-Range=%q -> %s", method, path, header("Range"), header("If-Range"), status))
	}
	return out
}
