package ratelog

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	var l Limiter
	steps := []struct {
		key      string
		at       time.Duration
		ok       bool
		wantHeld int
	}{
		{"a", 0, true, 0},
		{"a", time.Second, false, 0},
		{"b", time.Second, true, 0}, // another key has its own interval
		{"a", 2 * time.Second, false, 0},
		{"a", DefaultEvery, true, 2}, // the two held back are reported
		{"a", DefaultEvery + time.Second, false, 0},
		{"a", -time.Hour, true, 1}, // the clock went back: let through
	}
	for i, s := range steps {
		ok, held := l.Allow(s.key, t0.Add(s.at))
		if ok != s.ok || held != s.wantHeld {
			t.Errorf("step %d (%s at %v): Allow = %v, %d; want %v, %d", i, s.key, s.at, ok, held, s.ok, s.wantHeld)
		}
	}
	custom := Limiter{Every: time.Minute}
	custom.Allow("x", t0)
	if ok, _ := custom.Allow("x", t0.Add(DefaultEvery)); ok {
		t.Error("Every = 1m let a second warning through after 10s")
	}
}
