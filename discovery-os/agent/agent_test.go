package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/agentwire"
	"github.com/foundry-appliance/foundry/discovery-os/inventory"
	"github.com/foundry-appliance/foundry/discovery-os/token"
)

// recConsole records screens.
type recConsole struct {
	mu sync.Mutex
	s  Screen
	// statuses in order
	statuses []string
	errors   []string
	tokens   int // tokens shown
}

func (c *recConsole) Update(fn func(*Screen)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	prev := c.s
	fn(&c.s)
	if c.s.Status != prev.Status {
		c.statuses = append(c.statuses, c.s.Status)
	}
	if c.s.Error != prev.Error && c.s.Error != "" {
		c.errors = append(c.errors, c.s.Error)
	}
	if c.s.Token != prev.Token && c.s.Token != "" {
		c.tokens++
	}
}

// fakeClock advances by each Sleep.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type harness struct {
	app      *fakeAppliance
	agent    *Agent
	console  *recConsole
	clock    *fakeClock
	rebooted int
	poweroff int
	seeds    []string
}

var testInventory = inventory.Inventory{SchemaVersion: inventory.SchemaVersion,
	Disks: []inventory.Disk{{Name: "sda", Path: "/dev/sda", SizeBytes: 8 << 30, ByPath: "pci-0000:00:01.1-ata-1.0"}}}

func newHarness(t *testing.T, decisions ...agentwire.Decision) *harness {
	app, srv := newFakeAppliance(t, decisions...)
	h := &harness{app: app, console: &recConsole{}, clock: &fakeClock{now: time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)}}
	h.agent = &Agent{
		API:       &Client{BaseURL: srv.URL, Nonce: app.nonce, Key: newKey(t), HTTP: srv.Client()},
		MAC:       "52:54:00:12:34:56",
		Inventory: testInventory,
		Console:   h.console,
		Now:       h.clock.Now,
		Sleep: func(ctx context.Context, d time.Duration) error {
			h.clock.Advance(d)
			return ctx.Err()
		},
		Download: srv.Client(),
		Reboot:   func() error { h.rebooted++; return nil },
		PowerOff: func() error { h.poweroff++; return nil },
		Seed: func(path string, files map[string][]byte) error {
			h.seeds = append(h.seeds, path+" "+string(files["meta-data"]))
			return nil
		},
	}
	return h
}

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func (h *harness) run(t *testing.T) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return h.agent.Run(ctx)
}

func TestRegisterSendsVerifiableToken(t *testing.T) {
	h := newHarness(t, agentwire.Decision{Decision: agentwire.KindNetboot})
	h.app.failNext["/api/v1/agent/register"] = 2 // the appliance is still starting
	if err := h.run(t); err != nil {
		t.Fatal(err)
	}
	if len(h.app.registered) != 1 {
		t.Fatalf("%d registrations", len(h.app.registered))
	}
	reg := h.app.registered[0]
	shown := h.console.s.Token
	if reg.MAC != h.agent.MAC || !token.Verify(strings.ToLower(shown), reg.Token.Salt, reg.Token.Hash, reg.Token.Iterations) {
		t.Fatalf("the hash sent does not verify against the token shown (%s)", shown)
	}
	if reg.Token.Iterations != token.Iterations {
		t.Errorf("the agent sent a count of %d, want %d (token.Iterations)", reg.Token.Iterations, token.Iterations)
	}
	if !reg.Token.ExpiresAt.Equal(h.console.s.ExpiresAt) || reg.Token.ExpiresAt.Sub(h.clock.Now()) > time.Hour {
		t.Errorf("expiry %v", reg.Token.ExpiresAt)
	}
	if len(h.console.errors) != 1 || !strings.Contains(h.console.errors[0], "503: appliance is starting") {
		t.Errorf("console errors %q", h.console.errors)
	}
	if !strings.Contains(strings.Join(h.console.statuses, "|"), "attempt 3") {
		t.Errorf("statuses %q", h.console.statuses)
	}
	if h.rebooted != 1 || h.poweroff != 0 {
		t.Errorf("reboot %d poweroff %d", h.rebooted, h.poweroff)
	}
	if len(h.app.results) != 1 || h.app.results[0]["success"] != true {
		t.Errorf("results %v", h.app.results)
	}
	if h.app.waits[0] != 60 {
		t.Errorf("long-poll wait=%d", h.app.waits[0])
	}
}

