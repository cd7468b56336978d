package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/store"
	"github.com/foundry-appliance/foundry/test/stormsim"
)

// The crash test's segment: the appliance at 10.99.0.1 on st0, the
// simulated machines behind the veth at 10.99.0.2, leased from
// 10.99.64.0/18.
const (
	crashMachines = 1000
	crashKillAt   = 400 // registrations acknowledged before the SIGKILL
	crashKillApp  = 20  // and approvals, unless crashKillLate registrations come first
	crashKillLate = 700 // (approvals are slow on a loaded machine: PBKDF2)
	crashBase     = "http://10.99.0.1:8080"
	crashConfig   = `log_level: info
http:
  listen: ":8080"
  advertise: "` + crashBase + `"
tftp:
  listen: ":69"
segments:
  - name: storm
    interface: st0
    subnet: 10.99.0.0/16
    range: [10.99.64.1, 10.99.127.254]
    router: 10.99.0.1
    lease_time: 1h
    discovery: true
`
)

// stormLink plugs a namespace of simulated machines into st0.
func stormLink(t *testing.T) *stormsim.Link {
	t.Helper()
	link, err := stormsim.NewLink(stormsim.LinkConfig{HostIface: "st0",
		Server: netip.MustParsePrefix("10.99.0.1/16"), Client: netip.MustParseAddr("10.99.0.2"),
		Leases: netip.MustParsePrefix("10.99.64.0/18")})
	must(t, err)
	t.Cleanup(func() { link.Close() })
	return link
}

// A boot storm of crashMachines machines (DHCP, TFTP, iPXE's DHCP, script,
// registration) with an administrator approving every third one through
// the API as they register. `foundry serve` is SIGKILLed once crashKillAt
// registrations and crashKillApp approvals are acknowledged (or
// crashKillLate registrations, whichever comes first), and
// restarted on the same data directory while the machines go on.
//
// Checked twice, against the store: in a copy of the data directory as
// the SIGKILL left it (what the restart recovers), for what the clients
// had been acknowledged until then; and in the stopped appliance's store
// after the storm, for everything. Every acknowledged lease (a DHCPACK the
// machine received), registration (a 2xx its agent received) and approval
// (a 2xx the administrator received) is there; no address is leased to
// two machines, nor was it ever acknowledged to two; each machine kept
// the address it was first acknowledged; and the audit log has each
// acknowledged action's entry, in the order acknowledged, with growing
// machine revisions (store.AuditEntry.Revision), so that a write
// acknowledged and then lost shows as a missing entry.
func TestCrashBootStormKill(t *testing.T) {
	link := stormLink(t)
	data := t.TempDir()
	images := imageDir(t)
	kpxe, err := os.ReadFile(filepath.Join(images, "ipxe", "undionly.kpxe"))
	must(t, err)
	path := filepath.Join(data, "foundry.yaml")
	cfg := fmt.Sprintf("data_dir: %s\nimage_dir: %s\n%s", data, images, crashConfig)
	must(t, os.WriteFile(path, []byte(cfg), 0o644))
	a := &appliance{t: t, dir: data, config: path, base: crashBase}
	a.start()
	t.Cleanup(a.stop)
	for _, args := range [][]string{
		{"profiles", "create", "prod", "--kind", "netboot", "--kernel", crashBase + "/images/discovery/vmlinuz",
			"--initrd", crashBase + "/images/discovery/initrd", "--cmdline", "console=ttyS0"},
		{"clusters", "create", "rack1", "--default-profile", "prod"},
	} {
		if out, code := cli(t, a, adminToken, args...); code != 0 {
			t.Fatalf("foundry %v: exit %d\n%s", args, code, out)
		}
	}

	// A machine has PXE's minute of retries, and a little more for a
	// loaded CI machine; a REQUEST whose offer the restart lost is NAKed,
	// so it starts again at once (p99 per machine 11 s here, 62 s when it
	// was dropped instead).
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	led := &ledger{leases: map[string][]stormsim.Ack{}, regs: map[string]stormsim.Result{}, approvals: map[string]approval{}}
	admin := newApprover(ctx, 8, led)
	var reboots struct {
		sync.Mutex
		first []string
	}
	sim := &stormsim.Sim{Link: link, BaseURL: crashBase, BootFileData: kpxe, Concurrency: 150,
		RetryDelay: time.Second, Deadline: 80 * time.Second,
		OnAck: led.ack,
		OnRegistered: func(r stormsim.Result) {
			led.registered(r)
			if r.Index%3 == 0 {
				admin.approve(r)
			}
		},
		Logf: func(format string, args ...any) {
			reboots.Lock()
			if len(reboots.first) < 8 {
				reboots.first = append(reboots.first, fmt.Sprintf(format, args...))
			}
			reboots.Unlock()
		}}
	var rep stormsim.Report
	var runErr error
	stormDone := make(chan struct{})
	go func() {
		defer close(stormDone)
		rep, runErr = sim.Run(ctx, stormsim.MACs(1, crashMachines))
	}()

	// SIGKILL in the middle of the storm: machines are in every phase,
	// the administrator has approvals in flight.
	for {
		regs, apps := led.counts()
		if regs >= crashKillAt && apps >= crashKillApp || regs >= crashKillLate {
			break
		}
		select {
		case <-stormDone:
			t.Fatalf("the storm ended before %d registrations and %d approvals (%d, %d): %v", crashKillAt, crashKillApp, regs, apps, runErr)
		case <-time.After(20 * time.Millisecond):
		}
	}
	killedAt := time.Now()
	must(t, a.cmd.Process.Kill())
	<-a.stopped
	// Replies the process sent before it died reach the clients within
	// microseconds; whatever arrives after this belongs to the next run.
	time.Sleep(100 * time.Millisecond)
	atKill := led.snapshot()
	crashCopy := filepath.Join(t.TempDir(), "db")
	if out, err := exec.Command("cp", "-a", "--sparse=always", filepath.Join(data, "db"), crashCopy).CombinedOutput(); err != nil {
		t.Fatalf("copy the data directory: %v\n%s", err, out)
	}
	a.start()
	t.Logf("SIGKILL after %d registrations and %d approvals acknowledged; healthy again %v later",
		len(atKill.regs), len(atKill.approvals), time.Since(killedAt).Round(time.Millisecond))
	db, err := store.Open(crashCopy, store.Options{})
	must(t, err)
	checkAcknowledged(t, "as the SIGKILL left it", db, atKill, false)
	db.Close()

	<-stormDone
	for _, f := range admin.wait() {
		t.Error(f)
	}
	if runErr != nil {
		t.Errorf("storm: %v", runErr)
	}
	failed := rep.Failed()
	t.Logf("storm of %d: %v, %d failed, p50 %v p99 %v per machine; DHCP resent %d, reboots %d, script regrants %d, registrations resent %d",
		len(rep.Results), rep.Took.Round(time.Millisecond), len(failed), rep.Percentile(50).Round(time.Millisecond),
		rep.Percentile(99).Round(time.Millisecond), rep.Resent, rep.Reboots, rep.Regrants, rep.RegisterRetries)
	if len(reboots.first) > 0 {
		t.Logf("the first failed boots (a machine boots again after each):\n%s", strings.Join(reboots.first, "\n"))
	}
	for i, f := range failed {
		if i == 5 {
			t.Errorf("… and %d more", len(failed)-i)
			break
		}
		t.Errorf("%s did not register: %v", f.MAC, f.Err)
	}
	a.stop()
	db, err = store.Open(filepath.Join(data, "db"), store.Options{})
	must(t, err)
	defer db.Close()
	checkAcknowledged(t, "after the storm", db, led.snapshot(), true)
}

