package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/foundry-appliance/foundry/store"
)

// Floods (issue 14, item 1), against the real `foundry serve`: for a few
// seconds a host on the discovery segment sends DISCOVERs from random
// MACs, random bytes to the DHCP and TFTP ports, and the HTTP server gets
// oversized and malformed JSON, and connections that send their headers or
// body a byte at a time. Meanwhile real clients boot: a known machine and
// a client that holds a lease get their leases from ISC dhclient, tftp-hpa
// fetches the iPXE binary byte for byte, the known machine's script is
// served. Afterwards the discovered records are at the segment's cap, the
// pool still leases, the limits are counted, and the appliance's memory
// stayed bounded.

const (
	floodAddr = "10.54.0.1"
	floodBase = "http://" + floodAddr + ":8080"
	// floodCap is the lab's max_discovered.
	floodCap = 40
	// floodFor is how long the flood lasts at least; it goes on until the
	// real clients are done, so that they always boot during it.
	floodFor = 8 * time.Second
	// floodRSSLimit bounds the appliance's peak resident size (VmHWM)
	// over the test, in KiB.
	floodRSSLimit = 200 << 10
)

// floodConfig: one discovery segment of 100 addresses, at most floodCap
// temporary records, the limits' defaults otherwise.
var floodConfig = fmt.Sprintf(`
http:
  listen: ":8080"
  advertise: %q
tftp:
  listen: ":69"
segments:
  - name: lab
    interface: sfl0
    subnet: 10.54.0.0/24
    range: [10.54.0.100, 10.54.0.199]
    discovery: true
    max_discovered: %d
`, floodBase, floodCap)

