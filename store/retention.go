package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/foundry-appliance/foundry/store/kv"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/foundry-appliance/foundry/internal/promx"
)

// The audit log is bounded: entries past AuditRetention's count or age are
// pruned, oldest first, together with their per-MAC index keys, in one
// transaction per batch (a reader sees an entry and its index key both or
// neither). An entry an exporter has not delivered — at or after its
// cursor (cursor.go), less deliveryMargin — is kept, however old, unless
// the log is past HardMaxEntries: a disk that fills stops the appliance,
// while an exporter that lost entries catches up from the records
// themselves (gitops renders each machine whole) and is told in the log.

// Defaults of AuditRetention.
const (
	// DefaultAuditMaxEntries: about 300 MB of log (entries are 200-400
	// bytes with their index key), years of a busy site's changes.
	DefaultAuditMaxEntries = 1_000_000
	// DefaultAuditMaxAge: a year and a day, for yearly audits.
	DefaultAuditMaxAge = 366 * 24 * time.Hour
	// DefaultAuditEvery is how often RunRetention prunes.
	DefaultAuditEvery = 10 * time.Minute
)

// deliveryMargin is kept behind the least exporter cursor: an exporter
// re-reads a little behind its cursor (AuditIDBefore; gitops 10 s) for
// entries that committed out of id order.
const deliveryMargin = time.Minute

// pruneBatch is how many entries one transaction deletes (two keys each);
// fewer on etcd (txnItems).
const pruneBatch = 500

// AuditRetention bounds the audit log. The zero value means the defaults.
type AuditRetention struct {
	// MaxEntries is how many entries the log keeps; older ones are
	// pruned once delivered. Default DefaultAuditMaxEntries; negative:
	// no bound by count.
	MaxEntries int
	// MaxAge is how long an entry is kept; older ones are pruned once
	// delivered. Default DefaultAuditMaxAge; negative: no bound by age.
	MaxAge time.Duration
	// HardMaxEntries is the bound past which the oldest entries are
	// pruned even when an exporter has not delivered them. Default twice
	// MaxEntries (none when MaxEntries is negative); negative: none.
	HardMaxEntries int
	// Exporters name cursors (Cursor) whose undelivered entries are kept
	// even before the exporter first sets its cursor: a named cursor that
	// is unset keeps the whole log. Every cursor set in the store is
	// honoured whether named here or not.
	Exporters []string
}

func (r AuditRetention) withDefaults() AuditRetention {
	if r.MaxEntries == 0 {
		r.MaxEntries = DefaultAuditMaxEntries
	}
	if r.MaxAge == 0 {
		r.MaxAge = DefaultAuditMaxAge
	}
	if r.HardMaxEntries == 0 && r.MaxEntries > 0 {
		r.HardMaxEntries = 2 * r.MaxEntries
	}
	return r
}

// Pruned is what one PruneAudit did.
type Pruned struct {
	// Entries is how many entries the log holds afterwards.
	Entries int
	// ByCount, ByAge and Hard are the entries pruned past MaxEntries,
	// past MaxAge, and (of those) past HardMaxEntries before an exporter
	// delivered them.
	ByCount, ByAge, Undelivered int
	// Kept is the id below which an exporter's cursor kept entries
	// ("" when no cursor kept any).
	Kept string
}

// Total is the number of entries pruned.
func (p Pruned) Total() int { return p.ByCount + p.ByAge }

// PruneAudit deletes the entries r does not keep, oldest first.
func (db *DB) PruneAudit(r AuditRetention) (Pruned, error) {
	r = r.withDefaults()
	var p Pruned
	keep, err := db.deliveredBelow(r.Exporters)
	if err != nil {
		return p, fmt.Errorf("prune audit: %w", err)
	}
	if keep != "\xff" {
		p.Kept = keep
	}
	n, err := db.countAudit()
	if err != nil {
		return p, fmt.Errorf("prune audit: %w", err)
	}
	cutoff := time.Time{}
	if r.MaxAge > 0 {
		cutoff = db.now().Add(-r.MaxAge)
	}
	from := ""
	for {
		batch, stop, err := db.pruneCandidates(from, n, db.txnItems(2, pruneBatch), r, cutoff, keep, &p)
		if err != nil {
			return p, fmt.Errorf("prune audit: %w", err)
		}
		if len(batch) > 0 {
			err := db.update(func(txn kv.Txn) error {
				for _, e := range batch {
					if err := txn.Delete(auditKey(e.ID)); err != nil {
						return err
					}
					if e.MAC != "" {
						if err := txn.Delete(auditMACKey(e.MAC, e.ID)); err != nil {
							return err
						}
					}
				}
				return nil
			})
			if err != nil {
				return p, fmt.Errorf("prune audit: %w", err)
			}
			n -= len(batch)
			from = batch[len(batch)-1].ID
		}
		if stop || len(batch) == 0 {
			break
		}
	}
	p.Entries = n
	return p, nil
}

