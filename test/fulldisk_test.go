package test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const fullDiskConfig = `
http:
  listen: ":8093"
  advertise: "http://10.93.0.1:8093"
tftp:
  listen: ":69"
segments:
  - name: lab
    interface: brfull
    subnet: 10.93.0.0/24
    range: [10.93.0.100, 10.93.0.200]
    router: 10.93.0.1
    lease_time: 10m
    discovery: true
`

// smallDisk makes a 512 MiB ext4 file system on a loop device, mounted in
// this package's private mount namespace until the test ends.
func smallDisk(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "disk.img"), filepath.Join(dir, "mnt")
	must(t, os.MkdirAll(mnt, 0o755))
	f, err := os.Create(img)
	must(t, err)
	must(t, f.Truncate(512<<20))
	must(t, f.Close())
	// -m 0: no blocks kept for root, so that full means full for foundry
	// (which runs as root) too.
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount: %v\n%s", err, out)
		}
	})
	return mnt
}

// freeBytes is what statfs says an unprivileged writer may still use.
func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	must(t, unix.Statfs(dir, &st))
	return int64(st.Bavail) * st.Frsize
}

// fill takes every free block of dir's file system with allocated files,
// as a log or an image copy running the disk full would.
func fill(t *testing.T, dir string) {
	t.Helper()
	for i := 0; ; i++ {
		free := freeBytes(t, dir)
		if free == 0 {
			return
		}
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("filler-%d", i)))
		if errors.Is(err, unix.ENOSPC) {
			return
		}
		must(t, err)
		// ext4 needs blocks of its own for a large file's extents:
		// take the most it allows, then the rest in further files.
		size := free
		for size >= 4096 {
			if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err == nil {
				break
			}
			size /= 2
		}
		f.Close()
		if size < 4096 {
			return
		}
	}
}

// unfill removes what fill wrote.
func unfill(t *testing.T, dir string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "filler-*"))
	must(t, err)
	for _, f := range files {
		must(t, os.Remove(f))
	}
}

// diskCall makes an API call with the admin token.
func diskCall(t *testing.T, a *appliance, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, a.base+path, strings.NewReader(body))
	must(t, err)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v\nappliance log:\n%s", method, path, err, a.logs())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// shortDHClient is a dhclient that gives up after 4 s without an answer.
func shortDHClient(t *testing.T, ns string) *dhclient {
	d := newDHClient(t, ns)
	conf, err := os.ReadFile(filepath.Join(d.dir, "dhclient.conf"))
	must(t, err)
	conf = []byte(strings.Replace(string(conf), "timeout 15;", "timeout 4;", 1))
	must(t, os.WriteFile(filepath.Join(d.dir, "dhclient.conf"), conf, 0o644))
	return d
}

// dhcpOnce runs one attempt of d (dhclient -1) and then stops the client
// it leaves behind (dhclient goes on in the background once bound), so
// that the next attempt starts from the lease file alone.
func dhcpOnce(d *dhclient, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := inNS(ctx, d.ns, "dhclient", d.args("-1", "eth0")...)
	cmd.WaitDelay = time.Second // the background client may hold the output
	out, err := cmd.CombinedOutput()
	stop, cancelStop := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelStop()
	inNS(stop, d.ns, "dhclient", d.args("-x", "eth0")...).Run()
	if err != nil {
		return fmt.Errorf("dhclient: %w\n%s", err, out)
	}
	return nil
}

