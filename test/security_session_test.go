package test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/agentsig"
	"github.com/foundry-appliance/foundry/agentwire"
	"github.com/foundry-appliance/foundry/discovery-os/agent"
	"github.com/foundry-appliance/foundry/discovery-os/token"
	"github.com/foundry-appliance/foundry/store"
)

// Attacks on the boot-session trust chain (issue 9): a one-time boot nonce
// opens a session for the boot's own Ed25519 key, and every agent call is
// signed with that key and numbered. Each attack runs against the real
// `foundry serve` on the coreLab bridge, from client namespaces: the
// genuine machine's, a spoofer's that uses the machine's MAC, and an
// attacker's with its own MAC and address. The agents are the real agent
// client (discovery-os/agent.Client). No QEMU: each test takes seconds.

// The genuine machine's disk is sessionDisk; the spoofer reports spoofDisk,
// whose stable path sorts first, so that a default disk chosen from its
// inventory would differ. The attacker's host has its own MAC and an
// address outside the DHCP range.
const (
	sessionDisk    = "pci-0000:00:04.0"
	spoofDisk      = "pci-0000:00:01.0-ata-1"
	sessionSSHKey  = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGt6ZmZ5b3VyLWtleS1oZXJlLXBsZWFzZS1yZXBsYWNl admin@example"
	approvedDisk   = "/dev/disk/by-path/" + sessionDisk
	attackerMAC    = "52:54:00:5e:0f:0f"
	attackerAddr   = "10.77.0.50/24"
	applianceHTTP  = "10.77.0.1:8080"
	sessionImage   = "http://10.77.0.1:8080/images/node.raw"
	sessionImageID = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
)

// sessionLab is coreLab with an image profile (the agent installs it, so
// the decision, progress and result all matter) as rack1's default.
func sessionLab(t *testing.T) (*lab, *appliance) {
	t.Helper()
	labNet, _, a := coreLab(t)
	for _, args := range [][]string{
		{"profiles", "create", "img", "--kind", "image", "--image-url", sessionImage, "--image-sha256", sessionImageID},
		{"clusters", "create", "rack1", "--default-profile", "img"},
	} {
		if out, code := cli(t, a, adminToken, args...); code != 0 {
			t.Fatalf("foundry %v: exit %d\n%s", args, code, out)
		}
	}
	return labNet, a
}

// registrationJSON and sessionMachine are the parts of the API's machine
// that `foundry machines show -o json` prints and these tests check.
type registrationJSON struct {
	ID       string    `json:"id"`
	IP       string    `json:"ip"`
	LastSeen time.Time `json:"last_seen"`
	Bound    bool      `json:"bound"`
	Token    struct {
		ExpiresAt time.Time `json:"expires_at"`
		Failures  int       `json:"failures"`
		Locked    bool      `json:"locked"`
	} `json:"token"`
}

type sessionMachine struct {
	State         string             `json:"state"`
	Hostname      string             `json:"hostname"`
	Progress      int                `json:"progress"`
	Message       string             `json:"message"`
	MACConflict   bool               `json:"mac_conflict"`
	Registrations []registrationJSON `json:"registrations"`
	Approval      *struct {
		Disk    string   `json:"disk"`
		SSHKeys []string `json:"ssh_keys"`
	} `json:"approval"`
	Inventory json.RawMessage `json:"inventory"`
}

