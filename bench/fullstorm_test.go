package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/foundry-appliance/foundry/store"
	"github.com/foundry-appliance/foundry/test/stormsim"
)

// fullStormMachines power on through the whole discovery boot; at most
// fullStormConcurrency boot at once, each given fullStormDeadline.
const (
	fullStormMachines    = 10000
	fullStormConcurrency = 500
	fullStormDeadline    = 5 * time.Minute
	fullStormBase        = "http://10.99.0.1:8080"
)

// fullStormConfig is a dhcp-mode discovery segment on the simulator's
// veth, with room for every machine.
const fullStormConfig = `http:
  listen: ":8080"
  advertise: "` + fullStormBase + `"
tftp:
  listen: ":69"
segments:
  - name: storm
    interface: fs0
    subnet: 10.99.0.0/16
    range: [10.99.64.1, 10.99.127.254]
    router: 10.99.0.1
    lease_time: 1h
    discovery: true
`

// BenchmarkFullStorm boots fullStormMachines simulated machines through
// the whole discovery flow against `foundry serve` (test/stormsim): the
// PXE ROM's DHCP exchange, TFTP of undionly.kpxe (compared byte for byte),
// iPXE's DHCP exchange, the boot script from the leased address (with its
// boot nonce) and the agent's signed registration with a ~15 KB
// inventory. It fails unless every machine registers; it prints the
// storm's time, the per-machine p50/p99/max from power-on to
// registration, the retries, the appliance's CPU time and peak RSS
// (VmHWM), and the records the stopped appliance's store holds.
func BenchmarkFullStorm(b *testing.B) {
	needNetns(b)
	images := emptyImages(b)
	kpxe, err := os.ReadFile(filepath.Join(images, "ipxe", "undionly.kpxe"))
	must(b, err)
	link, err := stormsim.NewLink(stormsim.LinkConfig{HostIface: "fs0",
		Server: netip.MustParsePrefix("10.99.0.1/16"), Client: netip.MustParseAddr("10.99.0.2"),
		Leases: netip.MustParsePrefix("10.99.64.0/18")})
	must(b, err)
	b.Cleanup(func() { link.Close() })
	b.ResetTimer()

	d, data := startFoundryAt(b, fullStormConfig, images, fullStormBase)
	udpBefore := udpCounters(b)
	sim := &stormsim.Sim{Link: link, BaseURL: fullStormBase, BootFileData: kpxe,
		Concurrency: fullStormConcurrency, Deadline: fullStormDeadline}
	var failMu sync.Mutex
	var firstFail []string
	sim.Logf = func(format string, args ...any) {
		failMu.Lock()
		defer failMu.Unlock()
		if len(firstFail) < 5 {
			firstFail = append(firstFail, fmt.Sprintf(format, args...))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), fullStormDeadline+time.Minute)
	defer cancel()
	rep, err := sim.Run(ctx, stormsim.MACs(2, fullStormMachines))
	if err != nil {
		b.Errorf("storm: %v", err)
	}
	if d.exited() {
		b.Fatalf("foundry exited during the storm:\n%s", tail(d.log.String(), 3000))
	}
	mem := memory(d.pid)
	cpu := d.cpu()
	drops := dhcpDrops(fullStormBase)
	udpAfter := udpCounters(b)
	d.stop()
	b.StopTimer()
	states, leases, shared := storeCounts(b, data)
	if shared > 0 {
		b.Errorf("%d addresses are leased to more than one machine", shared)
	}
	for _, r := range rep.Results {
		for _, a := range r.Acks {
			if a.IP != r.IP {
				b.Errorf("%s was acknowledged %s and %s", r.MAC, a.IP, r.IP)
				break
			}
		}
	}

	failed := rep.Failed()
	for i, f := range failed {
		if i == 5 {
			b.Errorf("… and %d more", len(failed)-i)
			break
		}
		b.Errorf("%s did not register: %v", f.MAC, f.Err)
	}
	if states["inventoried"] != fullStormMachines-len(failed) {
		b.Errorf("%d machines registered, the store has %d inventoried", fullStormMachines-len(failed), states["inventoried"])
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d machines, at most %d booting at once: PXE DHCP, TFTP %s (%d bytes), iPXE DHCP, script, registration\n",
		fullStormMachines, fullStormConcurrency, stormsim.DefaultBootFile, len(kpxe))
	w := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "time\tregistered/s\tfailed\tper machine p50/p99/max\tDHCP resent\treboots\tregistrations resent\tfoundry CPU\tpeak RSS (VmHWM)\tRSS at end\tstore")
	fmt.Fprintf(w, "%v\t%.0f\t%d\t%v / %v / %v\t%d\t%d\t%d\t%v\t%s\t%d inventoried, %d leases\n",
		rep.Took.Round(time.Millisecond), float64(fullStormMachines-len(failed))/rep.Took.Seconds(), len(failed),
		rep.Percentile(50).Round(time.Millisecond), rep.Percentile(99).Round(time.Millisecond), rep.Percentile(100).Round(time.Millisecond),
		rep.Resent, rep.Reboots, rep.RegisterRetries, cpu.Round(time.Millisecond), mem,
		states["inventoried"], leases)
	w.Flush()
	fmt.Fprintf(&sb, "appliance's DHCP drops and limits: %s; UDP datagrams its namespace's kernel dropped for full receive buffers: %d; DHCP replies the machines' socket dropped: %d; late or duplicate replies: %d\n",
		drops, udpAfter["RcvbufErrors"]-udpBefore["RcvbufErrors"], rep.SocketDrops, rep.Stray)
	if len(firstFail) > 0 {
		fmt.Fprintf(&sb, "first failed boots (each machine booted again):\n  %s\n", strings.Join(firstFail, "\n  "))
	}
	report(b, sb.String())

	b.ReportMetric(0, "ns/op")
	b.ReportMetric(rep.Took.Seconds(), "storm-s")
	b.ReportMetric(rep.Percentile(99).Seconds()*1000, "machine-p99-ms")
	b.ReportMetric(float64(len(failed)), "failed")
	b.ReportMetric(float64(mem.hwm)/(1<<20), "peak-rss-MiB")
}

