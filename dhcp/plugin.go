package dhcp

import (
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

// runner is a started listener: coredhcp's *server.Servers, or our own
// batchServer.
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
	defer l.recoverPanic(&reply)
	return l.handle(req, resp, src)
}

// recoverPanic, deferred, turns a panic of the handler into no reply.
func (l *listener) recoverPanic(reply **dhcpv4.DHCPv4) {
	if r := recover(); r != nil {
		l.in.m.drop(dropPanic)
		l.in.log.Error("dhcp handler panic", "iface", l.iface, "panic", r, "stack", string(debug.Stack()))
		*reply = nil
	}
}

// startOwn opens l's socket (0.0.0.0 or l.bind, port l.port, bound to the
// interface, as coredhcp's) and serves it with a batchServer (batch.go):
// its handler is given the peer address, which a relay interface needs to
// check dhcp.relay_sources. It is used only where relayed packets arrive
// (Server.build), so every reply it sends goes to a relay or to a client
// that already has an address (replyTo).
func (l *listener) startOwn() (*batchServer, error) {
	addr := &net.UDPAddr{IP: net.IPv4zero, Port: l.port}
	if l.bind.IsValid() {
		addr.IP = l.bind.AsSlice()
	}
	conn, err := server4.NewIPv4UDPConn(l.iface, addr)
	if err != nil {
		return nil, fmt.Errorf("start dhcp on %s %v port %d: %w", l.iface, addr.IP, l.port, err)
	}
	return startBatch(conn, l.answerOwn, func() { l.in.m.drop(dropOverload) }, l.in.log.With("iface", l.iface)), nil
}

// answerOwn answers one packet read by startOwn's server as coredhcp's
// server would (server/handle.go): only the message types coredhcp passes
// to plugins (DECLINE has its own reader, decline.go), a reply prepared
// from the request, sent where replyTo says. A packet whose answer may
// wait for the store (admitted.waits) is answered by the func returned,
// which the server runs on a worker, or, a REQUEST that writes only its
// lease, through later by the store's lease writer (serve); the others at
// once, by the reader.
func (l *listener) answerOwn(b []byte, peer *net.UDPAddr, later func() func(datagram)) (datagram, func() datagram) {
	req, err := dhcpv4.FromBytes(b)
	if err != nil {
		l.in.m.drop(dropMalformed)
		return datagram{}, nil
	}
	src, _ := netip.AddrFromSlice(peer.IP.To4())
	typ := dhcpv4.MessageTypeNone
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		typ = dhcpv4.MessageTypeOffer
	case dhcpv4.MessageTypeRequest, dhcpv4.MessageTypeInform:
		typ = dhcpv4.MessageTypeAck
	case dhcpv4.MessageTypeRelease:
	default:
		return datagram{}, nil
	}
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		return datagram{}, nil
	}
	resp := newReply(req)
	if typ != dhcpv4.MessageTypeNone {
		resp.UpdateOption(dhcpv4.OptMessageType(typ))
	}
	reply, rest := l.safeServe(req, resp, src, later)
	if rest != nil {
		return datagram{}, func() datagram {
			return l.datagramOf(req, l.safeRest(rest))
		}
	}
	return l.datagramOf(req, reply), nil
}

// datagramOf is the datagram of reply to req (none for nil).
func (l *listener) datagramOf(req, reply *dhcpv4.DHCPv4) datagram {
	if reply == nil {
		return datagram{}
	}
	return datagram{b: reply.ToBytes(), addr: replyTo(req, reply)}
}

// safeServe is serve without waiting, with safeHandle's defence.
func (l *listener) safeServe(req, resp *dhcpv4.DHCPv4, src netip.Addr, later func() func(datagram)) (reply *dhcpv4.DHCPv4, rest func() *dhcpv4.DHCPv4) {
	defer l.recoverPanic(&reply)
	return l.serve(req, resp, src, later)
}

// safeRest runs the rest of a request serve returned, with safeHandle's
// defence.
func (l *listener) safeRest(rest func() *dhcpv4.DHCPv4) (reply *dhcpv4.DHCPv4) {
	defer l.recoverPanic(&reply)
	return rest()
}