// ledger is what the clients were acknowledged, recorded as it happens.
type ledger struct {
	mu        sync.Mutex
	leases    map[string][]stormsim.Ack // by MAC, in order
	regs      map[string]stormsim.Result
	approvals map[string]approval // answered 2xx, or written but unanswered
}

func (l *ledger) ack(mac string, a stormsim.Ack) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leases[mac] = append(l.leases[mac], a)
}

func (l *ledger) registered(r stormsim.Result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.regs[r.MAC] = r
}

func (l *ledger) approved(ap approval) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.approvals[ap.mac] = ap
}

func (l *ledger) counts() (regs, approvals int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.regs), len(l.approvals)
}

// snapshot copies the ledger.
func (l *ledger) snapshot() *ledger {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := &ledger{leases: map[string][]stormsim.Ack{}, regs: maps.Clone(l.regs), approvals: maps.Clone(l.approvals)}
	for mac, acks := range l.leases {
		c.leases[mac] = slices.Clone(acks)
	}
	return c
}

// checkAcknowledged compares what the clients were acknowledged with the
// store. final: the storm is over, so the audit log must hold exactly the
// acknowledged actions (at the crash, writes whose answer was lost may
// add some).
func checkAcknowledged(t *testing.T, when string, db *store.DB, led *ledger, final bool) {
	t.Helper()
	errorf := func(format string, args ...any) { t.Errorf(when+": "+format, args...) }
	leases, err := db.ListLeases("storm")
	must(t, err)
	leaseOf := map[string]netip.Addr{}
	holder := map[netip.Addr]string{}
	for _, l := range leases {
		if other, ok := holder[l.IP]; ok {
			errorf("address %s is leased to %s and %s", l.IP, other, l.MAC)
		}
		holder[l.IP] = l.MAC
		leaseOf[l.MAC] = l.IP
	}
	audit := readAudit(t, db)
	acked := map[netip.Addr]string{}
	nAcks, unanswered := 0, 0
	for mac, acks := range led.leases {
		nAcks += len(acks)
		for _, ack := range acks {
			if ack.IP != acks[0].IP {
				errorf("%s was acknowledged %s, then %s (%s): the first lease was lost", mac, acks[0].IP, ack.IP, ack.Firmware)
			}
			if other, ok := acked[ack.IP]; ok && other != mac {
				errorf("address %s was acknowledged to %s and to %s", ack.IP, other, mac)
			}
			acked[ack.IP] = mac
		}
		if last := acks[len(acks)-1].IP; leaseOf[mac] != last {
			errorf("%s was acknowledged %s; the store has %s", mac, last, leaseText(leaseOf, mac))
		}
		// A lease on a discovery segment is only acknowledged once the
		// machine's discovered record is written.
		m, err := db.GetMachine(mac)
		if err != nil {
			errorf("%s was acknowledged a lease on a discovery segment but has no record: %v", mac, err)
			continue
		}
		want := []string{"discover"}
		if r, ok := led.regs[mac]; ok {
			want = append(want, "register")
			checkRegistered(t, errorf, db, r, m, audit[mac])
		}
		if ap, ok := led.approvals[mac]; ok {
			want = append(want, "approve")
			// An approval with a netboot profile is two writes: approved,
			// then ready. A crash between them leaves the machine
			// approved (it boots production all the same, and its agent's
			// report makes it ready); an acknowledged approval made both.
			state := m.State == store.StateReady || ap.unanswered && m.State == store.StateApproved
			if !state || m.Hostname != ap.hostname || m.Cluster != "rack1" {
				errorf("%s's approval was acknowledged; the record is %s %q in %q", mac, m.State, m.Hostname, m.Cluster)
			}
			if ap.unanswered {
				unanswered++
				if m.State == store.StateApproved {
					t.Logf("%s: %s: approval written, its answer lost in the crash: left approved, not ready", when, mac)
				}
			}
		}
		checkAuditTrail(errorf, mac, audit[mac], want, m.Revision, final)
	}
	t.Logf("%s: %d acknowledged leases of %d machines, %d registrations, %d approvals (%d written but unanswered) found in the store with their %d audit entries",
		when, nAcks, len(led.leases), len(led.regs), len(led.approvals), unanswered, countEntries(audit))
}

