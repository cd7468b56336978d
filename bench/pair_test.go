package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/foundry-appliance/foundry/store"
	"github.com/foundry-appliance/foundry/store/kv"
	"github.com/foundry-appliance/foundry/store/kv/etcdtest"
)

// The pair's segment: a bridge in the test's namespace joins perfdhcp's
// relay namespace and one namespace per pair member, each with its own
// address (a member's server identifier is its address, so two members
// must not share one). The test's namespace has pairHost on the bridge:
// the etcd cluster listens there. Kea's pair listens on keaPort, Foundry's
// on 67, so both pairs sit on the one segment as both servers of
// BenchmarkDHCPThroughput share one interface.
const (
	pairBridge = "pb0"
	pairSubnet = "10.87.0.0/16"
	pairRelay  = "10.87.0.1"
	pairHost   = "10.87.0.2"
	pairFirst  = "10.87.1.0"
	pairLast   = "10.87.100.255"
	// pairHalf ends the first half of the range (12,800 addresses each).
	pairHalf, pairHalfNext = "10.87.50.255", "10.87.51.0"
	// pairBroadcast is where the relay sends: every member on the segment
	// hears each packet, as from a relay configured with both servers'
	// addresses, which perfdhcp cannot be (it sends to one address).
	pairBroadcast = "255.255.255.255"
	// pairPeerDelay is the failover time set for both pairs: longer than
	// any stall a loaded 2-core machine gives a heartbeat, so that the
	// measured pair stays a pair (checked after the runs).
	pairPeerDelay = 10 * time.Second
	// warmRate is the warm-up's offered rate.
	warmRate = 500
)

// pairMember is one server of a pair: its namespace, address, process and
// where it answers HTTP (Kea: the HA hook's own listener; Foundry: its API).
type pairMember struct {
	name, ns, addr, url string
	d                   *daemon
	leases              string // Kea's lease file
}

// newPairSegment creates the bridge, perfdhcp's relay namespace on it, and
// returns the relay addressing runPerfdhcp uses: perfdhcp (-B) sends each
// relayed packet to the broadcast address, from the giaddr pairRelay.
func newPairSegment(b *testing.B) relayNet {
	b.Helper()
	run(b, "", "ip", "link", "add", pairBridge, "type", "bridge")
	// Registered first, so removed last, after the veths on it.
	b.Cleanup(func() { command(context.Background(), "", "ip", "link", "del", pairBridge).Run() })
	run(b, "", "ip", "addr", "add", pairHost+"/16", "dev", pairBridge)
	run(b, "", "ip", "link", "set", pairBridge, "up")
	n := relayNet{ns: netns(b, "prelay"), iface: "eth0", subnet: pairSubnet, router: pairRelay,
		server: pairBroadcast, first: pairFirst, last: pairLast}
	joinSegment(b, "pv-relay", n.ns, pairRelay)
	return n
}

// joinSegment links namespace ns to the bridge: interface eth0 there with
// addr, port (the bridge's side) here.
func joinSegment(b *testing.B, port, ns, addr string) {
	b.Helper()
	veth(b, port, "", ns, addr+"/16")
	run(b, "", "ip", "link", "set", port, "master", pairBridge)
}

// newPairMember makes a member's namespace on the segment.
func newPairMember(b *testing.B, name, addr string) pairMember {
	b.Helper()
	m := pairMember{name: name, ns: netns(b, name), addr: addr}
	joinSegment(b, "pv-"+name, m.ns, addr)
	return m
}

