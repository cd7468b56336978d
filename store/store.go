// Package store owns Foundry's persistent state: machines, DHCP leases, the
// audit log, boot nonces and sessions, clusters, profiles, library images
// and API tokens, all in one Badger database on disk. Writes that a client
// is told about (an ACK, an API 2xx) are synced before the call returns.
//
// Key layout (values are JSON unless noted):
//
//	meta/schema              schema version (int)
//	meta/cursor/<name>       an exporter's last delivered audit id (raw; cursor.go)
//	m/<mac>                  Machine, without its inventory (Summary stands for it)
//	mi/<mac>                 the machine's inventory (raw JSON)
//	x/ xq/ xk/ xe/ xb/       list indexes, search rows, conflicts, expiry, BMCs (index.go)
//	l/<segment>/<mac>        Lease
//	la/<segment>/<ip>        MAC of the lease on that address: its claim (raw; leases.go)
//	hb/<name>                an appliance's heartbeat counter (decimal; heartbeat.go)
//	a/<id>                   AuditEntry; ids sort by time (see nextID)
//	am/<mac>/<id>            empty: index of one machine's audit entries
//	n/<hex sha256(nonce)>    Nonce
//	nu/<mac>/<hex sha256>    issue time of an unused nonce (unix ns, decimal)
//	nl/<mac>                 empty: serialises nonce issues for one MAC
//	s/<session id>           Session, including its registration token hash
//	si/<session id>          the session's inventory (raw JSON)
//	sm/<mac>/<session id>    empty: index of one machine's sessions
//	c/<name>                 Cluster
//	p/<name>                 Profile
//	i/<name>                 Image (library image; its file is <image_dir>/Image.File)
//	if/<name>/<appliance>    ImageCopy: one appliance's copy of the image (images_copies.go)
//	id/<name>                DeletedImage: the mark a deleted image leaves for the appliances' copies
//	t/<id>                   APIToken, including its hash
//	th/<hex sha256>          token id (raw bytes)
//	uh/<lower-case hostname> MAC of the machine with that host name
//	ua/<static address>      MAC of the machine approved with that address
//
// No prefix is a prefix of another's keys ("m/" never matches "meta/"), so a
// prefix scan sees exactly one kind of record.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/foundry-appliance/foundry/store/kv"
)

// Sentinel errors.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	// ErrTransition is returned when a change would move a machine between
	// states that the life cycle does not connect.
	ErrTransition = errors.New("invalid state transition")
	// ErrInUse is returned when deleting a cluster or profile that a machine
	// uses, or an image that a profile names.
	ErrInUse = errors.New("in use")
	// ErrInvalid is returned for input the store refuses (a MAC not in
	// canonical form, an empty name, a record that is too large, …); the
	// message names the field. Nothing is written.
	ErrInvalid = errors.New("invalid input")
	// ErrTaken is returned when a machine would take a host name or static
	// address that another machine has (*TakenError says which).
	ErrTaken = errors.New("already used by another machine")
)

// SchemaVersion is the layout version written to a new database.
const SchemaVersion = 5

// Options configure Open. The zero value is valid.
type Options struct {
	// Now returns the current time; default time.Now. Tests move the clock.
	Now func() time.Time
	// InMemory runs Badger without disk (only for unit tests of other packages).
	InMemory bool
	// Logger receives the store's and Badger's warnings and errors; nil is
	// silent. Badger's routine informational lines are logged at debug level.
	Logger *slog.Logger
	// LeaseBatchGap is how long PutLease's writer waits for another
	// concurrent lease to share a synced commit (leasebatch.go); default
	// DefaultLeaseBatchGap (1ms), negative: no wait.
	LeaseBatchGap time.Duration
	// LeaseBatchWindow bounds the wait of a batch's first lease; default
	// DefaultLeaseBatchWindow (5ms), negative: no wait.
	LeaseBatchWindow time.Duration
	// SpaceReserve is the free space kept back on the database's file
	// system (space.go): below it writes fail with ErrNoSpace. Default
	// DefaultSpaceReserve (128 MiB); negative: no guard. Ignored InMemory.
	SpaceReserve int64
	// FreeSpace returns the bytes available on the file system holding
	// dir; default statfs. Tests fake a full disk with it.
	FreeSpace func(dir string) (int64, error)
}

