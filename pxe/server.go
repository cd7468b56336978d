// Package pxe serves the iPXE binaries (undionly.kpxe, ipxe.efi,
// snponly.efi, …) to PXE firmware over TFTP. It is read-only: write
// requests are refused, and a requested name can only ever resolve to a
// regular file inside the configured directory.
//
// The TFTP protocol itself (options, block size and tsize negotiation,
// retransmission) is github.com/pin/tftp/v3; this package adds the file
// policy, logging and metrics around it.
package pxe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/pin/tftp/v3"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Server is a read-only TFTP server for one directory. The zero value of
// every field except Root means the documented default.
type Server struct {
	// Addr is the UDP address Serve listens on. Default ":69". PXE is
	// IPv4-only, so an address without an IPv6 literal is bound as udp4:
	// pin/tftp then sees IPv4 control messages and sizes blocks to the
	// interface MTU minus 28 (1472 on Ethernet), which the UEFI PXE
	// request for 1468 needs.
	Addr string
	// Root is the directory whose regular files are served by their
	// relative names (the appliance's images/ipxe). Required: Serve fails
	// if it is empty or cannot be opened. The directory is opened once when
	// serving starts; files are opened through os.Root, so neither "..",
	// absolute paths nor symlinks can reach anything outside it.
	Root string
	// Logger receives one record per transfer (Info on success, Warn on
	// failure: at most one per failure reason every ten seconds, with the
	// count held back; the metrics count each). Nil means silent.
	Logger *slog.Logger
	// Registerer, when not nil, gets the metrics
	// foundry_tftp_transfers_total, foundry_tftp_sent_bytes_total,
	// foundry_tftp_errors_total{reason} and foundry_tftp_dropped_total
	// (datagrams the kernel dropped at the port: the socket's filter
	// keeps only requests). Nil means no metrics. Registering
	// twice on one registry reuses the collectors already there.
	Registerer prometheus.Registerer
	// Timeout is how long a transfer waits for an acknowledgement before
	// retransmitting. Default 5s (pin/tftp's).
	Timeout time.Duration
	// Retries is how many times one datagram is sent before the transfer is
	// abandoned. Default 5 (pin/tftp's).
	Retries int
}

// DefaultAddr is the TFTP port on every address.
const DefaultAddr = ":69"

// dropPoll is how often the TFTP socket's drop count, which the kernel
// keeps and cannot push, is read into foundry_tftp_dropped_total.
const dropPoll = time.Second

// Serve listens on Addr and serves until ctx ends; see ServeConn.
func (s *Server) Serve(ctx context.Context) error {
	addr := s.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	network := "udp4"
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
			network = "udp6"
		}
	}
	conn, err := net.ListenPacket(network, addr)
	if err != nil {
		return fmt.Errorf("listen tftp on %s: %w", addr, err)
	}
	return s.ServeConn(ctx, conn)
}

// ServeConn serves TFTP on an already bound connection until ctx ends,
// then stops accepting requests, waits for the transfers in flight to
// finish or time out, and returns nil. It takes ownership of conn and
// closes it. Tests (and socket activation) use it to learn the bound
// address before serving. conn should be a *net.UDPConn: pin/tftp needs it
// to learn the local address and MTU of each request, and ServeConn
// attaches its request filter to it (guard).
func (s *Server) ServeConn(ctx context.Context, conn net.PacketConn) error {
	defer conn.Close()
	if s.Root == "" {
		return errors.New("serve tftp: no root directory configured")
	}
	root, err := os.OpenRoot(s.Root)
	if err != nil {
		return fmt.Errorf("serve tftp: open root: %w", err)
	}
	defer root.Close()
	m, err := newMetrics(s.Registerer)
	if err != nil {
		return fmt.Errorf("serve tftp: %w", err)
	}
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{root: root, log: log, metrics: m}
	enablePacketInfo(conn)
	// Without the filter TFTP still works, but a junk flood can crowd
	// out real requests (guard): worth a warning, not a refusal to boot.
	drops, err := guard(conn)
	if err != nil {
		log.Warn("tftp junk filter not attached", "err", err)
	}

	// A nil write handler would make pin/tftp answer with its own message;
	// ours says why and is counted like every other refusal.
	ts := tftp.NewServer(h.read, h.write)
	ts.SetHook(h)
	ts.SetTimeout(s.Timeout) // pin/tftp maps <= 0 to its default
	ts.SetRetries(s.Retries) // likewise for < 1

	log.Info("tftp serving", "addr", conn.LocalAddr().String(), "root", s.Root)
	done := make(chan error, 1)
	go func() { done <- ts.Serve(conn) }()
	counted := m.dropCounter(drops)
	tick := time.NewTicker(dropPoll)
	defer tick.Stop()
wait:
	for {
		select {
		case err := <-done:
			// pin/tftp's Serve only returns early when it cannot use conn.
			if err == nil {
				err = errors.New("stopped unexpectedly")
			}
			return fmt.Errorf("serve tftp: %w", err)
		case <-tick.C:
			counted()
		case <-ctx.Done():
			break wait
		}
	}
	counted()
	// Shutdown closes conn (ending the read loop) and waits for transfers in
	// flight; then the Serve goroutine has returned or is about to.
	ts.Shutdown()
	<-done
	log.Info("tftp stopped", "addr", conn.LocalAddr().String())
	return nil
}

// enablePacketInfo asks the kernel to attach the destination address and
// interface to every datagram. pin/tftp does the same when its Serve starts,
// but the kernel only records that information for datagrams queued after
// the option is set, and without it pin/tftp caps the block size at 512 for
// that request. Setting it here, before anything is logged as serving,
// closes that window for requests that arrive during start-up.
func enablePacketInfo(conn net.PacketConn) {
	c, ok := conn.(*net.UDPConn)
	if !ok {
		return
	}
	// The same choice of family as pin/tftp's Serve.
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		_ = ipv6.NewPacketConn(c).SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true)
		return
	}
	// Errors are ignored as pin/tftp ignores them: it then serves with
	// 512-byte blocks and the OS default source address.
	_ = ipv4.NewPacketConn(c).SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true)
}