// pruneCandidates reads up to size entries to prune, oldest first,
// after from, with n entries in the log, and counts them into p; stop
// says no entry after the batch is due.
func (db *DB) pruneCandidates(from string, n, size int, r AuditRetention, cutoff time.Time, keep string, p *Pruned) (out []AuditEntry, stop bool, err error) {
	err = db.kv.View(func(txn kv.Txn) error {
		it := txn.NewIterator(kv.IterOptions{Prefix: []byte("a/")})
		defer it.Close()
		for it.Seek(auditKey(from)); it.Valid(); it.Next() {
			id := string(it.Key()[2:])
			if id == from {
				continue
			}
			if len(out) == size {
				return nil
			}
			left := n - len(out)
			nanos, _, ok := parseID(id)
			if !ok {
				db.corrupt.report(kv.KeyCopy(it), errBadAuditKey)
				continue
			}
			byCount := r.MaxEntries > 0 && left > r.MaxEntries
			byAge := !cutoff.IsZero() && time.Unix(0, int64(nanos)).Before(cutoff)
			hard := r.HardMaxEntries > 0 && left > r.HardMaxEntries
			if !byCount && !byAge || id >= keep && !hard {
				// Later entries are younger, the log only shorter, and
				// every one after a kept one is kept too.
				stop = true
				return nil
			}
			var e AuditEntry
			if err := it.Value(func(b []byte) error { return json.Unmarshal(b, &e) }); err != nil {
				// Pruned like any entry of its age, not a stop of every
				// later round; its index key, whose MAC it no longer
				// tells, stays behind and ListAudit skips it.
				db.corrupt.report(kv.KeyCopy(it), err)
				e = AuditEntry{}
			}
			e.ID = id
			if byCount {
				p.ByCount++
			} else {
				p.ByAge++
			}
			if id >= keep {
				p.Undelivered++
			}
			out = append(out, e)
		}
		stop = true
		return nil
	})
	return out, stop, err
}

// deliveredBelow is the id below which every exporter has delivered every
// entry: the least cursor (named in exporters or set in the store), less
// deliveryMargin; "\xff" (above every id) when there is no exporter, ""
// when one has delivered nothing.
func (db *DB) deliveredBelow(exporters []string) (string, error) {
	least, any := "\xff", false
	for _, name := range exporters {
		v, err := db.Cursor(name)
		if err != nil {
			return "", err
		}
		any = true
		least = min(least, v)
	}
	err := db.kv.View(func(txn kv.Txn) error {
		prefix := []byte("meta/cursor/")
		it := txn.NewIterator(kv.IterOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			err := it.Value(func(b []byte) error {
				any = true
				least = min(least, string(b))
				return nil
			})
			if err != nil {
				return fmt.Errorf("read cursor %s: %w", strings.TrimPrefix(string(it.Key()), string(prefix)), err)
			}
		}
		return nil
	})
	if err != nil || !any || least == "" {
		return least, err
	}
	return AuditIDBefore(least, deliveryMargin), nil
}

// countAudit counts the entries (keys only).
func (db *DB) countAudit() (int, error) {
	n := 0
	err := db.kv.View(func(txn kv.Txn) error {
		it := txn.NewIterator(kv.IterOptions{Prefix: []byte("a/")})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count audit entries: %w", err)
	}
	return n, nil
}

// retentionMetrics are foundry_audit_pruned_total{reason} and
// foundry_audit_entries.
type retentionMetrics struct {
	pruned  *prometheus.CounterVec
	entries prometheus.Gauge
}

func newRetentionMetrics(reg prometheus.Registerer) (*retentionMetrics, error) {
	m := &retentionMetrics{
		pruned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "foundry", Subsystem: "audit", Name: "pruned_total",
			Help: "Audit entries pruned by retention: reason count or age; undelivered counts those an exporter had not delivered (pruned past the hard limit), included in the others.",
		}, []string{"reason"}),
		entries: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "foundry", Subsystem: "audit", Name: "entries",
			Help: "Entries in the audit log after the last retention pass.",
		}),
	}
	var err error
	if m.pruned, err = promx.Register(reg, m.pruned); err != nil {
		return nil, fmt.Errorf("register audit metrics: %w", err)
	}
	if m.entries, err = promx.Register(reg, m.entries); err != nil {
		return nil, fmt.Errorf("register audit metrics: %w", err)
	}
	return m, nil
}

// RunRetention prunes the audit log (PruneAudit) at once and then every
// every (default DefaultAuditEvery) until ctx is done, then returns nil.
// reg receives foundry_audit_pruned_total and foundry_audit_entries (nil:
// none). Failures are logged and retried on the next round.
func (db *DB) RunRetention(ctx context.Context, r AuditRetention, every time.Duration, reg prometheus.Registerer) error {
	if every <= 0 {
		every = DefaultAuditEvery
	}
	m, err := newRetentionMetrics(reg)
	if err != nil {
		return err
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		db.retentionRound(r, m)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (db *DB) retentionRound(r AuditRetention, m *retentionMetrics) {
	if db.isClosed() {
		return
	}
	p, err := db.PruneAudit(r)
	m.pruned.WithLabelValues("count").Add(float64(p.ByCount))
	m.pruned.WithLabelValues("age").Add(float64(p.ByAge))
	m.pruned.WithLabelValues("undelivered").Add(float64(p.Undelivered))
	if err != nil {
		db.log.Warn("prune audit log", "err", err, "pruned", p.Total())
		return
	}
	m.entries.Set(float64(p.Entries))
	switch {
	case p.Undelivered > 0:
		db.log.Warn("audit log past its hard limit: pruned entries an exporter had not delivered",
			"undelivered", p.Undelivered, "pruned", p.Total(), "entries", p.Entries, "kept_from", p.Kept)
	case p.Total() > 0:
		db.log.Info("audit log pruned", "by_count", p.ByCount, "by_age", p.ByAge, "entries", p.Entries)
	}
}
