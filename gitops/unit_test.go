package gitops

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/storer"

	"github.com/foundry-appliance/foundry/store"
)

func TestSnapshots(t *testing.T) {
	var c snapshots
	const mac = "52:54:00:00:00:01"
	for rev := uint64(1); rev <= 3; rev++ {
		c.add(store.Event{Type: store.EventUpdated, Machine: store.Machine{MAC: mac, Revision: rev, Hostname: string(rune('a' + rev))}})
	}
	c.add(store.Event{Type: store.EventDeleted, Machine: store.Machine{MAC: mac, Revision: 3}})
	if sn, ok := c.take(mac, 2); !ok || sn.m.Revision != 2 || sn.gone {
		t.Fatalf("take 2: %+v %v", sn, ok)
	}
	if _, ok := c.take(mac, 1); ok {
		t.Fatal("an older revision survived a take")
	}
	if sn, ok := c.take(mac, 4); !ok || !sn.gone {
		t.Fatalf("the deletion pairs with revision 4: %+v %v", sn, ok)
	}
	if c.n != 0 || len(c.by) != 0 {
		t.Fatalf("left %d", c.n)
	}
	// Bounded per machine: a machine seen often (sightings) keeps only
	// its last revisions.
	for rev := uint64(1); rev <= 3*snapsPerMachine; rev++ {
		c.add(store.Event{Type: store.EventUpdated, Machine: store.Machine{MAC: mac, Revision: rev}})
	}
	if len(c.by[mac]) != snapsPerMachine || c.n != snapsPerMachine {
		t.Fatalf("kept %d (%d)", len(c.by[mac]), c.n)
	}
	if _, ok := c.take(mac, 1); ok {
		t.Fatal("revision 1 should have been dropped")
	}
}

// TestTakeQueued: what settle has follow do when the exporter finds an
// audit entry without its snapshot — every event already queued becomes a
// snapshot, and a subscription the store dropped is reported. (The race it closes, an
// approval's commit written as the machine was after a delete that came
// a millisecond later, is exercised end to end against a real git daemon
// by TestCommitsCarryAuthorAndContent, which it failed in one of two runs
// of `make test` before settle.)
func TestTakeQueued(t *testing.T) {
	s := &Server{}
	const mac = "52:54:00:00:00:02"
	events := make(chan store.Event, 8)
	for rev := uint64(1); rev <= 5; rev++ {
		events <- store.Event{Type: store.EventUpdated, Machine: store.Machine{MAC: mac, Revision: rev}}
	}
	if !s.takeQueued(events) || len(events) != 0 || s.snaps.n != 5 {
		t.Fatalf("left %d queued, %d snapshots", len(events), s.snaps.n)
	}
	for rev := uint64(1); rev <= 5; rev++ {
		if sn, ok := s.snaps.take(mac, rev); !ok || sn.m.Revision != rev {
			t.Fatalf("revision %d: no snapshot", rev)
		}
	}
	close(events)
	if s.takeQueued(events) {
		t.Error("a closed subscription was not reported")
	}
}

func TestVerifyWebhook(t *testing.T) {
	const secret = "s3cret-s3cret-s3cret"
	body := []byte(`{"ref":"refs/heads/main"}`)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	sig := "sha256=" + hex.EncodeToString(m.Sum(nil))
	for _, tc := range []struct {
		name   string
		h      http.Header
		secret string
		ok     bool
	}{
		{"hmac", http.Header{"X-Hub-Signature-256": {sig}}, secret, true},
		{"hmac of another body", http.Header{"X-Hub-Signature-256": {"sha256=" + hex.EncodeToString(make([]byte, 32))}}, secret, false},
		{"hmac without prefix", http.Header{"X-Hub-Signature-256": {sig[7:]}}, secret, false},
		{"not hex", http.Header{"X-Hub-Signature-256": {"sha256=zz"}}, secret, false},
		{"gitlab", http.Header{"X-Gitlab-Token": {secret}}, secret, true},
		{"gitlab wrong", http.Header{"X-Gitlab-Token": {secret + "x"}}, secret, false},
		{"nothing", http.Header{}, secret, false},
		{"no secret configured", http.Header{"X-Gitlab-Token": {""}}, "", false},
	} {
		if got := VerifyWebhook(tc.secret, tc.h, body); got != tc.ok {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.ok)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://me:tok@git.example.org/f.git": "https://me:xxxxx@git.example.org/f.git",
		"ssh://git@git.example.org/f.git":      "ssh://git@git.example.org/f.git",
		"git@git.example.org:f.git":            "git@git.example.org:f.git",
		"/srv/git/f.git":                       "/srv/git/f.git",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMessage(t *testing.T) {
	e := store.AuditEntry{ID: "0123456789abcdef01234567", MAC: "52:54:00:00:00:01", Audit: store.Audit{Actor: "token:alice", Action: "reject", Detail: "unknown vendor"}}
	got := message(e, "discovered-000001", false)
	want := "reject discovered-000001 (52:54:00:00:00:01)\n\nReject by token:alice at 0001-01-01T00:00:00Z.\nWhy: kept as a deny entry until deleted.\nunknown vendor\n\nFoundry-Audit-Id: 0123456789abcdef01234567\nFoundry-Actor: token:alice\n"
	if got != want {
		t.Errorf("message:\n%s\nwant\n%s", got, want)
	}
}

// Packing the clone keeps every reachable object readable and leaves no
// loose object behind.
func TestCompact(t *testing.T) {
	p, err := openRepo(t.TempDir(), "/nonexistent/fleet.git", "main", nil)
	if err != nil {
		t.Fatal(err)
	}
	sig := signature("t", "t@example.org", time.Unix(1700000000, 0))
	for i, content := range []string{"one\n", "two\n", "three\n"} {
		tree, err := p.treeOf(p.head())
		if err != nil {
			t.Fatal(err)
		}
		h, err := p.put(tree, fmt.Sprintf("hardware/f%d.yaml", i%2), []byte(content))
		if err != nil {
			t.Fatal(err)
		}
		c, err := p.newCommit(h, p.head(), sig, sig, content)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.setHead(c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.blob([]byte("garbage nobody refers to\n")); err != nil {
		t.Fatal(err)
	}
	if err := p.compact(); err != nil {
		t.Fatal(err)
	}
	n := 0
	p.r.Storer.(storer.LooseObjectStorer).ForEachObjectHash(func(plumbing.Hash) error { n++; return nil })
	if n != 0 {
		t.Errorf("%d loose objects left", n)
	}
	tree, err := p.treeOf(p.head())
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"hardware/f0.yaml": "three\n", "hardware/f1.yaml": "two\n"} {
		if got, err := p.read(tree, name); err != nil || string(got) != want {
			t.Errorf("%s: %q %v", name, got, err)
		}
	}
	locals, _, err := p.ahead(10)
	if err != nil || len(locals) != 3 {
		t.Errorf("history after packing: %d commits, %v", len(locals), err)
	}
}
