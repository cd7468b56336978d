// Package nstest runs tests inside private network namespaces, so that
// tests which serve DHCP, TFTP or boot emulated machines can never send a
// packet to a real network.
//
// A package where only some tests need a namespace asks for it test by
// test; every other test runs in place, as any user:
//
//	func TestServe(t *testing.T) {
//		if nstest.Reexec(t) {
//			return // it ran in a namespace of its own
//		}
//		...
//
// Reexec re-executes the test binary for that one test under
// `unshare --net --mount`, with sysfs remounted for the new namespace; inside,
// only loopback exists until the test creates bridges, veths or taps of its
// own. Without root it skips the test and says why.
//
// A package whose every test needs one namespace for all of them (the
// integration tests of ./test) uses Main from TestMain instead.
package nstest

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

const (
	// envInside marks a binary re-executed by Main (the bench package
	// reads it too).
	envInside = "FOUNDRY_IN_NETNS"
	// envTest names the one test a binary was re-executed for by Reexec.
	envTest = "FOUNDRY_NETNS_TEST"
)

// Reexec gives the calling test a private network namespace. In the test
// binary `go test` started, it runs this test alone in a re-executed copy
// of the binary inside a new network and mount namespace, reports that
// run's result as this test's (failure with its output, skip with its
// reason) and returns true: the caller returns at once. In the re-executed
// copy it returns false and the test goes on. Without root it skips the
// test.
func Reexec(t *testing.T) bool {
	t.Helper()
	if os.Getenv(envTest) != "" || os.Getenv(envInside) == "1" {
		return false
	}
	NeedRoot(t, "creates a private network namespace")
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("nstest: find test binary: %v", err)
	}
	ctx := context.Background()
	args := []string{"-test.run=" + runPattern(t.Name()), "-test.v=true", "-test.count=1"}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	if d, ok := t.Deadline(); ok {
		// The copy times out first, so that its goroutine dump reaches
		// this test's log instead of dying with the parent.
		left := time.Until(d)
		args = append(args, "-test.timeout="+(left*9/10).String())
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-left/20))
		defer cancel()
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "unshare", namespaceArgs(exe, args)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), envTest+"="+t.Name())
	runErr := cmd.Run()
	res := outcome(t.Name(), out.String(), runErr)
	switch {
	case res.err != nil:
		t.Errorf("in its network namespace: %v\n%s", res.err, indent(out.String()))
	case res.skipped:
		t.Skip("in its network namespace: " + res.reason)
	case testing.Verbose():
		t.Logf("ran in its own network namespace:\n%s", indent(out.String()))
	}
	return true
}

// NeedRoot skips t unless it runs as root, saying what needs root (why
// is a short clause, e.g. "binds port 67").
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root: %s (make test runs it as root)", why)
	}
}

// namespaceArgs are unshare's arguments to run exe with args in a new
// network namespace whose loopback is up. The mount namespace lets sysfs
// show the new network namespace's interfaces, as `ip netns exec` does.
func namespaceArgs(exe string, args []string) []string {
	return append([]string{"--net", "--mount", "--propagation", "private", "--",
		"sh", "-c", `mount -t sysfs sysfs /sys && ip link set lo up && exec "$@"`, "nstest", exe}, args...)
}

// runPattern is the -test.run pattern that selects exactly the test or
// subtest called name.
func runPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

// result is what a re-executed run of one test came to.
type result struct {
	skipped bool
	reason  string
	err     error // the run failed, or did not run the test
}

// outcome reads the verbose output of a run of test name (which exited
// with runErr) and says how it ended.
func outcome(name, out string, runErr error) result {
	if runErr != nil {
		return result{err: fmt.Errorf("re-executed test binary: %w", runErr)}
	}
	// Verbose output streams a test's log as it is written, so the reason
	// of a skip is the last log line after the test's "=== RUN" line.
	var last string
	logging := false
	for _, l := range strings.Split(out, "\n") {
		trimmed := strings.TrimLeft(l, " ")
		switch {
		case trimmed == "=== RUN   "+name:
			logging = true
		case strings.HasPrefix(trimmed, "--- PASS: "+name+" ("):
			return result{}
		case strings.HasPrefix(trimmed, "--- FAIL: "+name+" ("):
			return result{err: errors.New("the test failed")}
		case strings.HasPrefix(trimmed, "--- SKIP: "+name+" ("):
			return result{skipped: true, reason: last}
		case strings.HasPrefix(trimmed, "=== ") || strings.HasPrefix(trimmed, "--- "):
			logging = false
		case logging && strings.HasPrefix(l, "    ") && trimmed != "":
			last = trimmed
		}
	}
	return result{err: fmt.Errorf("the re-executed binary did not run %s", name)}
}

// indent marks the re-executed run's output so that it reads as one block
// of this test's log and no tool mistakes its "--- PASS" lines for ours.
func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	return "netns| " + strings.ReplaceAll(s, "\n", "\nnetns| ")
}

// Main runs m inside a fresh network namespace and exits with its status.
// It is for packages whose every test needs the namespace; a package with
// a few such tests calls Reexec in them instead.
func Main(m *testing.M) { MainWith(m, nil) }

// MainWith is Main with a setup step that runs inside the namespace before
// the tests; the cleanup it returns runs after them (os.Exit skips defers).
func MainWith(m *testing.M, setup func() (cleanup func(), err error)) {
	if os.Getenv(envInside) == "1" {
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
		// Skipped like Reexec's tests, one by one with the reason, but the
		// tests never start: all of them share one namespace.
		names, err := listTests(m)
		if err != nil {
			fmt.Fprintf(os.Stderr, "nstest: list tests: %v\n", err)
			os.Exit(1)
		}
		for _, n := range names {
			fmt.Printf("nstest: skip %s: needs root: runs in this package's private network namespace (make test runs it as root)\n", n)
		}
		os.Exit(0)
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "nstest: find test binary: %v\n", err)
		os.Exit(1)
	}
	cmd := exec.Command("unshare", namespaceArgs(exe, os.Args[1:])...)
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

// listTests returns the names of the tests and fuzz targets of m that
// -test.run selects, as -test.list prints them.
func listTests(m *testing.M) ([]string, error) {
	if !flag.Parsed() {
		flag.Parse()
	}
	pattern := "."
	if f := flag.Lookup("test.run"); f != nil && f.Value.String() != "" {
		pattern = f.Value.String()
	}
	if err := flag.Set("test.list", pattern); err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	stdout := os.Stdout
	os.Stdout = w
	var listed bytes.Buffer
	done := make(chan error, 1)
	go func() {
		_, err := listed.ReadFrom(r)
		done <- err
	}()
	m.Run()
	os.Stdout = stdout
	w.Close()
	if err := <-done; err != nil {
		return nil, err
	}
	return strings.Fields(listed.String()), nil
}