// The data disk fills up under a running appliance: writes are refused
// with a clear error while known machines keep booting, the appliance
// restarts on the full disk, refuses to start (saying why) only when not
// even the reserve it kept is left, and takes writes again once space is
// freed — and Badger never dies of SIGBUS.
func TestFullDataDisk(t *testing.T) {
	mnt := smallDisk(t)
	labNet := newLab(t, "brfull", "10.93.0.1/24")
	data := filepath.Join(mnt, "data")
	a := startAppliance(t, data, imageDir(t), fullDiskConfig, "http://10.93.0.1:8093")

	// A known machine: leased, registered, approved with a netboot profile.
	const known, stranger = "52:54:00:fd:00:01", "52:54:00:fd:00:02"
	ns := labNet.client(known)
	d := shortDHClient(t, ns)
	must(t, dhcpOnce(d, 20*time.Second))
	ip := d.last("BOUND")["ip"]
	consoleToken := registerAgent(t, a, ns, known)
	for _, args := range [][]string{
		{"profiles", "create", "prod", "--kind", "netboot", "--kernel", "http://10.93.0.1:8093/images/discovery/vmlinuz",
			"--initrd", "http://10.93.0.1:8093/images/discovery/initrd", "--cmdline", "console=ttyS0 marker=fulldisk"},
		{"clusters", "create", "rack1", "--default-profile", "prod"},
		{"machines", "approve", known, "--cluster", "rack1", "--hostname", "node-01", "--console-token", consoleToken},
	} {
		if out, code := cli(t, a, adminToken, args...); code != 0 {
			t.Fatalf("foundry %v: exit %d\n%s", args, code, out)
		}
	}
	knownBoots := func(when string) {
		t.Helper()
		if code, script := getFrom(t, ns, a.base+"/boot/"+known); code != 200 || !strings.Contains(script, "marker=fulldisk") {
			t.Errorf("%s: the known machine's boot script: %d\n%s", when, code, script)
		}
		if code, body := diskCall(t, a, "GET", "/api/v1/machines/"+known, ""); code != 200 || !strings.Contains(body, `"node-01"`) {
			t.Errorf("%s: GET the known machine: %d %s", when, code, body)
		}
	}
	knownBoots("before the disk filled")
	fullRefusals := func(when string) {
		t.Helper()
		code, body := diskCall(t, a, "POST", "/api/v1/clusters", `{"name":"rack2"}`)
		if code != http.StatusInsufficientStorage || !strings.Contains(body, "data disk full") || !strings.Contains(body, "writes resume once") {
			t.Errorf("%s: a write: %d %s; want 507 saying the data disk is full", when, code, body)
		}
		if code, body := get(t, a.base+"/readyz"); code != 503 || !strings.Contains(body, "data disk full") {
			t.Errorf("%s: /readyz: %d %s; want 503 saying the data disk is full", when, code, body)
		}
	}

	fill(t, mnt)
	t.Logf("filled: %d bytes free", freeBytes(t, mnt))
	fullRefusals("disk full")
	if _, ok := a.waitLog(5*time.Second, "data disk full: refusing writes"); !ok {
		t.Errorf("no log line says the disk is full")
	}
	knownBoots("disk full")
	// A new client gets no lease (not even an offer). The known client's
	// renewal (INIT-REBOOT from its lease file) would need a lease write
	// the store refuses: it is answered from the lease held in memory, for
	// the time the stored lease has left.
	if err := dhcpOnce(shortDHClient(t, labNet.client(stranger)), 8*time.Second); err == nil {
		t.Errorf("a new client got a lease on a full disk")
	}
	if _, ok := a.waitLog(time.Second, "no offer", "data disk full"); !ok {
		t.Errorf("the new client's DISCOVER on a full disk: no log line says it got no offer for the full disk")
	}
	before := len(d.events())
	err := dhcpOnce(d, 8*time.Second)
	events := d.events()[before:]
	acked := false
	for _, ev := range events {
		switch ev["reason"] {
		case "REBOOT", "BOUND", "RENEW":
			acked = acked || ev["ip"] == ip
		}
	}
	if !acked {
		t.Errorf("the known client's renewal on a full disk was not acknowledged: %v, events %v", err, events)
	}
	if _, ok := a.waitLog(time.Second, "dhcp lease renewed from memory", "mac="+known); !ok {
		t.Errorf("no log line says the known client's lease was renewed from memory")
	}

	// A restart on the full disk: reads and known machines, no writes.
	a.restart()
	fullRefusals("restarted on the full disk")
	knownBoots("restarted on the full disk")

	// The reserve the store released goes too: the appliance stops without
	// flushing into no space, then refuses to start, saying why.
	fill(t, mnt)
	a.stop()
	if _, ok := a.waitLog(time.Second, "data disk full: leaving the database open for the next start to replay"); !ok {
		t.Errorf("the appliance stopped on a disk with no space without saying it left its log to replay")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, foundryBin, "serve", "--config", a.config).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "data disk full") || !strings.Contains(string(out), "free space there") {
		t.Errorf("serve on a disk with no space at all: %v, want a refusal saying the data disk is full\n%s", err, out)
	} else {
		t.Logf("serve on a disk with no space at all: %v: ...%s", err, out[max(0, len(out)-300):])
	}

	unfill(t, mnt)
	a.start()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := get(t, a.base+"/readyz")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz after space was freed: %d %s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code, body := diskCall(t, a, "POST", "/api/v1/clusters", `{"name":"rack2"}`); code != 201 {
		t.Errorf("a write after space was freed: %d %s", code, body)
	}
	if err := dhcpOnce(shortDHClient(t, labNet.client("52:54:00:fd:00:03")), 20*time.Second); err != nil {
		t.Errorf("a new client after space was freed: %v", err)
	}
	knownBoots("after space was freed")
	if logs := a.logs(); strings.Contains(logs, "SIGBUS") || strings.Contains(logs, "fatal error") {
		t.Errorf("the appliance faulted:\n%s", logs)
	}
}
