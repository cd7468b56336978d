// Package test holds Foundry's integration tests: the real `foundry serve`
// binary on a bridge inside a private network namespace, exercised by real
// clients (ISC dhclient, perfdhcp, tftp-hpa, QEMU with iPXE firmware).
package test

import (
	"bufio"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/test/nstest"
	"github.com/foundry-appliance/foundry/test/syncbuf"
)

// foundryBin is the appliance binary built once for the whole package.
var foundryBin string

func TestMain(m *testing.M) {
	nstest.MainWith(m, func() (func(), error) {
		dir, err := os.MkdirTemp("", "foundry-bin-")
		if err != nil {
			return nil, err
		}
		foundryBin = filepath.Join(dir, "foundry")
		build := exec.Command("go", "build", "-o", foundryBin, "../cmd/foundry")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("build foundry: %w", err)
		}
		return func() { os.RemoveAll(dir) }, nil
	})
}

// lab is a provisioning network inside the test's namespace: a bridge with
// the appliance's address, and client namespaces plugged into it.
type lab struct {
	t      *testing.T
	bridge string
	n      int
}

// newLab creates bridge name with address cidr (e.g. "10.77.0.1/24").
//
// The bridge gets a MAC of its own, set explicitly: a bridge without one
// takes the lowest MAC of its ports, so a client plugged in later (with a
// random veth MAC) could change the appliance's MAC under clients that
// had it cached, and their next connection waited for ARP to find out
// (TestFullDataDisk timed out so, in about a third of its runs).
func newLab(t *testing.T, name, cidr string) *lab {
	t.Helper()
	nstest.Run(t, "ip", "link", "add", name, "type", "bridge")
	h := crc32.ChecksumIEEE([]byte(name))
	nstest.Run(t, "ip", "link", "set", name, "address",
		fmt.Sprintf("02:fb:%02x:%02x:%02x:%02x", byte(h>>24), byte(h>>16), byte(h>>8), byte(h)))
	nstest.Run(t, "ip", "addr", "add", cidr, "dev", name)
	nstest.Run(t, "ip", "link", "set", name, "up")
	t.Cleanup(func() { exec.Command("ip", "link", "del", name).Run() })
	return &lab{t: t, bridge: name}
}

// client creates a network namespace with one interface, eth0, plugged into
// the bridge with the given MAC, and returns the namespace's name.
func (l *lab) client(mac string) string {
	t := l.t
	t.Helper()
	l.n++
	ns := nsName(fmt.Sprintf("%s-c%d", l.bridge, l.n))
	host := fmt.Sprintf("%sv%d", l.bridge, l.n)
	nstest.Run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	nstest.Run(t, "ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns)
	// Deleted before the namespace (cleanups run last-first): a namespace
	// is torn down lazily, and its veth would outlive it into the next test.
	t.Cleanup(func() { exec.Command("ip", "link", "del", host).Run() })
	nstest.Run(t, "ip", "link", "set", host, "master", l.bridge, "up")
	nstest.Run(t, "ip", "-n", ns, "link", "set", "eth0", "address", mac, "up")
	nstest.Run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	return ns
}

// tap creates a tap device on the bridge for a QEMU machine.
func (l *lab) tap() string {
	t := l.t
	t.Helper()
	l.n++
	name := fmt.Sprintf("%st%d", l.bridge, l.n)
	nstest.Run(t, "ip", "tuntap", "add", "dev", name, "mode", "tap")
	nstest.Run(t, "ip", "link", "set", name, "master", l.bridge, "up")
	t.Cleanup(func() { exec.Command("ip", "link", "del", name).Run() })
	return name
}

// appliance is a running `foundry serve`.
type appliance struct {
	t       *testing.T
	dir     string
	config  string
	base    string
	cmd     *exec.Cmd
	log     syncbuf.Buffer
	stopped chan struct{}
}

// imageDir makes an image directory with Debian's iPXE binaries and the
// discovery OS (the built one when present, else a placeholder pair).
func imageDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "ipxe"), 0o755))
	for _, f := range []string{"undionly.kpxe", "ipxe.efi", "snponly.efi"} {
		copyFile(t, filepath.Join("/usr/lib/ipxe", f), filepath.Join(dir, "ipxe", f))
	}
	disc := filepath.Join(dir, "discovery")
	must(t, os.MkdirAll(disc, 0o755))
	for _, f := range []string{"vmlinuz", "initrd"} {
		src := filepath.Join("..", "images", "discovery", f)
		// Copied, not linked: the appliance refuses symlinks that leave
		// its image directory.
		if _, err := os.Stat(src); err == nil {
			copyFile(t, src, filepath.Join(disc, f))
		} else {
			must(t, os.WriteFile(filepath.Join(disc, f), []byte("placeholder "+f+"\n"), 0o644))
		}
	}
	return dir
}

