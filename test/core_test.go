package test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// coreConfig serves three segments: "lab" on br0 with discovery, "office"
// on br1 without discovery (unknown MACs get an address and nothing to
// boot), and "remote", relayed through the interface rl0.
const coreConfig = `
http:
  listen: ":8080"
  advertise: "http://10.77.0.1:8080"
tftp:
  listen: ":69"
dhcp:
  relay_interfaces: [rl0]
segments:
  - name: lab
    interface: br0
    subnet: 10.77.0.0/24
    range: [10.77.0.100, 10.77.0.200]
    router: 10.77.0.1
    dns: [10.77.0.1]
    domain: lab.example
    lease_time: 20s
    discovery: true
  - name: office
    interface: br1
    subnet: 10.78.0.0/24
    range: [10.78.0.100, 10.78.0.200]
    router: 10.78.0.1
    allow_unknown: true
    discovery: false
  - name: remote
    relayed: true
    subnet: 10.88.0.0/24
    range: [10.88.0.10, 10.88.0.250]
    router: 10.88.0.1
    allow_unknown: true
`

// coreLab builds br0, br1 and the relay link, and starts the appliance.
func coreLab(t *testing.T) (*lab, *lab, *appliance) {
	t.Helper()
	labNet := newLab(t, "br0", "10.77.0.1/24")
	office := newLab(t, "br1", "10.78.0.1/24")
	relayLink(t)
	data := t.TempDir()
	a := startAppliance(t, data, imageDir(t), coreConfig, "http://10.77.0.1:8080")
	return labNet, office, a
}

// dhclient runs ISC dhclient as a PXE BIOS client in ns and records every
// dhclient-script call (reason, address, boot file) in a log it returns.
type dhclient struct {
	t       *testing.T
	ns, dir string
}

func newDHClient(t *testing.T, ns string) *dhclient {
	d := &dhclient{t: t, ns: ns, dir: t.TempDir()}
	conf := `option pxe-arch code 93 = unsigned integer 16;
send vendor-class-identifier "PXEClient:Arch:00000:UNDI:002001";
send pxe-arch 0;
request subnet-mask, routers, domain-name-servers, domain-name, dhcp-lease-time;
timeout 15;
retry 2;
`
	// Our own dhclient-script: it configures the address but never touches
	// the host's /etc/resolv.conf, and logs what the server sent.
	script := fmt.Sprintf(`#!/bin/sh
echo "reason=$reason ip=$new_ip_address mask=$new_subnet_mask routers=$new_routers dns=$new_domain_name_servers domain=$new_domain_name lease=$new_dhcp_lease_time file=$new_filename server=$new_dhcp_server_identifier" >> %s/events
case "$reason" in
BOUND|RENEW|REBIND|REBOOT) ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface" ;;
esac
exit 0
`, d.dir)
	must(t, os.WriteFile(filepath.Join(d.dir, "dhclient.conf"), []byte(conf), 0o644))
	must(t, os.WriteFile(filepath.Join(d.dir, "script"), []byte(script), 0o755))
	t.Cleanup(d.stopAll)
	return d
}