func TestDecisions(t *testing.T) {
	tests := []struct {
		name              string
		decisions         []agentwire.Decision
		reboot, poweroff  int
		success           []bool
		lastStatusContain string
	}{
		{"wait then netboot", []agentwire.Decision{{Decision: agentwire.KindWait}, {Decision: agentwire.KindWait}, {Decision: agentwire.KindNetboot}}, 1, 0, []bool{true}, "rebooting"},
		{"reject", []agentwire.Decision{{Decision: agentwire.KindReject}}, 0, 1, []bool{true}, "powering off"},
		{"unknown decision is retried", []agentwire.Decision{{Decision: "explode\x1b[2J"}, {Decision: agentwire.KindReject}}, 0, 1, []bool{true}, "powering off"},
		{"image to a disk that is not there, then reject", []agentwire.Decision{
			{Decision: agentwire.KindImage, Hostname: "web1", Image: &agentwire.DecisionImage{URL: "http://x/i.raw", SHA256: strings.Repeat("0", 64), Disk: "/dev/sdz"}},
			{Decision: agentwire.KindReject}}, 0, 1, []bool{false, true}, "powering off"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.decisions...)
			if err := h.run(t); err != nil {
				t.Fatal(err)
			}
			if h.rebooted != tt.reboot || h.poweroff != tt.poweroff {
				t.Errorf("reboot %d poweroff %d", h.rebooted, h.poweroff)
			}
			var got []bool
			for _, r := range h.app.results {
				got = append(got, r["success"] == true)
			}
			if len(got) != len(tt.success) {
				t.Fatalf("results %v", h.app.results)
			}
			for i := range got {
				if got[i] != tt.success[i] {
					t.Errorf("results %v", h.app.results)
				}
			}
			if last := h.console.statuses[len(h.console.statuses)-1]; !strings.Contains(last, tt.lastStatusContain) {
				t.Errorf("last status %q", last)
			}
			for _, e := range h.console.errors {
				if strings.ContainsRune(e, 0x1b) {
					t.Errorf("escape sequence from the network reached the console: %q", e)
				}
			}
		})
	}
}

func TestTokenRefresh(t *testing.T) {
	// Each long-poll answer advances the clock 10 minutes: the first
	// token must be replaced after about 50 minutes, and the new hash sent.
	var decisions []agentwire.Decision
	for range 8 {
		decisions = append(decisions, agentwire.Decision{Decision: agentwire.KindWait})
	}
	decisions = append(decisions, agentwire.Decision{Decision: agentwire.KindReject})
	h := newHarness(t, decisions...)
	first := ""
	h.agent.API = &clockAPI{API: h.agent.API, clock: h.clock, onPoll: func() {
		if first == "" {
			first = h.console.s.Token
		}
	}}
	h.app.failNext["/api/v1/agent/token"] = 1
	if err := h.run(t); err != nil {
		t.Fatal(err)
	}
	if len(h.app.tokens) != 1 {
		t.Fatalf("%d token updates accepted", len(h.app.tokens))
	}
	now := h.console.s.Token
	if now == first {
		t.Fatal("the token shown was not replaced")
	}
	th := h.app.tokens[0]
	if !token.Verify(now, th.Salt, th.Hash, th.Iterations) || token.Verify(first, th.Salt, th.Hash, th.Iterations) {
		t.Error("the new hash does not match the new token only")
	}
	if !th.ExpiresAt.After(h.app.registered[0].Token.ExpiresAt) {
		t.Error("the new token does not expire later")
	}
}