// startAppliance writes cfg (a YAML document; data_dir and image_dir are
// filled in) into dataDir and runs `foundry serve` until the test ends.
func startAppliance(t *testing.T, dataDir, images, cfg, base string) *appliance {
	t.Helper()
	full := fmt.Sprintf("data_dir: %s\nimage_dir: %s\nlog_level: debug\n%s", dataDir, images, cfg)
	path := filepath.Join(dataDir, "foundry.yaml")
	must(t, os.MkdirAll(dataDir, 0o755))
	must(t, os.WriteFile(path, []byte(full), 0o644))
	a := &appliance{t: t, dir: dataDir, config: path, base: base}
	a.start()
	t.Cleanup(a.stop)
	return a
}

func (a *appliance) start() {
	t := a.t
	t.Helper()
	a.cmd = exec.Command(foundryBin, "serve", "--config", a.config)
	a.cmd.Env = append(os.Environ(), "FOUNDRY_ADMIN_TOKEN="+adminToken)
	a.cmd.Stdout, a.cmd.Stderr = &a.log, &a.log
	must(t, a.cmd.Start())
	a.stopped = make(chan struct{})
	go func() { a.cmd.Wait(); close(a.stopped) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-a.stopped:
			t.Fatalf("foundry serve exited early:\n%s", a.logs())
		default:
		}
		resp, err := http.Get(a.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("foundry serve did not become healthy:\n%s", a.logs())
}

// stop sends SIGTERM and requires a clean exit: every server shuts down.
func (a *appliance) stop() {
	if a.cmd == nil || a.cmd.Process == nil {
		return
	}
	select {
	case <-a.stopped:
		return
	default:
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.stopped:
		if code := a.cmd.ProcessState.ExitCode(); code != 0 {
			a.t.Errorf("foundry serve exited with %d after SIGTERM:\n%s", code, a.logs())
		}
	case <-time.After(15 * time.Second):
		a.cmd.Process.Kill()
		a.t.Errorf("foundry serve did not stop within 15s of SIGTERM:\n%s", a.logs())
	}
	if a.t.Failed() {
		a.t.Logf("appliance log:\n%s", a.logs())
	}
}

func (a *appliance) restart() {
	a.stop()
	a.start()
}

func (a *appliance) logs() string { return a.log.String() }

// waitLog waits until a log line contains every one of the words.
func (a *appliance) waitLog(timeout time.Duration, words ...string) (string, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		sc := bufio.NewScanner(strings.NewReader(a.logs()))
		for sc.Scan() {
			line := sc.Text()
			if containsAll(line, words) {
				return line, true
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return "", false
}

func containsAll(s string, words []string) bool {
	for _, w := range words {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}

// get fetches a URL and returns status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// inNS runs a command inside a client namespace with a time limit.
func inNS(ctx context.Context, ns string, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// nsName makes a named network namespace's name unique to this process:
// names live in /run/netns, which concurrent test runs share.
func nsName(base string) string { return fmt.Sprintf("fdy%d-%s", os.Getpid(), base) }

const adminToken = "fdy_integration-test-admin-token-0123456789"

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("%v (make images installs Debian's ipxe package)", err)
	}
	must(t, os.WriteFile(dst, b, 0o644))
}