// keaHooks finds Debian's Kea hook libraries (their directory has the
// multiarch triplet in it).
func keaHooks(b *testing.B) (leaseCmds, ha string) {
	b.Helper()
	for _, dir := range []string{"/usr/lib/x86_64-linux-gnu/kea/hooks", "/usr/lib/aarch64-linux-gnu/kea/hooks", "/usr/lib/kea/hooks"} {
		lc, h := filepath.Join(dir, "libdhcp_lease_cmds.so"), filepath.Join(dir, "libdhcp_ha.so")
		if _, err := os.Stat(h); err == nil {
			if _, err := os.Stat(lc); err == nil {
				return lc, h
			}
		}
	}
	b.Skip("Kea's HA hook (libdhcp_ha.so, libdhcp_lease_cmds.so; Debian's kea-dhcp4-server) is not installed")
	return "", ""
}

// keaPairConfig is one member of a Kea HA pair in load-balancing mode:
// the subnet and pool of BenchmarkDHCPThroughput's Kea, memfile with
// persist: true and no lease file cleanup, and the HA hook with its own
// HTTP listener (Kea 2.2 needs multi-threading for that; without it the
// partners talk through kea-ctrl-agent, which Debian packages apart).
// Thread counts are Kea's defaults: as many as cores. Each lease a member
// gives is sent to the partner (lease4-update over HTTP) and the client
// is answered when the partner has acknowledged it — the pair's analogue
// of Foundry's etcd commit. Raw sockets: Kea's UDP socket is bound to the
// interface's address and does not receive the relay's broadcasts.
func keaPairConfig(self pairMember, peers [2]pairMember, leaseCmds, ha, leases string) ([]byte, error) {
	peer := func(m pairMember, role string) map[string]any {
		return map[string]any{"name": m.name, "url": m.url, "role": role, "auto-failover": true}
	}
	delay := pairPeerDelay.Milliseconds()
	return json.MarshalIndent(map[string]any{"Dhcp4": map[string]any{
		"interfaces-config": map[string]any{"interfaces": []string{"eth0"}, "dhcp-socket-type": "raw"},
		"lease-database":    map[string]any{"type": "memfile", "persist": true, "name": leases, "lfc-interval": 0},
		"valid-lifetime":    3600,
		"multi-threading":   map[string]any{"enable-multi-threading": true},
		"hooks-libraries": []any{
			map[string]any{"library": leaseCmds},
			map[string]any{"library": ha, "parameters": map[string]any{"high-availability": []any{map[string]any{
				"this-server-name": self.name, "mode": "load-balancing",
				// Heartbeats every second (default 10) only so that the
				// pair forms in seconds.
				"heartbeat-delay": 1000, "max-response-delay": delay, "max-ack-delay": delay / 2,
				"multi-threading": map[string]any{"enable-multi-threading": true, "http-dedicated-listener": true},
				"peers":           []any{peer(peers[0], "primary"), peer(peers[1], "secondary")},
			}}}},
		},
		// Each member leases from its own half of the range, as ISC's
		// load-balancing example does (the HA hook classes each packet
		// HA_<the server whose scope it is in>): with one shared pool both
		// members lease one address to two clients (the partner's lease
		// update then overwrites the lease; in a first version of this
		// benchmark 4,963 of 7,262 addresses had two MACs). Foundry's
		// pair splits its range the same way.
		"subnet4": []any{map[string]any{"subnet": pairSubnet, "pools": []any{
			map[string]any{"pool": pairFirst + " - " + pairHalf, "client-class": "HA_" + peers[0].name},
			map[string]any{"pool": pairHalfNext + " - " + pairLast, "client-class": "HA_" + peers[1].name},
		}, "option-data": []any{map[string]any{"name": "routers", "data": pairRelay}}}},
		"loggers": []any{
			map[string]any{"name": "kea-dhcp4", "severity": "WARN", "output_options": []any{map[string]any{"output": "stdout"}}},
			// The HA state transitions, for a pair that did not form.
			map[string]any{"name": "kea-dhcp4.ha-hooks", "severity": "INFO", "output_options": []any{map[string]any{"output": "stdout"}}},
		},
	}}, "", "  ")
}

