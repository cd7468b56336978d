package agent

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/agentwire"
)

// The meter reports at every change of phase and otherwise at most every
// 2 s; the rate is taken over the last 10 s, and the time left is the
// rest at that rate.
func TestMeter(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	const mb = 1 << 20
	type step struct {
		at      time.Duration
		tr      Transfer
		due     bool
		want    agentwire.AgentProgress // checked when due
		comment string
	}
	steps := []step{
		{0, Transfer{Phase: PhaseDownloading}, true, agentwire.AgentProgress{}, "a phase starts"},
		{100 * time.Millisecond, Transfer{Phase: PhaseWriting, Done: 1 * mb, Total: 100 * mb}, true,
			agentwire.AgentProgress{Percent: 1, BytesDone: 1 * mb, BytesTotal: 100 * mb}, "writing starts: no rate over 0.1 s"},
		{1 * time.Second, Transfer{Phase: PhaseWriting, Done: 10 * mb, Total: 100 * mb}, false, agentwire.AgentProgress{}, "within 2 s"},
		{2100 * time.Millisecond, Transfer{Phase: PhaseWriting, Done: 21 * mb, Total: 100 * mb}, true,
			agentwire.AgentProgress{Percent: 21, BytesDone: 21 * mb, BytesTotal: 100 * mb, RateBps: 10 * mb, ETASeconds: 8}, "10 MiB/s since 0.1 s; 79 MiB left"},
		{3 * time.Second, Transfer{Phase: PhaseWriting, Done: 30 * mb, Total: 100 * mb}, false, agentwire.AgentProgress{}, ""},
		{4100 * time.Millisecond, Transfer{Phase: PhaseWriting, Done: 41 * mb, Total: 100 * mb}, true,
			agentwire.AgentProgress{Percent: 41, BytesDone: 41 * mb, BytesTotal: 100 * mb, RateBps: 10 * mb, ETASeconds: 6}, ""},
		// The connection stalls for 20 s: the rate falls to nothing and
		// the time left is unknown.
		{24100 * time.Millisecond, Transfer{Phase: PhaseWriting, Done: 41 * mb, Total: 100 * mb, Resumes: 1}, true,
			agentwire.AgentProgress{Percent: 41, BytesDone: 41 * mb, BytesTotal: 100 * mb}, "stalled"},
		// Resumed: 5 MiB/s over the 10 s window.
		{34100 * time.Millisecond, Transfer{Phase: PhaseWriting, Done: 91 * mb, Total: 100 * mb, Resumes: 1}, true,
			agentwire.AgentProgress{Percent: 91, BytesDone: 91 * mb, BytesTotal: 100 * mb, RateBps: 5 * mb, ETASeconds: 2}, "resumed"},
		{34200 * time.Millisecond, Transfer{Phase: PhaseVerifying, Done: 100 * mb, Total: 100 * mb}, true,
			agentwire.AgentProgress{Percent: 99, BytesDone: 100 * mb, BytesTotal: 100 * mb}, "all there: 99% until the end; the rate is the download's only"},
	}
	m := newMeter()
	for i, s := range steps {
		p, due := m.observe(s.tr, t0.Add(s.at))
		if due != s.due {
			t.Fatalf("step %d (%s): due %v, want %v", i, s.comment, due, s.due)
		}
		if due && p != s.want {
			t.Errorf("step %d (%s):\n got %+v\nwant %+v", i, s.comment, p, s.want)
		}
	}
}

