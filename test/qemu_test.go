package test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/test/syncbuf"
)

// machine is an emulated computer on a lab bridge; its serial console is
// what a person at the machine would see.
type machine struct {
	t       *testing.T
	cmd     *exec.Cmd
	cancel  context.CancelFunc
	console syncbuf.Buffer
}

// bootBIOS powers on a SeaBIOS machine whose e1000 NIC carries iPXE as its
// option ROM (Debian's ipxe-qemu), network boot first.
func bootBIOS(t *testing.T, tap, mac string, extra ...string) *machine {
	t.Helper()
	args := append([]string{"-accel", "tcg", "-nographic", "-m", "1024", "-boot", "n",
		"-netdev", "tap,id=n0,ifname=" + tap + ",script=no,downscript=no",
		"-device", "e1000,netdev=n0,mac=" + mac, "-no-reboot"}, extra...)
	return startMachine(t, args)
}

func startMachine(t *testing.T, args []string) *machine {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m := &machine{t: t, cancel: cancel}
	m.cmd = exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	m.cmd.Stdout, m.cmd.Stderr = &m.console, &m.console
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("start qemu: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		m.cmd.Wait()
		if t.Failed() {
			t.Logf("console of the emulated machine:\n%s", m.text())
		}
	})
	return m
}

func (m *machine) text() string { return m.console.String() }

// waitConsole waits until the console shows s.
func (m *machine) waitConsole(timeout time.Duration, s string) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(m.text(), s) {
			return true
		}
		time.Sleep(250 * time.Millisecond)
	}
	return false
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
