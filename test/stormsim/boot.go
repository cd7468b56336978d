package stormsim

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/pin/tftp/v3"

	"github.com/foundry-appliance/foundry/agentsig"
	"github.com/foundry-appliance/foundry/agentwire"
	"github.com/foundry-appliance/foundry/discovery-os/agent"
)

var nonceRE = regexp.MustCompile(`foundry\.nonce=([A-Za-z0-9_-]+)`)

// maxRegrants bounds how often one boot's iPXE asks DHCP again for a
// script without a nonce before the machine reboots.
const maxRegrants = 3

// booting is one machine's state across its boot attempts.
type booting struct {
	s   *Sim
	res *Result
	ex  *exchange
	ctx context.Context
}

// machine powers on one machine and boots it until it registers, its
// deadline passes or ctx ends.
func (s *Sim) machine(ctx context.Context, index int, mac net.HardwareAddr) Result {
	res := Result{Index: index, MAC: mac.String(), Start: time.Now(), Serial: Serial(index)}
	ctx, cancel := context.WithTimeout(ctx, orDur(s.Deadline, DefaultDeadline))
	defer cancel()
	b := &booting{s: s, res: &res, ctx: ctx, ex: &exchange{sock: s.sock, mac: mac,
		timeouts: s.DHCPTimeouts, resent: &s.counters.resent}}
	if len(b.ex.timeouts) == 0 {
		b.ex.timeouts = DefaultDHCPTimeouts
	}
	rand.Read(b.ex.uuid[:])
	tok := s.tokens[index%len(s.tokens)]
	res.Console = tok.value
	for {
		res.Boots++
		err := b.boot(tok)
		if err == nil {
			res.End = res.RegisteredAt
			return res
		}
		res.Err = err
		if s.Logf != nil {
			s.Logf("%s boot %d: %v", res.MAC, res.Boots, err)
		}
		if ctx.Err() != nil {
			res.End = time.Now()
			res.Err = fmt.Errorf("gave up after %d boots: %w", res.Boots, err)
			return res
		}
		s.counters.reboots.Add(1)
		if sleep(ctx, orDur(s.RebootDelay, DefaultRebootDelay)) != nil {
			res.End = time.Now()
			res.Err = fmt.Errorf("gave up after %d boots: %w", res.Boots, err)
			return res
		}
	}
}

// boot is one attempt: firmware, iPXE, discovery agent.
func (b *booting) boot(tok consoleToken) error {
	s, res := b.s, b.res
	b.ex.firmware = PXEROM
	pxe, err := b.lease()
	if err != nil {
		return fmt.Errorf("pxe dhcp: %w", err)
	}
	want := orString(s.BootFile, DefaultBootFile)
	if pxe.BootFile != want {
		return fmt.Errorf("pxe dhcp: boot file %q, want %q", pxe.BootFile, want)
	}
	server := pxe.NextServer
	if !server.IsValid() || server.IsUnspecified() {
		server = pxe.ServerID
	}
	if err := b.tftp(server, pxe.IP, want); err != nil {
		return fmt.Errorf("tftp %s: %w", want, err)
	}

	// iPXE runs: its own DHCP exchange names the script; the script
	// server gives a nonce only to the address that exchange acknowledged.
	// Without one (the grant was lost, e.g. across a restart) the script
	// asks iPXE to do DHCP again and chain to it, as iPXE would.
	b.ex.firmware = IPXE
	script := ""
	var ip netip.Addr
	for try := 0; ; try++ {
		l, err := b.lease()
		if err != nil {
			return fmt.Errorf("ipxe dhcp: %w", err)
		}
		url := strings.TrimRight(s.BaseURL, "/") + "/boot/" + res.MAC
		if l.BootFile != url {
			return fmt.Errorf("ipxe dhcp: boot file %q, want %q", l.BootFile, url)
		}
		ip = l.IP
		if script, err = b.get(ip, url); err != nil {
			return fmt.Errorf("boot script: %w", err)
		}
		if nonceRE.MatchString(script) {
			break
		}
		if !strings.Contains(script, "dhcp") || try+1 >= maxRegrants {
			return fmt.Errorf("boot script without a nonce:\n%s", script)
		}
		s.counters.regrants.Add(1)
	}
	return b.register(ip, nonceRE.FindStringSubmatch(script)[1], tok)
}