// startKeaPair starts two kea-dhcp4 in HA load-balancing on keaPort and
// waits until both say they are load balancing (status-get).
func startKeaPair(b *testing.B) [2]pairMember {
	b.Helper()
	leaseCmds, ha := keaHooks(b)
	ms := [2]pairMember{newPairMember(b, "ka", "10.87.0.21"), newPairMember(b, "kb", "10.87.0.22")}
	for i := range ms {
		ms[i].url = "http://" + ms[i].addr + ":8001/"
	}
	for i := range ms {
		dir := b.TempDir()
		ms[i].leases = filepath.Join(dir, "leases4.csv")
		cfg, err := keaPairConfig(ms[i], ms, leaseCmds, ha, ms[i].leases)
		must(b, err)
		path := filepath.Join(dir, "kea-dhcp4.json")
		must(b, os.WriteFile(path, cfg, 0o644))
		ms[i].d = startDaemonIn(b, ms[i].ns, "kea-dhcp4 "+ms[i].name, []string{"KEA_PIDFILE_DIR=" + dir, "KEA_LOCKFILE_DIR=" + dir},
			"kea-dhcp4", "-p", fmt.Sprint(keaPort), "-c", path)
	}
	for _, m := range ms {
		waitFor(b, m.d, 60*time.Second, func() bool {
			st, err := keaHAState(m.url)
			return err == nil && st == "load-balancing"
		})
	}
	return ms
}

// keaCommand sends a command to a Kea server's HA listener and returns
// the arguments of its one answer.
func keaCommand(url, cmd string, args any) (json.RawMessage, error) {
	body, err := json.Marshal(map[string]any{"command": cmd, "arguments": args})
	if err != nil {
		return nil, err
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var answers []struct {
		Result    int             `json:"result"`
		Text      string          `json:"text"`
		Arguments json.RawMessage `json:"arguments"`
	}
	if err := json.Unmarshal(raw, &answers); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", cmd, err, raw)
	}
	if len(answers) != 1 || answers[0].Result != 0 {
		return nil, fmt.Errorf("%s: %s", cmd, raw)
	}
	return answers[0].Arguments, nil
}

// keaHAState is the member's own HA state (status-get).
func keaHAState(url string) (string, error) {
	raw, err := keaCommand(url, "status-get", nil)
	if err != nil {
		return "", err
	}
	var st struct {
		HA []struct {
			Servers struct {
				Local struct {
					State string `json:"state"`
				} `json:"local"`
			} `json:"ha-servers"`
		} `json:"high-availability"`
	}
	if err := json.Unmarshal(raw, &st); err != nil || len(st.HA) != 1 {
		return "", fmt.Errorf("status-get: %v: %s", err, raw)
	}
	return st.HA[0].Servers.Local.State, nil
}

// keaACKs is how many DHCPACKs the member has sent (statistic-get
// pkt4-ack-sent; its newest sample comes first).
func keaACKs(url string) (int, error) {
	raw, err := keaCommand(url, "statistic-get", map[string]string{"name": "pkt4-ack-sent"})
	if err != nil {
		return 0, err
	}
	var st map[string][][2]json.RawMessage
	if err := json.Unmarshal(raw, &st); err != nil || len(st["pkt4-ack-sent"]) == 0 {
		return 0, fmt.Errorf("statistic-get: %v: %s", err, raw)
	}
	return strconv.Atoi(string(st["pkt4-ack-sent"][0][0]))
}