// checkRegistered: an acknowledged registration is in the record and its
// audit entry, made from the machine's leased address.
func checkRegistered(t *testing.T, errorf func(string, ...any), db *store.DB, r stormsim.Result, m store.Machine, entries []store.AuditEntry) {
	t.Helper()
	if !bytes.Contains(m.Inventory, []byte(`"`+r.Serial+`"`)) {
		errorf("%s's registration was acknowledged; its inventory (serial %s) is not the record's", r.MAC, r.Serial)
	}
	detail := "session " + r.Session[:8] + " from " + r.IP.String()
	if !slices.ContainsFunc(entries, func(e store.AuditEntry) bool {
		return e.Action == "register" && strings.HasPrefix(e.Detail, detail)
	}) {
		errorf("%s: no register entry for the acknowledged registration (%s)", r.MAC, detail)
	}
	switch m.State {
	case store.StateReady:
		return // an approval with a netboot profile ends the sessions
	case store.StateInventoried, store.StateApproved:
	default:
		errorf("%s's registration was acknowledged; the machine is %s", r.MAC, m.State)
	}
	sessions, err := db.MachineSessions(r.MAC)
	must(t, err)
	if !slices.ContainsFunc(sessions, func(s store.Session) bool { return s.ID == r.Session && s.Remote == r.IP.String() }) {
		errorf("%s's registration (session %s from %s) was acknowledged; the store has %d other sessions", r.MAC, r.Session, r.IP, len(sessions))
	}
}

// readAudit reads the whole audit log oldest first, checks that its ids
// grow, and returns it by MAC.
func readAudit(t *testing.T, db *store.DB) map[string][]store.AuditEntry {
	t.Helper()
	out := map[string][]store.AuditEntry{}
	after := ""
	for {
		page, err := db.AuditAfter(after, 1000)
		must(t, err)
		if len(page) == 0 {
			return out
		}
		for _, e := range page {
			if e.ID <= after {
				t.Fatalf("audit ids do not grow: %s after %s", e.ID, after)
			}
			after = e.ID
			if e.MAC != "" {
				out[e.MAC] = append(out[e.MAC], e)
			}
		}
	}
}

