// Package stormsim simulates a boot storm: many machines powering on at
// once on one provisioning segment and doing the whole discovery boot
// against a real `foundry serve` — the PXE ROM's DHCP exchange, TFTP of
// the iPXE binary, iPXE's own DHCP exchange, the boot script over HTTP,
// and the discovery agent's signed registration with a realistic
// inventory. The crash test (test/crash_test.go) and the full-storm
// benchmark (bench/fullstorm_test.go) drive it.
//
// Each machine has its own MAC and appears from the address it was
// leased: the appliance gives a boot nonce only to the address its DHCP
// server has just acknowledged (package bootgrant), so the chain of trust
// is exercised as a real machine exercises it. The machines live in a
// network namespace of their own behind a veth (Link); their DHCP frames
// go out of one packet socket with their own source MACs, and their TFTP
// and HTTP sockets are bound to their leased addresses, which the
// namespace treats as local (LinkConfig.Leases).
//
// A machine behaves as firmware and the agent do when something fails: a
// DHCP message is sent again after 4, 8, 16 and 32 s; a failed TFTP
// transfer, a failed script fetch, a DHCP exchange that never completes
// or a refused registration (401, 403) make it reboot and start over; a
// registration that fails otherwise (no connection, 5xx) is sent again
// with the same nonce and key, as the agent does. What each machine was
// acknowledged — every DHCPACK, the registration's 2xx — is in its
// Result, so that a test can check that the appliance kept it.
//
// Usage:
//
//	link, err := stormsim.NewLink(stormsim.LinkConfig{HostIface: "st0",
//		Server: netip.MustParsePrefix("10.99.0.1/16"), Client: netip.MustParseAddr("10.99.0.2"),
//		Leases: netip.MustParsePrefix("10.99.64.0/18")})
//	// … start `foundry serve` with a discovery segment on st0 …
//	sim := &stormsim.Sim{Link: link, BaseURL: "http://10.99.0.1:8080", BootFileData: kpxe}
//	rep, err := sim.Run(ctx, stormsim.MACs(1, 1000))
package stormsim

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/foundry-appliance/foundry/agentwire"
	"github.com/foundry-appliance/foundry/discovery-os/token"
)

// Defaults for Sim's zero fields.
const (
	DefaultConcurrency = 256
	DefaultBootFile    = "undionly.kpxe"
	DefaultDeadline    = 5 * time.Minute
	DefaultRetryDelay  = 5 * time.Second
	DefaultRebootDelay = 2 * time.Second
	DefaultTFTPTimeout = 2 * time.Second
	DefaultHTTPTimeout = 30 * time.Second
	DefaultTokens      = 16
)

// DefaultDHCPTimeouts is PXE's retransmission schedule (PXE 2.1 §2.2):
// a DHCP message is sent again after 4, 8, 16 and 32 seconds.
var DefaultDHCPTimeouts = []time.Duration{4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second}

// Sim runs boot storms. Zero values of the optional fields mean the
// documented defaults. A Sim may run one storm at a time.
type Sim struct {
	// Link is the segment the machines are plugged into. Required.
	Link *Link
	// BaseURL is the appliance URL the machines use (http.advertise);
	// iPXE's DHCPACK must name BaseURL + "/boot/<mac>". Required.
	BaseURL string
	// BootFile is the file the PXE ROM's DHCPACK must name and that it
	// fetches over TFTP. Default DefaultBootFile ("undionly.kpxe").
	BootFile string
	// BootFileData is BootFile's expected content; a transfer that
	// differs fails the boot. Nil: any non-empty file passes.
	BootFileData []byte
	// Concurrency bounds the machines booting at once: a machine powers
	// on when another has registered (or given up). Default
	// DefaultConcurrency (256).
	Concurrency int
	// DHCPTimeouts is the retransmission schedule of each DHCP message.
	// Default DefaultDHCPTimeouts (PXE's 4, 8, 16, 32 s).
	DHCPTimeouts []time.Duration
	// TFTPTimeout is the TFTP client's wait for each packet (five tries).
	// Default DefaultTFTPTimeout (2 s).
	TFTPTimeout time.Duration
	// HTTPTimeout bounds each HTTP request. Default DefaultHTTPTimeout.
	HTTPTimeout time.Duration
	// RetryDelay is the agent's pause before it sends a failed
	// registration again. Default DefaultRetryDelay (5 s, the agent's).
	RetryDelay time.Duration
	// RebootDelay is the pause before a failed boot starts over. Default
	// DefaultRebootDelay (2 s).
	RebootDelay time.Duration
	// Deadline is how long a machine keeps trying, from power-on, before
	// it counts as failed. Default DefaultDeadline (5 min).
	Deadline time.Duration
	// Tokens is the number of distinct console tokens the storm's agents
	// show. Each costs a PBKDF2 derivation (100,000 iterations, ~15 ms)
	// here, which says nothing about the appliance, so machines share a
	// few. Default DefaultTokens (16).
	Tokens int
	// OnRegistered is called (from the machine's goroutine) as soon as a
	// machine's registration is acknowledged, with its result so far:
	// a test approves machines from here while the storm goes on.
	OnRegistered func(Result)
	// OnAck is called (from the machine's goroutine) with every DHCPACK
	// a machine receives, as it arrives: a test can tell what was
	// acknowledged before a given moment.
	OnAck func(mac string, a Ack)
	// Logf, when set, gets one line per failed boot attempt.
	Logf func(format string, args ...any)

	sock     *dhcpSocket
	tokens   []consoleToken
	counters counters
}