// DB is an open Foundry database. It is safe for concurrent use.
type DB struct {
	kv  kv.Engine
	now func() time.Time
	log *slog.Logger
	// leases commits PutLease calls in batches.
	leases *leaseWriter
	// known spares GetMachine a transaction for MACs without a record.
	known knownMACs
	// shared follows the commits of other appliances on a shared engine
	// (shared.go); nil on Badger.
	shared *follower
	// space refuses writes on a full disk (space.go); nil: no guard.
	space *spaceGuard
	// tables advises Badger's table mappings against read-around
	// (readahead.go); nil in memory, on etcd and outside Linux.
	tables *tableAdvisor
	// corrupt reports the records lists skip (corrupt.go).
	corrupt corruptRecords
	// mirror holds the machines' search rows and counts for lists
	// (index_search.go).
	mirror rowMirror

	// macLocks serialise writes to one machine (striped by MAC) so that
	// its events are published in Revision order and concurrent updates of
	// one machine queue instead of conflicting and retrying.
	macLocks [64]sync.Mutex

	idMu      sync.Mutex // guards lastNanos and lastSeq (audit ids)
	lastNanos uint64
	lastSeq   uint32

	subMu  sync.Mutex // guards subs and closed
	subs   map[*subscriber]struct{}
	closed bool
}

var keySchema = []byte("meta/schema")

