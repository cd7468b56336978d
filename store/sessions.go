package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/foundry-appliance/foundry/store/kv"
)

// MaxSessions is how many live boot sessions one MAC may have. Opening one
// more ends the one heard from least recently that approval has not bound:
// a machine that reboots while it waits leaves its earlier sessions behind,
// and a host that spoofs its MAC can add its own, but neither can grow the
// database or the work of an approval (which derives the typed token once
// per session) without bound.
const MaxSessions = 8

// ErrReplay is returned by AdvanceSession for a call number that is not
// above the session's last one: a request sent again.
var ErrReplay = errors.New("call number already used")

// Session is one discovery boot's registration: the agent's public key,
// registered with the boot's one-time nonce, and the registration token
// hash and inventory it sent. Approval binds the machine to one session
// (Machine.Session); only that session is then told the decision and may
// report. A MAC may have several live sessions at once: an earlier boot's,
// or a host's that spoofs the MAC (a MAC conflict).
type Session struct {
	// ID is the key's ID (agentsig.KeyID of PublicKey): 43 characters of
	// unpadded base64url.
	ID  string `json:"id"`
	MAC string `json:"mac"`
	// PublicKey is the boot's Ed25519 public key (32 bytes).
	PublicKey []byte `json:"public_key"`
	// Nonce is the hex SHA-256 of the boot nonce the session consumed.
	Nonce string `json:"nonce"`
	// Token is the registration token hash the console shows the token of.
	Token RegToken `json:"token"`
	// Remote is the address the session registered from.
	Remote   string    `json:"remote,omitempty"`
	OpenedAt time.Time `json:"opened_at"`
	// LastSeen is when the session's agent last made a verified call, and
	// ExpiresAt when the session ends unless it calls again.
	LastSeen  time.Time `json:"last_seen"`
	ExpiresAt time.Time `json:"expires_at"`
	// Seq is the highest call number accepted (agentsig).
	Seq uint64 `json:"seq"`
	// Wiped is when the session's agent reported the disks wiped for a
	// release (Machine.Wipe).
	Wiped time.Time `json:"wiped,omitzero"`
}

func sessionKey(id string) []byte         { return []byte("s/" + id) }
func sessionInvKey(id string) []byte      { return []byte("si/" + id) }
func sessionMACKey(mac, id string) []byte { return []byte("sm/" + mac + "/" + id) }
func sessionMACPrefix(mac string) []byte  { return []byte("sm/" + mac + "/") }
func (s Session) live(now time.Time) bool { return now.Before(s.ExpiresAt) }

func checkSessionID(id string) error {
	if len(id) != 43 {
		return fmt.Errorf("%w: session id must be 43 characters of base64url", ErrInvalid)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%w: session id must be 43 characters of base64url", ErrInvalid)
		}
	}
	return nil
}

// Sessions is what one machine update (UpdateMachineSessions) may do to the
// machine's boot sessions, in the same transaction as the machine's own
// change: a registration, an approval's binding and the end of a session
// commit together with the state they go with, or not at all.
type Sessions struct {
	db     *DB
	txn    kv.Txn
	mac    string
	bound  string // the machine's bound session before this update
	now    time.Time
	detail *string
	quiet  *bool
}

// SetDetail replaces the audit entry's detail: some outcomes are known
// only inside the transaction.
func (ss *Sessions) SetDetail(d string) { *ss.detail = d }

// Quiet writes no audit entry for this update unless it changes the
// machine's state: for reports as frequent as download progress, whose
// every step the audit log need not keep.
func (ss *Sessions) Quiet() {
	if ss.quiet != nil {
		*ss.quiet = true
	}
}

// sessionIDs lists the IDs in the machine's session index.
func (ss *Sessions) sessionIDs() []string { return sessionIDs(ss.txn, ss.mac) }

// List returns the machine's live sessions, oldest first.
func (ss *Sessions) List() ([]Session, error) { return ss.liveOf(ss.sessionIDs()) }