type consoleToken struct {
	value string
	wire  agentwire.AgentToken
}

// counters are a storm's retries, by kind.
type counters struct {
	resent, reboots, regrants, registerRetries atomic.Int64
}

// Ack is one DHCPACK a machine received.
type Ack struct {
	IP       netip.Addr
	Firmware Firmware
	At       time.Time
}

// Result is what happened to one machine.
type Result struct {
	Index int
	MAC   string
	// Acks are the DHCPACKs the machine received, in order.
	Acks []Ack
	// IP is the address of the last ACK.
	IP netip.Addr
	// Registered: the appliance acknowledged a registration (2xx) at
	// RegisteredAt; Session is its boot session (the key's ID), State the
	// machine's state in the answer.
	Registered   bool
	RegisteredAt time.Time
	Session      string
	State        string
	// Console is the registration token the machine's console shows (an
	// administrator types it to approve).
	Console string
	// Serial is the system serial in the machine's inventory.
	Serial string
	// Boots counts boot attempts (1: nothing failed).
	Boots int
	// Start is power-on; End is the registration's acknowledgement or the
	// moment the machine gave up.
	Start, End time.Time
	// Err is the last failure of a machine that did not register.
	Err error
}

// Took is the machine's time from power-on to registration.
func (r Result) Took() time.Duration { return r.End.Sub(r.Start) }

// Report is a storm's outcome.
type Report struct {
	// Results are by machine, in the order of the MACs given.
	Results []Result
	// Took is the storm's wall-clock time.
	Took time.Duration
	// Resent counts DHCP retransmissions; Reboots boots started over;
	// Regrants boot scripts without a nonce (the appliance saw no fresh
	// DHCP exchange from the machine's address, so iPXE asks DHCP again);
	// RegisterRetries registrations sent again.
	Resent, Reboots, Regrants, RegisterRetries int64
	// Stray counts DHCP replies no exchange was waiting for.
	Stray int64
	// SocketDrops counts DHCP replies the machines' packet socket
	// dropped because its buffer was full (the kernel's count): replies
	// the appliance sent that the machines never saw.
	SocketDrops int64
}

// Failed returns the machines that did not register.
func (r Report) Failed() []Result {
	var out []Result
	for _, res := range r.Results {
		if !res.Registered {
			out = append(out, res)
		}
	}
	return out
}

// Percentile returns the p-th percentile (0-100) of the registered
// machines' times from power-on to registration.
func (r Report) Percentile(p float64) time.Duration {
	var ds []time.Duration
	for _, res := range r.Results {
		if res.Registered {
			ds = append(ds, res.Took())
		}
	}
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(p / 100 * float64(len(ds)))
	if i >= len(ds) {
		i = len(ds) - 1
	}
	return ds[i]
}

// MACs returns n locally administered unicast MACs, 02:5f:<run>:<i>, whose
// last three bytes differ (discovered host names come from them).
func MACs(run byte, n int) []net.HardwareAddr {
	out := make([]net.HardwareAddr, n)
	for i := range out {
		out[i] = net.HardwareAddr{0x02, 0x5f, run, byte(i >> 16), byte(i >> 8), byte(i)}
	}
	return out
}

// Run powers on one machine per MAC, at most Concurrency at once, and
// returns when every machine has registered or given up, or ctx ends.
func (s *Sim) Run(ctx context.Context, macs []net.HardwareAddr) (Report, error) {
	if s.Link == nil || s.BaseURL == "" {
		return Report{}, errors.New("stormsim: Link and BaseURL are required")
	}
	if err := s.makeTokens(); err != nil {
		return Report{}, err
	}
	sock, err := openDHCP(s.Link)
	if err != nil {
		return Report{}, fmt.Errorf("stormsim: %w", err)
	}
	defer sock.close()
	s.sock = sock
	s.counters = counters{}

	rep := Report{Results: make([]Result, len(macs))}
	start := time.Now()
	sem := make(chan struct{}, orInt(s.Concurrency, DefaultConcurrency))
	var wg sync.WaitGroup
	for i, mac := range macs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			rep.Results[i] = Result{Index: i, MAC: mac.String(), Err: ctx.Err()}
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			rep.Results[i] = s.machine(ctx, i, mac)
		}()
	}
	wg.Wait()
	rep.Took = time.Since(start)
	rep.Resent, rep.Reboots = s.counters.resent.Load(), s.counters.reboots.Load()
	rep.Regrants, rep.RegisterRetries = s.counters.regrants.Load(), s.counters.registerRetries.Load()
	rep.Stray = sock.stray.Load()
	if st, err := sock.conn.Stats(); err == nil {
		rep.SocketDrops = int64(st.Drops)
	}
	return rep, ctx.Err()
}

// makeTokens derives the console tokens' hashes once.
func (s *Sim) makeTokens() error {
	n := orInt(s.Tokens, DefaultTokens)
	if len(s.tokens) == n {
		return nil
	}
	s.tokens = make([]consoleToken, n)
	for i := range s.tokens {
		tok, err := token.New(rand.Reader, time.Now())
		if err != nil {
			return fmt.Errorf("stormsim: console token: %w", err)
		}
		salt, err := token.NewSalt(rand.Reader)
		if err != nil {
			return fmt.Errorf("stormsim: console token: %w", err)
		}
		s.tokens[i] = consoleToken{value: tok.Value,
			wire: agentwire.NewAgentToken(tok, salt)}
	}
	return nil
}

func orInt(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

func orDur(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}