func countEntries(m map[string][]store.AuditEntry) int {
	n := 0
	for _, es := range m {
		n += len(es)
	}
	return n
}

// checkAuditTrail: a machine's entries begin with its one discover entry
// at revision 1 and hold the acknowledged actions in order; the revisions
// they made grow, up to the record's. Writes that are not audited
// (sightings) also bump a machine's revision, so revisions may skip, but
// never repeat or go back. An acknowledged action without its entry is a
// gap. final: the storm is over and every write was answered or its
// answer checked, so the actions audited are exactly those acknowledged.
func checkAuditTrail(errorf func(string, ...any), mac string, entries []store.AuditEntry, want []string, revision uint64, final bool) {
	var got []string
	var last uint64
	for _, e := range entries {
		switch e.Action {
		case "discover", "register", "approve":
			got = append(got, e.Action)
		}
		if e.Revision != 0 && e.Revision <= last {
			errorf("%s: audit entry %s (%s) made revision %d after an entry that made %d", mac, e.ID, e.Action, e.Revision, last)
		}
		last = max(last, e.Revision)
	}
	if len(entries) == 0 || entries[0].Action != "discover" || entries[0].Revision != 1 {
		errorf("%s: the audit log does not begin with its discover entry at revision 1: %+v", mac, entries)
	}
	if final && !slices.Equal(got, want) || !final && !isSubsequence(want, got) {
		errorf("%s: audited %v, acknowledged %v", mac, got, want)
	}
	if last > revision {
		errorf("%s: the audit log has revision %d, the record %d", mac, last, revision)
	}
}

// isSubsequence reports whether sub appears in s in order.
func isSubsequence(sub, s []string) bool {
	i := 0
	for _, v := range s {
		if i < len(sub) && v == sub[i] {
			i++
		}
	}
	return i == len(sub)
}

// approval is an administrator's approval of a registered machine.
type approval struct {
	mac, hostname string
	// unanswered: the approval was written but its answer lost in the
	// crash; sent again, it found the machine approved (409).
	unanswered bool
}

// approver approves registered machines through the API, as an
// administrator typing each console's token, a few at once; a request
// that gets no answer (the appliance is down) is sent again.
type approver struct {
	ctx   context.Context
	led   *ledger
	queue chan stormsim.Result
	wg    sync.WaitGroup
	mu    sync.Mutex
	fails []string
}

func newApprover(ctx context.Context, workers int, led *ledger) *approver {
	ap := &approver{ctx: ctx, led: led, queue: make(chan stormsim.Result, crashMachines)}
	for range workers {
		ap.wg.Add(1)
		go func() {
			defer ap.wg.Done()
			for r := range ap.queue {
				ap.one(r)
			}
		}()
	}
	return ap
}

func (ap *approver) approve(r stormsim.Result) { ap.queue <- r }

// wait ends the queue and returns the approvals that were refused.
func (ap *approver) wait() []string {
	close(ap.queue)
	ap.wg.Wait()
	return ap.fails
}

func (ap *approver) one(r stormsim.Result) {
	res := approval{mac: r.MAC, hostname: fmt.Sprintf("node-%04d", r.Index)}
	body, _ := json.Marshal(map[string]string{"token": r.Console, "cluster": "rack1", "hostname": res.hostname})
	hc := &http.Client{Timeout: 20 * time.Second}
	for try := 1; ap.ctx.Err() == nil; try++ {
		req, _ := http.NewRequestWithContext(ap.ctx, http.MethodPost, crashBase+"/api/v1/machines/"+r.MAC+"/approve", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		switch {
		case resp.StatusCode >= 500:
			time.Sleep(200 * time.Millisecond)
			continue
		case resp.StatusCode/100 == 2:
			ap.led.approved(res)
		case resp.StatusCode == http.StatusConflict && try > 1:
			// Written, but the answer never reached the administrator
			// (the SIGKILL came between); sent again, it finds the
			// machine approved. Not acknowledged, but the 409 says it was
			// written: checked like the others, except for the move to
			// ready (see checkAcknowledged).
			res.unanswered = true
			ap.led.approved(res)
		default:
			ap.mu.Lock()
			ap.fails = append(ap.fails, fmt.Sprintf("%s: approval answered %d (try %d): %s", r.MAC, resp.StatusCode, try, answer))
			ap.mu.Unlock()
		}
		return
	}
}

// leaseText says what lease the store has for mac.
func leaseText(leases map[string]netip.Addr, mac string) string {
	if ip, ok := leases[mac]; ok {
		return "its lease on " + ip.String()
	}
	return "no lease for it"
}
