package vm

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// NIC is a network card and what it is plugged into: exactly one of Tap,
// Socket and User.
type NIC struct {
	// Model is QEMU's device; default "e1000", which Debian's ipxe-qemu
	// gives an iPXE option ROM. "virtio-net-pci" is another.
	Model string
	// MAC is the card's address; default "52:54:00:12:34:56" (give each
	// card of a machine its own).
	MAC string
	// NoROM removes the card's option ROM (romfile=), so that the
	// firmware's own PXE client boots; default: QEMU's ROM for the model.
	NoROM bool
	// BootIndex, when above 0, puts the card at that place in the
	// firmware's boot order (bootindex=); default: not set.
	BootIndex int

	// Tap is a tap device the test created (tap, no scripts).
	Tap string
	// Socket is a QEMU socket backend's options, e.g.
	// "listen=127.0.0.1:5555" or "connect=127.0.0.1:5555"; keep it on
	// loopback.
	Socket string
	// User is QEMU's user-mode network: the guest is 10.0.2.15 and reaches
	// the host's loopback at 10.0.2.2.
	User bool
	// BootFile is the file QEMU's user-mode DHCP offers (a TFTP name or an
	// HTTP URL); User only.
	BootFile string
	// HostForward are QEMU's hostfwd= rules, User only:
	// "tcp:127.0.0.1:18080-:8080" makes the host's loopback port 18080
	// reach the guest's port 8080. The host side must be 127.0.0.1, so that
	// no test opens a port beyond loopback; default none.
	HostForward []string
	// Restrict isolates a user-mode guest (restrict=on): it reaches neither
	// the host nor anything beyond it, but QEMU's own DHCP and TFTP still
	// answer and HostForward rules still work; User only. Default off: not
	// implied by HostForward, because a bool could not then say "forward
	// and let the guest out".
	Restrict bool
}

// args returns the -netdev and -device arguments of the card whose backend
// is named id.
func (n *NIC) args(id string) ([]string, error) {
	var netdev string
	backends := 0
	if n.Tap != "" {
		backends++
		netdev = "tap,id=" + id + ",ifname=" + n.Tap + ",script=no,downscript=no"
	}
	if n.Socket != "" {
		backends++
		netdev = "socket,id=" + id + "," + n.Socket
	}
	if n.User {
		backends++
		netdev = "user,id=" + id
		if n.BootFile != "" {
			netdev += ",bootfile=" + n.BootFile
		}
		if n.Restrict {
			netdev += ",restrict=on"
		}
		for _, rule := range n.HostForward {
			if err := checkHostForward(rule); err != nil {
				return nil, err
			}
			netdev += ",hostfwd=" + rule
		}
	}
	if backends != 1 {
		return nil, fmt.Errorf("vm: a NIC needs exactly one of Tap, Socket and User, has %d", backends)
	}
	if n.BootFile != "" && !n.User {
		return nil, errors.New("vm: BootFile is for the user-mode network only")
	}
	if (len(n.HostForward) > 0 || n.Restrict) && !n.User {
		return nil, errors.New("vm: HostForward and Restrict are for the user-mode network only")
	}
	dev := or(n.Model, "e1000") + ",netdev=" + id + ",mac=" + or(n.MAC, "52:54:00:12:34:56")
	if n.NoROM {
		dev += ",romfile="
	}
	if n.BootIndex > 0 {
		dev += ",bootindex=" + strconv.Itoa(n.BootIndex)
	}
	return []string{"-netdev", netdev, "-device", dev}, nil
}

// checkHostForward accepts a hostfwd rule,
// "[tcp|udp]:127.0.0.1:hostport-[guestaddr]:guestport", whose host side is
// loopback and which cannot smuggle another option in (no comma).
func checkHostForward(rule string) error {
	bad := func(why string) error { return fmt.Errorf("vm: host forward %q: %s", rule, why) }
	if strings.Contains(rule, ",") {
		return bad("has a comma")
	}
	host, guest, ok := strings.Cut(rule, "-")
	if !ok {
		return bad(`want "tcp:127.0.0.1:PORT-:PORT"`)
	}
	proto, rest, ok := strings.Cut(host, ":")
	if !ok {
		return bad(`want "tcp:127.0.0.1:PORT-:PORT"`)
	}
	if proto != "" && proto != "tcp" && proto != "udp" {
		return bad("protocol is neither tcp nor udp")
	}
	addr, port, ok := strings.Cut(rest, ":")
	if !ok || addr != "127.0.0.1" {
		return bad("the host side must be bound to 127.0.0.1")
	}
	if !isPort(port) {
		return bad("host port is not 1-65535")
	}
	i := strings.LastIndex(guest, ":")
	if i < 0 || !isPort(guest[i+1:]) {
		return bad("guest port is not 1-65535")
	}
	return nil
}

func isPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0 && n < 65536 && s == strconv.Itoa(n)
}
