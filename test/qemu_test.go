package test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/test/vm"
)

// machine is an emulated computer on a lab bridge; its serial console is
// what a person at the machine would see.
type machine struct {
	t  *testing.T
	vm *vm.Instance
}

// bootBIOS powers on a SeaBIOS machine whose e1000 NIC carries iPXE as its
// option ROM (Debian's ipxe-qemu), network boot first; a reboot ends it.
func bootBIOS(t *testing.T, tap, mac string, extra ...string) *machine {
	t.Helper()
	return startMachine(t, vm.Machine{MemoryMiB: 1024, ExitOnReboot: true,
		NIC: &vm.NIC{Tap: tap, MAC: mac}, Extra: extra})
}

// startMachine powers spec on for the rest of the test, and shows its
// console if the test failed.
func startMachine(t *testing.T, spec vm.Machine) *machine {
	t.Helper()
	in, err := spec.Start(context.Background())
	if err != nil {
		t.Fatalf("start qemu: %v", err)
	}
	m := &machine{t: t, vm: in}
	t.Cleanup(func() {
		in.Stop()
		if t.Failed() {
			t.Logf("console of the emulated machine:\n%s", m.text())
		}
	})
	return m
}

func (m *machine) text() string { return m.vm.Console() }

// waitConsole waits until the console shows s.
func (m *machine) waitConsole(timeout time.Duration, s string) bool {
	return m.vm.WaitConsole(timeout, s)
}

// A never-seen BIOS machine on a discovery segment gets its lease, loads
// undionly.kpxe over TFTP, chains to the HTTP script and asks the appliance
// for the discovery kernel.
func TestQEMUBIOSChainsToDiscoveryKernel(t *testing.T) {
	if testing.Short() {
		t.Skip("boots an emulated machine")
	}
	labNet, _, a := coreLab(t)
	const mac = "52:54:00:12:34:56"
	m := bootBIOS(t, labNet.tap(), mac)
	line, ok := a.waitLog(3*time.Minute, "GET", "path=/images/discovery/vmlinuz", "status=200")
	if !ok {
		t.Fatalf("the machine never requested the discovery kernel\nappliance log:\n%s", a.logs())
	}
	t.Logf("appliance saw: %s", line)
	if _, ok := a.waitLog(time.Second, "GET", "path=/boot/"+mac, "status=200"); !ok {
		t.Errorf("the kernel request was not preceded by the script request for %s", mac)
	}
	if !strings.Contains(m.text(), "iPXE") {
		t.Errorf("console shows no iPXE banner")
	}
}