// startFoundryAt is startFoundry with the HTTP server on every address and
// advertised at base, which the simulated machines reach from their
// namespace.
func startFoundryAt(b *testing.B, cfg, images, base string) (*daemon, string) {
	b.Helper()
	dir := b.TempDir()
	data := filepath.Join(dir, "data")
	full := fmt.Sprintf("data_dir: %s\nimage_dir: %s\nlog_level: warn\n%s", data, images, cfg)
	path := filepath.Join(dir, "foundry.yaml")
	must(b, os.WriteFile(path, []byte(full), 0o644))
	d := startDaemon(b, "foundry", []string{"FOUNDRY_ADMIN_TOKEN=fdy_bench-admin-token-0123456789abcdef"},
		foundryBin(b), "serve", "--config", path)
	waitFor(b, d, 30*time.Second, func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return d, data
}

// memory reads a process's resident set from /proc/<pid>/status, in
// bytes: the peak (VmHWM), now (VmRSS), and of now the anonymous memory
// (the Go heap and stacks, RssAnon) and the file pages mapped (Badger's
// memtables and value log, RssFile).
func memory(pid int) (m rssFigures) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m
	}
	for _, line := range strings.Split(string(raw), "\n") {
		name, value, ok := strings.Cut(line, ":")
		var kb int64
		if _, err := fmt.Sscanf(strings.TrimSpace(value), "%d kB", &kb); !ok || err != nil {
			continue
		}
		switch name {
		case "VmHWM":
			m.hwm = kb << 10
		case "VmRSS":
			m.rss = kb << 10
		case "RssAnon":
			m.anon = kb << 10
		case "RssFile":
			m.file = kb << 10
		}
	}
	return m
}

type rssFigures struct{ hwm, rss, anon, file int64 }

func (m rssFigures) String() string {
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	return fmt.Sprintf("%.0f MiB\t%.0f MiB (anon %.0f, file %.0f)", mib(m.hwm), mib(m.rss), mib(m.anon), mib(m.file))
}

// dhcpDrops lists the appliance's non-zero DHCP drop and limit counters
// (foundry_dhcp_drops_total, foundry_dhcp_limited_total): why a machine
// had to send a DHCP message again.
func dhcpDrops(base string) string {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "foundry_dhcp_drops_total{") && !strings.HasPrefix(line, "foundry_dhcp_limited_total{") {
			continue
		}
		if f := strings.Fields(line); len(f) == 2 && f[1] != "0" {
			out = append(out, strings.Replace(strings.TrimPrefix(line, "foundry_dhcp_"), "_total", "", 1))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// udpCounters reads the Udp line of /proc/net/snmp: this network
// namespace's counters, where the appliance's sockets live. A file it
// cannot read fails the benchmark: a drop count read as 0 would report
// a run as clean.
func udpCounters(b *testing.B) map[string]int64 {
	b.Helper()
	raw, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		b.Fatal(err)
	}
	c, err := parseUDPCounters(raw)
	if err != nil {
		b.Fatalf("/proc/net/snmp: %v", err)
	}
	return c
}

// udpCountersIn is udpCounters of network namespace ns.
func udpCountersIn(b *testing.B, ns string) map[string]int64 {
	b.Helper()
	raw, err := command(context.Background(), ns, "cat", "/proc/net/snmp").Output()
	if err != nil {
		b.Fatalf("/proc/net/snmp of %s: %v", ns, err)
	}
	c, err := parseUDPCounters(raw)
	if err != nil {
		b.Fatalf("/proc/net/snmp of %s: %v", ns, err)
	}
	return c
}

// parseUDPCounters reads the Udp lines of a /proc/net/snmp: a line of
// names, then one of as many decimal numbers.
func parseUDPCounters(raw []byte) (map[string]int64, error) {
	var names []string
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f[1:]
			continue
		}
		if len(f)-1 != len(names) {
			return nil, fmt.Errorf("Udp: %d values for %d names", len(f)-1, len(names))
		}
		out := make(map[string]int64, len(names))
		for i, v := range f[1:] {
			// The kernel prints unsigned counters: no sign.
			n, err := strconv.ParseUint(v, 10, 63)
			if err != nil {
				return nil, fmt.Errorf("Udp %s: %w", names[i], err)
			}
			out[names[i]] = int64(n)
		}
		return out, nil
	}
	return nil, errors.New("no Udp counters")
}

// storeCounts counts a stopped appliance's machines by state, its leases,
// and the addresses leased to more than one machine.
func storeCounts(b *testing.B, data string) (states map[string]int, leases, shared int) {
	b.Helper()
	db, err := store.Open(filepath.Join(data, "db"), store.Options{})
	must(b, err)
	defer db.Close()
	ms, err := db.ListMachines()
	must(b, err)
	states = map[string]int{}
	for _, m := range ms {
		states[m.State.String()]++
	}
	ls, err := db.ListLeases("")
	must(b, err)
	holders := map[netip.Addr]int{}
	for _, l := range ls {
		if holders[l.IP]++; holders[l.IP] == 2 {
			shared++
		}
	}
	return states, len(ls), shared
}
