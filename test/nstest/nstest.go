// Package nstest runs a test binary inside a private network namespace, so
// that tests which serve DHCP, TFTP or boot emulated machines can never send
// a packet to a real network. Use it from TestMain:
//
//	func TestMain(m *testing.M) { nstest.Main(m) }
//
// The first run re-executes the test binary under `unshare --net --mount`
// with sysfs remounted for the new namespace; inside, only loopback exists
// until the test creates bridges, veths or taps of its own.
package nstest

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

const envInside = "FOUNDRY_IN_NETNS"

// Main runs m inside a fresh network namespace and exits with its status.
func Main(m *testing.M) { MainWith(m, nil) }

// MainWith is Main with a setup step that runs inside the namespace before
// the tests; the cleanup it returns runs after them (os.Exit skips defers).
func MainWith(m *testing.M, setup func() (cleanup func(), err error)) {
	if os.Getenv(envInside) == "1" {
		if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "nstest: bring up loopback: %v: %s\n", err, out)
			os.Exit(1)
		}
		cleanup := func() {}
		if setup != nil {
			c, err := setup()
			if err != nil {
				fmt.Fprintf(os.Stderr, "nstest: setup: %v\n", err)
				os.Exit(1)
			}
			cleanup = c
		}
		code := m.Run()
		cleanup()
		os.Exit(code)
	}
	if os.Geteuid() != 0 {
		if short() {
			fmt.Println("nstest: skipped under -short without root (they create network namespaces)")
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "nstest: these tests create network namespaces and must run as root (make test does)")
		os.Exit(1)
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "nstest: find test binary: %v\n", err)
		os.Exit(1)
	}
	// The mount namespace lets sysfs show the new network namespace's
	// interfaces, as `ip netns exec` does.
	args := append([]string{"--net", "--mount", "--propagation", "private", "--",
		"sh", "-c", `mount -t sysfs sysfs /sys && exec "$@"`, "nstest", exe}, os.Args[1:]...)
	cmd := exec.Command("unshare", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envInside+"=1")
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			os.Exit(ee.ExitCode())
		}
		fmt.Fprintf(os.Stderr, "nstest: run inside a network namespace: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Run runs a command and fails the test with its output if it fails.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// Veth creates a veth pair a<->b inside the test's namespace, gives a the
// address cidr (for example "10.77.0.1/24") and brings both ends up.
func Veth(t testing.TB, a, b, cidr string) {
	t.Helper()
	Run(t, "ip", "link", "add", a, "type", "veth", "peer", "name", b)
	if cidr != "" {
		Run(t, "ip", "addr", "add", cidr, "dev", a)
	}
	Run(t, "ip", "link", "set", a, "up")
	Run(t, "ip", "link", "set", b, "up")
	t.Cleanup(func() { exec.Command("ip", "link", "del", a).Run() })
}

// short reports whether -test.short was given; flags are not parsed yet
// when TestMain starts.
func short() bool {
	for _, a := range os.Args[1:] {
		if a == "-test.short" || a == "-test.short=true" {
			return true
		}
	}
	return false
}