// keaPairLeases reads both members' lease files (an append log: one line
// per lease update, the address first, the MAC second, the state tenth;
// each member holds the partner's leases too, from its lease updates) and
// returns the addresses leased in each, and those leased to more than one
// MAC in the two together.
func keaPairLeases(b *testing.B, ms [2]pairMember) (each [2]int, shared int) {
	b.Helper()
	holders := map[string]map[string]bool{}
	for i, m := range ms {
		raw, err := os.ReadFile(m.leases)
		must(b, err)
		seen := map[string]bool{}
		for _, line := range strings.Split(string(raw), "\n") {
			f := strings.Split(line, ",")
			if len(f) < 10 || f[0] == "address" || f[9] != "0" { // 0: default; 1 declined, 2 reclaimed
				continue
			}
			seen[f[0]] = true
			if holders[f[0]] == nil {
				holders[f[0]] = map[string]bool{}
			}
			holders[f[0]][f[1]] = true
		}
		each[i] = len(seen)
	}
	for _, macs := range holders {
		if len(macs) > 1 {
			shared++
		}
	}
	return each, shared
}

// foundryHA is the dhcp.ha section of a Foundry pair member (see
// cmd/foundry/config_ha.go).
func foundryHA(self, peer pairMember, role string) string {
	return fmt.Sprintf(`  ha:
    name: %s
    peer: %s
    role: %s
    failover_after: %s
`, self.name, peer.name, role, pairPeerDelay)
}

// etcdStore is the store section of an appliance on the cluster, its keys
// under prefix.
func etcdStore(endpoints []string, prefix string) string {
	return fmt.Sprintf("store:\n  backend: etcd\n  etcd:\n    endpoints: [%s]\n    prefix: %s\n", strings.Join(endpoints, ", "), prefix)
}

// foundryPairMember is a Foundry pair member's configuration: the API on
// its own address (the benchmark reads its metrics from the test's
// namespace), the store on the etcd cluster, and the relayed segment of
// BenchmarkDHCPThroughput over the pair's subnet, received on eth0.
func foundryPairMember(m pairMember, store, ha string) string {
	return fmt.Sprintf(`http:
  listen: "%[1]s:8080"
  advertise: "http://%[1]s:8080"
tftp:
  listen: "127.0.0.1:69"
%[2]sdhcp:
  relay_interfaces: [eth0]
%[3]ssegments:
  - name: bench
    relayed: true
    subnet: %[4]s
    range: [%[5]s, %[6]s]
    router: %[7]s
    allow_unknown: true
`, m.addr, store, ha, pairSubnet, pairFirst, pairLast, pairRelay)
}

// errNoPair: this build's foundry does not know dhcp.ha (the pair is not
// built yet).
var errNoPair = errors.New("foundry has no dhcp.ha")

// writeFoundryConfig writes m's foundry.yaml (data_dir and image_dir under
// a temporary directory) and checks it with `foundry check-config` in
// m's namespace.
func writeFoundryConfig(b *testing.B, m pairMember, cfg, images string) (string, error) {
	b.Helper()
	dir := b.TempDir()
	full := fmt.Sprintf("data_dir: %s\nimage_dir: %s\nlog_level: warn\n%s", filepath.Join(dir, "data"), images, cfg)
	path := filepath.Join(dir, "foundry.yaml")
	must(b, os.WriteFile(path, []byte(full), 0o644))
	out, err := command(context.Background(), m.ns, foundryBin(b), "check-config", "--config", path).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "field ha not found") {
			return "", fmt.Errorf("%w: %s", errNoPair, strings.TrimSpace(string(out)))
		}
		b.Fatalf("foundry check-config %s: %v\n%s\n%s", m.name, err, out, full)
	}
	return path, nil
}

// startFoundryMember runs `foundry serve` with the configuration at path
// in m's namespace and waits until its API answers.
func startFoundryMember(b *testing.B, m pairMember, path string) pairMember {
	b.Helper()
	m.url = "http://" + m.addr + ":8080"
	m.d = startDaemonIn(b, m.ns, "foundry "+m.name, []string{"FOUNDRY_ADMIN_TOKEN=fdy_bench-admin-token-0123456789abcdef"},
		foundryBin(b), "serve", "--config", path)
	waitFor(b, m.d, 30*time.Second, func() bool {
		resp, err := http.Get(m.url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return m
}

// foundryACKs reads the appliance's DHCPACK counter
// (foundry_dhcp_replies_total{type="ACK"}).
func foundryACKs(base string) (int, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, `foundry_dhcp_replies_total{type="ACK"} `); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int(f), err
		}
	}
	return 0, nil
}

