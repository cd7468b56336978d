package dhcp

import (
	"fmt"
	"net"
	"runtime/debug"
	"sync"

	"github.com/coredhcp/coredhcp/config"
	"github.com/coredhcp/coredhcp/handler"
	"github.com/coredhcp/coredhcp/plugins"
	"github.com/coredhcp/coredhcp/server"
	"github.com/insomniacslk/dhcp/dhcpv4"
)

// registryMu serialises register → server.Start → unregister. coredhcp
// finds plugins by name in its package-global map plugins.RegisteredPlugins
// (no lock, and RegisterPlugin panics on a duplicate name); this mutex only
// serialises our access to that map. Foundry's own state lives in each
// listener, bound into the plugin's handler closure.
var registryMu sync.Mutex

// start runs a coredhcp server for l: a uniquely named plugin whose Setup4
// returns l's handler, and a configuration listening on 0.0.0.0:port bound
// to l's interface (SO_BINDTODEVICE), so that nothing is answered on an
// interface the configuration does not name. The plugin's name is removed
// from coredhcp's registry once the server holds the handler.
func (l *listener) start() (*server.Servers, error) {
	name := fmt.Sprintf("foundry-%s-%d-%p", l.iface, l.port, l)
	h := handler.Handler4(func(req, resp *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, bool) {
		return l.safeHandle(req, resp), true
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
func (l *listener) safeHandle(req, resp *dhcpv4.DHCPv4) (reply *dhcpv4.DHCPv4) {
	defer func() {
		if r := recover(); r != nil {
			l.in.m.drop(dropPanic)
			l.in.log.Error("dhcp handler panic", "iface", l.iface, "panic", r, "stack", string(debug.Stack()))
			reply = nil
		}
	}()
	return l.handle(req, resp)
}