// liveOf reads the machine's sessions ids and returns the live ones,
// oldest first.
func (ss *Sessions) liveOf(ids []string) ([]Session, error) {
	var out []Session
	for _, id := range ids {
		var s Session
		err := getJSON(ss.txn, sessionKey(id), &s)
		if errors.Is(err, ErrCorrupt) && ss.db != nil {
			// Skipped like any undecodable record: the machine's other
			// sessions, and the lists it is on, go on.
			ss.db.corrupt.report(sessionKey(id), err)
			continue
		}
		if errors.Is(err, ErrNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		if s.live(ss.now) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b Session) int { return a.OpenedAt.Compare(b.OpenedAt) })
	return out, nil
}

// Get returns one live session of the machine; ErrNotFound otherwise.
func (ss *Sessions) Get(id string) (Session, error) {
	var s Session
	if err := getJSON(ss.txn, sessionKey(id), &s); err != nil {
		return Session{}, err
	}
	if s.MAC != ss.mac || !s.live(ss.now) {
		return Session{}, ErrNotFound
	}
	return s, nil
}

// Inventory returns the inventory a session of the machine registered.
func (ss *Sessions) Inventory(id string) (json.RawMessage, error) {
	if _, err := ss.Get(id); err != nil {
		return nil, err
	}
	v, err := getRaw(ss.txn, sessionInvKey(id))
	if err != nil {
		return nil, err
	}
	return unpackInventory(v)
}

// Open consumes the boot nonce and opens the session s (ID, PublicKey,
// Token, Remote and ExpiresAt set by the caller) with inventory inv. The
// nonce must be live and the machine's. A nonce is used once: sent again
// with the same public key (a retried registration) it returns the
// session it opened, with again true; with another key it is refused
// (ErrNotFound, like an unknown nonce). When the machine has MaxSessions
// live sessions, the unbound one heard from least recently is ended first.
func (ss *Sessions) Open(nonce string, s Session, inv json.RawMessage) (opened Session, again bool, err error) {
	if err := checkSessionID(s.ID); err != nil {
		return Session{}, false, err
	}
	if len(s.PublicKey) != 32 {
		return Session{}, false, fmt.Errorf("%w: an Ed25519 public key is 32 bytes", ErrInvalid)
	}
	if !s.ExpiresAt.After(ss.now) {
		return Session{}, false, fmt.Errorf("%w: session expiry is not in the future", ErrInvalid)
	}
	if len(inv) > 0 && !json.Valid(inv) {
		return Session{}, false, fmt.Errorf("%w: inventory is not valid JSON", ErrInvalid)
	}
	if nonce == "" || len(nonce) > maxNonceLen {
		return Session{}, false, fmt.Errorf("boot nonce: %w", ErrNotFound)
	}
	hash := hashNonce(nonce)
	var n Nonce
	if err := getJSON(ss.txn, nonceKey(hash), &n); err != nil {
		return Session{}, false, fmt.Errorf("boot nonce: %w", err)
	}
	if n.MAC != ss.mac || !ss.now.Before(n.ExpiresAt) {
		return Session{}, false, fmt.Errorf("boot nonce: %w", ErrNotFound)
	}
	if n.Session != "" {
		prev, err := ss.Get(n.Session)
		if err == nil && bytes.Equal(prev.PublicKey, s.PublicKey) {
			return prev, true, nil
		}
		return Session{}, false, fmt.Errorf("boot nonce already used: %w", ErrNotFound)
	}
	if ok, err := has(ss.txn, sessionKey(s.ID)); err != nil {
		return Session{}, false, err
	} else if ok {
		return Session{}, false, fmt.Errorf("session %s: %w", s.ID, ErrExists)
	}
	live, err := ss.List()
	if err != nil {
		return Session{}, false, err
	}
	if len(live) >= MaxSessions {
		victim := -1
		for i, l := range live {
			if l.ID != ss.bound && (victim < 0 || l.LastSeen.Before(live[victim].LastSeen)) {
				victim = i
			}
		}
		if victim >= 0 {
			if err := ss.End(live[victim].ID); err != nil {
				return Session{}, false, err
			}
		}
	}
	s.MAC, s.Nonce, s.OpenedAt, s.LastSeen, s.Seq = ss.mac, hash, ss.now, ss.now, 0
	if err := setJSON(ss.txn, sessionKey(s.ID), s); err != nil {
		return Session{}, false, err
	}
	if len(inv) > maxRecord {
		return Session{}, false, fmt.Errorf("%w: inventory is larger than %d bytes", ErrInvalid, maxRecord)
	}
	if err := ss.txn.Set(sessionInvKey(s.ID), packInventory(inv)); err != nil {
		return Session{}, false, err
	}
	if err := ss.txn.Set(sessionMACKey(ss.mac, s.ID), nil); err != nil {
		return Session{}, false, err
	}
	// Two sessions make the machine a candidate for a MAC conflict, which
	// a list finds through this key instead of reading every session.
	if len(ss.sessionIDs()) >= 2 {
		if err := ss.txn.Set(conflictKey(ss.mac), nil); err != nil {
			return Session{}, false, err
		}
	}
	n.Session = s.ID
	if err := setJSON(ss.txn, nonceKey(hash), n); err != nil {
		return Session{}, false, err
	}
	// Used now: it no longer counts against the MAC's unused nonces.
	if err := ss.txn.Delete(unusedNonceKey(ss.mac, hash)); err != nil {
		return Session{}, false, err
	}
	return s, false, nil
}

