package test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/store/kv/etcdtest"
)

// fleetConfig is an appliance of a fleet whose records live in etcd.
func fleetConfig(endpoints []string, rest string) string {
	return fmt.Sprintf("store:\n  backend: etcd\n  etcd:\n    endpoints: [%s]\n    prefix: fleet-test/\n    request_timeout: 3s\n%s",
		strings.Join(endpoints, ", "), rest)
}

// TestFleetOnEtcd runs two real appliances on one real etcd: a machine
// PXE-boots and registers through the appliance on its segment and is
// approved, with its console token, through the other one, which has no
// segment at all; the first then gives it its production boot, and its
// event stream showed the approval live. When etcd goes away, /readyz and
// the API say so and nothing is half-written.
func TestFleetOnEtcd(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{})
	labNet := newLab(t, "flt0", "10.91.0.1/24")
	rack := startAppliance(t, t.TempDir(), imageDir(t), fleetConfig(c.Endpoints(), `
http:
  listen: "10.91.0.1:8091"
  advertise: "http://10.91.0.1:8091"
tftp:
  listen: "10.91.0.1:69"
segments:
  - name: rack1
    interface: flt0
    subnet: 10.91.0.0/24
    range: [10.91.0.100, 10.91.0.150]
    router: 10.91.0.1
    lease_time: 60s
    discovery: true
`), "http://10.91.0.1:8091")
	hq := startAppliance(t, t.TempDir(), imageDir(t), fleetConfig(c.Endpoints(), `
http:
  listen: "127.0.0.1:8092"
  advertise: "http://127.0.0.1:8092"
tftp:
  listen: "127.0.0.1:6992"
`), "http://127.0.0.1:8092")

	// The rack appliance's event stream, open before anything happens.
	events := make(chan string, 64)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", rack.base+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "data:") {
				events <- line
			}
		}
		close(events)
	}()

	const mac = "52:54:00:91:00:01"
	ns := labNet.client(mac)
	must(t, newDHClient(t, ns).once(40*time.Second))
	consoleToken := registerAgent(t, rack, ns, mac)
	if m := showMachine(t, hq, mac); m.State != "inventoried" || !m.Temporary {
		t.Fatalf("the other appliance's view after registration: %+v", m)
	}
	for _, args := range [][]string{
		{"profiles", "create", "prod", "--kind", "netboot", "--kernel", "http://10.91.0.1:8091/images/discovery/vmlinuz",
			"--initrd", "http://10.91.0.1:8091/images/discovery/initrd", "--cmdline", "console=ttyS0 marker=fleet"},
		{"clusters", "create", "east", "--default-profile", "prod"},
	} {
		if out, code := cli(t, hq, adminToken, args...); code != 0 {
			t.Fatalf("foundry %v against the other appliance: exit %d\n%s", args, code, out)
		}
	}
	approve := []string{"machines", "approve", mac, "--cluster", "east", "--hostname", "fleet-01"}
	if out, code := cli(t, hq, adminToken, append(approve, "--console-token", "FOUNDRY-AAAA-BBBB-CCCC")...); code != 4 {
		t.Fatalf("a wrong console token through the other appliance: exit %d, want 4\n%s", code, out)
	}
	if out, code := cli(t, hq, adminToken, append(approve, "--console-token", consoleToken)...); code != 0 {
		t.Fatalf("approval through the other appliance: exit %d\n%s", code, out)
	}
	deadline := time.After(10 * time.Second)
	for seen := false; !seen; {
		select {
		case line, ok := <-events:
			if !ok {
				t.Fatal("the rack appliance's event stream ended")
			}
			seen = strings.Contains(line, mac) && strings.Contains(line, `"state":"ready"`) && strings.Contains(line, "fleet-01")
		case <-deadline:
			t.Fatal("the rack appliance's event stream did not show the approval made on the other appliance within 10s")
		}
	}
	if m := showMachine(t, rack, mac); m.State != "ready" || m.Hostname != "fleet-01" || m.Cluster != "east" {
		t.Fatalf("the rack appliance's view after approval: %+v", m)
	}
	if code, script := getFrom(t, ns, rack.base+"/boot/"+mac); code != 200 || !strings.Contains(script, "marker=fleet") {
		t.Fatalf("the rack appliance's boot script after approval elsewhere (%d):\n%s", code, script)
	}
	out, code := cli(t, rack, adminToken, "audit", "--mac", mac, "-o", "json")
	if code != 0 || !strings.Contains(out, `"approve"`) || !strings.Contains(out, `"register"`) {
		t.Fatalf("the audit log seen from the rack appliance lacks the registration or the approval: exit %d\n%s", code, out)
	}

	// Without etcd: both say so, and a write fails cleanly.
	c.Stop(0)
	for _, a := range []*appliance{rack, hq} {
		if code, body := get(t, a.base+"/readyz"); code != 503 || !strings.Contains(body, "unavailable") {
			t.Errorf("%s/readyz without etcd: %d %s", a.base, code, body)
		}
	}
	req, _ = http.NewRequest("GET", hq.base+"/api/v1/about", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Errorf("about without etcd: %v", err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"backend":"etcd","healthy":false`) {
			t.Errorf("about without etcd (the dashboard's banner reads it): %s %s", resp.Status, body)
		}
	}
	start := time.Now()
	if out, code := cli(t, hq, adminToken, "clusters", "create", "west"); code == 0 || !strings.Contains(out, "unavailable") {
		t.Errorf("a write without etcd: exit %d\n%s", code, out)
	}
	t.Logf("a write without etcd failed after %v", time.Since(start).Round(time.Millisecond))
	c.Start(0)
	waitReady := func(a *appliance) {
		for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
			if code, _ := get(t, a.base+"/readyz"); code == 200 {
				return
			}
		}
		t.Fatalf("%s/readyz not ready within 20s of etcd's return", a.base)
	}
	waitReady(rack)
	waitReady(hq)
	if out, code := cli(t, rack, adminToken, "clusters", "ls"); code != 0 || strings.Contains(out, "west") || !strings.Contains(out, "east") {
		t.Errorf("clusters after etcd came back: exit %d\n%s", code, out)
	}
}
