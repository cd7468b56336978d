package test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/agentsig"
	"github.com/foundry-appliance/foundry/agentwire"
	"github.com/foundry-appliance/foundry/api/client"
	"github.com/foundry-appliance/foundry/store"
)

// Attacks on the admin and agent HTTP API (issue 9, item 8), each run
// against the real `foundry serve`: a revoked token's event stream, a
// burst of wrong console tokens, profile templates that spin, and agent
// bodies larger than the store keeps. The machines they need are written
// into the database before serve starts (Badger admits one process), so
// that each attack starts from the state it needs in a second.

// apiSecConfig serves one discovery segment on sap0.
const apiSecConfig = `
http:
  listen: ":8080"
  advertise: "http://10.63.0.1:8080"
tftp:
  listen: ":69"
segments:
  - name: lab
    interface: sap0
    subnet: 10.63.0.0/24
    range: [10.63.0.100, 10.63.0.200]
    discovery: true
`

const apiSecBase = "http://10.63.0.1:8080"

// secAppliance creates sap0, lets seed write into a fresh database, and
// starts the appliance on it.
func secAppliance(t *testing.T, seed func(db *store.DB)) *appliance {
	t.Helper()
	newLab(t, "sap0", "10.63.0.1/24")
	data := t.TempDir()
	db, err := store.Open(filepath.Join(data, "db"), store.Options{})
	must(t, err)
	if seed != nil {
		seed(db)
	}
	must(t, db.Close())
	return startAppliance(t, data, imageDir(t), apiSecConfig, apiSecBase)
}

// seedMachine stores a machine of the lab segment.
func seedMachine(t *testing.T, db *store.DB, m store.Machine) {
	t.Helper()
	now := time.Now()
	m.Segment, m.FirstSeen, m.LastSeen = "lab", now, now
	if m.Hostname == "" {
		m.Hostname = "discovered-" + strings.ReplaceAll(m.MAC[9:], ":", "")
	}
	if m.State == store.StateDiscovered || m.State == store.StateInventoried {
		m.Temporary, m.ExpiresAt = true, now.Add(24*time.Hour)
	}
	if _, err := db.CreateMachine(m, store.Audit{Actor: "test", Action: "seed"}); err != nil {
		t.Fatalf("seed %s: %v", m.MAC, err)
	}
}

