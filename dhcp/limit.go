package dhcp

import (
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Flood protection, in three parts (docs in README, "DHCP limits"):
//
//   - per-MAC rate: one client hammering the server (a REQUEST loop forces a
//     synced lease write each time) is slowed, known machines included;
//   - per-source rate: packets of "new" clients — neither a known machine
//     nor the holder of an offer or lease — are limited per segment and
//     source, so that one origin cannot take the server's time from the
//     others; known machines and lease holders never wait for it;
//   - caps (limit_caps.go and the allocator): temporary records per
//     segment and pending offers per pool.
//
// A packet's "source" is where it entered: the relay agent that forwarded
// it (the UDP source of a relayed packet), the client's own address when it
// sends from one, and otherwise — a client without an address broadcasts
// from 0.0.0.0, and coredhcp's sockets do not say more — the segment's
// interface as a whole. Every broadcast client of one segment therefore
// shares one budget: a flood there slows the new clients of that segment
// (known machines and lease holders go on), and no other segment.

// RateLimit is a token bucket: Rate packets per second sustained, bursts of
// up to Burst at once.
type RateLimit struct {
	// Rate is the sustained rate in packets per second. Zero means the
	// default of the limit it belongs to; negative means no limit.
	Rate float64
	// Burst is how many packets may arrive at once; zero means the
	// default.
	Burst int
}

// Limits are the DHCP server's rate limits. The zero value means the
// defaults below.
type Limits struct {
	// PerMAC limits every client's own packets (dhcp.rate_limit.per_mac);
	// default DefaultMACRate per second, bursts of DefaultMACBurst.
	PerMAC RateLimit
	// PerSource limits the packets of new clients per segment and source
	// (dhcp.rate_limit.per_source); default DefaultSourceRate per second,
	// bursts of the segment's capacity (Segment.Capacity) or
	// DefaultSourceBurst, whichever is more, so that a boot storm that
	// fills the whole range at once is never refused.
	PerSource RateLimit
	// MACTable bounds how many MACs the per-MAC limit tracks
	// (dhcp.rate_limit.mac_table); default DefaultMACTable. A MAC whose
	// bucket is full again needs no entry, and only clients that passed
	// the per-source limit get one, so a flood of random MACs cannot grow
	// it past this bound.
	MACTable int
}

// Defaults of Limits.
const (
	// DefaultMACRate and DefaultMACBurst: a PXE boot takes about six
	// packets (firmware, iPXE and the discovery OS each DISCOVER and
	// REQUEST), a few more with retransmissions; 5 a second sustained is
	// far above any client's need and far below a loop's.
	DefaultMACRate  = 5
	DefaultMACBurst = 50
	// DefaultSourceRate is the sustained rate of new clients from one
	// source: more than any site powers on, less than the server answers.
	DefaultSourceRate  = 1000
	DefaultSourceBurst = 1000
	DefaultMACTable    = 8192
)

func (r RateLimit) or(rate float64, burst int) RateLimit {
	if r.Rate == 0 {
		r.Rate = rate
	}
	if r.Burst == 0 {
		r.Burst = burst
	}
	return r
}

func (l Limits) withDefaults() Limits {
	l.PerMAC = l.PerMAC.or(DefaultMACRate, DefaultMACBurst)
	l.PerSource = l.PerSource.or(DefaultSourceRate, 0) // burst: per segment
	if l.MACTable == 0 {
		l.MACTable = DefaultMACTable
	}
	return l
}

// Validate reports what is wrong with l (ConfigErrors named by their
// configuration keys under dhcp.rate_limit). cmd/foundry and Serve both
// call it.
func (l Limits) Validate() error { return l.problems().err() }

func (l Limits) problems() ConfigErrors {
	var errs ConfigErrors
	bad := func(key, format string, a ...any) {
		errs = append(errs, &ConfigError{Index: -1, Key: "dhcp.rate_limit." + key, Problem: fmt.Sprintf(format, a...)})
	}
	for _, r := range []struct {
		key string
		RateLimit
	}{{"per_mac", l.PerMAC}, {"per_source", l.PerSource}} {
		if r.Burst < 0 {
			bad(r.key+".burst", "%d is negative", r.Burst)
		}
		if r.Rate > 0 && r.Rate < 0.01 {
			bad(r.key+".rate", "%v packets a second is less than one in 100 s: turn the limit off instead (rate: 0)", r.Rate)
		}
	}
	if l.MACTable < 0 || (l.MACTable > 0 && l.MACTable < 64) || l.MACTable > 1<<20 {
		bad("mac_table", "%d is not between 64 and %d", l.MACTable, 1<<20)
	}
	return errs
}

// bucket is a token bucket's state; the table holds its rate and burst.
type bucket struct {
	tokens float64
	last   time.Time
}

// take refills b for the time since its last packet and takes a token.
func (b *bucket) take(now time.Time, r RateLimit) bool {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(float64(r.Burst), b.tokens+d.Seconds()*r.Rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// buckets is a bounded table of token buckets, one per key, in two
// generations: new keys go into cur; when cur holds half the bound, it
// becomes old and old is dropped. A key found in old moves back to cur, so
// an active client keeps its bucket while at least half the bound of other
// keys arrive between two of its packets; a dropped key starts again with a
// full bucket, which is also where an idle one would be. x/time/rate's
// Limiter carries a mutex of its own per key: one lock for the table and
// 32 bytes a key serve here.
type buckets[K comparable] struct {
	max      int
	mu       sync.Mutex
	cur, old map[K]*bucket
}

func newBuckets[K comparable](max int) *buckets[K] {
	return &buckets[K]{max: max, cur: map[K]*bucket{}, old: map[K]*bucket{}}
}

// take takes a token from key's bucket. A key without a bucket gets a
// full one when create is set; otherwise take reports it untracked
// (tracked false, nothing taken). ok is false when the bucket is empty.
func (t *buckets[K]) take(key K, now time.Time, r RateLimit, create bool) (tracked, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.cur[key]
	if b == nil {
		if b = t.old[key]; b == nil && !create {
			return false, true
		}
		if b == nil {
			b = &bucket{tokens: float64(r.Burst), last: now}
		} else {
			delete(t.old, key)
		}
		if len(t.cur) >= t.max/2 {
			t.old, t.cur = t.cur, make(map[K]*bucket, t.max/2)
		}
		t.cur[key] = b
	}
	return true, b.take(now, r)
}

// len is how many keys the table holds (for tests).
func (t *buckets[K]) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.cur) + len(t.old)
}

// sourceKey is a per-source bucket's key: the segment, and the source
// address (zero: the segment's interface, for broadcasts).
type sourceKey struct {
	seg string
	src netip.Addr
}

// limiter applies Limits to one Server's packets.
type limiter struct {
	l       Limits
	macs    *buckets[[6]byte]
	sources *buckets[sourceKey]
}

func newLimiter(l Limits) *limiter {
	l = l.withDefaults()
	// A source is a relay agent, a client with an address or an
	// interface; the table's bound only matters to a forger of sources.
	return &limiter{l: l, macs: newBuckets[[6]byte](l.MACTable), sources: newBuckets[sourceKey](l.MACTable)}
}

// macLimited reports whether mac's packet is over its rate. With create
// unset, a MAC not yet tracked is let through without a bucket: the caller
// asks again with create once the packet has passed the per-source limit.
func (lm *limiter) macLimited(mac [6]byte, now time.Time, create bool) (limited, tracked bool) {
	if lm.l.PerMAC.Rate < 0 {
		return false, true
	}
	tracked, ok := lm.macs.take(mac, now, lm.l.PerMAC, create)
	return !ok, tracked
}

// sourceLimited reports whether a new client's packet from src on seg is
// over the source's rate; burst is the segment's default burst.
func (lm *limiter) sourceLimited(seg *segState, src netip.Addr, now time.Time) bool {
	r := lm.l.PerSource
	if r.Rate < 0 {
		return false
	}
	if r.Burst == 0 {
		r.Burst = max(DefaultSourceBurst, seg.Capacity())
	}
	_, ok := lm.sources.take(sourceKey{seg.Name, src}, now, r, true)
	return !ok
}

// limitReport gathers the packets dropped by limits and caps between two
// log lines: hostile traffic decides how often they happen, so the log
// says once per interval how many there were, not once per packet.
type limitReport struct {
	mu     sync.Mutex
	counts map[limitCount]int
	since  time.Time
}

type limitCount struct{ seg, reason string }

func (r *limitReport) add(seg, reason string, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.counts == nil {
		r.counts = map[limitCount]int{}
	}
	if len(r.counts) == 0 {
		r.since = now
	}
	r.counts[limitCount{seg, reason}]++
}

// take returns the counts gathered since the last take and when the first
// of them came, and starts over.
func (r *limitReport) take() (map[limitCount]int, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, since := r.counts, r.since
	r.counts = nil
	return c, since
}
