package store

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// testSession is a session whose key and ID are derived from i.
func testSession(i int, clk *clock) Session {
	pub := sha256.Sum256([]byte(fmt.Sprint("key", i)))
	id := sha256.Sum256(pub[:])
	return Session{
		ID: base64.RawURLEncoding.EncodeToString(id[:]), PublicKey: pub[:],
		Token:     RegToken{Salt: []byte("saltsalt"), Hash: []byte(fmt.Sprint("hash", i)), ExpiresAt: clk.Now().Add(time.Hour)},
		ExpiresAt: clk.Now().Add(24 * time.Hour), Remote: "10.77.0.100",
	}
}

// register opens s with a fresh nonce for m, as the API's register does.
func register(t *testing.T, db *DB, m string, s Session, inv string) Session {
	t.Helper()
	nonce, err := db.IssueNonce(m, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return openWith(t, db, m, nonce, s, inv)
}

func openWith(t *testing.T, db *DB, m, nonce string, s Session, inv string) Session {
	t.Helper()
	var out Session
	_, err := db.UpdateMachineSessions(m, Audit{Actor: "agent", Action: "register"}, func(_ *Machine, ss *Sessions) (err error) {
		out, _, err = ss.Open(nonce, s, json.RawMessage(inv))
		return err
	})
	if err != nil {
		t.Fatalf("open session: %v", err)
	}
	return out
}

func TestSessionOpenUsesTheNonceOnce(t *testing.T) {
	db, clk, _ := openTest(t)
	mustCreate(t, db, Machine{MAC: mac(1)})
	mustCreate(t, db, Machine{MAC: mac(2)})
	nonce, err := db.IssueNonce(mac(1), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s := openWith(t, db, mac(1), nonce, testSession(1, clk), `{"a":1}`)
	if s.MAC != mac(1) || s.Seq != 0 || !s.OpenedAt.Equal(clk.Now()) {
		t.Fatalf("opened %+v", s)
	}
	open := func(m string, n string, sess Session) (bool, error) {
		var again bool
		_, err := db.UpdateMachineSessions(m, admin, func(_ *Machine, ss *Sessions) (err error) {
			_, again, err = ss.Open(n, sess, json.RawMessage(`{}`))
			return err
		})
		return again, err
	}
	// A retried registration (same nonce, same key) gets its session back.
	if again, err := open(mac(1), nonce, testSession(1, clk)); err != nil || !again {
		t.Fatalf("retry: again=%v %v", again, err)
	}
	// Another key with the used nonce, the nonce for another MAC, an
	// unknown nonce and an expired one are all refused.
	other, err := db.IssueNonce(mac(2), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	expiring, err := db.IssueNonce(mac(1), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Minute)
	for _, tc := range []struct {
		name, mac, nonce string
	}{
		{"used nonce, other key", mac(1), nonce},
		{"other MAC's nonce", mac(1), other},
		{"unknown nonce", mac(1), "AAAA"},
		{"expired nonce", mac(1), expiring},
		{"empty nonce", mac(1), ""},
	} {
		if _, err := open(tc.mac, tc.nonce, testSession(9, clk)); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", tc.name, err)
		}
	}
	if ss, _ := db.MachineSessions(mac(1)); len(ss) != 1 || ss[0].ID != s.ID {
		t.Fatalf("sessions %+v", ss)
	}
	if inv, err := db.SessionInventory(s.ID); err != nil || string(inv) != `{"a":1}` {
		t.Fatalf("inventory %s %v", inv, err)
	}
}

// Issuing a nonce (a new DHCP exchange, maybe a spoofer's) never ends a
// live session; a second registration is a second session.
func TestSecondRegistrationIsASecondSession(t *testing.T) {
	db, clk, _ := openTest(t)
	mustCreate(t, db, Machine{MAC: mac(1)})
	a := register(t, db, mac(1), testSession(1, clk), `{}`)
	if _, err := db.IssueNonce(mac(1), time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetSession(a.ID); err != nil {
		t.Fatalf("issuing a nonce ended the session: %v", err)
	}
	b := register(t, db, mac(1), testSession(2, clk), `{}`)
	ss, err := db.MachineSessions(mac(1))
	if err != nil || len(ss) != 2 || ss[0].ID != a.ID || ss[1].ID != b.ID {
		t.Fatalf("sessions %+v %v", ss, err)
	}
}

func TestSessionLimitEndsTheQuietestUnbound(t *testing.T) {
	db, clk, _ := openTest(t)
	mustCreate(t, db, Machine{MAC: mac(1)})
	var ids []string
	for i := range MaxSessions {
		ids = append(ids, register(t, db, mac(1), testSession(i, clk), `{}`).ID)
		clk.Add(time.Second)
	}
	// Session 0 is bound and quietest; session 1 is next quietest, session
	// 2 called last.
	if _, err := db.UpdateMachine(mac(1), admin, func(m *Machine) error { m.Session = ids[0]; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{2, 3, 4, 5, 6, 7} {
		if _, err := db.AdvanceSession(ids[i], 1, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	register(t, db, mac(1), testSession(100, clk), `{}`)
	ss, _ := db.MachineSessions(mac(1))
	if len(ss) != MaxSessions {
		t.Fatalf("%d sessions, want %d", len(ss), MaxSessions)
	}
	if _, err := db.GetSession(ids[1]); !errors.Is(err, ErrNotFound) {
		t.Errorf("the quietest unbound session survived: %v", err)
	}
	if _, err := db.GetSession(ids[0]); err != nil {
		t.Errorf("the bound session was ended: %v", err)
	}
}

func TestAdvanceSessionRefusesReplays(t *testing.T) {
	db, clk, _ := openTest(t)
	mustCreate(t, db, Machine{MAC: mac(1)})
	s := register(t, db, mac(1), testSession(1, clk), `{}`)
	for _, tc := range []struct {
		seq  uint64
		want error
	}{{1, nil}, {1, ErrReplay}, {5, nil}, {3, ErrReplay}, {5, ErrReplay}, {6, nil}} {
		if _, err := db.AdvanceSession(s.ID, tc.seq, time.Hour); !errors.Is(err, tc.want) {
			t.Errorf("seq %d: %v, want %v", tc.seq, err, tc.want)
		}
	}
	// 16 concurrent calls with one number: exactly one is accepted.
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := db.AdvanceSession(s.ID, 7, time.Hour); err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("%d concurrent calls numbered 7 accepted", ok)
	}
}

// A session's expiry slides with its calls; an expired one is gone for
// every reader and the sweeper deletes it.
func TestSessionExpiry(t *testing.T) {
	db, clk, _ := openTest(t)
	mustCreate(t, db, Machine{MAC: mac(1)})
	s := testSession(1, clk)
	s.ExpiresAt = clk.Now().Add(time.Hour)
	s = register(t, db, mac(1), s, `{}`)
	clk.Add(50 * time.Minute)
	if _, err := db.AdvanceSession(s.ID, 1, time.Hour); err != nil {
		t.Fatal(err)
	}
	clk.Add(50 * time.Minute)
	if _, err := db.GetSession(s.ID); err != nil {
		t.Fatalf("a call did not extend the session: %v", err)
	}
	clk.Add(11 * time.Minute)
	if _, err := db.GetSession(s.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired session: %v", err)
	}
	if _, err := db.AdvanceSession(s.ID, 2, time.Hour); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an expired session was advanced: %v", err)
	}
	if ss, _ := db.MachineSessions(mac(1)); len(ss) != 0 {
		t.Fatalf("listed %+v", ss)
	}
	if n, err := db.sweepSessions(); err != nil || n != 1 {
		t.Fatalf("sweep: %d %v", n, err)
	}
	if inv, err := db.SessionInventory(s.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("inventory after sweep: %s %v", inv, err)
	}
}

// Ending sessions commits with the machine's change: delete ends them all,
// and an update that fails ends none.
func TestSessionsEndWithTheMachine(t *testing.T) {
	db, clk, _ := openTest(t)
	mustCreate(t, db, Machine{MAC: mac(1)})
	a := register(t, db, mac(1), testSession(1, clk), `{}`)
	b := register(t, db, mac(1), testSession(2, clk), `{}`)
	boom := errors.New("boom")
	if _, err := db.UpdateMachineSessions(mac(1), admin, func(m *Machine, ss *Sessions) error {
		if err := ss.EndAll(); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if ss, _ := db.MachineSessions(mac(1)); len(ss) != 2 {
		t.Fatalf("a failed update ended sessions: %+v", ss)
	}
	if _, err := db.UpdateMachineSessions(mac(1), admin, func(m *Machine, ss *Sessions) error { return ss.End(a.ID) }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetSession(a.ID); !errors.Is(err, ErrNotFound) {
		t.Fatal("ended session still there")
	}
	if err := db.DeleteMachine(mac(1), admin); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetSession(b.ID); !errors.Is(err, ErrNotFound) {
		t.Fatal("session outlived its machine")
	}
	if all, err := db.ListSessions(); err != nil || len(all) != 0 {
		t.Fatalf("sessions left: %+v %v", all, err)
	}
}

func TestSessionOpenRefusesBadInput(t *testing.T) {
	db, clk, _ := openTest(t)
	mustCreate(t, db, Machine{MAC: mac(1)})
	for _, tc := range []struct {
		name string
		mod  func(*Session)
		inv  string
	}{
		{"short id", func(s *Session) { s.ID = "abc" }, `{}`},
		{"id with slash", func(s *Session) { s.ID = s.ID[:42] + "/" }, `{}`},
		{"short key", func(s *Session) { s.PublicKey = s.PublicKey[:31] }, `{}`},
		{"expired", func(s *Session) { s.ExpiresAt = clk.Now() }, `{}`},
		{"bad inventory", func(s *Session) {}, `{`},
	} {
		nonce, err := db.IssueNonce(mac(1), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		s := testSession(1, clk)
		tc.mod(&s)
		before, _ := db.GetMachine(mac(1))
		_, err = db.UpdateMachineSessions(mac(1), admin, func(_ *Machine, ss *Sessions) error {
			_, _, err := ss.Open(nonce, s, json.RawMessage(tc.inv))
			return err
		})
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tc.name, err)
		}
		if after, _ := db.GetMachine(mac(1)); after.Revision != before.Revision {
			t.Errorf("%s: machine changed", tc.name)
		}
	}
}
