package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// relayNet is the addressing of a relayed DHCP benchmark: perfdhcp plays
// a relay agent at router (the giaddr) in its own namespace, linked to the
// servers' interface, which has the address server.
type relayNet struct {
	ns, iface             string
	subnet, router        string
	server, first, last   string
	serverCIDR, relayCIDR string
}

// newRelayNet creates the relay namespace and its link: a /16 whose
// 25,600-address pool is larger than any client count used here.
func newRelayNet(b *testing.B) relayNet {
	b.Helper()
	n := relayNet{
		iface: "rl0", subnet: "10.88.0.0/16", router: "10.88.0.1", server: "10.88.0.254",
		first: "10.88.1.0", last: "10.88.100.255",
		serverCIDR: "10.88.0.254/16", relayCIDR: "10.88.0.1/16",
	}
	n.ns = netns(b, "relay")
	veth(b, n.iface, n.serverCIDR, n.ns, n.relayCIDR)
	return n
}

// target is a server under perfdhcp load: its process, and the perfdhcp
// arguments that aim at it (Kea's port).
type target struct {
	name string
	d    *daemon
	args []string
}

func foundryTarget(d *daemon) target { return target{name: "foundry", d: d} }

func keaTarget(d *daemon) target {
	return target{name: "kea", d: d, args: []string{"-N", fmt.Sprint(keaPort)}}
}

// perfdhcp runs perfdhcp against t through n's relay.
func (t target) perfdhcp(ctx context.Context, n relayNet, args ...string) (perfResult, string, error) {
	return runPerfdhcp(ctx, n, append(slices.Clone(t.args), args...)...)
}

// exchange is perfdhcp's statistics for one message pair (DISCOVER-OFFER
// or REQUEST-ACK).
type exchange struct {
	Sent, Received, Drops int
	Min, Avg, Max         time.Duration
	// Delays holds each answered packet's delay, printed with -x t.
	Delays []time.Duration
}

// percentile returns the p-th percentile (0-100) of the delays, or 0.
func (e exchange) percentile(p float64) time.Duration {
	if len(e.Delays) == 0 {
		return 0
	}
	d := slices.Clone(e.Delays)
	slices.Sort(d)
	i := int(float64(len(d)-1) * p / 100)
	return d[i]
}

// perfResult is what one perfdhcp run reported.
type perfResult struct {
	// Rate is completed 4-way exchanges (DORA) per second.
	Rate   float64
	DO, RA exchange
	// Took and Clients: avalanche scenario, the time to provision them all.
	Took    time.Duration
	Clients int
	// Resent: avalanche scenario, retransmitted requests.
	Resent int
}

// dropPct is the share of exchanges started that did not complete.
func (r perfResult) dropPct() float64 {
	if r.DO.Sent == 0 {
		return 100
	}
	return 100 * float64(r.DO.Sent-r.RA.Received) / float64(r.DO.Sent)
}

// runPerfdhcp runs perfdhcp in n's relay namespace as a relay at n.router,
// aimed at n.server. Exit status 3 (some exchanges unfinished) is a result,
// not an error.
func runPerfdhcp(ctx context.Context, n relayNet, args ...string) (perfResult, string, error) {
	full := append([]string{"-4", "-l", n.router}, args...)
	full = append(full, n.server)
	out, err := command(ctx, n.ns, "perfdhcp", full...).CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 3) {
		return perfResult{}, string(out), fmt.Errorf("perfdhcp %v: %w", full, err)
	}
	r, perr := parsePerfdhcp(string(out))
	if perr != nil {
		return r, string(out), fmt.Errorf("perfdhcp %v: %w", full, perr)
	}
	return r, string(out), nil
}

// parsePerfdhcp reads perfdhcp's (Kea 2.2) final report.
func parsePerfdhcp(out string) (perfResult, error) {
	var r perfResult
	var cur *exchange
	seen := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "***"):
			cur = nil
			if strings.Contains(line, "DISCOVER-OFFER") {
				cur = &r.DO
			} else if strings.Contains(line, "REQUEST-ACK") {
				cur = &r.RA
			}
			if cur != nil && strings.HasPrefix(line, "***Statistics") {
				seen++
			}
			continue
		case strings.HasPrefix(line, "It took "):
			f := strings.Fields(line)
			if len(f) < 6 {
				return r, fmt.Errorf("bad line %q", line)
			}
			took, err := parseClock(f[2])
			if err != nil {
				return r, err
			}
			r.Took = took
			r.Clients, _ = strconv.Atoi(f[5])
			continue
		}
		key, val, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		num := func() float64 {
			v, _ := strconv.ParseFloat(strings.Fields(val + " 0")[0], 64)
			return v
		}
		ms := func() time.Duration { return time.Duration(num() * float64(time.Millisecond)) }
		switch {
		case key == "Rate":
			r.Rate = num()
		case key == "Requests resent":
			r.Resent = int(num())
		case cur == nil:
		case key == "sent packets":
			cur.Sent = int(num())
		case key == "received packets":
			cur.Received = int(num())
		case key == "drops":
			cur.Drops = int(num())
		case key == "min delay":
			cur.Min = ms()
		case key == "avg delay":
			cur.Avg = ms()
		case key == "max delay":
			cur.Max = ms()
		case key == "sent / received":
			sent, rcvd, ok := strings.Cut(val, " / ")
			s, err1 := parseStamp(sent)
			v, err2 := parseStamp(rcvd)
			if !ok || err1 != nil || err2 != nil {
				return r, fmt.Errorf("bad timestamp line %q", line)
			}
			cur.Delays = append(cur.Delays, v-s)
		}
	}
	if seen != 2 {
		return r, fmt.Errorf("report has %d of the 2 exchange statistics (DO, RA)", seen)
	}
	return r, nil
}

// parseStamp reads a -x t timestamp, a duration printed as HHMMSS.ffffff.
func parseStamp(s string) (time.Duration, error) {
	whole, frac, _ := strings.Cut(strings.TrimSpace(s), ".")
	if len(whole) < 6 {
		return 0, fmt.Errorf("bad timestamp %q", s)
	}
	h, err1 := strconv.Atoi(whole[:len(whole)-4])
	m, err2 := strconv.Atoi(whole[len(whole)-4 : len(whole)-2])
	sec, err3 := strconv.ParseFloat(whole[len(whole)-2:]+"."+frac, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return 0, fmt.Errorf("bad timestamp %q: %w", s, err)
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec*float64(time.Second)), nil
}

// parseClock reads HH:MM:SS.ffffff.
func parseClock(s string) (time.Duration, error) {
	f := strings.Split(s, ":")
	if len(f) != 3 {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	return parseStamp(f[0] + f[1] + f[2])
}