// lease runs one DHCP exchange and records its ACK; an address other than
// the one the machine held is an error of the appliance (it lost or moved
// an acknowledged lease), kept in the result for the caller to judge.
func (b *booting) lease() (Lease, error) {
	for {
		l, err := b.ex.dora(b.ctx)
		if errors.Is(err, errNAK) {
			// RFC 2131 §3.1: a NAK sends the client back to DISCOVER.
			if serr := sleep(b.ctx, time.Second); serr != nil {
				return Lease{}, err
			}
			continue
		}
		if err != nil {
			return Lease{}, err
		}
		ack := Ack{IP: l.IP, Firmware: l.Firmware, At: l.At}
		b.res.Acks = append(b.res.Acks, ack)
		b.res.IP = l.IP
		if b.s.OnAck != nil {
			b.s.OnAck(b.res.MAC, ack)
		}
		return l, nil
	}
}

// tftp fetches file from server as the PXE ROM does, from the leased
// address, and checks it.
func (b *booting) tftp(server, from netip.Addr, file string) error {
	c, err := tftp.NewClient(netip.AddrPortFrom(server, 69).String())
	if err != nil {
		return err
	}
	if err := c.SetLocalAddr(from.String()); err != nil {
		return err
	}
	c.SetTimeout(orDur(b.s.TFTPTimeout, DefaultTFTPTimeout))
	c.SetRetries(5)
	// A block that fits an Ethernet frame, and the size first, as PXE
	// ROMs negotiate.
	c.SetBlockSize(1432)
	c.RequestTSize(true)
	var wt io.WriterTo
	if err := b.s.Link.Do(func() (err error) {
		// The client's socket is made here, in the machines' namespace.
		wt, err = c.Receive(file, "octet")
		return err
	}); err != nil {
		return err
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return err
	}
	if want := b.s.BootFileData; want != nil && !bytes.Equal(buf.Bytes(), want) {
		return fmt.Errorf("got %d bytes that differ from the %d expected", buf.Len(), len(want))
	} else if buf.Len() == 0 {
		return errors.New("empty file")
	}
	return nil
}

// client is an HTTP client whose connections come from the machine's
// leased address, one connection per request.
func (b *booting) client(from netip.Addr) *http.Client {
	link := b.s.Link
	return &http.Client{Timeout: orDur(b.s.HTTPTimeout, DefaultHTTPTimeout), Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := link.Do(func() (err error) {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: from.AsSlice()}}
				c, err = d.DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
}

// get fetches url from the leased address as iPXE does.
func (b *booting) get(from netip.Addr, url string) (string, error) {
	req, err := http.NewRequestWithContext(b.ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("User-Agent", "iPXE/1.21.1+")
	resp, err := b.client(from).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return string(body), nil
}

// register is the discovery agent's registration: a fresh boot key, the
// nonce, the inventory and the console token's hash, signed, from the
// leased address; sent again after RetryDelay until it is acknowledged,
// unless the appliance refuses the session (401, 403), which reboots the
// machine as the agent does.
func (b *booting) register(from netip.Addr, nonce string, tok consoleToken) error {
	s, res := b.s, b.res
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	mac, _ := net.ParseMAC(res.MAC)
	inv, err := json.Marshal(Inventory(mac, res.Index))
	if err != nil {
		return err
	}
	c := &agent.Client{BaseURL: s.BaseURL, Nonce: nonce, Key: key, HTTP: b.client(from)}
	req := agentwire.AgentRegister{MAC: res.MAC, Inventory: inv, Token: tok.wire}
	for {
		state, err := c.Register(b.ctx, req)
		if err == nil {
			res.Registered, res.RegisteredAt, res.State = true, time.Now(), state
			res.Session = agentsig.KeyID(key.Public().(ed25519.PublicKey))
			res.Err = nil
			if s.OnRegistered != nil {
				s.OnRegistered(*res)
			}
			return nil
		}
		var ae *agent.APIError
		if errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden) {
			return fmt.Errorf("register: %w", err)
		}
		if b.ctx.Err() != nil {
			return fmt.Errorf("register: %w", err)
		}
		s.counters.registerRetries.Add(1)
		if serr := sleep(b.ctx, orDur(s.RetryDelay, DefaultRetryDelay)); serr != nil {
			return fmt.Errorf("register: %w", err)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func orString(v, def string) string {
	if v != "" {
		return v
	}
	return def
}
