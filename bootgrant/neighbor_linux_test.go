package bootgrant

import (
	"net/netip"
	"os/exec"
	"testing"

	"github.com/foundry-appliance/foundry/test/nstest"
)

// The kernel's neighbour table vouches for an on-link address, and only
// for the MAC it has learned there.
func TestKernelNeighbor(t *testing.T) {
	if nstest.Reexec(t) {
		return
	}
	for _, args := range [][]string{
		{"link", "add", "gv0", "type", "veth", "peer", "name", "gv1"},
		{"addr", "add", "10.66.0.1/24", "dev", "gv0"},
		{"link", "set", "gv0", "up"},
		{"link", "set", "gv1", "up"},
		{"neigh", "replace", "10.66.0.7", "lladdr", "52:54:00:aa:bb:cc", "dev", "gv0", "nud", "reachable"},
		{"neigh", "replace", "10.66.0.8", "dev", "gv0", "nud", "failed"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	hw, ok := KernelNeighbor(netip.MustParseAddr("10.66.0.7"))
	if !ok || hw.String() != "52:54:00:aa:bb:cc" {
		t.Fatalf("10.66.0.7: %v, %v", hw, ok)
	}
	for _, a := range []string{"10.66.0.8", "10.66.0.9", "::1"} {
		if hw, ok := KernelNeighbor(netip.MustParseAddr(a)); ok {
			t.Errorf("%s vouched for as %s", a, hw)
		}
	}
	tb := &Table{Neighbor: KernelNeighbor}
	tb.Grant("52:54:00:aa:bb:cc", netip.Addr{})
	if tb.Take("52:54:00:aa:bb:cc", netip.MustParseAddr("10.66.0.8")) {
		t.Error("a failed neighbour entry vouched for a grant")
	}
	if !tb.Take("52:54:00:aa:bb:cc", netip.MustParseAddr("10.66.0.7")) {
		t.Error("the neighbour's own address was refused")
	}
}
