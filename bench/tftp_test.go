package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
)

// tftpWorkers clients each fetch undionly.kpxe tftpPerWorker times in a
// row, all at once; the best of tftpRounds rounds counts, which keeps a
// moment of load from other processes out of the comparison.
const (
	tftpWorkers   = 20
	tftpPerWorker = 25
	tftpRounds    = 2
	tftpFile      = "undionly.kpxe"
)

// fetchScript runs in the client namespace: $1 workers, $2 fetches each,
// from server $3 into directory $4, one tftp-hpa client per fetch.
const fetchScript = `w=0
while [ $w -lt $1 ]; do
  w=$((w+1))
  (i=0; while [ $i -lt $2 ]; do i=$((i+1)); tftp -m binary $3 -c get ` + tftpFile + ` $4/$w-$i; done) &
done
wait`

// tftpRound is one round of fetches from one server.
type tftpRound struct {
	ok, bad int
	elapsed time.Duration
}

func (r tftpRound) perSecond() float64 { return float64(r.ok) / r.elapsed.Seconds() }

// BenchmarkTFTP fetches Debian's BIOS iPXE binary concurrently from
// Foundry's TFTP server and from tftp-hpa's in.tftpd serving the same
// file on the same interface, with tftp-hpa's client (512-byte blocks, no
// options: both servers move the same packets).
func BenchmarkTFTP(b *testing.B) {
	needNetns(b, "tftp", "in.tftpd")
	ns := netns(b, "tftp")
	veth(b, "tf0", "10.66.0.1/24 10.66.0.2/24", ns, "10.66.0.10/24")
	images := emptyImages(b)
	// in.tftpd chroots into the directory and serves as nobody.
	root := filepath.Join(images, "ipxe")
	must(b, os.Chmod(root, 0o755))
	want, err := os.ReadFile(filepath.Join(root, tftpFile))
	must(b, err)
	b.ResetTimer()

	startFoundry(b, "tftp:\n  listen: \"10.66.0.1:69\"\n", images)
	startTFTPD(b, "10.66.0.2", root)
	servers := []struct{ name, addr string }{{"foundry", "10.66.0.1"}, {"tftp-hpa", "10.66.0.2"}}
	best := map[string]tftpRound{}
	for range tftpRounds {
		for _, s := range servers {
			r := fetchAll(b, ns, s.addr, want)
			if r.perSecond() > best[s.name].perSecond() || best[s.name].elapsed == 0 {
				best[s.name] = r
			}
		}
	}
	b.StopTimer()

	total := tftpWorkers * tftpPerWorker
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d concurrent tftp-hpa clients x %d fetches of %s (%d bytes), best of %d rounds\n",
		tftpWorkers, tftpPerWorker, tftpFile, len(want), tftpRounds)
	w := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "server\tcomplete\tfailed\ttime\ttransfers/s\tMB/s")
	for _, s := range servers {
		r := best[s.name]
		fmt.Fprintf(w, "%s\t%d/%d\t%d\t%v\t%.0f\t%.1f\n", s.name, r.ok, total, r.bad, r.elapsed.Round(time.Millisecond),
			r.perSecond(), r.perSecond()*float64(len(want))/1e6)
	}
	w.Flush()
	ratio := best["foundry"].perSecond() / best["tftp-hpa"].perSecond()
	fmt.Fprintf(&sb, "foundry/tftp-hpa: %.2f\n", ratio)
	report(b, sb.String())
	if r := best["foundry"]; r.ok != total {
		b.Errorf("foundry completed %d of %d transfers byte-identical", r.ok, total)
	}

	b.ReportMetric(0, "ns/op")
	b.ReportMetric(best["foundry"].perSecond(), "foundry-transfers/s")
	b.ReportMetric(best["tftp-hpa"].perSecond(), "tftp-hpa-transfers/s")
	b.ReportMetric(ratio, "foundry/tftp-hpa")
}

// fetchAll runs one round against the server at addr and checks every
// fetched file against want.
func fetchAll(b *testing.B, ns, addr string, want []byte) tftpRound {
	b.Helper()
	dir := b.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := command(ctx, ns, "sh", "-c", fetchScript, "fetch",
		fmt.Sprint(tftpWorkers), fmt.Sprint(tftpPerWorker), addr, dir).CombinedOutput()
	r := tftpRound{elapsed: time.Since(start)}
	if err != nil {
		b.Fatalf("fetch from %s: %v\n%s", addr, err, tail(string(out), 3000))
	}
	for w := 1; w <= tftpWorkers; w++ {
		for i := 1; i <= tftpPerWorker; i++ {
			got, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%d-%d", w, i)))
			if err == nil && bytes.Equal(got, want) {
				r.ok++
			} else {
				r.bad++
			}
		}
	}
	return r
}