func TestMeterBounds(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		tr   Transfer
		want agentwire.AgentProgress
	}{
		// 1 KiB/s with 1 TiB left is years: no estimate.
		{"beyond a week", Transfer{Phase: PhaseWriting, Done: 11 << 10, Total: 1 << 40},
			agentwire.AgentProgress{BytesDone: 11 << 10, BytesTotal: 1 << 40, RateBps: 1 << 10}},
		{"unknown size", Transfer{Phase: PhaseWriting, Done: 11 << 10},
			agentwire.AgentProgress{BytesDone: 11 << 10, RateBps: 1 << 10}},
		{"more than the size", Transfer{Phase: PhaseWriting, Done: 11 << 10, Total: 5 << 10},
			agentwire.AgentProgress{Percent: 99, BytesDone: 5 << 10, BytesTotal: 5 << 10, RateBps: 1 << 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMeter()
			first := tc.tr
			first.Done = 1 << 10
			m.observe(first, t0)
			p, due := m.observe(tc.tr, t0.Add(10*time.Second))
			if !due || p != tc.want {
				t.Errorf("got %+v (due %v), want %+v", p, due, tc.want)
			}
		})
	}
}

// A report waiting to be sent is replaced by a newer one of its phase; the
// sender sees every phase's latest, in order, and close sends the last.
func TestReporter(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var sent []int
	r := startReporter(func(p agentwire.AgentProgress) {
		if p.Percent == 0 {
			<-release // the appliance is slow to answer the first
		}
		mu.Lock()
		sent = append(sent, p.Percent)
		mu.Unlock()
	})
	r.post(PhaseDownloading, agentwire.AgentProgress{Percent: 0})
	time.Sleep(20 * time.Millisecond) // the sender takes the first
	for pct := 1; pct <= 50; pct++ {
		r.post(PhaseWriting, agentwire.AgentProgress{Percent: pct}) // never blocks
	}
	r.post(PhaseVerifying, agentwire.AgentProgress{Percent: 98})
	r.post(PhaseSeed, agentwire.AgentProgress{Percent: 99})
	close(release)
	time.Sleep(20 * time.Millisecond)
	r.post(phaseDone, agentwire.AgentProgress{Percent: 100})
	r.close()
	if fmt.Sprint(sent) != "[0 50 98 99 100]" {
		t.Errorf("sent %v, want [0 50 98 99 100]", sent)
	}
}

// progressAPI records the progress reports of an install; provision makes
// no other call.
type progressAPI struct {
	API
	mu      sync.Mutex
	reports []agentwire.AgentProgress
}

func (p *progressAPI) ReportProgress(_ context.Context, r agentwire.AgentProgress) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reports = append(p.reports, r)
	return nil
}