// etcdLeases reads the leases under prefix straight from the cluster and
// returns how many there are and how many addresses two MACs hold.
func etcdLeases(b *testing.B, endpoints []string, prefix string) (leases, shared int) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := kv.OpenEtcd(ctx, kv.EtcdOptions{Endpoints: endpoints, Prefix: prefix})
	must(b, err)
	db, err := store.OpenEngine(e, store.Options{})
	must(b, err)
	defer db.Close()
	ls, err := db.ListLeases("")
	must(b, err)
	holders := map[netip.Addr]int{}
	for _, l := range ls {
		if l.Declined {
			continue
		}
		if holders[l.IP]++; holders[l.IP] == 2 {
			shared++
		}
	}
	return len(ls), shared
}

// etcdMembers are the etcd processes this benchmark started (etcdtest
// runs them as its children), as pid-only daemons.
func etcdMembers(b *testing.B) []*daemon {
	b.Helper()
	entries, err := os.ReadDir("/proc")
	must(b, err)
	var out []*daemon
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …
		s := string(raw)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open {
			continue
		}
		f := strings.Fields(s[close+1:])
		if s[open+1:close] == "etcd" && len(f) > 1 && f[1] == strconv.Itoa(os.Getpid()) {
			out = append(out, &daemon{name: "etcd", pid: pid})
		}
	}
	return out
}

// etcdStats are cluster counters from the members' /metrics: KV requests
// served (Range, Txn, Put, DeleteRange; each member counts its own
// clients'), of them transactions, raft proposals committed (the cluster's
// writes: the highest member's count) and WAL fsyncs (every member's).
type etcdStats struct{ requests, txns, proposals, walSyncs float64 }

func readEtcdStats(b *testing.B, endpoints []string) etcdStats {
	b.Helper()
	var st etcdStats
	c := http.Client{Timeout: 5 * time.Second}
	for _, ep := range endpoints {
		resp, err := c.Get(ep + "/metrics")
		must(b, err)
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		must(b, err)
		for _, line := range strings.Split(string(raw), "\n") {
			name, val, ok := strings.Cut(line, " ")
			if !ok || strings.HasPrefix(line, "#") {
				continue
			}
			v, err := strconv.ParseFloat(val, 64)
			if err != nil {
				continue
			}
			switch {
			case strings.HasPrefix(name, "grpc_server_handled_total{") && strings.Contains(name, `grpc_service="etcdserverpb.KV"`):
				for _, m := range []string{"Range", "Txn", "Put", "DeleteRange"} {
					if strings.Contains(name, `grpc_method="`+m+`"`) {
						st.requests += v
					}
				}
				if strings.Contains(name, `grpc_method="Txn"`) {
					st.txns += v
				}
			case name == "etcd_server_proposals_committed_total":
				st.proposals = max(st.proposals, v)
			case name == "etcd_disk_wal_fsync_duration_seconds_count":
				st.walSyncs += v
			}
		}
	}
	return st
}

func (s etcdStats) minus(o etcdStats) etcdStats {
	return etcdStats{s.requests - o.requests, s.txns - o.txns, s.proposals - o.proposals, s.walSyncs - o.walSyncs}
}

func (s etcdStats) plus(o etcdStats) etcdStats {
	return etcdStats{s.requests + o.requests, s.txns + o.txns, s.proposals + o.proposals, s.walSyncs + o.walSyncs}
}

// pairRun is one server (or pair) under the rate search, with the
// namespace perfdhcp aims from and the CPU its etcd members used.
type pairRun struct {
	*search
	net     relayNet
	members []pairMember
	etcd    []*daemon
	// endpoints: the etcd cluster's client URLs (nil for Kea).
	endpoints []string
	// Over all its steps: the etcd members' CPU and everything's (servers
	// and etcd), the etcd counters, and the DORAs completed.
	etcdCPU, allCPU time.Duration
	stats           etcdStats
	doras           int
	acks            []int // per member, after the runs
	warm            []trial
}

