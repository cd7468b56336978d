package nstest

import (
	"net"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

// The namespace must start with nothing but loopback: that is what keeps
// every test's traffic off real networks.
func TestOnlyLoopbackInside(t *testing.T) {
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Name != "lo" {
			t.Errorf("interface %q visible inside the test namespace", i.Name)
		}
	}
	Veth(t, "vt0", "vt1", "10.99.0.1/24")
	if _, err := net.InterfaceByName("vt1"); err != nil {
		t.Fatalf("veth peer not created: %v", err)
	}
}