// An install reports bytes, rate and time left while it writes, names each
// phase, says when the download was resumed, and ends at 100% with the
// file's size.
func TestProvisionReportsProgress(t *testing.T) {
	raw := testImage()
	file := compress(t, "zst", raw)
	mod := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	srv := &cuttingServer{t: t, data: file, modTime: mod, cuts: map[int]int{0: len(file) / 2}}
	ts := newServer(t, srv)
	target, disk := diskFile(t)
	// Each look at the clock is a quarter of a second later: the reads
	// of the download make time pass.
	var clockMu sync.Mutex
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	api := &progressAPI{}
	con := &recConsole{}
	a := &Agent{API: api, MAC: "52:54:00:12:34:56", Inventory: testInventory, Console: con,
		Now: func() time.Time {
			clockMu.Lock()
			defer clockMu.Unlock()
			now = now.Add(250 * time.Millisecond)
			return now
		},
		Download: ts.Client(),
		Disks:    func(string) (Disk, error) { return disk, nil },
		Seed:     func(string, map[string][]byte) error { return nil },
		Sleep:    (&noSleep{}).sleep,
	}
	// Small reads, so that the download takes many looks at the clock.
	a.Download = &smallReads{ts.Client()}
	d := agentwire.Decision{Decision: agentwire.KindImage, Hostname: "web1",
		Image: &agentwire.DecisionImage{URL: ts.URL + "/disk.zst", SHA256: hexSum(file), Disk: "/dev/sda"}}
	if err := a.provision(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	r := api.reports
	if len(r) < 5 {
		t.Fatalf("only %d reports: %+v", len(r), r)
	}
	size := int64(len(file))
	first, last := r[0], r[len(r)-1]
	if first.Percent != 0 || !strings.HasPrefix(first.Message, "downloading the image for /dev/sda") {
		t.Errorf("first report %+v", first)
	}
	if last.Percent != 100 || last.BytesDone != size || last.BytesTotal != size || last.RateBps != 0 || last.Message != "image and cloud-init seed written" {
		t.Errorf("last report %+v", last)
	}
	// Every phase reached the appliance, the latest of each.
	var phases []string
	for _, p := range r {
		ph := strings.SplitN(p.Message, " ", 2)[0]
		if len(phases) == 0 || phases[len(phases)-1] != ph {
			phases = append(phases, ph)
		}
	}
	if fmt.Sprint(phases) != "[downloading writing verifying writing image]" {
		t.Errorf("phases %v in %+v", phases, r)
	}
	var rated, resumed bool
	for i, p := range r {
		if p.BytesTotal != 0 && p.BytesTotal != size || p.BytesDone > size || p.ETASeconds < 0 {
			t.Errorf("report %d out of bounds: %+v", i, p)
		}
		if i > 0 && (p.Percent < r[i-1].Percent || p.BytesDone < r[i-1].BytesDone) {
			t.Errorf("report %d went back: %+v after %+v", i, p, r[i-1])
		}
		rated = rated || (p.RateBps > 0 && p.ETASeconds > 0 && strings.HasPrefix(p.Message, "writing image to /dev/sda"))
		resumed = resumed || strings.Contains(p.Message, "(download resumed 1×)")
	}
	if !rated || !resumed {
		t.Errorf("rated %v resumed %v in %+v", rated, resumed, r)
	}
	// The appliance may miss a phase (a newer report replaced it before
	// it was sent); the console shows every one.
	want := []*regexp.Regexp{
		regexp.MustCompile(`^downloading the image for /dev/sda$`),
		regexp.MustCompile(`^writing image to /dev/sda: [0-9]+% \([0-9.]+ KiB of 1\.0 MiB\)$`),
		regexp.MustCompile(`^writing image to /dev/sda \(download resumed 1×\): [0-9]+% \([0-9.]+ KiB of 1\.0 MiB, [0-9.]+ KiB/s, [0-9]+s left\)$`),
		regexp.MustCompile(`^verifying the image written to /dev/sda: 99% \(1\.0 MiB of 1\.0 MiB\)$`),
		regexp.MustCompile(`^image verified \([0-9]+ bytes written\): writing the cloud-init seed$`),
	}
	con.mu.Lock()
	statuses := con.statuses
	con.mu.Unlock()
	next := 0
	for _, st := range statuses {
		if next < len(want) && want[next].MatchString(st) {
			next++
		}
	}
	if next < len(want) {
		t.Errorf("console never showed %q, in order, in:\n%s", want[next], strings.Join(statuses, "\n"))
	}
	// No two reports of the same phase less than 2 s apart: with a
	// quarter of a second per read, one per 8 reads at most.
	if reads := len(file) / 4096; len(r) > reads/8+6 {
		t.Errorf("%d reports for %d reads", len(r), reads)
	}
	got, _ := os.ReadFile(target)
	if string(got[:len(raw)]) != string(raw) {
		t.Error("the disk does not hold the image")
	}
}

// smallReads hands the body out 4 KiB at a time.
type smallReads struct{ hc Doer }

func (s *smallReads) Do(r *http.Request) (*http.Response, error) {
	resp, err := s.hc.Do(r)
	if err == nil {
		body := resp.Body
		resp.Body = struct {
			readFunc
			closer
		}{readFunc(func(p []byte) (int, error) { return body.Read(p[:min(len(p), 4096)]) }), closer{body}}
	}
	return resp, err
}

type readFunc func([]byte) (int, error)

func (f readFunc) Read(p []byte) (int, error) { return f(p) }

type closer struct{ c interface{ Close() error } }

func (c closer) Close() error { return c.c.Close() }