// stopAll ends every dhclient still running with d's configuration:
// `dhclient -1` goes to the background once bound and renews from there,
// and those outlived their tests (97 after one make test).
func (d *dhclient) stopAll() {
	mine := []byte("\x00-cf\x00" + d.dir + "/dhclient.conf\x00")
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []int
	for _, path := range procs {
		cmdline, err := os.ReadFile(path)
		if err != nil || !bytes.Contains(cmdline, mine) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		if err == nil && syscall.Kill(pid, syscall.SIGTERM) == nil {
			pids = append(pids, pid)
		}
	}
	// They are not our children (dhclient forked away from the command we
	// ran): wait for each to be gone, then make sure.
	deadline := time.Now().Add(2 * time.Second)
	for _, pid := range pids {
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if syscall.Kill(pid, 0) == nil {
			d.t.Logf("dhclient %d ignored SIGTERM; killing it", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func (d *dhclient) args(extra ...string) []string {
	return append([]string{"-4", "-v", "-cf", d.dir + "/dhclient.conf", "-sf", d.dir + "/script",
		"-lf", d.dir + "/leases", "-pf", d.dir + "/pid"}, extra...)
}

// once runs `dhclient -1` (one attempt, then exit) and returns its error.
func (d *dhclient) once(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := inNS(ctx, d.ns, "dhclient", d.args("-1", "eth0")...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("dhclient: %w\n%s", err, out)
	}
	return nil
}

func (d *dhclient) events() []map[string]string {
	b, _ := os.ReadFile(filepath.Join(d.dir, "events"))
	var out []map[string]string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		ev := map[string]string{}
		for _, f := range strings.Fields(line) {
			k, v, _ := strings.Cut(f, "=")
			ev[k] = v
		}
		out = append(out, ev)
	}
	return out
}

// last returns the last event with one of the given reasons.
func (d *dhclient) last(reasons ...string) map[string]string {
	evs := d.events()
	for i := len(evs) - 1; i >= 0; i-- {
		for _, r := range reasons {
			if evs[i]["reason"] == r {
				return evs[i]
			}
		}
	}
	return nil
}

func TestDHClientLeaseRenewAndReboot(t *testing.T) {
	labNet, _, a := coreLab(t)
	const mac = "52:54:00:aa:00:01"
	ns := labNet.client(mac)
	d := newDHClient(t, ns)

	// The daemon binds, then renews at T1 (10 s with a 20 s lease).
	ctx, cancel := context.WithCancel(context.Background())
	daemon := inNS(ctx, ns, "dhclient", d.args("-d", "eth0")...)
	var out bytes.Buffer
	daemon.Stdout, daemon.Stderr = &out, &out
	must(t, daemon.Start())
	defer func() { cancel(); daemon.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for d.last("RENEW") == nil && time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
	}
	bound, renew := d.last("BOUND"), d.last("RENEW")
	if bound == nil || renew == nil {
		t.Fatalf("no BOUND then RENEW within 60s; events %v\ndhclient:\n%s", d.events(), out.String())
	}
	ip := bound["ip"]
	if !strings.HasPrefix(ip, "10.77.0.") || renew["ip"] != ip {
		t.Fatalf("bound %q, renewed %q: want the same address in 10.77.0.100-200", ip, renew["ip"])
	}
	want := map[string]string{"mask": "255.255.255.0", "routers": "10.77.0.1", "dns": "10.77.0.1",
		"domain": "lab.example", "lease": "20", "file": "undionly.kpxe", "server": "10.77.0.1"}
	for k, v := range want {
		if bound[k] != v {
			t.Errorf("option %s = %q, want %q", k, bound[k], v)
		}
	}
	cancel()
	daemon.Wait()

	// An unknown MAC on a discovery segment now has a discovery record:
	// its script, asked for from the address just leased, is the discovery
	// boot with a nonce.
	code, script := getFrom(t, ns, a.base+"/boot/"+mac)
	if code != 200 || !strings.Contains(script, "foundry.nonce=") || !strings.Contains(script, "/images/discovery/vmlinuz") {
		t.Fatalf("script for discovered %s: %d\n%s", mac, code, script)
	}

	// INIT-REBOOT from the lease file keeps the address, across a restart
	// of the appliance.
	a.restart()
	must(t, d.once(40*time.Second))
	reboot := d.last("REBOOT", "BOUND")
	if reboot == nil || reboot["ip"] != ip {
		t.Fatalf("after restart got %v, want %s", reboot, ip)
	}
	if code, script := getFrom(t, ns, a.base+"/boot/"+mac); code != 200 || !strings.Contains(script, "foundry.nonce=") {
		t.Fatalf("machine record lost across restart: %d\n%s", code, script)
	}
	// Anyone else asking for the script (here: the appliance's own host,
	// not the machine) gets no nonce.
	if code, script := get(t, a.base+"/boot/"+mac); code != 200 || strings.Contains(script, "foundry.nonce=") ||
		!strings.Contains(script, "dhcp && chain") {
		t.Fatalf("a request from outside the machine's DHCP exchange: %d\n%s", code, script)
	}
}

func TestNonDiscoverySegmentGetsNoBoot(t *testing.T) {
	_, office, a := coreLab(t)
	const mac = "52:54:00:bb:00:01"
	d := newDHClient(t, office.client(mac))
	must(t, d.once(40*time.Second))
	ev := d.last("BOUND")
	if ev == nil || !strings.HasPrefix(ev["ip"], "10.78.0.") {
		t.Fatalf("office segment (allow_unknown) gave no address: %v", d.events())
	}
	if ev["file"] != "" {
		t.Errorf("unknown MAC on a non-discovery segment was offered boot file %q", ev["file"])
	}
	code, script := get(t, a.base+"/boot/"+mac)
	if strings.Contains(script, "foundry.nonce=") || strings.Contains(script, "kernel ") {
		t.Fatalf("non-discovery MAC got a bootable script (%d):\n%s", code, script)
	}
}

func TestTFTPServesIPXEByteIdentical(t *testing.T) {
	labNet, _, _ := coreLab(t)
	ns := labNet.client("52:54:00:cc:00:01")
	nsRun(t, ns, "ip", "addr", "add", "10.77.0.50/24", "dev", "eth0")
	for _, f := range []string{"undionly.kpxe", "ipxe.efi"} {
		out := filepath.Join(t.TempDir(), f)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		b, err := inNS(ctx, ns, "tftp", "-m", "binary", "10.77.0.1", "-c", "get", f, out).CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("tftp get %s: %v\n%s", f, err, b)
		}
		got, err := os.ReadFile(out)
		must(t, err)
		want, err := os.ReadFile(filepath.Join("/usr/lib/ipxe", f))
		must(t, err)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: got %d bytes, want %d identical bytes", f, len(got), len(want))
		}
	}
	// A path that escapes the image directory is refused.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := filepath.Join(t.TempDir(), "passwd")
	b, _ := inNS(ctx, ns, "tftp", "10.77.0.1", "-c", "get", "../../../../etc/passwd", out).CombinedOutput()
	if st, err := os.Stat(out); err == nil && st.Size() > 0 {
		t.Fatalf("tftp served a file outside the image directory: %s", b)
	}
}

var perfdhcpDrops = regexp.MustCompile(`drops: (\d+)`)

// perfdhcp plays a relay agent at 10.88.0.1 (giaddr) with 200 clients for
// 5 s; every exchange must complete, answered to the relay. perfdhcp stops
// listening the moment its period ends unless told to wait (-W), so a
// REQUEST sent in the period's last milliseconds counted as dropped when its
// durable ACK came a few milliseconds after (CI, 2026-12-02: 498 of 499 ACKs,
// the longest 37 ms); it now waits 3 s for those, and an answer counts if it
// comes within 3 s (-d) rather than 1 s, since this test is about every
// exchange being answered through the relay, not about how fast a loaded CI
// host answers.
func TestPerfdhcpThroughRelay(t *testing.T) {
	coreLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := inNS(ctx, relayNS, "perfdhcp", "-4", "-l", "10.88.0.1", "-R", "200", "-r", "100", "-p", "5", "-d", "3", "-W", "3000000", "10.77.0.1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("perfdhcp: %v (exit 3 means unfinished exchanges)\n%s", err, out)
	}
	drops := perfdhcpDrops.FindAllStringSubmatch(string(out), -1)
	if len(drops) != 2 {
		t.Fatalf("perfdhcp report has %d drop counters, want 2 (DO and RA):\n%s", len(drops), out)
	}
	for _, d := range drops {
		if d[1] != "0" {
			t.Errorf("perfdhcp dropped %s exchanges:\n%s", d[1], out)
		}
	}
	t.Logf("perfdhcp:\n%s", out)
}

// relayNS is the namespace that plays a DHCP relay at 10.88.0.1, routed to
// the appliance through rl0, which serve listens on for relayed packets.
var relayNS = nsName("relay")

func relayLink(t *testing.T) {
	t.Helper()
	nsRun(t, "", "ip", "netns", "add", relayNS)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", relayNS).Run() })
	nsRun(t, "", "ip", "link", "add", "rl0", "type", "veth", "peer", "name", "eth0", "netns", relayNS)
	t.Cleanup(func() { exec.Command("ip", "link", "del", "rl0").Run() })
	nsRun(t, "", "ip", "addr", "add", "10.88.0.254/24", "dev", "rl0")
	nsRun(t, "", "ip", "link", "set", "rl0", "up")
	nsRun(t, relayNS, "ip", "addr", "add", "10.88.0.1/24", "dev", "eth0")
	nsRun(t, relayNS, "ip", "link", "set", "eth0", "up")
	nsRun(t, relayNS, "ip", "link", "set", "lo", "up")
	nsRun(t, relayNS, "ip", "route", "add", "10.77.0.0/24", "via", "10.88.0.254")
}

// nsRun runs a command in namespace ns ("" = the test's own) or fails.
func nsRun(t *testing.T, ns string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	if ns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}
