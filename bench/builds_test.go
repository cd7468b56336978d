package bench

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
)

// BenchmarkDHCPBuilds compares builds of foundry (and Kea) at one offered
// DHCP rate, turn about, round after round: the lost share and the CPU
// each spends per 1,000 DORA. It is how a change to the DHCP path is
// measured against the build before it on a machine whose speed varies:
// a fixed rate, many short alternating runs, medians. It runs only when
// FOUNDRY_BENCH_BUILDS names the builds, e.g.
//
//	FOUNDRY_BENCH_BUILDS=before=/tmp/foundry-old,after=/tmp/foundry-new \
//	FOUNDRY_BENCH_RATE=7000 go test -run '^$' -bench DHCPBuilds -benchtime 1x ./bench/
func BenchmarkDHCPBuilds(b *testing.B) {
	spec := os.Getenv("FOUNDRY_BENCH_BUILDS")
	if spec == "" {
		b.Skip("set FOUNDRY_BENCH_BUILDS=name=/path/to/foundry,... to compare builds")
	}
	needNetns(b, "perfdhcp", "kea-dhcp4")
	rate, rounds := 7000, 5
	if v, err := strconv.Atoi(os.Getenv("FOUNDRY_BENCH_RATE")); err == nil && v > 0 {
		rate = v
	}
	if v, err := strconv.Atoi(os.Getenv("FOUNDRY_BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	type build struct {
		name, path  string
		lost, cpu   []float64
		completedAt []float64
		// clientDrops: replies perfdhcp's socket had no room for.
		clientDrops []float64
	}
	var builds []*build
	for _, kv := range strings.Split(spec, ",") {
		name, path, ok := strings.Cut(kv, "=")
		if !ok {
			b.Fatalf("FOUNDRY_BENCH_BUILDS: %q is not name=path", kv)
		}
		builds = append(builds, &build{name: name, path: path})
	}
	builds = append(builds, &build{name: "kea"})
	n := newRelayNet(b)
	b.ResetTimer()
	for range rounds {
		for _, bd := range builds {
			var t *search
			if bd.path == "" {
				kd, _ := startKea(b, n)
				t = &search{target: keaTarget(kd)}
			} else {
				fd, _ := startFoundryBin(b, bd.path, foundryRelayed(n, "bench", false), emptyImages(b))
				t = &search{target: foundryTarget(fd)}
			}
			t.trial(b, n, 500) // warm-up, as BenchmarkDHCPThroughput
			tr := t.trial(b, n, rate)
			bd.lost = append(bd.lost, tr.dropPct())
			bd.completedAt = append(bd.completedAt, tr.Rate)
			bd.clientDrops = append(bd.clientDrops, float64(tr.clientRcvbuf))
			bd.cpu = append(bd.cpu, float64(tr.cpu.Milliseconds())*1000/max(1, float64(tr.RA.Received)))
			t.d.stop()
			time.Sleep(time.Second)
		}
	}
	median := func(v []float64) float64 {
		s := slices.Clone(v)
		slices.Sort(s)
		return s[len(s)/2]
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d DORA/s offered, %d rounds turn about, %d s each\n", rate, rounds, trialSeconds)
	w := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "build\tmedian lost %\tmedian DORA/s\tmedian CPU ms/1000 DORA\tlost % per round\tCPU per round\treplies the client's socket dropped, per round")
	for _, bd := range builds {
		fmt.Fprintf(w, "%s\t%.2f\t%.0f\t%.0f\t%.2f\t%.0f\t%.0f\n", bd.name, median(bd.lost), median(bd.completedAt), median(bd.cpu), bd.lost, bd.cpu, bd.clientDrops)
	}
	w.Flush()
	report(b, sb.String())
	b.ReportMetric(0, "ns/op")
}
