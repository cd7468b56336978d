// Package ratelog keeps a flood of hostile packets out of the log: one
// warning per kind every interval, with the count of those held back, while
// metrics count every one. DHCP and TFTP use it, so the rule is written
// once.
package ratelog

import (
	"sync"
	"time"
)

// DefaultEvery is the interval of a zero Limiter.
const DefaultEvery = 10 * time.Second

// Limiter lets one warning per key through every Every and counts the ones
// it held back, reported with the next one let through. The zero value is
// ready to use. Keys are a fixed set chosen by the caller (drop reasons),
// never values from a packet, so its maps stay small.
type Limiter struct {
	// Every is the least time between two warnings of one key; default
	// DefaultEvery.
	Every time.Duration

	mu   sync.Mutex
	last map[string]time.Time
	held map[string]int
}

// Allow reports whether a warning for key may be logged at now, and how
// many were held back since the last one. A clock that went backwards
// lets the warning through.
func (l *Limiter) Allow(key string, now time.Time) (ok bool, held int) {
	every := l.Every
	if every <= 0 {
		every = DefaultEvery
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last, l.held = map[string]time.Time{}, map[string]int{}
	}
	if t, seen := l.last[key]; seen && now.Sub(t) < every && now.Sub(t) >= 0 {
		l.held[key]++
		return false, 0
	}
	held = l.held[key]
	l.last[key], l.held[key] = now, 0
	return true, held
}