// clockAPI advances the clock 10 minutes on every decision poll.
type clockAPI struct {
	API
	clock  *fakeClock
	onPoll func()
}

func (c *clockAPI) Decision(ctx context.Context, wait time.Duration) (agentwire.Decision, error) {
	c.onPoll()
	c.clock.Advance(10 * time.Minute)
	return c.API.Decision(ctx, wait)
}

func TestNonceRefused(t *testing.T) {
	h := newHarness(t)
	h.agent.API.(*Client).Nonce = "wrong"
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	h.agent.Sleep = func(ctx context.Context, d time.Duration) error {
		<-ctx.Done()
		return ctx.Err()
	}
	if err := h.agent.Run(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if len(h.console.errors) == 0 || !strings.Contains(h.console.errors[0], "401: unknown boot nonce") {
		t.Fatalf("console errors %q", h.console.errors)
	}
}

func TestImageDecision(t *testing.T) {
	img := bytes.Repeat([]byte("foundry image block "), 50000) // 1 MB
	sum := sha256.Sum256(img)
	mux := http.NewServeMux()
	mux.HandleFunc("/img.raw", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(img)))
		w.Write(img)
	})
	imgSrv := newServer(t, mux)

	target := filepath.Join(t.TempDir(), "sda")
	os.WriteFile(target, make([]byte, 2<<20), 0o644)
	h := newHarness(t, agentwire.Decision{Decision: agentwire.KindImage, Hostname: "web1.lab", SSHKeys: []string{"ssh-ed25519 AAAA admin@lab"},
		Image: &agentwire.DecisionImage{URL: imgSrv.URL + "/img.raw", SHA256: hex.EncodeToString(sum[:]), Disk: "pci-0000:00:01.1-ata-1.0"}})
	h.agent.Download = imgSrv.Client()
	var opened string
	h.agent.Disks = func(p string) (Disk, error) {
		opened = p
		return os.OpenFile(target, os.O_WRONLY, 0)
	}
	if err := h.run(t); err != nil {
		t.Fatal(err)
	}
	if opened != "/dev/sda" {
		t.Errorf("opened %q, want /dev/sda (resolved from by-path)", opened)
	}
	got, _ := os.ReadFile(target)
	if !bytes.Equal(got[:len(img)], img) {
		t.Error("disk does not hold the image")
	}
	if h.rebooted != 1 || len(h.app.results) != 1 || h.app.results[0]["success"] != true {
		t.Errorf("reboot %d results %v", h.rebooted, h.app.results)
	}
	if len(h.seeds) != 1 || !strings.HasPrefix(h.seeds[0], "/dev/sda ") || !strings.Contains(h.seeds[0], `"local-hostname":"web1.lab"`) {
		t.Errorf("seeds %q", h.seeds)
	}
	// The clock stands still: only changes of phase are reported (at most
	// downloading, writing, verifying, seed and the end; a newer report
	// replaces one not yet sent), never one per read.
	p := h.app.progress
	if len(p) < 2 || len(p) > 5 || p[0] != 0 || p[len(p)-1] != 100 {
		t.Errorf("progress %v", p)
	}
	for i := 1; i < len(p); i++ {
		if p[i] < p[i-1] {
			t.Errorf("progress went back: %v", p)
			break
		}
	}
}

