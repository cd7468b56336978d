package dhcp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"

	"github.com/coredhcp/coredhcp/config"
	"github.com/coredhcp/coredhcp/handler"
	"github.com/coredhcp/coredhcp/plugins"
	"github.com/coredhcp/coredhcp/server"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
)

// runner is a started listener: coredhcp's *server.Servers, or ownServer.
type runner interface {
	Close()
	Wait() error
}

// start runs l: by coredhcp (startCoreDHCP), or, where relayed packets
// are received, by a socket of our own that sees each packet's source
// (startOwn).
func (l *listener) start() (runner, error) {
	if l.own {
		return l.startOwn()
	}
	return l.startCoreDHCP()
}

// registryMu serialises register → server.Start → unregister. coredhcp
// finds plugins by name in its package-global map plugins.RegisteredPlugins
// (no lock, and RegisterPlugin panics on a duplicate name); this mutex only
// serialises our access to that map. Foundry's own state lives in each
// listener, bound into the plugin's handler closure.
var registryMu sync.Mutex

// startCoreDHCP runs a coredhcp server for l: a uniquely named plugin whose Setup4
// returns l's handler, and a configuration listening on 0.0.0.0:port bound
// to l's interface (SO_BINDTODEVICE), so that nothing is answered on an
// interface the configuration does not name. The plugin's name is removed
// from coredhcp's registry once the server holds the handler.
func (l *listener) startCoreDHCP() (*server.Servers, error) {
	name := fmt.Sprintf("foundry-%s-%d-%p", l.iface, l.port, l)
	h := handler.Handler4(func(req, resp *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, bool) {
		// coredhcp's plugin API does not pass the UDP source.
		return l.safeHandle(req, resp, netip.Addr{}), true
	})
	cfg := config.New()
	cfg.Server4 = &config.ServerConfig{
		Addresses: []net.UDPAddr{{IP: net.IPv4zero, Port: l.port, Zone: l.iface}},
		Plugins:   []config.PluginConfig{{Name: name}},
	}

	registryMu.Lock()
	defer registryMu.Unlock()
	if _, taken := plugins.RegisteredPlugins[name]; taken {
		return nil, fmt.Errorf("coredhcp plugin %s is already registered", name)
	}
	err := plugins.RegisterPlugin(&plugins.Plugin{
		Name:   name,
		Setup4: func(...string) (handler.Handler4, error) { return h, nil },
	})
	if err != nil {
		return nil, fmt.Errorf("register coredhcp plugin %s: %w", name, err)
	}
	defer delete(plugins.RegisteredPlugins, name)
	srv, err := server.Start(cfg)
	if err != nil {
		return nil, fmt.Errorf("start dhcp on %s port %d: %w", l.iface, l.port, err)
	}
	return srv, nil
}

// safeHandle is the last line of defence: coredhcp runs each packet in its
// own goroutine, where a panic would end the whole appliance. A panic is a
// bug (the fuzz target calls handle without this), logged with its stack.
func (l *listener) safeHandle(req, resp *dhcpv4.DHCPv4, src netip.Addr) (reply *dhcpv4.DHCPv4) {
	defer func() {
		if r := recover(); r != nil {
			l.in.m.drop(dropPanic)
			l.in.log.Error("dhcp handler panic", "iface", l.iface, "panic", r, "stack", string(debug.Stack()))
			reply = nil
		}
	}()
	return l.handle(req, resp, src)
}

// ownServer is a listener served by insomniacslk/dhcp's server4 instead of
// coredhcp: its handler is given the peer address, which a relay interface
// needs to check dhcp.relay_sources. It is used only where relayed packets
// arrive (Server.build), so every reply it sends goes to a relay or to a
// client that already has an address (replyTo).
type ownServer struct {
	srv  *server4.Server
	done chan error
}

func (o *ownServer) Close() { o.srv.Close() }

func (o *ownServer) Wait() error {
	err := <-o.done
	o.done <- err // a second Wait returns too
	return err
}

// startOwn opens l's socket (0.0.0.0 or l.bind, port l.port, bound to the
// interface, as coredhcp's) and serves it.
func (l *listener) startOwn() (*ownServer, error) {
	addr := &net.UDPAddr{IP: net.IPv4zero, Port: l.port}
	if l.bind.IsValid() {
		addr.IP = l.bind.AsSlice()
	}
	srv, err := server4.NewServer(l.iface, addr, l.serveOwn)
	if err != nil {
		return nil, fmt.Errorf("start dhcp on %s %v port %d: %w", l.iface, addr.IP, l.port, err)
	}
	o := &ownServer{srv: srv, done: make(chan error, 1)}
	go func() {
		err := srv.Serve()
		if errors.Is(err, net.ErrClosed) {
			err = nil // Close
		}
		o.done <- err
	}()
	return o, nil
}

// serveOwn handles one packet read by an ownServer as coredhcp's server
// would (server/handle.go): only the message types coredhcp passes to
// plugins (DECLINE has its own reader, decline.go), a reply prepared from
// the request, and the answer sent where replyTo says.
func (l *listener) serveOwn(conn net.PacketConn, peer net.Addr, req *dhcpv4.DHCPv4) {
	var src netip.Addr
	if u, ok := peer.(*net.UDPAddr); ok {
		src, _ = netip.AddrFromSlice(u.IP.To4())
	}
	typ := dhcpv4.MessageTypeNone
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		typ = dhcpv4.MessageTypeOffer
	case dhcpv4.MessageTypeRequest, dhcpv4.MessageTypeInform:
		typ = dhcpv4.MessageTypeAck
	case dhcpv4.MessageTypeRelease:
	default:
		return
	}
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		return
	}
	resp, err := dhcpv4.NewReplyFromRequest(req)
	if err != nil {
		return
	}
	if typ != dhcpv4.MessageTypeNone {
		resp.UpdateOption(dhcpv4.OptMessageType(typ))
	}
	reply := l.safeHandle(req, resp, src)
	if reply == nil {
		return
	}
	to := replyTo(req, reply)
	if _, err := conn.WriteTo(reply.ToBytes(), to); err != nil {
		l.in.log.Warn("dhcp reply not sent", "iface", l.iface, "to", to.String(), "err", err)
	}
}
