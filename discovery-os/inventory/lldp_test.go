package inventory

import (
	"context"
	"encoding/hex"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/test/nstest"
	"golang.org/x/sys/unix"
)

// Frames in the layout switches send: destination, source, ethertype, TLVs.
var lldpFrames = []struct {
	name string
	hex  string
	want LLDPNeighbor
}{
	{
		// Chassis ID by MAC, port ID by interface name, TTL, port
		// description, system name, IEEE 802.1 port VLAN 77, end.
		name: "cisco-like",
		hex: "0180c200000e" + "001b2c3d4e5f" + "88cc" +
			"0207" + "04001b2c3d4e00" +
			"0409" + "05476931 2f302f3132" +
			"0602" + "0078" +
			"0815" + "4769676162697445746865726e6574312f302f3132" +
			"0a0c" + "73772d7261636b312e6c6162" +
			"fe06" + "0080c2010 04d" +
			"0000",
		want: LLDPNeighbor{ChassisID: "00:1b:2c:3d:4e:00", PortID: "Gi1/0/12",
			PortDesc: "GigabitEthernet1/0/12", SystemName: "sw-rack1.lab", VLAN: 77},
	},
	{
		// 802.1Q tagged; chassis ID locally assigned, port ID by MAC, no end TLV.
		name: "tagged, local chassis, MAC port",
		hex: "0180c200000e" + "02aabbccddee" + "8100 004d" + "88cc" +
			"0207" + "07737769746368" +
			"0407" + "03aabbccddee01" +
			"0602" + "0078",
		want: LLDPNeighbor{ChassisID: "switch", PortID: "aa:bb:cc:dd:ee:01"},
	},
	{
		// Chassis ID by IPv4 management address; port ID locally assigned
		// with a control character that must not reach the console.
		name: "network address chassis",
		hex: "0180c200000e" + "02aabbccddee" + "88cc" +
			"0206" + "05010a4d0001" +
			"0405" + "0731321b35" +
			"0000",
		want: LLDPNeighbor{ChassisID: "10.77.0.1", PortID: "125"},
	},
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseLLDP(t *testing.T) {
	for _, tt := range lldpFrames {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLLDP(mustHex(t, tt.hex))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseLLDPErrors(t *testing.T) {
	tests := []struct {
		name    string
		hex     string
		notLLDP bool
	}{
		{"short", "0180c2", true},
		{"IPv4 frame", "ffffffffffff" + "02aabbccddee" + "0800" + "4500", true},
		{"TLV past the end", "0180c200000e02aabbccddee88cc" + "0210" + "0400", false},
		{"half a TLV header", "0180c200000e02aabbccddee88cc" + "02", false},
		{"no port ID", "0180c200000e02aabbccddee88cc" + "0207" + "04001b2c3d4e00" + "0000", false},
		{"empty chassis ID", "0180c200000e02aabbccddee88cc" + "0200" + "0000", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseLLDP(mustHex(t, tt.hex))
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, ErrNotLLDP) != tt.notLLDP {
				t.Errorf("err = %v, ErrNotLLDP want %v", err, tt.notLLDP)
			}
		})
	}
}

func FuzzParseLLDP(f *testing.F) {
	for _, fr := range lldpFrames {
		f.Add(mustHex(f, fr.hex))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ParseLLDP(b)
		if err != nil {
			return
		}
		for _, s := range []string{n.ChassisID, n.PortID, n.PortDesc, n.SystemName} {
			for _, r := range s {
				if r < 0x20 || r == 0x7f {
					t.Fatalf("control character %q in %+v", r, n)
				}
			}
		}
	})
}

// TestListenLLDP sends a frame over a veth pair in the test's private
// network namespace and expects the listener on the other end to decode it.
func TestListenLLDP(t *testing.T) {
	if nstest.Reexec(t) {
		return
	}
	nstest.Veth(t, "lldp0", "lldp1", "")
	ctx := context.Background()

	t.Run("silence", func(t *testing.T) {
		start := time.Now()
		n, err := ListenLLDP(ctx, "lldp1", 300*time.Millisecond)
		if err != nil || n != nil {
			t.Fatalf("got %+v, %v; want nothing", n, err)
		}
		if d := time.Since(start); d < 300*time.Millisecond || d > 2*time.Second {
			t.Errorf("returned after %v", d)
		}
	})
	t.Run("neighbour", func(t *testing.T) {
		done := make(chan struct{})
		defer close(done)
		go sendLoop(t, "lldp0", mustHex(t, lldpFrames[0].hex), done)
		n, err := ListenLLDP(ctx, "lldp1", 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if n == nil || *n != lldpFrames[0].want {
			t.Fatalf("got %+v, want %+v", n, lldpFrames[0].want)
		}
	})
	t.Run("no such interface", func(t *testing.T) {
		if _, err := ListenLLDP(ctx, "nope0", time.Second); err == nil {
			t.Fatal("no error")
		}
	})
}

// sendLoop transmits frame on ifname every 50 ms until done is closed: the
// listener may open its socket after the first frame went by.
func sendLoop(t *testing.T, ifname string, frame []byte, done <-chan struct{}) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		t.Error(err)
		return
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
	if err != nil {
		t.Error(err)
		return
	}
	defer unix.Close(fd)
	to := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Protocol: htons(EtherTypeLLDP), Halen: 6}
	copy(to.Addr[:], frame[:6])
	for {
		if err := unix.Sendto(fd, frame, 0, to); err != nil {
			t.Error(err)
			return
		}
		select {
		case <-done:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}
