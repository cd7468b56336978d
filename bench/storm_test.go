package bench

import (
	"context"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/foundry-appliance/foundry/store"
)

// stormClients machines power on at once. PXE firmware gives up on DHCP
// after its retries (4, 8, 16 and 32 s per the PXE specification, about a
// minute in all), so the storm must be over well within stormLimit.
const (
	stormClients = 5000
	stormLimit   = 90 * time.Second
)

// pxeVendorClass is option 60 as a BIOS PXE ROM sends it.
const pxeVendorClass = "PXEClient:Arch:00000:UNDI:002001"

// stormRun is one server's avalanche.
type stormRun struct {
	name string
	perfResult
	machines, leases int
}

// BenchmarkBootStorm powers on stormClients machines at once (perfdhcp's
// avalanche scenario: every client sends its DISCOVER immediately, then
// retransmits with back-off until it holds a lease) against a discovery
// segment, where each new MAC also becomes a discovered machine record,
// durably, before it is answered. Kea, which keeps no machine records,
// runs the same storm for reference.
func BenchmarkBootStorm(b *testing.B) {
	needNetns(b, "perfdhcp", "kea-dhcp4")
	n := newRelayNet(b)
	b.ResetTimer()

	fd, data := startFoundry(b, foundryRelayed(n, "storm", true), emptyImages(b))
	kd, leaseFile := startKea(b, n)
	foundry := stormRun{name: "foundry (discovery)", perfResult: avalanche(b, n, foundryTarget(fd))}
	kea := stormRun{name: "kea", perfResult: avalanche(b, n, keaTarget(kd))}
	fd.stop()
	kd.stop()
	foundry.machines, foundry.leases = foundryRecords(b, data, "storm")
	kea.machines, kea.leases = -1, keaLeases(b, leaseFile)
	b.StopTimer()

	if foundry.machines < foundry.RA.Received {
		b.Errorf("%d clients were acknowledged on a discovery segment but only %d machine records exist", foundry.RA.Received, foundry.machines)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "avalanche of %d new clients through a relay (perfdhcp --scenario avalanche)\n", stormClients)
	w := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "server\tcompleted\tunanswered\tresent\ttime\tDORA/s\tOFFER p50/p99/max\tACK p50/p99/max\tmachine records\tleases on disk")
	for _, r := range []stormRun{foundry, kea} {
		records := fmt.Sprint(r.machines)
		if r.machines < 0 {
			records = "-"
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%v\t%.0f\t%s\t%s\t%s\t%d\n", r.name, r.RA.Received, stormClients-r.RA.Received,
			r.Resent, r.Took.Round(time.Millisecond), r.Rate, delays(r.DO), delays(r.RA), records, r.leases)
	}
	w.Flush()
	ratio := 0.0
	if foundry.Took > 0 {
		ratio = kea.Took.Seconds() / foundry.Took.Seconds()
	}
	fmt.Fprintf(&sb, "kea time / foundry time: %.2f (above 1: Foundry finished first)\n", ratio)
	report(b, sb.String())

	b.ReportMetric(0, "ns/op")
	b.ReportMetric(foundry.Took.Seconds(), "foundry-storm-s")
	b.ReportMetric(kea.Took.Seconds(), "kea-storm-s")
	b.ReportMetric(float64(foundry.Resent), "foundry-resent")
	b.ReportMetric(float64(stormClients-foundry.RA.Received), "foundry-unanswered")
	b.ReportMetric(foundry.RA.percentile(99).Seconds()*1000, "foundry-ACK-p99-ms")
}

// avalanche runs the storm against t and returns perfdhcp's report.
func avalanche(b *testing.B, n relayNet, t target) perfResult {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stormLimit)
	defer cancel()
	// Every client is a BIOS PXE ROM (options 60 and 93), which is what a
	// discovery segment discovers; -x t prints every packet's send and
	// receive time, for the percentiles.
	res, out, err := t.perfdhcp(ctx, n, "--scenario", "avalanche", "-R", fmt.Sprint(stormClients), "-x", "t",
		"-o", "60,"+hex.EncodeToString([]byte(pxeVendorClass)), "-o", "93,0000")
	if ctx.Err() != nil {
		b.Fatalf("%s: the storm was not over within %s (clients still without a lease)", t.name, stormLimit)
	}
	if err != nil {
		b.Fatalf("%s: %v\n%s", t.name, err, tail(out, 3000))
	}
	if t.d.exited() {
		b.Fatalf("%s exited during the storm:\n%s", t.name, tail(t.d.log.String(), 3000))
	}
	return res
}

// foundryRecords counts the discovered machine records and the segment's
// leases in a stopped appliance's store.
func foundryRecords(b *testing.B, data, segment string) (machines, leases int) {
	b.Helper()
	db, err := store.Open(filepath.Join(data, "db"), store.Options{})
	must(b, err)
	defer db.Close()
	ms, err := db.ListMachines()
	must(b, err)
	for _, m := range ms {
		if m.State == store.StateDiscovered {
			machines++
		}
	}
	ls, err := db.ListLeases(segment)
	must(b, err)
	return machines, len(ls)
}

func delays(e exchange) string {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f", d.Seconds()*1000) }
	if len(e.Delays) == 0 {
		return fmt.Sprintf("-/-/%sms", ms(e.Max))
	}
	return fmt.Sprintf("%s/%s/%sms", ms(e.percentile(50)), ms(e.percentile(99)), ms(e.Max))
}