func (r *pairRun) step(b *testing.B) {
	b.Helper()
	var etcd0 time.Duration
	for _, e := range r.etcd {
		etcd0 += e.cpu()
	}
	all0, tried := r.d.cpu(), len(r.trials)
	var st0 etcdStats
	if r.endpoints != nil {
		st0 = readEtcdStats(b, r.endpoints)
	}
	r.search.step(b, r.net)
	if r.endpoints != nil {
		r.stats = r.stats.plus(readEtcdStats(b, r.endpoints).minus(st0))
	}
	for _, e := range r.etcd {
		r.etcdCPU += e.cpu()
	}
	r.etcdCPU -= etcd0
	r.allCPU += r.d.cpu() - all0
	for _, t := range r.trials[tried:] {
		r.doras += t.RA.Received
	}
}

// perDORA says what one completed DORA cost the etcd cluster, over all
// the runs.
func (r *pairRun) perDORA() string {
	if r.endpoints == nil || r.doras == 0 {
		return ""
	}
	d := float64(r.doras)
	return fmt.Sprintf("%s: per DORA completed, over all %d: %.1f etcd requests (%.1f transactions), %.1f raft writes, %.1f WAL fsyncs (3 members); etcd used %s of the CPU",
		r.name, r.doras, r.stats.requests/d, r.stats.txns/d, r.stats.proposals/d, r.stats.walSyncs/d, r.etcdShare())
}

func (r *pairRun) etcdShare() string {
	if len(r.etcd) == 0 || r.allCPU == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*float64(r.etcdCPU)/float64(r.allCPU))
}

func (r *pairRun) shares() string {
	if len(r.acks) < 2 {
		return "-"
	}
	total := r.acks[0] + r.acks[1]
	if total == 0 {
		return "none"
	}
	return fmt.Sprintf("%s %.0f%% / %s %.0f%%", r.members[0].name, 100*float64(r.acks[0])/float64(total),
		r.members[1].name, 100*float64(r.acks[1])/float64(total))
}