// Put replaces a live session of the machine; only its Token and Wiped
// may change.
func (ss *Sessions) Put(s Session) error {
	cur, err := ss.Get(s.ID)
	if err != nil {
		return err
	}
	cur.Token, cur.Wiped = s.Token, s.Wiped
	return setJSON(ss.txn, sessionKey(s.ID), cur)
}

// End ends one session of the machine: its key, inventory and nonce are
// deleted. Ending a session that is gone is not an error.
func (ss *Sessions) End(id string) error {
	return endSession(ss.txn, ss.mac, id)
}

// EndAll ends every session of the machine.
func (ss *Sessions) EndAll() error {
	for _, id := range ss.sessionIDs() {
		if err := endSession(ss.txn, ss.mac, id); err != nil {
			return err
		}
	}
	return nil
}

func endSession(txn kv.Txn, mac, id string) error {
	var s Session
	err := getJSON(txn, sessionKey(id), &s)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if err == nil {
		if s.MAC != mac {
			return fmt.Errorf("%w: session %s is not machine %s's", ErrInvalid, id, mac)
		}
		if err := txn.Delete(nonceKey(s.Nonce)); err != nil {
			return err
		}
	}
	for _, k := range [][]byte{sessionKey(id), sessionInvKey(id), sessionMACKey(mac, id)} {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	if n := len(sessionIDs(txn, mac)); n < 2 {
		return txn.Delete(conflictKey(mac))
	}
	return nil
}

// sessionIDs lists the IDs in a machine's session index.
func sessionIDs(txn kv.Txn, mac string) []string {
	opt := kv.IterOptions{}
	opt.KeysOnly = true
	opt.Prefix = sessionMACPrefix(mac)
	it := txn.NewIterator(opt)
	defer it.Close()
	var ids []string
	for it.Rewind(); it.Valid(); it.Next() {
		ids = append(ids, string(bytes.TrimPrefix(it.Key(), opt.Prefix)))
	}
	return ids
}

// sessionRemotes lists the addresses a machine's sessions registered
// from, for its search row.
func sessionRemotes(txn kv.Txn, mac string) ([]string, error) {
	var out []string
	for _, id := range sessionIDs(txn, mac) {
		var s Session
		if err := getJSON(txn, sessionKey(id), &s); errors.Is(err, ErrNotFound) || errors.Is(err, ErrCorrupt) {
			continue
		} else if err != nil {
			return nil, err
		}
		if s.Remote != "" {
			out = append(out, s.Remote)
		}
	}
	return out, nil
}

// refreshRow rewrites a machine's search row after its sessions changed
// outside a write of the machine (an expired session swept).
func refreshRow(txn kv.Txn, mac string) error {
	m, err := getRecord(txn, mac)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	remotes, err := sessionRemotes(txn, mac)
	if err != nil {
		return err
	}
	return txn.Set(rowKey(mac), rowOf(&m, remotes))
}

// UpdateMachineSessions is UpdateMachine whose fn may also change the
// machine's boot sessions (ss), in the same transaction.
func (db *DB) UpdateMachineSessions(mac string, a Audit, fn func(m *Machine, ss *Sessions) error) (Machine, error) {
	return db.updateMachine(mac, []Step{{a, fn}})
}

// GetSession returns a live session; ErrNotFound when it is unknown,
// ended or expired.
func (db *DB) GetSession(id string) (Session, error) {
	if err := checkSessionID(id); err != nil {
		return Session{}, fmt.Errorf("get session: %w", ErrNotFound)
	}
	var s Session
	err := db.kv.View(func(txn kv.Txn) error { return getJSON(txn, sessionKey(id), &s) })
	if err == nil && !s.live(db.now()) {
		err = ErrNotFound
	}
	if err != nil {
		return Session{}, fmt.Errorf("get session: %w", err)
	}
	return s, nil
}

// AdvanceSession records a verified call numbered seq of a live session:
// seq must be above every number accepted before (ErrReplay otherwise).
// LastSeen becomes now and, when ttl is positive, the session expires ttl
// after it.
func (db *DB) AdvanceSession(id string, seq uint64, ttl time.Duration) (Session, error) {
	if err := checkSessionID(id); err != nil {
		return Session{}, fmt.Errorf("advance session: %w", ErrNotFound)
	}
	var out Session
	err := db.update(func(txn kv.Txn) error {
		now := db.now()
		var s Session
		if err := getJSON(txn, sessionKey(id), &s); err != nil {
			return err
		}
		if !s.live(now) {
			return ErrNotFound
		}
		if seq <= s.Seq {
			return fmt.Errorf("%w: call %d, last accepted %d", ErrReplay, seq, s.Seq)
		}
		s.Seq, s.LastSeen = seq, now
		if ttl > 0 {
			s.ExpiresAt = now.Add(ttl)
		}
		out = s
		return setJSON(txn, sessionKey(id), s)
	})
	if err != nil {
		return Session{}, fmt.Errorf("advance session: %w", err)
	}
	return out, nil
}

// MachineSessions returns the live sessions of one machine, oldest first.
func (db *DB) MachineSessions(mac string) ([]Session, error) {
	if err := checkMAC(mac); err != nil {
		return nil, fmt.Errorf("machine sessions: %w", err)
	}
	var out []Session
	err := db.kv.View(func(txn kv.Txn) (err error) {
		ss := &Sessions{db: db, txn: txn, mac: mac, now: db.now()}
		out, err = ss.List()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sessions of %s: %w", mac, err)
	}
	return out, nil
}

// ListSessions returns every live session, by MAC and then oldest first.
func (db *DB) ListSessions() ([]Session, error) {
	all, err := list[Session](db, "s/")
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	now := db.now()
	out := all[:0]
	for _, s := range all {
		if s.live(now) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b Session) int {
		if c := strings.Compare(a.MAC, b.MAC); c != 0 {
			return c
		}
		return a.OpenedAt.Compare(b.OpenedAt)
	})
	return out, nil
}

// SessionInventory returns the inventory a live session registered.
func (db *DB) SessionInventory(id string) (json.RawMessage, error) {
	s, err := db.GetSession(id)
	if err != nil {
		return nil, err
	}
	var inv []byte
	err = db.kv.View(func(txn kv.Txn) (err error) {
		v, err := getRaw(txn, sessionInvKey(s.ID))
		if err != nil {
			return err
		}
		inv, err = unpackInventory(v)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("session inventory: %w", err)
	}
	return inv, nil
}

// sweepSessions ends expired sessions and returns how many it ended.
func (db *DB) sweepSessions() (int, error) {
	now := db.now()
	var due []Session
	err := db.kv.View(func(txn kv.Txn) error {
		return scan(txn, "s/", func(s Session) error {
			if !s.live(now) {
				due = append(due, s)
			}
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("sweep sessions: %w", err)
	}
	for i, s := range due {
		unlock := db.lockMAC(s.MAC) // its search row changes
		err := db.update(func(txn kv.Txn) error {
			var cur Session
			if err := getJSON(txn, sessionKey(s.ID), &cur); errors.Is(err, ErrNotFound) {
				return nil
			} else if err != nil {
				return err
			}
			if cur.live(db.now()) {
				return nil // it called again meanwhile
			}
			if err := endSession(txn, cur.MAC, cur.ID); err != nil {
				return err
			}
			return refreshRow(txn, cur.MAC)
		})
		if err == nil {
			db.mirror.refresh(db.kv, s.MAC)
		}
		unlock()
		if err != nil {
			return i, fmt.Errorf("sweep sessions: %w", err)
		}
	}
	return len(due), nil
}
