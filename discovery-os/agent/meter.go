package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/foundry-appliance/foundry/agentwire"
)

// meter turns an image download's Transfers into progress reports: one at
// every change of phase, and otherwise at most one per every, with the
// rate over the last window and the time left at that rate. It does no
// I/O; the clock is given.
type meter struct {
	// every is the least time between two reports of one phase; window
	// is how far back the rate looks.
	every, window time.Duration

	phase   string
	last    time.Time // when the last report was made
	samples []sample  // oldest first: one before the window, the rest in it
}

type sample struct {
	at   time.Time
	done int64
}

// Defaults of the meter: a report every 2 s at most, the rate over 10 s.
const (
	reportEvery = 2 * time.Second
	rateWindow  = 10 * time.Second
)

func newMeter() *meter { return &meter{every: reportEvery, window: rateWindow} }

// observe records t at now and returns the report to send, if one is due.
func (m *meter) observe(t Transfer, now time.Time) (agentwire.AgentProgress, bool) {
	m.sample(t.Done, now)
	changed := t.Phase != m.phase
	if !changed && now.Sub(m.last) < m.every {
		return agentwire.AgentProgress{}, false
	}
	m.phase, m.last = t.Phase, now
	p := agentwire.AgentProgress{BytesDone: max(t.Done, 0), BytesTotal: max(t.Total, 0)}
	if p.BytesTotal > 0 {
		p.BytesDone = min(p.BytesDone, p.BytesTotal)
		// 100 is for the end of the install, after the seed.
		p.Percent = int(min(p.BytesDone*100/p.BytesTotal, 99))
	}
	if t.Phase != PhaseWriting {
		return p, true // the rate and time left are the download's
	}
	p.RateBps = m.rate(now)
	if p.BytesTotal > 0 && p.RateBps > 0 {
		left := (p.BytesTotal - p.BytesDone + p.RateBps - 1) / p.RateBps
		if left <= agentwire.MaxETASeconds {
			p.ETASeconds = left
		}
	}
	return p, true
}

// sample keeps done at now, at most every tenth of a second, and drops
// the samples the window no longer needs.
func (m *meter) sample(done int64, now time.Time) {
	if n := len(m.samples); n > 0 {
		if last := m.samples[n-1]; done < last.done {
			m.samples = m.samples[:0] // a new download
		} else if now.Sub(last.at) < m.window/100 {
			m.samples[n-1].done = done
			return
		}
	}
	m.samples = append(m.samples, sample{now, done})
	// Keep one sample at or before the window's start as the rate's base.
	cut := 0
	for cut+1 < len(m.samples) && !m.samples[cut+1].at.After(now.Add(-m.window)) {
		cut++
	}
	m.samples = m.samples[cut:]
}

// rate is bytes per second from the window's base to the newest sample;
// 0 over less than half a second.
func (m *meter) rate(now time.Time) int64 {
	if len(m.samples) < 2 {
		return 0
	}
	first, last := m.samples[0], m.samples[len(m.samples)-1]
	dt := last.at.Sub(first.at)
	if dt < 500*time.Millisecond {
		return 0
	}
	return int64(float64(last.done-first.done) / dt.Seconds())
}

// reporter sends progress reports in the background, so that a slow
// appliance delays the reports, never the download. A report waiting to be
// sent is replaced by a newer one of the same phase; each phase's latest
// report is sent. One goroutine sends them in order, and nothing else
// calls the API until close returns, so the calls' signature numbers keep
// growing.
type reporter struct {
	send func(agentwire.AgentProgress)

	mu      sync.Mutex
	pending []queued // at most one per phase
	wake    chan struct{}
	done    chan struct{}
}

type queued struct {
	phase string
	p     agentwire.AgentProgress
}

func startReporter(send func(agentwire.AgentProgress)) *reporter {
	r := &reporter{send: send, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go r.run()
	return r
}

func (r *reporter) run() {
	defer close(r.done)
	for {
		_, open := <-r.wake
		for {
			r.mu.Lock()
			if len(r.pending) == 0 {
				r.mu.Unlock()
				break
			}
			q := r.pending[0]
			r.pending = r.pending[1:]
			r.mu.Unlock()
			r.send(q.p)
		}
		if !open {
			return
		}
	}
}

// post queues p, a report of phase; not after close.
func (r *reporter) post(phase string, p agentwire.AgentProgress) {
	r.mu.Lock()
	if n := len(r.pending); n > 0 && r.pending[n-1].phase == phase {
		r.pending[n-1].p = p
	} else {
		r.pending = append(r.pending, queued{phase, p})
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// close sends what is queued and waits for the sender to finish.
func (r *reporter) close() {
	close(r.wake)
	<-r.done
}

// progressText is the console's line for a report: "writing image to
// /dev/sda: 42% (1.2 GiB of 2.9 GiB, 85 MiB/s, 20 s left)".
func progressText(msg string, p agentwire.AgentProgress) string {
	if p.BytesDone == 0 && p.BytesTotal == 0 {
		return msg
	}
	s := msg + ": "
	if p.BytesTotal > 0 {
		s += fmt.Sprintf("%d%% (%s of %s", p.Percent, sizeText(p.BytesDone), sizeText(p.BytesTotal))
	} else {
		s += "(" + sizeText(p.BytesDone)
	}
	if p.RateBps > 0 {
		s += ", " + sizeText(p.RateBps) + "/s"
	}
	if p.ETASeconds > 0 {
		s += ", " + (time.Duration(p.ETASeconds) * time.Second).String() + " left"
	}
	return s + ")"
}

// sizeText writes n bytes in binary units, one decimal.
func sizeText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}

// reportTimeout bounds one progress call, so that a hung appliance holds up
// the end of an install by no more than this.
const reportTimeout = 15 * time.Second

// sendProgress is the reporter's sender for a.
func (a *Agent) sendProgress(ctx context.Context) func(agentwire.AgentProgress) {
	return func(p agentwire.AgentProgress) {
		ctx, cancel := context.WithTimeout(ctx, reportTimeout)
		defer cancel()
		if err := a.API.ReportProgress(ctx, p); err != nil {
			a.log().Warn("report progress", "percent", p.Percent, "err", err)
		}
	}
}