// BenchmarkDHCPPair finds the highest DORA rate a pair of DHCP servers on
// one segment sustains, each pair the way its makers pair it: Kea's HA
// hook in load-balancing mode (memfile, each lease sent to the partner
// before the client is answered), and two `foundry serve` sharing their
// leases in a 3-member etcd cluster (every lease an etcd transaction
// committed before the ACK) with an RFC 3074 MAC-hash split. One Foundry
// alone on the same etcd cluster shows what etcd costs without a pair.
// The rate search, clients and pass rule are BenchmarkDHCPThroughput's,
// and the servers are measured turn about.
func BenchmarkDHCPPair(b *testing.B) {
	needNetns(b, "perfdhcp", "kea-dhcp4")
	if _, err := os.Stat(etcdtest.DefaultBinary); err != nil {
		b.Skipf("%v (Debian's etcd-server; make deps installs it)", err)
	}
	seg := newPairSegment(b)
	b.ResetTimer()

	cluster := etcdtest.Start(b, etcdtest.Options{Members: 3, Host: pairHost})
	etcd := etcdMembers(b)
	if len(etcd) != 3 {
		b.Fatalf("found %d etcd member processes, want 3", len(etcd))
	}
	images := emptyImages(b)

	kea := startKeaPair(b)
	kea[0].d.group = []*daemon{kea[1].d}
	kr := &pairRun{search: &search{target: target{name: "kea pair (HA, memfile)", d: kea[0].d, args: []string{"-B", "-N", fmt.Sprint(keaPort)}}},
		net: seg, members: kea[:]}
	runs := []*pairRun{kr}

	// The Foundry pair, if this build has one.
	fa, fb := newPairMember(b, "fa", "10.87.0.11"), newPairMember(b, "fb", "10.87.0.12")
	var fr *pairRun
	paths := make([]string, 2)
	var pairErr error
	for i, m := range []pairMember{fa, fb} {
		peer, role := fb, "primary"
		if i == 1 {
			peer, role = fa, "secondary"
		}
		paths[i], pairErr = writeFoundryConfig(b, m, foundryPairMember(m, etcdStore(cluster.Endpoints(), "pair/"), foundryHA(m, peer, role)), images)
		if pairErr != nil {
			break
		}
	}
	if pairErr == nil {
		fa, fb = startFoundryMember(b, fa, paths[0]), startFoundryMember(b, fb, paths[1])
		fa.d.group = append([]*daemon{fb.d}, etcd...)
		fr = &pairRun{search: &search{target: target{name: "foundry pair (etcd x3)", d: fa.d, args: []string{"-B"}}},
			net: seg, members: []pairMember{fa, fb}, etcd: etcd, endpoints: cluster.Endpoints()}
		runs = append(runs, fr)
	}

	// One Foundry alone on the same cluster, on BenchmarkDHCPThroughput's
	// relay link and unicast to (on the pair's segment it would hear the
	// pair's broadcasts too): the etcd cost without a pair.
	single := newRelayNet(b)
	sd, _ := startFoundry(b, foundryRelayed(single, "bench", false)+etcdStore(cluster.Endpoints(), "single/"), images)
	sd.group = etcd
	sr := &pairRun{search: &search{target: target{name: "foundry alone (etcd x3)", d: sd}}, net: single, etcd: etcd, endpoints: cluster.Endpoints()}
	runs = append(runs, sr)

	// BenchmarkDHCPThroughput's warm-up. A pair on etcd sustains a few
	// hundred DORA/s on this machine, where the search from startRate
	// spends two failing runs on each of 2000, 1000 and 500/s: a warm-up
	// that fails twice counts as the search's failed step at its rate, and
	// the search goes on below it.
	for _, r := range runs {
		if !r.trial(b, r.net, warmRate).ok() && !r.trial(b, r.net, warmRate).ok() {
			r.hi, r.rate = warmRate, warmRate/2
		}
		r.warm, r.trials = r.trials, nil
	}
	for {
		busy := false
		for _, r := range runs {
			if !r.done {
				r.step(b)
				busy = true
			}
		}
		if !busy {
			break
		}
	}
	b.StopTimer()

	// Both members of each pair must still be a pair, and both must have
	// served; no address may be leased twice.
	var checks []string
	var states []string
	for _, m := range kea {
		st, err := keaHAState(m.url)
		if err != nil || st != "load-balancing" {
			b.Errorf("kea %s after the runs: state %q, %v", m.name, st, err)
		}
		states = append(states, m.name+" "+st)
		n, err := keaACKs(m.url)
		must(b, err)
		kr.acks = append(kr.acks, n)
	}
	each, shared := keaPairLeases(b, kea)
	checks = append(checks, fmt.Sprintf("kea pair: %s after the runs; addresses in the lease files %s %d, %s %d (each holds the partner's too); leased to two MACs: %d",
		strings.Join(states, ", "), kea[0].name, each[0], kea[1].name, each[1], shared))
	if shared > 0 || each[0] == 0 || each[1] == 0 {
		b.Errorf("kea pair: %d addresses leased twice, lease files %v", shared, each)
	}
	if fr != nil {
		for _, m := range fr.members {
			n, err := foundryACKs(m.url)
			must(b, err)
			fr.acks = append(fr.acks, n)
			checks = append(checks, fmt.Sprintf("foundry %s's DHCP drops and limits (peer: the other member's DISCOVERs; silent: REQUESTs for its offers): %s", m.name, dhcpDrops(m.url)))
		}
		fa.d.stop()
		fb.d.stop()
		leases, shared := etcdLeases(b, cluster.Endpoints(), "pair/")
		checks = append(checks, fmt.Sprintf("foundry pair: %d leases in etcd, addresses leased to two MACs: %d", leases, shared))
		if shared > 0 || leases == 0 {
			b.Errorf("foundry pair: %d leases in etcd, %d addresses leased twice", leases, shared)
		}
	}
	for i, a := range append(append([]int(nil), kr.acks...), fr.acksOrNil()...) {
		if a == 0 {
			b.Errorf("member %d of a pair sent no ACK: the pair did not share the load", i)
		}
	}
	checks = append(checks, fmt.Sprintf("foundry alone's DHCP drops and limits: %s", dhcpDrops("http://127.0.0.1:8080")))

	var sb strings.Builder
	fmt.Fprintf(&sb, "relayed DORA sent to the segment's broadcast address (both members of a pair hear it), perfdhcp -R %d, %d s per step, a step passes at <= %.0f%% lost\n",
		benchClients, trialSeconds, passDrops)
	w := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "servers\tsustained DORA/s\tlost %\tpeak DORA/s\tACK avg\tCPU ms/1000 DORA\tof it etcd\tACKs per member\tbusy after a run")
	for _, r := range runs {
		sustained := fmt.Sprintf("%.0f", r.best.Rate)
		if r.capped {
			sustained = ">=" + sustained
		}
		fmt.Fprintf(w, "%s\t%s\t%.2f\t%.0f\t%v\t%.0f\t%s\t%s\t%v\n", r.name, sustained, r.best.dropPct(), r.peak,
			r.best.RA.Avg.Round(time.Microsecond), r.cpuPer1000(), r.etcdShare(), r.shares(), r.drain.Round(10*time.Millisecond))
	}
	if fr == nil {
		fmt.Fprintf(w, "foundry pair\tnot built yet: %v\n", pairErr)
	}
	w.Flush()
	ratio := 0.0
	if fr != nil && kr.best.Rate > 0 {
		ratio = fr.best.Rate / kr.best.Rate
		fmt.Fprintf(&sb, "foundry pair/kea pair sustained: %.2f\n", ratio)
	} else {
		fmt.Fprintln(&sb, "foundry pair/kea pair sustained: not measured (no foundry pair in this build)")
	}
	if sr.best.Rate > 0 && fr != nil {
		fmt.Fprintf(&sb, "foundry pair/foundry alone on etcd: %.2f\n", fr.best.Rate/sr.best.Rate)
	}
	for _, r := range runs {
		var steps []string
		for _, t := range r.warm {
			steps = append(steps, "warm-up "+t.String())
		}
		for _, t := range r.trials {
			steps = append(steps, t.String())
		}
		fmt.Fprintf(&sb, "%s runs: %s\n", r.name, strings.Join(steps, ", "))
	}
	for _, r := range runs {
		if line := r.perDORA(); line != "" {
			fmt.Fprintln(&sb, line)
		}
	}
	fmt.Fprintln(&sb, "kea pair: per DORA, one lease update to the partner over HTTP, written by both to their lease files without a sync")
	for _, c := range checks {
		fmt.Fprintln(&sb, c)
	}
	report(b, sb.String())

	b.ReportMetric(0, "ns/op")
	b.ReportMetric(kr.best.Rate, "kea-pair-DORA/s")
	b.ReportMetric(sr.best.Rate, "foundry-etcd-DORA/s")
	if fr != nil {
		b.ReportMetric(fr.best.Rate, "foundry-pair-DORA/s")
		b.ReportMetric(ratio, "foundry-pair/kea-pair")
	}
}

// acksOrNil is the members' ACK counts of a run that may not exist.
func (r *pairRun) acksOrNil() []int {
	if r == nil {
		return nil
	}
	return r.acks
}