// adminCall sends a JSON request with a bearer token and returns the
// status and body.
func adminCall(t *testing.T, secret, method, path string, body any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		must(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, apiSecBase+"/api/v1"+path, rd)
	must(t, err)
	req.Header.Set("Authorization", "Bearer "+secret)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type sseEvent struct{ name, data string }

// openStream opens GET /api/v1/events with secret and returns its events;
// the channel is closed when the appliance ends the stream.
func openStream(t *testing.T, ctx context.Context, secret string) <-chan sseEvent {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, apiSecBase+"/api/v1/events", nil)
	must(t, err)
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("open event stream: %v %v", resp, err)
	}
	out := make(chan sseEvent, 64)
	go func() {
		defer resp.Body.Close()
		defer close(out)
		events := client.NewEventReader(resp.Body)
		for {
			ev, err := events.Next()
			if err != nil {
				return
			}
			out <- sseEvent{name: ev.Type, data: ev.Data}
		}
	}()
	select {
	case ev := <-out:
		if ev.name != "ping" {
			t.Fatalf("first event %+v, want ping", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no opening ping")
	}
	return out
}

// revokeWithin is how soon a revoked token's stream must end: the stream
// re-checks its token every 2s and before every event.
const revokeWithin = 5 * time.Second

// A viewer opens the event stream; an administrator revokes the viewer's
// token. The stream ends within revokeWithin, idle or with machines
// changing, and carries no event after the revocation, while a stream of a
// token that is still valid sees those changes.
func TestSecurityRevokedTokenStream(t *testing.T) {
	const mac = "52:54:00:5a:00:01"
	secAppliance(t, func(db *store.DB) { seedMachine(t, db, store.Machine{MAC: mac, State: store.StateDiscovered}) })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	newViewer := func(name string) (id, secret string) {
		code, body := adminCall(t, adminToken, "POST", "/tokens", map[string]string{"name": name, "role": "viewer"})
		var tok struct{ ID, Secret string }
		if code != 201 || json.Unmarshal([]byte(body), &tok) != nil || tok.Secret == "" {
			t.Fatalf("create viewer token: %d %s", code, body)
		}
		return tok.ID, tok.Secret
	}
	_, watcher := newViewer("watcher")
	control := openStream(t, ctx, watcher)

	for _, busy := range []bool{false, true} {
		name := map[bool]string{false: "idle", true: "busy"}[busy]
		id, spy := newViewer("spy-" + name)
		stream := openStream(t, ctx, spy)
		if code, body := adminCall(t, adminToken, "DELETE", "/tokens/"+id, nil); code != 204 {
			t.Fatalf("revoke: %d %s", code, body)
		}
		revoked := time.Now()
		if busy {
			// A change committed after the revocation must not reach it.
			if code, body := adminCall(t, adminToken, "PUT", "/machines/"+mac+"/boot", map[string]any{"menu": map[string]any{"enabled": true, "timeout_seconds": 7}}); code != 200 {
				t.Fatalf("change the machine: %d %s", code, body)
			}
		}
		deadline := time.After(revokeWithin)
	read:
		for {
			select {
			case ev, ok := <-stream:
				if !ok {
					break read
				}
				if ev.name == "machine" {
					t.Fatalf("%s: the revoked token's stream received a machine event: %s", name, ev.data)
				}
			case <-deadline:
				t.Fatalf("%s: the revoked token's stream is still open %v after the revocation", name, revokeWithin)
			}
		}
		t.Logf("%s: stream ended %v after the revocation", name, time.Since(revoked).Round(time.Millisecond))
		if code, _ := adminCall(t, spy, "GET", "/machines", nil); code != 401 {
			t.Fatalf("%s: revoked token still reads: %d", name, code)
		}
		if busy {
			// The change happened: the valid token's stream shows it.
			for {
				select {
				case ev, ok := <-control:
					if !ok {
						t.Fatal("the valid token's stream ended")
					}
					if ev.name == "machine" && strings.Contains(ev.data, mac) {
						return
					}
				case <-time.After(10 * time.Second):
					t.Fatal("the valid token's stream did not see the change")
				}
			}
		}
	}
}

// 40 wrong console tokens sent at once to approve a machine that the real
// agent client registered: at most five are compared (five approve-denied
// audit entries naming the registration and the attempt, the last "5 of
// 5"), every other request is refused with 423 without a comparison, and
// the right token is then locked out too.
func TestSecurityConcurrentWrongTokens(t *testing.T) {
	const mac = "52:54:00:5a:00:02"
	var nonce string
	a := secAppliance(t, func(db *store.DB) {
		_, err := db.CreateProfile(store.Profile{Name: "prod", Kind: store.ProfileNetboot, Kernel: "/images/discovery/vmlinuz"}, store.Audit{Actor: "test"})
		must(t, err)
		_, err = db.CreateCluster(store.Cluster{Name: "rack1", DefaultProfile: "prod"}, store.Audit{Actor: "test"})
		must(t, err)
		seedMachine(t, db, store.Machine{MAC: mac, State: store.StateDiscovered})
		nonce, err = db.IssueNonce(mac, time.Hour)
		must(t, err)
	})
	boot := newBootAgent(t, a.base, "", nonce, nil)
	if _, err := boot.register(mac, testInventory(mac, "", "pci-0000:00:04.0")); err != nil {
		t.Fatalf("register: %v", err)
	}

	const n = 40
	codes := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			codes[i], _ = adminCall(t, adminToken, "POST", "/machines/"+mac+"/approve",
				map[string]string{"token": fmt.Sprintf("FOUNDRY-AAAA-BBBB-%04d", i), "cluster": "rack1"})
		}()
	}
	close(start)
	wg.Wait()
	count := map[int]int{}
	for _, c := range codes {
		count[c]++
	}
	t.Logf("statuses of %d concurrent wrong tokens: %v", n, count)
	if count[http.StatusUnprocessableEntity] > 5 || count[http.StatusUnprocessableEntity]+count[http.StatusLocked] != n {
		t.Fatalf("statuses %v: want at most five 422 (compared) and 423 (locked) for the rest", count)
	}

	code, body := adminCall(t, adminToken, "GET", "/audit?mac="+mac+"&action=approve-denied", nil)
	var audit struct {
		Items []struct{ Action, Detail string }
	}
	if code != 200 || json.Unmarshal([]byte(body), &audit) != nil {
		t.Fatalf("audit: %d %s", code, body)
	}
	if len(audit.Items) != count[http.StatusUnprocessableEntity] || len(audit.Items) > 5 {
		t.Fatalf("%d approve-denied audit entries for %d compared tokens: %s", len(audit.Items), count[http.StatusUnprocessableEntity], body)
	}
	// Each denial names the registration compared and its attempt number;
	// the fifth is the one that locks it.
	locked := false
	for _, e := range audit.Items {
		locked = locked || strings.Contains(e.Detail, boot.session()[:8]+" (5 of 5)")
	}
	if len(audit.Items) == 5 && !locked {
		t.Errorf("no denial records the registration's fifth (locking) attempt: %s", body)
	}
	code, body = adminCall(t, adminToken, "POST", "/machines/"+mac+"/approve", map[string]string{"token": boot.Console, "cluster": "rack1"})
	if code != http.StatusLocked {
		t.Fatalf("right token after the burst: %d %s, want 423", code, body)
	}
}

