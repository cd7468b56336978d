package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/foundry-appliance/foundry/test/nstest"
)

// inNetns says the benchmarks run inside nstest's private namespace.
var inNetns = os.Getenv("FOUNDRY_IN_NETNS") == "1"

// binDir holds the foundry binary, built on first use (unit tests of this
// package do not need it).
var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	// Only the parser tests run with -short (make unit, as any user): they
	// need no namespace, and the network benchmarks skip themselves.
	if testing.Short() {
		os.Exit(m.Run())
	}
	if !inNetns {
		nstest.Main(m) // re-runs this binary inside the namespace
		return
	}
	// Inside, as nstest.Main would, with a directory to remove afterwards
	// (nstest.Main exits without returning).
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "bring up loopback: %v: %s\n", err, out)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "foundry-bench-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var build struct {
	once sync.Once
	path string
	err  error
}

// foundryBin builds ./cmd/foundry once and returns its path, or returns
// FOUNDRY_BENCH_BIN if set: another build to measure (an older commit's).
func foundryBin(b *testing.B) string {
	b.Helper()
	if p := os.Getenv("FOUNDRY_BENCH_BIN"); p != "" {
		return p
	}
	build.once.Do(func() {
		build.path = filepath.Join(binDir, "foundry")
		out, err := exec.Command("go", "build", "-o", build.path, "../cmd/foundry").CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("build foundry: %w\n%s", err, out)
		}
	})
	if build.err != nil {
		b.Fatal(build.err)
	}
	return build.path
}

// needNetns skips a benchmark that must run in the private namespace, and
// one whose peer programs are not installed.
func needNetns(b *testing.B, programs ...string) {
	b.Helper()
	if !inNetns {
		b.Skip("needs the private network namespace: run as root (make bench)")
	}
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			b.Skipf("%s is not installed (make deps installs the Debian packages; see bench/README.md)", p)
		}
	}
}

// netns creates a network namespace with loopback up. Its name carries
// our pid: the names live in /run/netns, shared with other test runs.
func netns(b *testing.B, short string) string {
	b.Helper()
	name := fmt.Sprintf("fb%d-%s", os.Getpid(), short)
	run(b, "", "ip", "netns", "add", name)
	b.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	run(b, name, "ip", "link", "set", "lo", "up")
	return name
}

// veth links the test's namespace (interface host, address hostCIDR) to
// ns (interface eth0, address nsCIDR).
func veth(b *testing.B, host, hostCIDR, ns, nsCIDR string) {
	b.Helper()
	run(b, "", "ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns)
	// Deleted before the namespace (cleanups run last-first).
	b.Cleanup(func() { exec.Command("ip", "link", "del", host).Run() })
	for _, a := range strings.Fields(hostCIDR) {
		run(b, "", "ip", "addr", "add", a, "dev", host)
	}
	run(b, "", "ip", "link", "set", host, "up")
	run(b, ns, "ip", "addr", "add", nsCIDR, "dev", "eth0")
	run(b, ns, "ip", "link", "set", "eth0", "up")
}

// command makes a command that runs in namespace ns ("" = the test's own)
// and is killed if the benchmark process dies, so that no server outlives
// the namespace it was started in.
func command(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	if ns != "" {
		args = append([]string{"netns", "exec", ns, name}, args...)
		name = "ip"
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// run runs a command to completion or fails the benchmark.
func run(b *testing.B, ns, name string, args ...string) string {
	b.Helper()
	out, err := command(context.Background(), ns, name, args...).CombinedOutput()
	if err != nil {
		b.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func must(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}

// report prints a benchmark's table on standard output: b.Log would keep
// only its first lines (the testing package trims benchmark logs).
func report(b *testing.B, text string) {
	fmt.Printf("\n%s\n%s\n", b.Name(), text)
}