// Open opens (creating if needed) the database in dir. Every committed
// transaction is fsynced before the call that made it returns.
func Open(dir string, opt Options) (*DB, error) {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	bo := badger.DefaultOptions(dir)
	if opt.InMemory {
		bo = badger.DefaultOptions("").WithInMemory(true)
	} else {
		if dir == "" {
			return nil, fmt.Errorf("open store: %w: empty directory", ErrInvalid)
		}
		// A migration that rewrote the database (kv.Badger.Rebuild) and
		// was cut off is finished or discarded before anything reads it,
		// or creates dir in the place of the one being swapped in.
		if err := kv.RecoverRebuild(dir); err != nil {
			return nil, fmt.Errorf("open store %s: %w", dir, err)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		removed, err := kv.RemoveEmptyLogs(dir)
		if err != nil {
			return nil, fmt.Errorf("open store %s: %w", dir, err)
		}
		for _, path := range removed {
			log.Warn("removed an empty log file a crash left in the database", "path", path)
		}
	}
	// Foundry's data is small (thousands of records), and tests open many
	// databases at once: Badger's defaults (64 MiB memtables × 5, 1 GiB
	// value log files, 256 MiB block cache) would waste memory and disk.
	bo = bo.WithSyncWrites(true).
		WithMemTableSize(16 << 20).
		WithNumMemtables(2).
		WithValueLogFileSize(64 << 20).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(4 << 20).
		WithNumCompactors(2).
		WithMetricsEnabled(false).
		WithLogger(badgerLogger{log})
	space, err := newSpaceGuard(dir, opt, log)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	bdb, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	db, err := open(kv.NewBadger(bdb), opt, space)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	if !opt.InMemory {
		db.tables = newTableAdvisor(dir)
		db.tables.start()
	}
	return db, nil
}

// open starts a DB on an open engine, which it closes when it fails.
func open(e kv.Engine, opt Options, space *spaceGuard) (*DB, error) {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	db := &DB{kv: e, now: now, log: log, space: space, corrupt: corruptRecords{log: log}, subs: map[*subscriber]struct{}{}}
	se, shared := e.(sharedEngine)
	if shared {
		db.shared = &follower{eng: se, own: map[int64]struct{}{}}
	}
	var rev int64
	steps := []func() error{db.initSchema, db.initIDs, func() error { return db.known.load(e) }}
	if shared {
		// The watch starts after the revision read here, before anything
		// is loaded into memory: a change in between is applied twice,
		// which is harmless, and none is missed.
		steps = slices.Insert(steps, 2, func() (err error) {
			rev, err = se.ViewRev(func(txn kv.Txn) error { return txn.Get(keySchema, nil) })
			return err
		})
	}
	for _, step := range steps {
		if err := step(); err != nil {
			e.Close()
			return nil, err
		}
	}
	if shared {
		db.follow(db.shared, rev)
	}
	db.leases = newLeaseWriter(db, opt.LeaseBatchGap, opt.LeaseBatchWindow, shared)
	db.space.start()
	return db, nil
}

// Close closes every subscriber channel and then the database.
func (db *DB) Close() error {
	db.subMu.Lock()
	db.closed = true
	for s := range db.subs {
		delete(db.subs, s)
		close(s.ch)
	}
	db.subMu.Unlock()
	db.leases.close()
	db.tables.close()
	if db.shared != nil {
		db.shared.cancel()
		<-db.shared.done
	}
	if ok, free, need := db.space.close(); !ok {
		// Badger's Close flushes the memtable into a new table, a write
		// the disk has no room for. The write-ahead log is synced: the
		// next Open replays it, as after a crash.
		db.log.Error("data disk full: leaving the database open for the next start to replay", "free", mib(free), "need", mib(need))
		return fmt.Errorf("close store: %w: %s free, flushing the memtable needs up to %s", ErrNoSpace, mib(free), mib(need))
	}
	if err := db.kv.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// SchemaVersion returns the layout version recorded in the database.
func (db *DB) SchemaVersion() (int, error) {
	var v int
	err := db.kv.View(func(txn kv.Txn) error { return getJSON(txn, keySchema, &v) })
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

func (db *DB) initSchema() error {
	var v int
	err := db.update(func(txn kv.Txn) error {
		err := getJSON(txn, keySchema, &v)
		if errors.Is(err, ErrNotFound) {
			v = SchemaVersion
			return setJSON(txn, keySchema, SchemaVersion)
		}
		if err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if v > SchemaVersion {
			return fmt.Errorf("database schema version %d is newer than this build's %d: run a newer foundry", v, SchemaVersion)
		}
		if v < 2 {
			// Version 2 keeps host names and static addresses unique
			// through index keys (unique.go); build them once.
			if err := buildUnique(txn); err != nil {
				return fmt.Errorf("migrate schema 1 to 2: %w", err)
			}
			return setJSON(txn, keySchema, 2)
		}
		return nil
	})
	if err != nil || v >= SchemaVersion {
		return err
	}
	if v < 3 {
		// Version 3 keeps inventories apart and lists through indexes
		// (migrate.go); too large for one transaction, so it commits the
		// version only when it is done.
		if err := db.migrateLists(); err != nil {
			return fmt.Errorf("migrate schema 2 to 3: %w", err)
		}
		if err := db.update(func(txn kv.Txn) error { return setJSON(txn, keySchema, 3) }); err != nil {
			return err
		}
	}
	if v < 4 {
		// Version 4 adds the expiry and BMC entries (index.go). The
		// migration above wrote them already; a version 3 database gets
		// them here, in batches, idempotently, so that an upgrade cut
		// off is simply run again.
		if err := db.buildSchema4(); err != nil {
			return fmt.Errorf("migrate schema 3 to 4: %w", err)
		}
	}
	// Version 5 claims every lease's address (leases.go), built from the
	// stored leases, idempotently as well.
	if err := db.buildSchema5(); err != nil {
		return fmt.Errorf("migrate schema 4 to 5: %w", err)
	}
	return db.update(func(txn kv.Txn) error { return setJSON(txn, keySchema, SchemaVersion) })
}

// maxConflictRetries bounds how often update re-runs a transaction that lost
// a conflict; reaching it means pathological contention, reported as an error.
const maxConflictRetries = 100

// update runs fn in a read-write transaction and commits it (synced),
// re-running fn from scratch when Badger reports a conflict with a
// concurrent transaction. fn must therefore have no effects outside txn.
// While the data disk is full (space.go) a write fails with ErrNoSpace.
func (db *DB) update(fn func(txn kv.Txn) error) error {
	if err := db.space.check(); err != nil {
		// On a full disk fn runs read-only: it succeeds if it changes
		// nothing, and any write it tries is refused.
		if ferr := db.kv.View(fn); !errors.Is(ferr, kv.ErrReadOnly) {
			return ferr
		}
		return err
	}
	commit := db.kv.Update
	if db.shared != nil {
		commit = db.shared.update
	}
	for attempt := 0; ; attempt++ {
		err := commit(fn)
		if errors.Is(err, kv.ErrNoSpace) {
			return fmt.Errorf("%w: %w", ErrNoSpace, err)
		}
		if !errors.Is(err, kv.ErrConflict) || attempt == maxConflictRetries {
			return err
		}
		// Random back-off so that the losers do not collide again in step.
		d := time.Duration(rand.Int64N(int64(min(attempt+1, 20)) * int64(100*time.Microsecond)))
		time.Sleep(d)
	}
}

// lockMAC takes the write lock stripe of one machine and returns its unlock.
func (db *DB) lockMAC(mac string) func() {
	var h uint32 = 2166136261 // FNV-1a
	for i := 0; i < len(mac); i++ {
		h = (h ^ uint32(mac[i])) * 16777619
	}
	mu := &db.macLocks[h%uint32(len(db.macLocks))]
	mu.Lock()
	return mu.Unlock
}

// badgerLogger adapts Badger's printf-style logger to slog.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.log(slog.LevelError, f, a) }
func (b badgerLogger) Warningf(f string, a ...any) { b.log(slog.LevelWarn, f, a) }

// Badger's info lines are routine start-up and compaction chatter; its
// debug lines (several per write) are for Badger's own developers and would
// drown Foundry's debug log, so they are dropped.
func (b badgerLogger) Infof(f string, a ...any) { b.log(slog.LevelDebug, f, a) }
func (b badgerLogger) Debugf(string, ...any)    {}

func (b badgerLogger) log(level slog.Level, f string, a []any) {
	if !b.l.Enabled(context.Background(), level) {
		return
	}
	b.l.Log(context.Background(), level, strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
}

// isClosed reports whether Close has begun: the background rounds stop
// instead of failing on a closed engine.
func (db *DB) isClosed() bool {
	db.subMu.Lock()
	defer db.subMu.Unlock()
	return db.closed
}