func TestFloodRealClientsStillBoot(t *testing.T) {
	const known, known2, holder = "52:54:00:f1:00:01", "52:54:00:f1:00:02", "52:54:00:f1:00:03"
	lab := newLab(t, "sfl0", floodAddr+"/24")
	data := t.TempDir()
	db, err := store.Open(filepath.Join(data, "db"), store.Options{})
	must(t, err)
	for i, mac := range []string{known, known2} {
		m := store.Machine{MAC: mac, Hostname: fmt.Sprintf("known-%d", i+1), State: store.StateReady, Segment: "lab"}
		if _, err := db.CreateMachine(m, store.Audit{Actor: "test", Action: "seed"}); err != nil {
			t.Fatal(err)
		}
	}
	must(t, db.Close())
	a := startAppliance(t, data, imageDir(t), floodConfig, floodBase)
	pid := a.cmd.Process.Pid

	// Before the flood: a new machine is discovered and leased.
	holderNS := lab.client(holder)
	holderDH := newDHClient(t, holderNS)
	must(t, holderDH.once(40*time.Second))
	held := holderDH.last("BOUND")
	if held == nil {
		t.Fatalf("the lease holder got no lease before the flood: %v", holderDH.events())
	}
	rssBefore := vmKiB(t, pid, "VmRSS")

	floodNS := lab.client("52:54:00:f1:00:ff")
	nsRun(t, floodNS, "ip", "addr", "add", "10.54.0.250/24", "dev", "eth0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	floodStart := time.Now()
	var flood sync.WaitGroup
	var sent struct{ discovers, dhcpJunk, tftpJunk atomic.Int64 }
	flood.Add(3)
	go func() { defer flood.Done(); sent.discovers.Store(floodDiscovers(ctx, t, floodNS)) }()
	go func() { defer flood.Done(); sent.dhcpJunk.Store(floodJunk(ctx, t, floodNS, 67)) }()
	go func() { defer flood.Done(); sent.tftpJunk.Store(floodJunk(ctx, t, floodNS, 69)) }()
	httpDone := make(chan httpAttacks, 1)
	go func() { httpDone <- attackHTTP(floodFor, floodBase+"/boot/"+holder) }()

	// During the flood, real clients.
	time.Sleep(500 * time.Millisecond)
	knownNS := lab.client(known)
	knownDH := newDHClient(t, knownNS)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	wg.Add(2)
	began := time.Now()
	go func() {
		defer wg.Done()
		if err := knownDH.once(40 * time.Second); err != nil || knownDH.last("BOUND") == nil {
			errs <- fmt.Errorf("known machine during the flood: %v, events %v", err, knownDH.events())
			return
		}
		out := filepath.Join(t.TempDir(), "undionly.kpxe")
		tctx, tcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer tcancel()
		if b, err := inNS(tctx, knownNS, "tftp", "-m", "binary", floodAddr, "-c", "get", "undionly.kpxe", out).CombinedOutput(); err != nil {
			errs <- fmt.Errorf("tftp during the flood: %v\n%s", err, b)
			return
		}
		t.Logf("known machine: leased and fetched %s by TFTP %v into the flood", "undionly.kpxe", time.Since(began).Round(time.Millisecond))
		got, _ := os.ReadFile(out)
		want, _ := os.ReadFile("/usr/lib/ipxe/undionly.kpxe")
		if !bytes.Equal(got, want) || len(want) == 0 {
			errs <- fmt.Errorf("tftp during the flood: %d bytes, want %d identical", len(got), len(want))
		}
	}()
	go func() {
		defer wg.Done()
		if err := holderDH.once(40 * time.Second); err != nil {
			errs <- fmt.Errorf("lease holder during the flood: %v", err)
			return
		}
		if ev := holderDH.last("REBOOT", "BOUND"); ev == nil || ev["ip"] != held["ip"] {
			errs <- fmt.Errorf("lease holder during the flood got %v, want %s again", ev, held["ip"])
			return
		}
		t.Logf("lease holder: %s again %v into the flood", held["ip"], time.Since(began).Round(time.Millisecond))
		// The discovered machine's script, from its address: the
		// discovery boot with its nonce.
		if code, script := getFrom(t, holderNS, floodBase+"/boot/"+holder); code != 200 || !strings.Contains(script, "foundry.nonce=") {
			errs <- fmt.Errorf("the discovered machine's script during the flood: %d\n%s", code, script)
		}
	}()
	wg.Wait()
	// The flood stops once the clients are done, and not before floodFor
	// (the HTTP attacks and the caps need that long). On a busy machine
	// the clients took longer than a fixed 8 s flood (a known machine's
	// DISCOVERs were dropped for 8 s with two other processes spinning),
	// and a client done after the flood would prove nothing.
	clientsDone := time.Since(began)
	time.Sleep(floodFor - time.Since(floodStart))
	cancel()
	flood.Wait()
	floodTook := time.Since(floodStart)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	h := <-httpDone
	t.Logf("flood: %d random-MAC DISCOVERs, %d junk datagrams to port 67, %d to port 69 in %v (the clients done %v into it); HTTP: %+v",
		sent.discovers.Load(), sent.dhcpJunk.Load(), sent.tftpJunk.Load(), floodTook.Round(time.Millisecond), clientsDone.Round(time.Millisecond), h)
	h.check(t)

	// After: the records are at the cap, the pool still leases to a known
	// machine, and the limits were counted.
	if n := metricValue(t, a, `foundry_dhcp_discovered_records{segment="lab"}`); n != floodCap {
		t.Errorf("foundry_dhcp_discovered_records{lab} = %v, want the cap %d", n, floodCap)
	}
	if n := discoverEntries(t, a); n != floodCap {
		t.Errorf("%d discovered machines in the audit log, want the cap %d", n, floodCap)
	}
	d2 := newDHClient(t, lab.client(known2))
	must(t, d2.once(40*time.Second))
	if d2.last("BOUND") == nil {
		t.Errorf("a known machine after the flood got no lease: %v", d2.events())
	}
	leases := segmentLeases(t, a, "lab")
	if len(leases) >= 100 {
		t.Errorf("%d leases of 100 addresses after the flood", len(leases))
	}
	for _, c := range []struct{ series, why string }{
		{`foundry_dhcp_limited_total{reason="discovered_cap",segment="lab"}`, "records past the cap"},
		{`foundry_dhcp_limited_total{reason="source_rate",segment="lab"}`, "new clients past the source's rate"},
		{`foundry_dhcp_drops_total{reason="limited"}`, "limited requests"},
		{`foundry_tftp_dropped_total`, "junk at the TFTP port, filtered in the kernel"},
	} {
		if n := metricValue(t, a, c.series); n < 1 {
			t.Errorf("%s = %v: %s not counted", c.series, n, c.why)
		} else {
			t.Logf("%s %v", c.series, n)
		}
	}
	if n := strings.Count(a.logs(), "dhcp request dropped"); n > 200 {
		t.Errorf("%d per-packet drop lines in the log", n)
	}
	rssAfter, hwm := vmKiB(t, pid, "VmRSS"), vmKiB(t, pid, "VmHWM")
	t.Logf("appliance VmRSS %d KiB before the flood, %d KiB after; peak (VmHWM) %d KiB; %d leases", rssBefore, rssAfter, hwm, len(leases))
	if hwm > floodRSSLimit {
		t.Errorf("peak resident size %d KiB, limit %d KiB", hwm, floodRSSLimit)
	}
	if _, ok := a.waitLog(12*time.Second, "dhcp requests limited", "segment=lab", "reason=discovered_cap"); !ok {
		t.Error("no summary line of the limited requests in the log")
	}
}

// floodDiscovers broadcasts DISCOVERs of PXE clients from random MACs
// until ctx ends and returns how many it sent.
func floodDiscovers(ctx context.Context, t *testing.T, ns string) int64 {
	c := nsUDP(t, ns, "eth0", &net.UDPAddr{Port: 68})
	to := &net.UDPAddr{IP: net.IPv4bcast, Port: 67}
	var n int64
	for ctx.Err() == nil {
		mac := net.HardwareAddr{0x02, byte(rand.IntN(256)), byte(rand.IntN(256)), byte(rand.IntN(256)), byte(rand.IntN(256)), byte(rand.IntN(256))}
		p, err := dhcpv4.New(dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), dhcpv4.WithBroadcast(true),
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
			dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)))
		if err != nil {
			t.Error(err)
			return n
		}
		if _, err := c.WriteTo(p.ToBytes(), to); err == nil {
			n++
		}
		if n%200 == 0 {
			time.Sleep(20 * time.Millisecond) // about 10,000 a second at most
		}
	}
	return n
}