// An agent whose boot session the appliance refuses (its nonce is unknown,
// or its session ended) reboots to PXE
// after a delay instead of retrying for ever, whether the refusal comes at
// registration or while it waits for a decision.
func TestRefusedSessionReboots(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after bool // refused after registering
	}{
		{"at registration", false},
		{"while waiting", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.agent.RefusedDelay = 40 * time.Second
			start := h.clock.Now()
			if tc.after {
				h.app.onRegister = func() { h.app.ended = true }
			} else {
				h.app.nonce = "someone-elses"
			}
			if err := h.run(t); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if h.rebooted != 1 || h.poweroff != 0 {
				t.Fatalf("rebooted %d, powered off %d", h.rebooted, h.poweroff)
			}
			if waited := h.clock.Now().Sub(start); waited < 40*time.Second || waited > 81*time.Second {
				t.Errorf("rebooted after %v, want 40-80 s", waited)
			}
			if len(h.console.errors) == 0 || !strings.Contains(h.console.errors[len(h.console.errors)-1], "refuses this boot session") {
				t.Errorf("console errors %q", h.console.errors)
			}
			if tc.after && h.console.tokens == 0 {
				t.Error("the registration showed no token")
			}
			if h.console.s.Token != "" {
				t.Errorf("the console still shows token %s while the refused boot waits to reboot", h.console.s.Token)
			}
		})
	}
}

// An approval made for a disk at a place on the buses that this machine
// does not have (approved from another machine's inventory, or the disk
// was moved) fails the installation: no disk is opened, the failure is
// reported, and the agent waits for a new decision instead of rebooting.
func TestImageOnAbsentByPathFails(t *testing.T) {
	for _, disk := range []string{
		"/dev/disk/by-path/pci-0000:00:01.1-ata-2.0", // another port of the same controller
		"/dev/disk/by-path/sda",                      // a kernel name is not a place
		"/dev/disk/by-path/",
	} {
		t.Run(disk, func(t *testing.T) {
			h := newHarness(t,
				agentwire.Decision{Decision: agentwire.KindImage, Image: &agentwire.DecisionImage{
					URL: "http://192.0.2.1/img.raw", SHA256: strings.Repeat("ab", 32), Disk: disk, DiskByPath: disk}},
				agentwire.Decision{Decision: agentwire.KindReject})
			var opened []string
			h.agent.Disks = func(p string) (Disk, error) {
				opened = append(opened, p)
				return nil, errors.New("no disk may be opened")
			}
			if err := h.run(t); err != nil {
				t.Fatal(err)
			}
			if len(opened) != 0 {
				t.Errorf("opened %q for an approval of %s", opened, disk)
			}
			if h.rebooted != 0 || h.poweroff != 1 {
				t.Errorf("rebooted %d, powered off %d; want the next decision (reject) carried out", h.rebooted, h.poweroff)
			}
			if len(h.app.results) != 2 || h.app.results[0]["success"] != false ||
				!strings.Contains(h.app.results[0]["message"].(string), "not one of this machine's disks") {
				t.Errorf("results %v, want the install reported as failed", h.app.results)
			}
			if len(h.app.progress) != 0 {
				t.Errorf("progress %v reported for a disk never written", h.app.progress)
			}
		})
	}
}

// A wait that approval will not end carries a message for the person at
// the console; it is shown once, cleaned of terminal controls, and
// replaced by the ordinary wait status when it goes away.
func TestWaitMessageShown(t *testing.T) {
	const msg = "this machine was approved in another boot session"
	h := newHarness(t,
		agentwire.Decision{Decision: agentwire.KindWait, Message: msg + "\x1b]52;c;AAAA\x07"},
		agentwire.Decision{Decision: agentwire.KindWait, Message: msg + "\x1b]52;c;AAAA\x07"},
		agentwire.Decision{Decision: agentwire.KindWait},
		agentwire.Decision{Decision: agentwire.KindNetboot})
	if err := h.run(t); err != nil {
		t.Fatal(err)
	}
	var shown []string
	for _, s := range h.console.statuses {
		if strings.HasPrefix(s, "waiting") {
			shown = append(shown, s)
		}
	}
	want := []string{"waiting: " + msg + " ]52;c;AAAA", "waiting for approval"}
	if strings.Join(shown, "|") != strings.Join(want, "|") {
		t.Errorf("wait statuses %q, want %q", shown, want)
	}
	for _, s := range h.console.statuses {
		if strings.ContainsAny(s, "\x1b\x07") {
			t.Errorf("status %q carries terminal controls", s)
		}
	}
}
