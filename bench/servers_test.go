package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/test/syncbuf"
)

// daemon is a server under test, run in the test's own namespace.
type daemon struct {
	b       *testing.B
	name    string
	pid     int
	log     *syncbuf.Buffer
	stopped chan struct{}
	// group are other processes measured as part of this one (the other
	// member of a DHCP pair, the etcd members it commits to): cpu counts
	// theirs too, and exited is true when any of them has stopped. A
	// process the benchmark did not start (an etcd member) is a daemon
	// with its pid only.
	group []*daemon
}

// startDaemon starts name with args and env and stops it when the
// benchmark ends.
func startDaemon(b *testing.B, label string, env []string, name string, args ...string) *daemon {
	b.Helper()
	return startDaemonIn(b, "", label, env, name, args...)
}

// startDaemonIn is startDaemon in network namespace ns ("" = the test's
// own); `ip netns exec` execs the server, so the pid is the server's.
func startDaemonIn(b *testing.B, ns, label string, env []string, name string, args ...string) *daemon {
	b.Helper()
	cmd := command(context.Background(), ns, name, args...)
	cmd.Env = append(os.Environ(), env...)
	d := &daemon{b: b, name: label, log: &syncbuf.Buffer{}, stopped: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = d.log, d.log
	must(b, cmd.Start())
	d.pid = cmd.Process.Pid
	go func() { cmd.Wait(); close(d.stopped) }()
	b.Cleanup(d.stop)
	return d
}

// stop sends SIGTERM and, after 15 s, SIGKILL.
func (d *daemon) stop() {
	select {
	case <-d.stopped:
		return
	default:
	}
	syscall.Kill(d.pid, syscall.SIGTERM)
	select {
	case <-d.stopped:
	case <-time.After(15 * time.Second):
		syscall.Kill(d.pid, syscall.SIGKILL)
		<-d.stopped
		d.b.Errorf("%s did not stop within 15s of SIGTERM:\n%s", d.name, tail(d.log.String(), 3000))
	}
}

// exited reports whether the daemon (or one of its group) has stopped.
func (d *daemon) exited() bool {
	for _, g := range d.group {
		if g.exited() {
			return true
		}
	}
	select {
	case <-d.stopped: // nil for a pid-only daemon: never ready
		return true
	default:
		return false
	}
}

// cpu returns the CPU time (user + system) the daemon and its group have
// used so far.
func (d *daemon) cpu() time.Duration {
	total := procCPU(d.pid)
	for _, g := range d.group {
		total += g.cpu()
	}
	return total
}

// procCPU returns the CPU time (user + system) process pid has used so far.
func procCPU(pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: utime and stime are the 12th and 13th of them, in clock
	// ticks (USER_HZ, 100 on Linux).
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// startFoundry runs `foundry serve` with cfg (the tftp, dhcp and segments
// keys of foundry.yaml; data_dir, image_dir and http are filled in, the
// data directory on disk under the benchmark's temporary directory), waits
// until it is healthy and returns it with its data directory.
func startFoundry(b *testing.B, cfg string, images string) (*daemon, string) {
	b.Helper()
	return startFoundryBin(b, foundryBin(b), cfg, images)
}

// startFoundryBin is startFoundry with the build at bin.
func startFoundryBin(b *testing.B, bin, cfg string, images string) (*daemon, string) {
	b.Helper()
	dir := b.TempDir()
	data := filepath.Join(dir, "data")
	full := fmt.Sprintf("data_dir: %s\nimage_dir: %s\nlog_level: warn\n"+
		"http:\n  listen: \"127.0.0.1:8080\"\n  advertise: \"http://127.0.0.1:8080\"\n%s", data, images, cfg)
	path := filepath.Join(dir, "foundry.yaml")
	must(b, os.WriteFile(path, []byte(full), 0o644))
	d := startDaemon(b, "foundry", []string{"FOUNDRY_ADMIN_TOKEN=fdy_bench-admin-token-0123456789abcdef"},
		bin, "serve", "--config", path)
	waitFor(b, d, 30*time.Second, func() bool {
		resp, err := http.Get("http://127.0.0.1:8080/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return d, data
}

// emptyImages is an image directory with Debian's BIOS iPXE binary only.
func emptyImages(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	must(b, os.MkdirAll(filepath.Join(dir, "ipxe"), 0o755))
	raw, err := os.ReadFile("/usr/lib/ipxe/undionly.kpxe")
	if err != nil {
		b.Skipf("%v (Debian's ipxe package)", err)
	}
	must(b, os.WriteFile(filepath.Join(dir, "ipxe", "undionly.kpxe"), raw, 0o644))
	return dir
}

// keaConfig serves the same subnet and pool as Foundry's segment, relayed
// to an interface, with a memfile lease database written to a file
// (persist: true; whether Kea syncs it is what probeSyncs measures). The
// lease file cleanup process (LFC) is off so that no second process
// competes for CPU; no control socket is configured.
const keaConfig = `{"Dhcp4": {
  "interfaces-config": {"interfaces": [%q], "dhcp-socket-type": "udp"},
  "lease-database": {"type": "memfile", "persist": true, "name": %q, "lfc-interval": 0},
  "valid-lifetime": 3600,
  "subnet4": [{"subnet": %q, "pools": [{"pool": "%s - %s"}],
    "option-data": [{"name": "routers", "data": %q}]}],
  "loggers": [{"name": "kea-dhcp4", "severity": "WARN", "output_options": [{"output": "stdout"}]}]
}}`

// keaPort is Kea's server port. Kea listens on the same interface as
// Foundry, beside it: the relay sends to this port (perfdhcp -N) and gets
// its answers on port 67 either way. Both servers can then be measured
// turn about, so that load from other processes falls on both alike.
const keaPort = 10067

// startKea runs kea-dhcp4 on keaPort with its configuration, lease file,
// pid file and lock file in a temporary directory, and waits until it
// listens.
func startKea(b *testing.B, n relayNet) (*daemon, string) {
	b.Helper()
	dir := b.TempDir()
	leases := filepath.Join(dir, "leases4.csv")
	cfg := fmt.Sprintf(keaConfig, n.iface, leases, n.subnet, n.first, n.last, n.router)
	path := filepath.Join(dir, "kea-dhcp4.json")
	must(b, os.WriteFile(path, []byte(cfg), 0o644))
	d := startDaemon(b, "kea-dhcp4", []string{"KEA_PIDFILE_DIR=" + dir, "KEA_LOCKFILE_DIR=" + dir}, "kea-dhcp4",
		"-p", fmt.Sprint(keaPort), "-c", path)
	waitFor(b, d, 20*time.Second, func() bool { return listeningUDP("", keaPort) })
	return d, leases
}

// startTFTPD runs tftp-hpa's server in the foreground on addr, serving
// (and chrooted to) root as the unprivileged user nobody.
func startTFTPD(b *testing.B, addr, root string) *daemon {
	b.Helper()
	d := startDaemon(b, "in.tftpd", nil, "in.tftpd", "-L", "-s", "-u", "nobody", "-a", addr+":69", root)
	waitFor(b, d, 10*time.Second, func() bool { return listeningUDP(addr, 69) })
	return d
}

// listeningUDP reports whether a socket in this namespace is bound to the
// UDP port on the IPv4 address ip ("" = any address).
func listeningUDP(ip string, port int) bool {
	raw, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return false
	}
	// /proc/net/udp shows local_address as the address in host byte
	// order (little-endian here) and the port, both in hex.
	want := fmt.Sprintf(":%04X", port)
	if a, err := netip.ParseAddr(ip); err == nil && a.Is4() {
		b := a.As4()
		want = fmt.Sprintf("%02X%02X%02X%02X", b[3], b[2], b[1], b[0]) + want
	}
	for _, line := range strings.Split(string(raw), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasSuffix(f[1], want) {
			return true
		}
	}
	return false
}

func waitFor(b *testing.B, d *daemon, timeout time.Duration, ready func() bool) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if d.exited() {
			b.Fatalf("%s exited early:\n%s", d.name, tail(d.log.String(), 3000))
		}
		if ready() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatalf("%s not ready within %s:\n%s", d.name, timeout, tail(d.log.String(), 3000))
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
