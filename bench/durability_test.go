package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/test/syncbuf"
)

// syncCalls are the system calls that make written data durable. Badger
// syncs its memtable WAL with msync and its value log with fsync; a server
// that uses none of them leaves every lease in the page cache until the
// kernel writes it back (about 30 s later by default), so a power cut
// loses leases it acknowledged.
var syncCalls = []string{"fsync", "fdatasync", "msync", "sync_file_range", "sync", "syncfs"}

var writeCalls = []string{"write", "pwrite64", "writev", "pwritev", "pwritev2"}

// syncProbe is what strace counted while a server answered probeRate
// DORA/s for probeSeconds: measured, not taken from documentation.
type syncProbe struct {
	ACKs, Syncs, Writes int
	Calls               map[string]int
	// Skipped says why nothing was measured.
	Skipped string
}

const (
	probeRate    = 200
	probeSeconds = 2
)

func (p syncProbe) perACK(calls int) string {
	if p.Skipped != "" || p.ACKs == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", float64(calls)/float64(p.ACKs))
}

func (p syncProbe) describe(server string) string {
	if p.Skipped != "" {
		return fmt.Sprintf("%s: not measured (%s)", server, p.Skipped)
	}
	var calls []string
	for _, c := range append(syncCalls, writeCalls...) {
		if p.Calls[c] > 0 {
			calls = append(calls, fmt.Sprintf("%s %d", c, p.Calls[c]))
		}
	}
	if len(calls) == 0 {
		calls = []string{"none"}
	}
	verdict := "every ACK followed a sync"
	if p.Syncs == 0 {
		verdict = "no sync at all: acknowledged leases live in the page cache until writeback"
	} else if p.Syncs < p.ACKs {
		verdict = "fewer syncs than ACKs (syncs shared by concurrent ACKs)"
	}
	return fmt.Sprintf("%s: %d ACKs under strace -f saw %s; %s", server, p.ACKs, strings.Join(calls, ", "), verdict)
}

// probeSyncs attaches strace to the running server, sends a light
// perfdhcp load, and counts the server's sync and write calls. strace
// slows the server down, which is why this is not part of the rate
// search.
func probeSyncs(b *testing.B, n relayNet, t target) syncProbe {
	b.Helper()
	if _, err := exec.LookPath("strace"); err != nil {
		return syncProbe{Skipped: "strace is not installed"}
	}
	out := filepath.Join(b.TempDir(), "strace.txt")
	trace := "trace=" + strings.Join(append(append([]string{}, syncCalls...), writeCalls...), ",")
	cmd := command(context.Background(), "", "strace", "-f", "-c", "-o", out, "-e", trace, "-p", fmt.Sprint(t.d.pid))
	var stderr syncbuf.Buffer
	cmd.Stderr = &stderr
	must(b, cmd.Start())
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), "attached") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			return syncProbe{Skipped: "strace did not attach: " + strings.TrimSpace(stderr.String())}
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	res, perfOut, err := t.perfdhcp(ctx, n, "-R", fmt.Sprint(benchClients), "-r", fmt.Sprint(probeRate), "-p", fmt.Sprint(probeSeconds))
	cancel()
	// SIGINT detaches strace, which then writes its summary.
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	if err != nil {
		b.Fatalf("%s under strace: %v\n%s", t.name, err, perfOut)
	}
	calls, err := readStraceSummary(out)
	if err != nil {
		return syncProbe{Skipped: err.Error()}
	}
	p := syncProbe{ACKs: res.RA.Received, Calls: calls}
	for _, c := range syncCalls {
		p.Syncs += calls[c]
	}
	for _, c := range writeCalls {
		p.Writes += calls[c]
	}
	return p
}

// readStraceSummary reads `strace -c` output: per system call, the calls
// column (the fourth) and the name (the last).
func readStraceSummary(path string) (map[string]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read strace summary: %w", err)
	}
	defer f.Close()
	calls := map[string]int{}
	header := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 && fields[0] == "%" {
			header = true
			continue
		}
		if !header || len(fields) < 5 {
			continue
		}
		name := fields[len(fields)-1]
		n, err := strconv.Atoi(fields[3])
		if err != nil || name == "total" {
			continue
		}
		calls[name] += n
	}
	if !header {
		return nil, fmt.Errorf("strace wrote no summary to %s", path)
	}
	return calls, sc.Err()
}