// floodJunk sends random datagrams to port (unicast, and broadcast too for
// DHCP) until ctx ends: random bytes, and BOOTP or TFTP headers followed
// by random bytes. It returns how many it sent.
func floodJunk(ctx context.Context, t *testing.T, ns string, port int) int64 {
	c := nsUDP(t, ns, "", &net.UDPAddr{IP: net.IPv4(10, 54, 0, 250)})
	targets := []*net.UDPAddr{{IP: net.ParseIP(floodAddr), Port: port}}
	if port == 67 {
		targets = append(targets, &net.UDPAddr{IP: net.IPv4bcast, Port: port})
	}
	var n int64
	buf := make([]byte, 1500)
	for i := 0; ctx.Err() == nil; i++ {
		size := 1 + rand.IntN(len(buf))
		for j := range size {
			buf[j] = byte(rand.Uint32())
		}
		switch {
		case port == 67 && i%2 == 0 && size > 240:
			// A BOOTREQUEST with the magic cookie and garbage after it.
			buf[0], buf[1], buf[2] = 1, 1, 6
			copy(buf[236:], []byte{99, 130, 83, 99})
		case port == 69 && i%3 == 0:
			// A read request for a random name, or a truncated one.
			buf[0], buf[1] = 0, byte(1+i%5)
		}
		if _, err := c.WriteTo(buf[:size], targets[i%len(targets)]); err == nil {
			n++
		}
		if n%200 == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	return n
}

// httpAttacks is what the HTTP attacks saw.
type httpAttacks struct {
	Oversized, BadJSON   []int // statuses
	OversizedType        string
	SlowHeadersClosedIn  time.Duration
	SlowHeadersOpen      int // connections still open at the end
	SlowBodyClosedIn     time.Duration
	SlowBodyStatus       int
	ScriptsDuringAttacks int // /boot/ answers while the slow connections hung
}

// attackHTTP runs for about d: oversized and malformed JSON to an admin
// endpoint, 50 connections that send their headers a byte a second, one
// that sends a JSON body a byte a second, and boot-script fetches beside
// them (script, from the test's host: a script without a nonce).
func attackHTTP(d time.Duration, script string) httpAttacks {
	var h httpAttacks
	post := func(body io.Reader, n int64) (int, string) {
		req, err := http.NewRequest("POST", floodBase+"/api/v1/clusters", body)
		if err != nil {
			return 0, ""
		}
		req.ContentLength = n
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
		if err != nil {
			return -1, err.Error()
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type")
	}
	var slow sync.WaitGroup
	closedIn := make(chan time.Duration, 50)
	start := time.Now()
	for range 50 {
		slow.Add(1)
		go func() {
			defer slow.Done()
			conn, err := net.DialTimeout("tcp", floodAddr+":8080", 5*time.Second)
			if err != nil {
				return
			}
			defer conn.Close()
			req := "GET /healthz HTTP/1.1\r\nHost: " + floodAddr + "\r\nX-Slow: " + strings.Repeat("a", 100)
			for i := 0; i < len(req); i++ {
				conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
				if _, err := conn.Write([]byte{req[i]}); err != nil {
					closedIn <- time.Since(start)
					return
				}
				conn.SetReadDeadline(time.Now().Add(time.Second))
				if _, err := conn.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
					closedIn <- time.Since(start) // the server closed it (or answered 408)
					return
				}
			}
		}()
	}
	// A JSON body a byte a second.
	slowBody := make(chan struct {
		status int
		in     time.Duration
	}, 1)
	go func() {
		pr, pw := io.Pipe()
		go func() {
			for range 30 {
				if _, err := pw.Write([]byte(" ")); err != nil {
					return
				}
				time.Sleep(time.Second)
			}
			pw.Close()
		}()
		began := time.Now()
		code, _ := post(pr, 1000)
		pr.Close()
		slowBody <- struct {
			status int
			in     time.Duration
		}{code, time.Since(began)}
	}()
	for time.Since(start) < d {
		code, ctype := post(strings.NewReader(`{"name":"x","description":"`+strings.Repeat("A", 1<<20)+`"}`), -1)
		h.Oversized, h.OversizedType = append(h.Oversized, code), ctype
		code, _ = post(strings.NewReader(`{"name": "broken",`), -1)
		h.BadJSON = append(h.BadJSON, code)
		if resp, err := http.Get(script); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && bytes.HasPrefix(b, []byte("#!ipxe")) {
				h.ScriptsDuringAttacks++
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	done := make(chan struct{})
	go func() { slow.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
	}
	close(closedIn)
	h.SlowHeadersOpen = 50
	for c := range closedIn {
		h.SlowHeadersClosedIn = max(h.SlowHeadersClosedIn, c)
		h.SlowHeadersOpen--
	}
	sb := <-slowBody
	h.SlowBodyStatus, h.SlowBodyClosedIn = sb.status, sb.in
	return h
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func (h httpAttacks) check(t *testing.T) {
	t.Helper()
	for _, c := range h.Oversized {
		if c != http.StatusRequestEntityTooLarge {
			t.Errorf("oversized JSON body: %d, want 413 (all: %v)", c, h.Oversized)
			break
		}
	}
	if !strings.Contains(h.OversizedType, "problem+json") {
		t.Errorf("413 answered as %q, want a problem", h.OversizedType)
	}
	for _, c := range h.BadJSON {
		if c != http.StatusBadRequest && c != http.StatusUnprocessableEntity {
			t.Errorf("malformed JSON: %d, want a 400 or 422 problem (all: %v)", c, h.BadJSON)
			break
		}
	}
	if h.SlowHeadersOpen > 0 || h.SlowHeadersClosedIn == 0 || h.SlowHeadersClosedIn > 15*time.Second {
		t.Errorf("connections sending headers a byte a second: %d still open, the last closed after %v; want all closed after about ReadHeaderTimeout (10 s)",
			h.SlowHeadersOpen, h.SlowHeadersClosedIn)
	}
	if h.SlowBodyStatus == http.StatusCreated || h.SlowBodyClosedIn > 10*time.Second {
		t.Errorf("a JSON body sent a byte a second: %d after %v, want it dropped after the body read timeout (5 s)", h.SlowBodyStatus, h.SlowBodyClosedIn)
	}
	if h.ScriptsDuringAttacks == 0 {
		t.Error("no boot script was served during the HTTP attacks")
	}
}

var metricLine = regexp.MustCompile(`^(\S+) (\S+)$`)

// metricValue reads one series (name and labels as /metrics prints them)
// from /metrics; 0 when absent.
func metricValue(t *testing.T, a *appliance, series string) float64 {
	t.Helper()
	resp := apiGet(t, a, "/metrics")
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if m := metricLine.FindStringSubmatch(sc.Text()); m != nil && m[1] == series {
			v, err := strconv.ParseFloat(m[2], 64)
			must(t, err)
			return v
		}
	}
	return 0
}

// discoverEntries counts the audit log's discoveries.
func discoverEntries(t *testing.T, a *appliance) int {
	t.Helper()
	resp := apiGet(t, a, "/api/v1/audit?action=discover&limit=1000")
	defer resp.Body.Close()
	var l struct{ Items []json.RawMessage }
	must(t, json.NewDecoder(resp.Body).Decode(&l))
	return len(l.Items)
}
