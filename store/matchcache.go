package store

import (
	"math/bits"
	"sync"
)

// matchCache remembers, for the words of the last few searches, which
// mirror rows matched them. Matching every row is most of a search's
// time (at 100,000 machines a word of the rows' own lines, a serial or
// a host name, that one machine in ten has is some 10,000 texts read
// from memory, each a cache miss; a word of lines many rows share, a
// vendor, is matched once a line, linedict.go), and the same words
// come back: a dashboard polling its filtered list, every next page of
// a search (which searches again from the start). A row's answer is known until the row changes:
// rowMirror forgets it whenever it writes, moves or removes row i, and
// forgets everything when it loads again. Removing a row forgets the
// last index too, so no index at or past the last row is ever known: a
// row added there starts unknown.
//
// A chunk of rows whose answers are all known is visited through its
// matches only; any other row is visited, and its text read only when
// its answer is not known.
type matchCache struct {
	mu      sync.Mutex
	entries map[string]*matchBits
	tick    uint64
}

// matchCacheSize is how many searches' words are remembered: a few
// dashboards' filters and searches, 25 KB each at 100,000 machines.
const matchCacheSize = 16

// matchBits is one search's answers by row index: bit i of hit is row
// i's answer when bit i of known is set.
type matchBits struct {
	// fill is held by the search using these bits: bits are read and
	// written by its parts without atomics (each part owns whole words, as
	// rowMirror.eachChunkLocked hands out rows in chunks of eachChunk, a
	// multiple of 64), so a second search of the same words at the same
	// time searches without them.
	fill       sync.Mutex
	used       uint64
	known, hit []uint64
}

// take returns the bits for key, sized for n rows, with fill held; nil
// when another search holds them. The caller holds the mirror's read
// lock, so no row changes until it lets go.
func (c *matchCache) take(key string, n int) *matchBits {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]*matchBits{}
	}
	c.tick++
	b, ok := c.entries[key]
	if !ok {
		if len(c.entries) >= matchCacheSize {
			c.evict()
		}
		b = &matchBits{}
		c.entries[key] = b
	}
	if !b.fill.TryLock() {
		return nil
	}
	b.used = c.tick
	if w := (n + 63) / 64; len(b.known) < w {
		// Rows past the old end were added since: unknown.
		b.known = append(b.known, make([]uint64, w-len(b.known))...)
		b.hit = append(b.hit, make([]uint64, w-len(b.hit))...)
	}
	return b
}

// evict drops the least recently used bits (c.mu held).
func (c *matchCache) evict() {
	var oldest string
	var at uint64
	first := true
	for k, b := range c.entries {
		if first || b.used < at {
			oldest, at, first = k, b.used, false
		}
	}
	delete(c.entries, oldest)
}

// release lets another search use b.
func (b *matchBits) release() { b.fill.Unlock() }

// eachHit calls fn with every row from lo to hi-1 (lo a multiple of 64)
// that matched, in order or backwards, when every answer of those rows
// is known, and reports whether it was.
func (b *matchBits) eachHit(lo, hi int, backwards bool, fn func(i int)) bool {
	first, last := lo/64, (hi-1)/64
	for w := first; w <= last; w++ {
		if b.known[w] != wordMask(w, hi) {
			return false
		}
	}
	for k := range last - first + 1 {
		w := first + k
		if backwards {
			w = last - k
		}
		for h := b.hit[w] & wordMask(w, hi); h != 0; {
			var at int
			if backwards {
				at = 63 - bits.LeadingZeros64(h)
			} else {
				at = bits.TrailingZeros64(h)
			}
			h &^= 1 << at
			fn(w*64 + at)
		}
	}
	return true
}

// wordMask is the bits of word w that are rows below hi.
func wordMask(w, hi int) uint64 {
	if n := hi - w*64; n < 64 {
		return 1<<n - 1
	}
	return ^uint64(0)
}

// forget makes row i's answer unknown in every search's bits; the
// mirror's write lock is held (no search runs).
func (c *matchCache) forget(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w, bit := i/64, uint64(1)<<(i%64)
	for _, b := range c.entries {
		if w < len(b.known) {
			b.known[w] &^= bit
		}
	}
}

// clear forgets every answer: the rows were loaded again or dropped
// (the mirror's write lock is held).
func (c *matchCache) clear() {
	c.mu.Lock()
	c.entries = nil
	c.mu.Unlock()
}