// A profile whose template spins (`{{range 100000000000}}{{end}}`) is
// refused when it is written, naming body.script, at once; a machine whose
// profile holds such a template already (stored before the rule) gets the
// error script at once instead of a request that never ends.
func TestSecuritySpinningTemplate(t *testing.T) {
	const mac = "52:54:00:5a:00:03"
	const spin = "#!ipxe\n{{range 100000000000}}{{end}}"
	a := secAppliance(t, func(db *store.DB) {
		_, err := db.CreateProfile(store.Profile{Name: "old-spin", Kind: store.ProfileNetboot, Script: spin}, store.Audit{Actor: "test"})
		must(t, err)
		_, err = db.CreateCluster(store.Cluster{Name: "rack1"}, store.Audit{Actor: "test"})
		must(t, err)
		seedMachine(t, db, store.Machine{MAC: mac, State: store.StateReady, Hostname: "node-01", Cluster: "rack1", Profile: "old-spin"})
	})

	for _, src := range []string{spin, "#!ipxe\n{{define \"a\"}}{{template \"a\"}}{{end}}{{template \"a\"}}"} {
		began := time.Now()
		code, body := adminCall(t, adminToken, "POST", "/profiles", map[string]string{"name": "spin", "kind": "netboot", "script": src})
		took := time.Since(began)
		var p struct {
			Errors []struct{ Location string }
		}
		if code != 422 || json.Unmarshal([]byte(body), &p) != nil || len(p.Errors) == 0 || p.Errors[0].Location != "body.script" {
			t.Fatalf("create a profile with template %q: %d %s, want 422 naming body.script", src, code, body)
		}
		if took > 3*time.Second {
			t.Errorf("refusing template %q took %v", src, took)
		}
	}
	if code, _ := adminCall(t, adminToken, "GET", "/profiles/spin", nil); code != 404 {
		t.Fatalf("a refused profile was stored: %d", code)
	}

	c := &http.Client{Timeout: 10 * time.Second}
	began := time.Now()
	resp, err := c.Get(a.base + "/boot/" + mac)
	if err != nil {
		t.Fatalf("boot script of a machine with a spinning stored template: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(began)
	t.Logf("error script after %v", took.Round(time.Millisecond))
	if resp.StatusCode != 500 || !strings.HasPrefix(string(b), "#!ipxe") || !strings.Contains(string(b), "no boot script") {
		t.Fatalf("boot script: %d\n%s", resp.StatusCode, b)
	}
	if took > 3*time.Second {
		t.Errorf("the error script took %v", took)
	}
	if _, ok := a.waitLog(5*time.Second, "ipxe script failed", mac, "not allowed"); !ok {
		t.Errorf("the log does not say why:\n%s", a.logs())
	}
}

// vmKiB reads a field such as VmRSS or VmHWM of /proc/<pid>/status, in KiB.
func vmKiB(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	must(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			must(t, err)
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// rawPost sends a body of size bytes ('{' then spaces: the start of a JSON
// document that never ends) over its own connection, with or without a
// Content-Length, and returns the status. The request is signed with key
// (RFC 9421, the body's digest included) and carries nonce, like a
// registration: an unsigned one is refused with 401 before its body is
// read, so only a signed one reaches the body limit. The body is written
// while the answer is read: the appliance answers as soon as it refuses,
// and stops reading.
func rawPost(t *testing.T, path, nonce string, key ed25519.PrivateKey, size int, declared bool) int {
	t.Helper()
	body := append([]byte("{"), bytes.Repeat([]byte(" "), size-1)...)
	req, err := http.NewRequest("POST", apiSecBase+path, bytes.NewReader(body))
	must(t, err)
	must(t, agentsig.Sign(req, key, 1))
	conn, err := net.DialTimeout("tcp", "10.63.0.1:8080", 5*time.Second)
	must(t, err)
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	go func() {
		w := bufio.NewWriterSize(conn, 64<<10)
		fmt.Fprintf(w, "POST %s HTTP/1.1\r\nHost: 10.63.0.1:8080\r\nContent-Type: application/json\r\nX-Foundry-Nonce: %s\r\n", path, nonce)
		for _, h := range []string{"Content-Digest", "Signature-Input", "Signature"} {
			fmt.Fprintf(w, "%s: %s\r\n", h, req.Header.Get(h))
		}
		if declared {
			fmt.Fprintf(w, "Content-Length: %d\r\n\r\n", size)
		} else {
			w.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		}
		for sent := 0; sent < size; sent += 64 << 10 {
			c := body[sent:min(sent+64<<10, size)]
			if !declared {
				fmt.Fprintf(w, "%x\r\n", len(c))
			}
			if _, err := w.Write(c); err != nil {
				return // refused and closed: the point
			}
			if !declared {
				w.WriteString("\r\n")
			}
		}
		if !declared {
			w.WriteString("0\r\n\r\n")
		}
		w.Flush()
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("POST %s of %d bytes (length declared %v): %v", path, size, declared, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// rssGrowthLimit bounds the appliance's peak resident memory growth while
// it refuses 16 register bodies of 4 MiB, eight at a time. Before the fix
// one such body allocated about 215 MiB; now a declared one is refused
// before it is read and an undeclared one after at most 512 KiB.
const rssGrowthLimit = 24 << 10 // KiB

// A discovery agent (or anyone holding a boot nonce) posts signed register
// bodies of 4 MiB, four times the store's record limit: each is refused with 413,
// and the appliance's peak RSS grows by less than rssGrowthLimit. The
// largest body the API accepts is stored, so the limit is not below what
// a real inventory needs.
func TestSecurityRegisterBodyLimit(t *testing.T) {
	const mac = "52:54:00:5a:00:04"
	var nonce string
	a := secAppliance(t, func(db *store.DB) {
		seedMachine(t, db, store.Machine{MAC: mac, State: store.StateDiscovered})
		var err error
		nonce, err = db.IssueNonce(mac, time.Hour)
		must(t, err)
	})
	pid := a.cmd.Process.Pid

	// A normal registration first, so that the baseline includes a warm
	// heap and the paths a refusal shares with it: the largest body the
	// limit admits, sent by the real agent client.
	boot := newBootAgent(t, a.base, "", nonce, nil)
	reg := agentwire.AgentRegister{MAC: mac, PublicKey: boot.Key.Public().(ed25519.PublicKey), Token: boot.tokenHash()}
	head, tail := `{"warnings":["`, `"]}`
	reg.Inventory = agentwire.RawInventory(head + tail)
	frame, err := json.Marshal(reg)
	must(t, err)
	reg.Inventory = agentwire.RawInventory(head + strings.Repeat("x", 512<<10-1-len(frame)) + tail)
	largest, err := json.Marshal(reg)
	must(t, err)
	if len(largest) != 512<<10-1 {
		t.Fatalf("the largest body is %d bytes, want %d", len(largest), 512<<10-1)
	}
	if _, err := boot.Register(context.Background(), reg); err != nil {
		t.Fatalf("the largest accepted register body (%d bytes): %v", len(largest), err)
	}

	// Reset the peak to the current resident size (proc(5), clear_refs 5).
	must(t, os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0))
	before := vmKiB(t, pid, "VmRSS")
	var wg sync.WaitGroup
	codes := make(chan int, 16)
	for round := range 2 {
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes <- rawPost(t, "/api/v1/agent/register", nonce, boot.Key, 4<<20, (i+round)%2 == 0)
			}()
		}
		wg.Wait()
	}
	close(codes)
	for c := range codes {
		if c != http.StatusRequestEntityTooLarge {
			t.Errorf("4 MiB register body: %d, want 413", c)
		}
	}
	after, peak := vmKiB(t, pid, "VmRSS"), vmKiB(t, pid, "VmHWM")
	t.Logf("appliance RSS before %d KiB, after %d KiB, peak %d KiB: peak growth %d KiB (limit %d KiB)",
		before, after, peak, peak-before, rssGrowthLimit)
	if peak-before > rssGrowthLimit {
		t.Errorf("refusing 16 bodies of 4 MiB grew the appliance's peak RSS by %d KiB, more than %d KiB", peak-before, rssGrowthLimit)
	}
	if code, body := adminCall(t, adminToken, "GET", "/machines/"+mac, nil); code != 200 || !strings.Contains(body, `"inventoried"`) {
		t.Errorf("the machine after the refused bodies: %d %s", code, body)
	}
}