// reg returns the registration with id, or fails.
func (m sessionMachine) reg(t *testing.T, id string) registrationJSON {
	t.Helper()
	for _, r := range m.Registrations {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("no registration %s among %+v", id, m.Registrations)
	return registrationJSON{}
}

// showSession reads the machine as an administrator does, through the CLI.
func showSession(t *testing.T, a *appliance, mac string) sessionMachine {
	t.Helper()
	out, code := cli(t, a, adminToken, "machines", "show", mac, "-o", "json")
	var m sessionMachine
	if code != 0 || json.Unmarshal([]byte(out), &m) != nil {
		t.Fatalf("machines show %s -o json: exit %d\n%s", mac, code, out)
	}
	return m
}

// status is the HTTP status of an agent client's error, 200 for none.
func status(err error) int {
	if err == nil {
		return http.StatusOK
	}
	var ae *agent.APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return -1
}

// replay sends raw request bytes, as seen on the wire, to the appliance
// from namespace ns and returns the answer's status and body.
func replay(t *testing.T, ns string, raw []byte) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := dialIn(ctx, ns, "tcp", applianceHTTP)
	must(t, err)
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := conn.Write(raw); err != nil {
		t.Fatalf("replay: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("replay: read the answer: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// attackerNS plugs a host with its own MAC and a static address outside
// the DHCP range into the lab.
func attackerNS(t *testing.T, labNet *lab) string {
	t.Helper()
	ns := labNet.client(attackerMAC)
	nsRun(t, ns, "ip", "addr", "add", attackerAddr, "dev", "eth0")
	return ns
}

// A host on the segment sets the machine's MAC and does its own DHCP
// exchange, so the appliance grants it a nonce like the machine, and it
// registers its own key and inventory. Its registration is a separate one
// (a MAC conflict) that changes nothing of the genuine one; approval with
// the genuine console token binds the genuine registration and freezes its
// inventory; the spoofer is told to wait, learns nothing of the approval,
// and its reports are refused; a later spoofed boot cannot replace the
// frozen inventory; the genuine agent gets the image and the approved disk.
//
// Both namespaces stay plugged into one bridge with one MAC (and, from the
// DHCP server, one address). The bridge forwards frames for that MAC to
// the port it last heard it from, so a reply can reach the wrong one (a
// connection reset, seen under load). The spoofer therefore uses the MAC
// only for what needs it — its DHCP exchange and the discovery script that
// carries its nonce — and makes its agent calls from another host of the
// segment: its credential is its boot key, not its address.
func TestSecuritySessionMACSpoofing(t *testing.T) {
	labNet, a := sessionLab(t)
	ctx := context.Background()
	const mac = "52:54:00:5e:00:01"

	gNS := labNet.client(mac)
	must(t, newDHClient(t, gNS).once(40*time.Second))
	genuine := newBootAgent(t, a.base, gNS, discoveryNonce(t, a, gNS, mac), nil)
	if state, err := genuine.register(mac, testInventory(mac, "GENUINE", sessionDisk)); err != nil || state != "inventoried" {
		t.Fatalf("genuine registration: %q %v", state, err)
	}
	before := showSession(t, a, mac).reg(t, genuine.session())

	sNS := labNet.client(mac)
	sDH := newDHClient(t, sNS)
	must(t, sDH.once(40*time.Second))
	atk := attackerNS(t, labNet)
	spoofer := newBootAgent(t, a.base, atk, discoveryNonce(t, a, sNS, mac), nil)
	if _, err := spoofer.register(mac, testInventory(mac, "SPOOF", spoofDisk)); err != nil {
		t.Fatalf("spoofed registration: %v", err)
	}
	m := showSession(t, a, mac)
	if !m.MACConflict || len(m.Registrations) != 2 || m.Registrations[0].ID != genuine.session() || m.Registrations[1].ID != spoofer.session() {
		t.Fatalf("the spoofed registration is not a second one shown as a MAC conflict: conflict=%v %+v", m.MACConflict, m.Registrations)
	}
	if g := m.reg(t, genuine.session()); !g.Token.ExpiresAt.Equal(before.Token.ExpiresAt) || g.Token.Failures != 0 {
		t.Fatalf("the spoofer changed the genuine registration's token: before %+v, after %+v", before.Token, g.Token)
	}
	t.Logf("MAC conflict: genuine %s from %s, spoofer %s from %s", genuine.session()[:8], m.Registrations[0].IP, spoofer.session()[:8], m.Registrations[1].IP)

	// The lockout is per registration: a wrong token counts against both,
	// and the spoofer sending itself a new token resets only its own count.
	approve := []string{"machines", "approve", mac, "--cluster", "rack1", "--hostname", "node-01", "--ssh-key", sessionSSHKey}
	if out, code := cli(t, a, adminToken, append(approve, "--console-token", "FOUNDRY-AAAA-BBBB-CCCC")...); code != 4 {
		t.Fatalf("wrong console token: exit %d, want 4\n%s", code, out)
	}
	salt, err := token.NewSalt(rand.Reader)
	must(t, err)
	fresh, err := token.New(rand.Reader, time.Now())
	must(t, err)
	if err := spoofer.Token(ctx, agentTokenFor(fresh, salt)); err != nil {
		t.Fatalf("spoofer's new token: %v", err)
	}
	m = showSession(t, a, mac)
	if g, s := m.reg(t, genuine.session()), m.reg(t, spoofer.session()); g.Token.Failures != 1 || s.Token.Failures != 0 {
		t.Fatalf("failures after one wrong token and the spoofer's new token: genuine %d (want 1), spoofer %d (want 0)", g.Token.Failures, s.Token.Failures)
	}

	if out, code := cli(t, a, adminToken, append(approve, "--console-token", genuine.Console)...); code != 0 {
		t.Fatalf("approval with the genuine console token: exit %d\n%s", code, out)
	}
	approved := showSession(t, a, mac)
	if approved.State != "approved" || !approved.reg(t, genuine.session()).Bound || approved.reg(t, spoofer.session()).Bound {
		t.Fatalf("approval did not bind the genuine registration: %s %+v", approved.State, approved.Registrations)
	}
	if approved.Approval == nil || approved.Approval.Disk != approvedDisk ||
		!bytes.Contains(approved.Inventory, []byte(`"GENUINE"`)) || bytes.Contains(approved.Inventory, []byte("SPOOF")) {
		t.Fatalf("approval froze the wrong inventory or disk: %+v\n%s", approved.Approval, approved.Inventory)
	}

	// The spoofer, asking with its signed session, is told to wait, and
	// nothing of the approval.
	d, err := spoofer.Decision(ctx, 0)
	if err != nil || d.Decision != "wait" || d.Message == "" || d.Hostname != "" || d.SSHKeys != nil || d.Image != nil || d.Network != nil {
		t.Fatalf("spoofer's decision: %+v %v; want wait with a message and no details", d, err)
	}

	// A later spoofed boot, with a new grant, nonce and key, registers an
	// inventory that maps the approved by-path to another device: it is a
	// registration of its own, and the frozen inventory stays.
	must(t, sDH.once(40*time.Second))
	spoofer2 := newBootAgent(t, a.base, atk, discoveryNonce(t, a, sNS, mac), nil)
	remap := testInventory(mac, "SPOOF2", sessionDisk)
	remap.Disks[0].Name, remap.Disks[0].Path, remap.Disks[0].SizeBytes = "sdb", "/dev/sdb", 1<<30
	if _, err := spoofer2.register(mac, remap); err != nil {
		t.Fatalf("second spoofed registration: %v", err)
	}
	m = showSession(t, a, mac)
	if !bytes.Equal(m.Inventory, approved.Inventory) || m.Approval == nil || m.Approval.Disk != approvedDisk || len(m.Registrations) != 3 {
		t.Fatalf("a spoofed boot after approval changed the machine: %+v, %d registrations\n%s", m.Approval, len(m.Registrations), m.Inventory)
	}
	// The administrator ends that registration: its agent can make no
	// further call.
	if code, body := labCall(t, a, "DELETE", "/machines/"+mac+"/registrations/"+spoofer2.session()); code != 200 {
		t.Fatalf("end the spoofer's registration: %d %s", code, body)
	}
	if _, err := spoofer2.Decision(ctx, 0); status(err) != http.StatusUnauthorized {
		t.Fatalf("an ended registration's call: %v, want 401", err)
	}

	// The genuine agent, from its namespace, gets the image and the disk
	// as approved, and starts.
	d, err = genuine.Decision(ctx, 0)
	if err != nil || d.Decision != "image" || d.Image == nil || d.Image.Disk != approvedDisk || d.Image.DiskByPath != approvedDisk ||
		d.Hostname != "node-01" || len(d.SSHKeys) != 1 || d.SSHKeys[0] != sessionSSHKey || d.Image.URL != sessionImage {
		t.Fatalf("genuine decision: %+v %v", d, err)
	}
	if err := genuine.Progress(ctx, 30, "writing image"); err != nil {
		t.Fatalf("genuine progress: %v", err)
	}

	// The spoofer's reports are refused and change nothing: it cannot
	// make the machine look installed.
	if err := spoofer.Progress(ctx, 90, "spoofed progress"); status(err) != http.StatusForbidden {
		t.Fatalf("spoofer's progress: %v, want 403", err)
	}
	if err := spoofer.Result(ctx, true, "spoofed success"); status(err) != http.StatusForbidden {
		t.Fatalf("spoofer's result: %v, want 403", err)
	}
	if m := showSession(t, a, mac); m.State != "provisioning" || m.Progress != 30 || m.Message != "writing image" {
		t.Fatalf("after the spoofer's reports: %s %d%% %q, want provisioning 30%% \"writing image\"", m.State, m.Progress, m.Message)
	}

	// The genuine result ends every session of the MAC with it; the
	// machine then boots its disk and waits for its first-boot report.
	if err := genuine.Result(ctx, true, "image written"); err != nil {
		t.Fatalf("genuine result: %v", err)
	}
	if m := showSession(t, a, mac); m.State != "provisioning" || len(m.Registrations) != 0 || m.MACConflict {
		t.Fatalf("after the install: %s, registrations %+v", m.State, m.Registrations)
	}
	if _, err := spoofer.Decision(ctx, 0); status(err) != http.StatusUnauthorized {
		t.Fatalf("the spoofer's call after the install: %v, want 401", err)
	}
}

// agentTokenFor is the hash an agent sends for console token tok.
func agentTokenFor(tok token.Token, salt []byte) agentwire.AgentToken {
	return agentwire.NewAgentToken(tok, salt)
}

// labCall is an admin API call to the coreLab appliance.
func labCall(t *testing.T, a *appliance, method, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, a.base+"/api/v1"+path, nil)
	must(t, err)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	must(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var seqRE = regexp.MustCompile(`;nonce="(\d+)"`)

// An attacker on the segment reads the genuine machine's boot script and
// agent calls off the wire (plain HTTP) and tries them from its own host:
// the used nonce with its own key, the nonce alone without a signature, a
// signed call sent again, and a signed call altered (its body, its call
// number). Each is refused with 401, none changes the machine, and the
// genuine agent's session goes on. Then the genuine agent waits in a long
// poll while the administrator rediscovers the machine: the poll ends at
// once with 401, and so does every later call of the session.
func TestSecuritySessionSniffedRequests(t *testing.T) {
	labNet, a := sessionLab(t)
	ctx := context.Background()
	const mac = "52:54:00:5e:00:02"

	gNS := labNet.client(mac)
	must(t, newDHClient(t, gNS).once(40*time.Second))
	nonce := discoveryNonce(t, a, gNS, mac)
	tap := &wireTap{}
	genuine := newBootAgent(t, a.base, gNS, nonce, tap)
	if _, err := genuine.register(mac, testInventory(mac, "GENUINE", sessionDisk)); err != nil {
		t.Fatalf("genuine registration: %v", err)
	}
	xNS := attackerNS(t, labNet)

	// The used nonce, registered with the attacker's own key.
	thief := newBootAgent(t, a.base, xNS, nonce, nil)
	if _, err := thief.register(mac, testInventory(mac, "THIEF", spoofDisk)); status(err) != http.StatusUnauthorized {
		t.Fatalf("the used nonce with another key: %v, want 401", err)
	}
	// The nonce alone, unsigned, on the decision and on a registration.
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/api/v1/agent/decision", ""},
		{"POST", "/api/v1/agent/register", `{"mac":"` + mac + `","inventory":{},"token":{}}`},
	} {
		raw := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nX-Foundry-Nonce: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
			c.method, c.path, applianceHTTP, nonce, len(c.body), c.body)
		if code, body := replay(t, xNS, []byte(raw)); code != http.StatusUnauthorized {
			t.Fatalf("%s %s with the nonce alone: %d %s, want 401", c.method, c.path, code, body)
		}
	}
	if m := showSession(t, a, mac); len(m.Registrations) != 1 || m.Registrations[0].ID != genuine.session() || m.MACConflict {
		t.Fatalf("the nonce attacks changed the registrations: %+v", m.Registrations)
	}

	approve := []string{"machines", "approve", mac, "--cluster", "rack1", "--hostname", "node-02", "--ssh-key", sessionSSHKey, "--console-token", genuine.Console}
	if out, code := cli(t, a, adminToken, approve...); code != 0 {
		t.Fatalf("approval: exit %d\n%s", code, out)
	}

	// The decision, sniffed and sent again from the attacker's host,
	// reveals nothing.
	if d, err := genuine.Decision(ctx, 0); err != nil || d.Decision != "image" {
		t.Fatalf("genuine decision: %+v %v", d, err)
	}
	sniffed := tap.last()
	if !bytes.Contains(sniffed, []byte("Signature-Input:")) {
		t.Fatalf("the tap saw no signed request:\n%s", sniffed)
	}
	if code, body := replay(t, xNS, sniffed); code != http.StatusUnauthorized || !strings.Contains(body, "used before") ||
		strings.Contains(body, "node-02") || strings.Contains(body, "ssh-ed25519") {
		t.Fatalf("replayed decision: %d %s, want 401 (replayed) and no details", code, body)
	}

	if err := genuine.Progress(ctx, 40, "writing image"); err != nil {
		t.Fatalf("genuine progress: %v", err)
	}
	if err := genuine.Result(ctx, false, "image checksum mismatch"); err != nil {
		t.Fatalf("genuine result: %v", err)
	}
	result := tap.last()
	if !bytes.Contains(result, []byte(`"success":false`)) {
		t.Fatalf("the tap did not see the result:\n%s", result)
	}
	code, body := replay(t, xNS, result)
	if code != http.StatusUnauthorized || !strings.Contains(body, "used before") {
		t.Fatalf("replayed result: %d %s, want 401 (replayed)", code, body)
	}
	// The same request made to say success (same length, so that only the
	// body differs), and with a call number above every one used.
	flipped := bytes.Replace(result, []byte(`"success":false`), []byte(`"success":true `), 1)
	seq := seqRE.FindSubmatch(result)
	if seq == nil {
		t.Fatalf("no call number in the sniffed result:\n%s", result)
	}
	n, _ := strconv.Atoi(string(seq[1]))
	renumbered := seqRE.ReplaceAll(result, []byte(fmt.Sprintf(`;nonce="%d"`, n+100)))
	for name, raw := range map[string][]byte{"success flipped": flipped, "call number raised": renumbered} {
		if code, body := replay(t, xNS, raw); code != http.StatusUnauthorized || !strings.Contains(body, "does not verify") {
			t.Fatalf("result with %s: %d %s, want 401 (signature does not verify)", name, code, body)
		}
	}
	// A request held before it was delivered (that takes a man in the
	// middle) cannot be altered either: the genuine key signs a result
	// with a number never used, and the body is flipped on the way.
	held, err := http.NewRequest("POST", a.base+"/api/v1/agent/result", strings.NewReader(`{"success":false,"message":"image checksum mismatch"}`))
	must(t, err)
	held.Header.Set("Content-Type", "application/json")
	held.Close = true
	must(t, agentsig.Sign(held, genuine.Key, 1000))
	var wire bytes.Buffer
	must(t, held.Write(&wire))
	altered := bytes.Replace(wire.Bytes(), []byte(`"success":false`), []byte(`"success":true `), 1)
	if bytes.Equal(altered, wire.Bytes()) {
		t.Fatalf("nothing to flip in the held request:\n%s", wire.Bytes())
	}
	if code, body := replay(t, xNS, altered); code != http.StatusUnauthorized || !strings.Contains(body, "does not verify") {
		t.Fatalf("held result with success flipped: %d %s, want 401 (signature does not verify)", code, body)
	}
	if m := showSession(t, a, mac); m.State != "failed" || m.Message != "image checksum mismatch" || len(m.Registrations) != 1 {
		t.Fatalf("after the altered and replayed results: %s %q %+v, want failed", m.State, m.Message, m.Registrations)
	}
	// The refused calls took nothing from the genuine session.
	if d, err := genuine.Decision(ctx, 0); err != nil || d.Decision != "wait" {
		t.Fatalf("genuine decision after the attacks: %+v %v, want wait", d, err)
	}

	// The long poll re-checks its session when the machine changes.
	seen := showSession(t, a, mac).reg(t, genuine.session()).LastSeen
	polled := make(chan error, 1)
	began := time.Now()
	go func() {
		_, err := genuine.Decision(ctx, 30*time.Second)
		polled <- err
	}()
	// The poll was admitted once its session's last call moved (the
	// appliance records it as it verifies the call, before the wait).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if now := showSession(t, a, mac).reg(t, genuine.session()).LastSeen; now.After(seen) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the long poll was not admitted within 10 s")
		}
	}
	time.Sleep(500 * time.Millisecond)
	select {
	case err := <-polled:
		t.Fatalf("the long poll ended before the rediscover: %v", err)
	default:
	}
	rediscovered := time.Now()
	if out, code := cli(t, a, adminToken, "machines", "rediscover", mac); code != 0 {
		t.Fatalf("rediscover: exit %d\n%s", code, out)
	}
	select {
	case err := <-polled:
		if status(err) != http.StatusUnauthorized {
			t.Fatalf("the long poll across the rediscover: %v, want 401", err)
		}
		t.Logf("long poll ended %v after the rediscover was sent (%v after it began)", time.Since(rediscovered).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("the long poll did not end within 5 s of the rediscover")
	}
	if _, err := genuine.Decision(ctx, 0); status(err) != http.StatusUnauthorized {
		t.Fatalf("the genuine session's call after the rediscover: %v, want 401", err)
	}
	if m := showSession(t, a, mac); m.State != "discovered" || len(m.Registrations) != 0 {
		t.Fatalf("after the rediscover: %s %+v", m.State, m.Registrations)
	}
}

// isRegrant reports a boot script without a nonce that sends the machine
// back to DHCP: what every request without the machine's grant gets.
func isRegrant(script string) bool {
	return !strings.Contains(script, "foundry.nonce=") && strings.Contains(script, "dhcp && chain")
}

// Attacks 1 and 2 of issue 9 from other hosts: right after the machine's
// DHCP exchange, a host on the segment, a host of another segment and the
// appliance's own host ask for the machine's discovery script (plain and
// ?mode=discovery, as a cross-site <img> would): none gets a nonce, and
// none uses up the machine's right to one. The machine gets its nonce
// once. A host spoofing the MAC that does its own DHCP exchange gets a
// nonce of its own, which revokes neither the machine's unused nonce nor,
// once the machine has registered, its live session; nor do the other
// hosts' requests.
func TestSecuritySessionNonceGrant(t *testing.T) {
	labNet, office, a := coreLab(t)
	ctx := context.Background()
	const mac = "52:54:00:5e:00:04"

	gNS := labNet.client(mac)
	must(t, newDHClient(t, gNS).once(40*time.Second))
	onSegment := attackerNS(t, labNet)
	offSegment := office.client("52:54:00:5e:0f:10")
	nsRun(t, offSegment, "ip", "addr", "add", "10.78.0.50/24", "dev", "eth0")
	nsRun(t, offSegment, "ip", "route", "add", "default", "via", "10.78.0.1")
	attacks := func(when string) {
		t.Helper()
		for _, path := range []string{"/boot/" + mac, "/boot/" + mac + "?mode=discovery"} {
			for name, ns := range map[string]string{"a host on the segment": onSegment, "a host of another segment": offSegment, "the appliance's host": ""} {
				var code int
				var script string
				if ns == "" {
					code, script = get(t, a.base+path)
				} else {
					code, script = getFrom(t, ns, a.base+path)
				}
				if code != http.StatusOK || !isRegrant(script) {
					t.Fatalf("%s: %s asks for %s: %d, want the script that repeats DHCP, without a nonce:\n%s", when, name, path, code, script)
				}
			}
		}
	}
	attacks("right after the machine's DHCP exchange")

	nonce := discoveryNonce(t, a, gNS, mac)
	if code, script := getFrom(t, gNS, a.base+"/boot/"+mac); code != http.StatusOK || !isRegrant(script) {
		t.Fatalf("the machine's second request: %d, want no second nonce:\n%s", code, script)
	}

	// spoof has a host with the machine's MAC do its own DHCP exchange and
	// take a nonce, then leave the segment. The machine's link is down
	// meanwhile: the two hosts have one MAC and, from the DHCP server, one
	// address, and the bridge sends a frame for the MAC to the port it last
	// heard it from, so any frame of the machine's (an IPv6 router
	// solicitation, an ARP reply) would send the appliance's answers to the
	// spoofer on to the machine, which resets the connection (a clean
	// `make test` failed so once). The appliance's decisions do not depend
	// on the machine's link.
	sNS := labNet.client(mac)
	sDH := newDHClient(t, sNS)
	spoof := func() {
		t.Helper()
		nsRun(t, gNS, "ip", "link", "set", "eth0", "down")
		nsRun(t, sNS, "ip", "link", "set", "eth0", "up")
		must(t, sDH.once(40*time.Second))
		discoveryNonce(t, a, sNS, mac)
		nsRun(t, sNS, "ip", "link", "set", "eth0", "down")
		nsRun(t, gNS, "ip", "link", "set", "eth0", "up")
	}

	// While the machine boots its discovery OS, the spoofer takes a nonce.
	spoof()
	genuine := newBootAgent(t, a.base, gNS, nonce, nil)
	if _, err := genuine.register(mac, testInventory(mac, "GENUINE", sessionDisk)); err != nil {
		t.Fatalf("the machine's registration with its nonce after the spoofer took one: %v", err)
	}

	// With the session live: the same requests again, and another spoofed
	// exchange and nonce.
	attacks("with the machine's session live")
	spoof()
	if d, err := genuine.Decision(ctx, 0); err != nil || d.Decision != "wait" {
		t.Fatalf("the machine's session after the attacks: %+v %v, want wait", d, err)
	}
	if m := showSession(t, a, mac); len(m.Registrations) != 1 || m.Registrations[0].ID != genuine.session() || m.State != "inventoried" {
		t.Fatalf("after the attacks: %s %+v", m.State, m.Registrations)
	}
}

// Sessions end with the change that ends them, against the real binary:
// a netboot approval once its decision is delivered (the machine is
// ready), a reject once its decision is delivered, and a delete; after
// each, the session's key can make no call. The ready machine's boot
// menu offers rediscovery (?mode=discovery): a host on the segment asking
// for it gets no nonce, the machine after its DHCP exchange does.
func TestSecuritySessionEnds(t *testing.T) {
	labNet, a := sessionLab(t)
	ctx := context.Background()
	for _, args := range [][]string{
		{"profiles", "create", "nb", "--kind", "netboot", "--kernel", "http://10.77.0.1:8080/images/discovery/vmlinuz"},
		{"clusters", "create", "rack2", "--default-profile", "nb"},
	} {
		if out, code := cli(t, a, adminToken, args...); code != 0 {
			t.Fatalf("foundry %v: exit %d\n%s", args, code, out)
		}
	}
	atk := attackerNS(t, labNet)
	boot := func(mac string) (string, *bootAgent) {
		ns := labNet.client(mac)
		must(t, newDHClient(t, ns).once(40*time.Second))
		b := newBootAgent(t, a.base, ns, discoveryNonce(t, a, ns, mac), nil)
		if _, err := b.register(mac, testInventory(mac, "S-"+mac, sessionDisk)); err != nil {
			t.Fatalf("%s registration: %v", mac, err)
		}
		return ns, b
	}
	ended := func(what string, b *bootAgent) {
		t.Helper()
		if _, err := b.Decision(ctx, 0); status(err) != http.StatusUnauthorized {
			t.Fatalf("a call of the session after %s: %v, want 401", what, err)
		}
	}

	const ready, rejected, deleted = "52:54:00:5e:00:05", "52:54:00:5e:00:06", "52:54:00:5e:00:07"
	readyNS, rb := boot(ready)
	if out, code := cli(t, a, adminToken, "machines", "approve", ready, "--cluster", "rack2", "--hostname", "node-05", "--console-token", rb.Console); code != 0 {
		t.Fatalf("netboot approval: exit %d\n%s", code, out)
	}
	if d, err := rb.Decision(ctx, 0); err != nil || d.Decision != "netboot" {
		t.Fatalf("netboot decision: %+v %v", d, err)
	}
	ended("the netboot decision", rb)
	if m := showSession(t, a, ready); m.State != "ready" || len(m.Registrations) != 0 {
		t.Fatalf("after the netboot decision: %s %+v", m.State, m.Registrations)
	}
	if out, code := cli(t, a, adminToken, "machines", "boot", ready, "--menu", "on"); code != 0 {
		t.Fatalf("menu on: exit %d\n%s", code, out)
	}
	must(t, newDHClient(t, readyNS).once(40*time.Second))
	if code, script := getFrom(t, atk, a.base+"/boot/"+ready+"?mode=discovery"); code != http.StatusOK || !isRegrant(script) {
		t.Fatalf("another host asks for the ready machine's rediscovery: %d, want no nonce:\n%s", code, script)
	}
	if code, script := getFrom(t, readyNS, a.base+"/boot/"+ready+"?mode=discovery"); code != http.StatusOK || !nonceRE.MatchString(script) {
		t.Fatalf("the ready machine chooses rediscovery after its DHCP exchange: %d, want a nonce:\n%s", code, script)
	}

	_, jb := boot(rejected)
	if out, code := cli(t, a, adminToken, "machines", "reject", rejected, "--reason", "not ours"); code != 0 {
		t.Fatalf("reject: exit %d\n%s", code, out)
	}
	if d, err := jb.Decision(ctx, 0); err != nil || d.Decision != "reject" {
		t.Fatalf("reject decision: %+v %v", d, err)
	}
	ended("the reject decision", jb)

	_, db := boot(deleted)
	if out, code := cli(t, a, adminToken, "machines", "delete", deleted); code != 0 {
		t.Fatalf("delete: exit %d\n%s", code, out)
	}
	ended("the delete", db)
}

// Attack 3 of issue 9, second half: a host on the segment reads the
// genuine registration off the wire (plain HTTP), and with the machine's
// MAC, its own DHCP exchange, nonce and key registers a forged inventory
// with the genuine token's salt and hash, so that the console token the
// administrator reads off the genuine machine would match the forgery too.
// The copy is refused (422) at registration and as a token replacement.
// The spoofer then opens registrations of its own until the MAC has
// store.MaxSessions, so that the next would end the genuine one: refused
// (409) while the genuine agent is active, with the copied token too (422). The genuine session goes on,
// and the genuine console token binds the genuine registration.
func TestSecuritySessionCopiedToken(t *testing.T) {
	labNet, a := sessionLab(t)
	ctx := context.Background()
	const mac = "52:54:00:5e:00:08"

	gNS := labNet.client(mac)
	must(t, newDHClient(t, gNS).once(40*time.Second))
	tap := &wireTap{}
	genuine := newBootAgent(t, a.base, gNS, discoveryNonce(t, a, gNS, mac), tap)
	if _, err := genuine.register(mac, testInventory(mac, "GENUINE", sessionDisk)); err != nil {
		t.Fatalf("genuine registration: %v", err)
	}
	var sniffed agentwire.AgentRegister
	if _, body, ok := bytes.Cut(tap.last(), []byte("\r\n\r\n")); !ok || json.Unmarshal(body, &sniffed) != nil || len(sniffed.Token.Hash) == 0 {
		t.Fatalf("the tap did not see the registration's token:\n%s", tap.last())
	}

	sNS := labNet.client(mac)
	sDH := newDHClient(t, sNS)
	atk := attackerNS(t, labNet)
	spoofBoot := func() *bootAgent {
		t.Helper()
		must(t, sDH.once(40*time.Second))
		return newBootAgent(t, a.base, atk, discoveryNonce(t, a, sNS, mac), nil)
	}
	forged, err := json.Marshal(testInventory(mac, "FORGED", spoofDisk))
	must(t, err)
	spoofer := spoofBoot()
	if _, err := spoofer.Register(ctx, agentwire.AgentRegister{MAC: mac, Inventory: forged, Token: sniffed.Token}); status(err) != http.StatusUnprocessableEntity {
		t.Fatalf("registration with the sniffed token: %v, want 422", err)
	}
	if m := showSession(t, a, mac); len(m.Registrations) != 1 || m.Registrations[0].ID != genuine.session() {
		t.Fatalf("the copied token opened a registration: %+v", m.Registrations)
	}
	if _, err := spoofer.register(mac, testInventory(mac, "FORGED", spoofDisk)); err != nil {
		t.Fatalf("the spoofer's registration with a token of its own: %v", err)
	}
	if err := spoofer.Token(ctx, sniffed.Token); status(err) != http.StatusUnprocessableEntity {
		t.Fatalf("the sniffed token as the spoofer's new token: %v, want 422", err)
	}
	// A PBKDF2 count that every approval of this MAC would pay for (2^30
	// iterations: minutes of CPU per candidate per typed token) is refused.
	// The body is the spoofer's own current token (accepted as it is) but
	// for the count.
	costly := spoofer.tokenHash()
	costly.Iterations = 1 << 30
	if err := spoofer.Token(ctx, costly); status(err) != http.StatusUnprocessableEntity {
		t.Fatalf("a token hash with 2^30 iterations: %v, want 422", err)
	}
	if err := spoofer.Token(ctx, spoofer.tokenHash()); err != nil {
		t.Fatalf("the same token with the agents' count: %v", err)
	}

	for len(showSession(t, a, mac).Registrations) < store.MaxSessions {
		if _, err := spoofBoot().register(mac, testInventory(mac, "FORGED", spoofDisk)); err != nil {
			t.Fatalf("a further spoofed registration: %v", err)
		}
	}
	ninth := spoofBoot()
	if _, err := ninth.register(mac, testInventory(mac, "FORGED", spoofDisk)); status(err) != http.StatusConflict {
		t.Fatalf("a registration that would end an active one: %v, want 409", err)
	}
	if _, err := ninth.Register(ctx, agentwire.AgentRegister{MAC: mac, Inventory: forged, Token: sniffed.Token}); status(err) != http.StatusUnprocessableEntity {
		t.Fatalf("that registration with the sniffed token: %v, want 422", err)
	}
	if d, err := genuine.Decision(ctx, 0); err != nil || d.Decision != "wait" {
		t.Fatalf("the genuine session after the attacks: %+v %v, want wait", d, err)
	}
	m := showSession(t, a, mac)
	if len(m.Registrations) != store.MaxSessions || !m.MACConflict {
		t.Fatalf("after the attacks: %d registrations (conflict %v), want %d", len(m.Registrations), m.MACConflict, store.MaxSessions)
	}
	if g := m.reg(t, genuine.session()); g.Token.Failures != 0 || g.Token.Locked {
		t.Fatalf("the genuine registration's token after the attacks: %+v", g.Token)
	}

	approve := []string{"machines", "approve", mac, "--cluster", "rack1", "--hostname", "node-08", "--console-token", genuine.Console}
	if out, code := cli(t, a, adminToken, approve...); code != 0 {
		t.Fatalf("approval with the genuine console token: exit %d\n%s", code, out)
	}
	approved := showSession(t, a, mac)
	if !approved.reg(t, genuine.session()).Bound || !bytes.Contains(approved.Inventory, []byte(`"GENUINE"`)) || bytes.Contains(approved.Inventory, []byte("FORGED")) {
		t.Fatalf("approval did not bind the genuine registration: %+v\n%s", approved.Registrations, approved.Inventory)
	}
}

// Attack 2 of issue 9 against the real agent loop (discovery-os/agent.Agent
// with its real client, from the machine's namespace): requests for the
// machine's script by other hosts, which used to revoke its nonce and
// leave its agent retrying a 401 for ever, change nothing for it; when its
// session is refused (here: the administrator ends the registration while
// the agent long-polls), the agent reboots to PXE once, after its back-off,
// instead of retrying.
func TestSecuritySessionRefusedAgentReboots(t *testing.T) {
	labNet, a := sessionLab(t)
	const mac = "52:54:00:5e:00:09"
	const backoff = 500 * time.Millisecond
	gNS := labNet.client(mac)
	must(t, newDHClient(t, gNS).once(40*time.Second))
	b := newBootAgent(t, a.base, gNS, discoveryNonce(t, a, gNS, mac), nil)

	rebooted := make(chan time.Time, 4)
	ag := &agent.Agent{
		API: b.Client, MAC: mac, Inventory: testInventory(mac, "GENUINE", sessionDisk),
		PollWait: 30 * time.Second, RefusedDelay: backoff,
		Reboot:   func() error { rebooted <- time.Now(); return nil },
		PowerOff: func() error { t.Error("the agent powered off"); return nil },
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	for deadline := time.Now().Add(20 * time.Second); len(showSession(t, a, mac).Registrations) == 0; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the agent did not register within 20 s")
		}
	}

	atk := attackerNS(t, labNet)
	for range 3 {
		getFrom(t, atk, a.base+"/boot/"+mac)
		get(t, a.base+"/boot/"+mac+"?mode=discovery")
	}
	time.Sleep(time.Second)
	select {
	case err := <-done:
		t.Fatalf("the agent stopped after other hosts asked for the machine's script: %v", err)
	case at := <-rebooted:
		t.Fatalf("the agent rebooted at %v after other hosts asked for the machine's script", at)
	default:
	}

	id := showSession(t, a, mac).Registrations[0].ID
	endedAt := time.Now()
	if code, body := labCall(t, a, "DELETE", "/machines/"+mac+"/registrations/"+id); code != 200 {
		t.Fatalf("end the registration: %d %s", code, body)
	}
	select {
	case at := <-rebooted:
		if after := at.Sub(endedAt); after < backoff || after > 5*time.Second {
			t.Fatalf("the agent rebooted %v after its session ended, want after its back-off (%v to %v)", after, backoff, 2*backoff)
		}
		t.Logf("the refused agent rebooted %v after its session ended", at.Sub(endedAt).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("the refused agent did not reboot within 10 s")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the agent's run after the reboot: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the agent went on after rebooting")
	}
	if len(rebooted) != 0 {
		t.Fatal("the agent rebooted more than once")
	}
}
