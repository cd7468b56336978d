package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/api/client"
	"github.com/foundry-appliance/foundry/store"
)

func TestInUseConflicts(t *testing.T) {
	e := newEnv(t)
	e.setup()
	ctx := context.Background()
	a := e.inventoried(macA)
	if _, err := e.admin.Approve(ctx, macA, api.ApproveRequest{Token: a.tok.Value, Cluster: "rack1"}); err != nil {
		t.Fatal(err)
	}
	if err := e.admin.DeleteCluster(ctx, "rack1"); client.StatusOf(err) != 409 {
		t.Errorf("delete used cluster: %v", err)
	}
	if err := e.admin.DeleteProfile(ctx, "disk-image"); client.StatusOf(err) != 409 {
		t.Errorf("delete used profile: %v", err)
	}
	if err := e.admin.DeleteProfile(ctx, "netboot"); client.StatusOf(err) != 409 {
		t.Errorf("delete a cluster's default profile: %v", err)
	}
	if err := e.admin.DeleteMachine(ctx, macA); err != nil {
		t.Fatal(err)
	}
	if err := e.admin.DeleteCluster(ctx, "rack1"); err != nil {
		t.Errorf("delete unused cluster: %v", err)
	}
	if err := e.admin.DeleteProfile(ctx, "disk-image"); err != nil {
		t.Errorf("delete unused profile: %v", err)
	}
	if _, err := e.admin.GetCluster(ctx, "rack1"); client.StatusOf(err) != 404 {
		t.Errorf("deleted cluster: %v", err)
	}
}

func TestClusterProfileValidation(t *testing.T) {
	e := newEnv(t)
	e.setup()
	admin := map[string]string{"Authorization": "Bearer " + e.adminToken}
	cases := []struct {
		name, method, path string
		body               map[string]any
		status             int
		loc                string
	}{
		{"cluster exists", "POST", "/clusters", map[string]any{"name": "rack1"}, 409, "body.name"},
		{"cluster bad name", "POST", "/clusters", map[string]any{"name": "../x"}, 422, "body.name"},
		{"cluster unknown default", "POST", "/clusters", map[string]any{"name": "r9", "default_profile": "nope"}, 422, "body.default_profile"},
		{"cluster update unknown default", "PUT", "/clusters/rack1", map[string]any{"default_profile": "nope"}, 422, "body.default_profile"},
		{"profile bad kind", "POST", "/profiles", map[string]any{"name": "p", "kind": "pxe"}, 422, "body.kind"},
		{"netboot without kernel", "POST", "/profiles", map[string]any{"name": "p", "kind": "netboot"}, 422, "body.kernel"},
		{"netboot kernel not a url", "POST", "/profiles", map[string]any{"name": "p", "kind": "netboot", "kernel": "ftp://x/k"}, 422, "body.kernel"},
		{"netboot cmdline newline", "POST", "/profiles", map[string]any{"name": "p", "kind": "netboot", "kernel": "/k", "cmdline": "a\nshell"}, 422, "body.cmdline"},
		{"netboot script", "POST", "/profiles", map[string]any{"name": "p", "kind": "netboot", "script": "echo hi"}, 422, "body.script"},
		{"image without sha", "POST", "/profiles", map[string]any{"name": "p", "kind": "image", "image_url": "/images/x.raw"}, 422, "body.image_sha256"},
		{"image without url", "POST", "/profiles", map[string]any{"name": "p", "kind": "image", "image_sha256": strings.Repeat("a", 64)}, 422, "body.image_url"},
		{"missing kind", "POST", "/profiles", map[string]any{"name": "p"}, 422, "body.kind"},
		{"update unknown", "PUT", "/profiles/nope", map[string]any{"kind": "netboot", "kernel": "/k"}, 404, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.raw(tc.method, tc.path, tc.body, admin)
			if code != tc.status || tc.loc != "" && !hasLocation(problem(t, body), tc.loc) {
				t.Fatalf("%d %s", code, body)
			}
		})
	}
	ctx := context.Background()
	c, err := e.admin.UpdateCluster(ctx, "bare", api.ClusterFields{Description: "now with a default", DefaultProfile: "netboot"})
	if err != nil || c.DefaultProfile != "netboot" || c.Description != "now with a default" {
		t.Fatalf("update cluster: %+v %v", c, err)
	}
	p, err := e.admin.UpdateProfile(ctx, "netboot", api.ProfileFields{Kind: "netboot", Script: "#!ipxe\nexit"})
	if err != nil || p.Script != "#!ipxe\nexit" || p.Kernel != "" {
		t.Fatalf("update profile: %+v %v", p, err)
	}
}

func TestListMachines(t *testing.T) {
	e := newEnv(t)
	e.setup()
	ctx := context.Background()
	macs := []string{"52:54:00:00:00:05", "52:54:00:00:00:03", "52:54:00:00:00:01", "52:54:00:00:00:04", "52:54:00:00:00:02"}
	for i, mac := range macs {
		if i%2 == 0 {
			e.inventoried(mac)
		} else {
			e.discover(mac)
		}
		e.clock.Add(time.Second)
	}
	var seen []string
	cursor := ""
	for page := 0; ; page++ {
		l, err := e.viewer.ListMachines(ctx, client.ListOptions{Limit: 2, Cursor: cursor, Sort: "-first_seen"})
		if err != nil {
			t.Fatal(err)
		}
		if l.Total != 5 || l.Counts["inventoried"] != 3 || l.Counts["discovered"] != 2 {
			t.Fatalf("totals: %+v", l)
		}
		for _, m := range l.Items {
			seen = append(seen, m.MAC)
		}
		if cursor = l.NextCursor; cursor == "" {
			break
		}
		if page > 5 {
			t.Fatal("paging does not end")
		}
	}
	want := []string{macs[4], macs[3], macs[2], macs[1], macs[0]}
	if strings.Join(seen, " ") != strings.Join(want, " ") {
		t.Errorf("pages by -first_seen: %v, want %v", seen, want)
	}
	l, err := e.viewer.ListMachines(ctx, client.ListOptions{State: []string{"inventoried"}, Sort: "mac"})
	if err != nil || l.Total != 3 || l.Items[0].MAC != "52:54:00:00:00:01" || l.Items[0].Summary.Vendor != "QEMU" || l.Items[0].Inventory != nil {
		t.Fatalf("state filter: %+v %v", l, err)
	}
	l, err = e.viewer.ListMachines(ctx, client.ListOptions{Q: "s-52:54:00:00:00:03"})
	if err != nil || l.Total != 0 {
		t.Errorf("search for a discovered machine's serial: %+v", l)
	}
	l, err = e.viewer.ListMachines(ctx, client.ListOptions{Q: "S-52:54:00:00:00:05"})
	if err != nil || l.Total != 1 || l.Items[0].MAC != macs[0] {
		t.Errorf("search by serial: %+v %v", l, err)
	}
	if _, err := e.viewer.ListMachines(ctx, client.ListOptions{State: []string{"lost"}}); client.StatusOf(err) != 422 {
		t.Errorf("unknown state: %v", err)
	}
	if _, err := e.viewer.ListMachines(ctx, client.ListOptions{Cursor: "garbage"}); client.StatusOf(err) != 422 {
		t.Errorf("bad cursor: %v", err)
	}
	m, err := e.viewer.GetMachine(ctx, "52-54-00-00-00-05")
	if err != nil || m.MAC != macs[0] || len(m.Inventory) == 0 || m.Token == nil || m.Token.Locked {
		t.Errorf("get by dashed MAC: %+v %v", m, err)
	}
}

func TestAuditFilters(t *testing.T) {
	e := newEnv(t)
	e.setup()
	ctx := context.Background()
	start := e.clock.Now()
	a := e.inventoried(macA)
	e.clock.Add(time.Minute)
	mid := e.clock.Now()
	e.inventoried(macB)
	if _, err := e.admin.Reject(ctx, macB, "duplicate"); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Minute)
	if _, err := e.admin.Approve(ctx, macA, api.ApproveRequest{Token: a.tok.Value, Cluster: "rack1"}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		opt  client.AuditOptions
		want func(api.AuditEntry) bool
		min  int
	}{
		{"by machine", client.AuditOptions{MAC: macB}, func(x api.AuditEntry) bool { return x.MAC == macB }, 3},
		{"by actor", client.AuditOptions{Actor: "agent:" + macA}, func(x api.AuditEntry) bool { return x.Actor == "agent:"+macA }, 1},
		{"by action", client.AuditOptions{Action: "reject"}, func(x api.AuditEntry) bool { return x.Action == "reject" && x.MAC == macB }, 1},
		{"since", client.AuditOptions{Since: mid}, func(x api.AuditEntry) bool { return !x.Time.Before(mid) }, 4},
		{"until", client.AuditOptions{Since: start, Until: mid}, func(x api.AuditEntry) bool { return x.Time.Before(mid) }, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := e.viewer.ListAudit(ctx, tc.opt)
			if err != nil || len(l.Items) < tc.min {
				t.Fatalf("%+v %v", l, err)
			}
			for _, x := range l.Items {
				if !tc.want(x) {
					t.Errorf("entry does not match the filter: %+v", x)
				}
			}
		})
	}
	all, err := e.viewer.ListAudit(ctx, client.AuditOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var paged []string
	cursor := ""
	for {
		l, err := e.viewer.ListAudit(ctx, client.AuditOptions{Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range l.Items {
			paged = append(paged, x.ID)
		}
		if cursor = l.NextCursor; cursor == "" {
			break
		}
	}
	if len(paged) != len(all.Items) || len(paged) < 8 {
		t.Errorf("paged %d entries, all %d", len(paged), len(all.Items))
	}
}

func TestEventStream(t *testing.T) {
	e := newEnv(t)
	e.setup()
	e.inventoried(macA)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.ts.URL+api.Prefix+"/events?mac="+macA, nil)
	req.Header.Set("Authorization", "Bearer "+e.viewer.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	rd := bufio.NewReader(resp.Body)
	next := func() (string, string) {
		var ev, data string
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				t.Fatalf("read stream: %v", err)
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case line == "" && data != "":
				return ev, data
			case strings.HasPrefix(line, "event: "):
				ev = line[7:]
			case strings.HasPrefix(line, "data: "):
				data = line[6:]
			}
		}
	}
	if ev, _ := next(); ev != "ping" {
		t.Fatalf("first event %q, want ping", ev)
	}
	e.discover(macB) // filtered out
	if _, err := e.admin.Reject(context.Background(), macA, "test"); err != nil {
		t.Fatal(err)
	}
	ev, data := next()
	var me api.MachineEvent
	if ev != "machine" || json.Unmarshal([]byte(data), &me) != nil || me.Type != "updated" || me.Machine.MAC != macA || me.Machine.State != "rejected" {
		t.Fatalf("event %q %s", ev, data)
	}
	if strings.Contains(data, "hash") || strings.Contains(data, `"inventory"`) {
		t.Errorf("event leaks token hash or full inventory: %s", data)
	}

	// The typed client sees the same change.
	got := make(chan client.Event, 4)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	go e.viewer.Watch(wctx, "", func(ev client.Event) error { got <- ev; return nil })
	// Watch hides the opening ping, so keep changing macB until the
	// subscription is seen to be live.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := e.db.UpdateMachine(macB, store.Audit{Actor: "test"}, func(m *store.Machine) error { m.IP = "10.77.0.123"; return nil }); err != nil {
			t.Fatal(err)
		}
		select {
		case ev := <-got:
			if ev.Machine == nil || ev.Machine.Type != "updated" || ev.Machine.Machine.MAC != macB || ev.Machine.Machine.IP != "10.77.0.123" {
				t.Fatalf("watch event: %+v", ev)
			}
			return
		case <-tick.C:
			continue
		case <-ctx.Done():
			t.Fatal("client.Watch saw no event")
		}
	}
}

func TestSegmentsAndLeases(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	lease := store.Lease{Segment: "lab", MAC: macA, IP: netip.MustParseAddr("10.77.0.100"), Hostname: "discovered-123456", Expires: e.clock.Now().Add(time.Hour)}
	if err := e.db.PutLease(lease); err != nil {
		t.Fatal(err)
	}
	segs, err := e.viewer.ListSegments(ctx)
	if err != nil || len(segs) != 1 || segs[0].Subnet != "10.77.0.0/24" || segs[0].RangeStart != "10.77.0.100" || segs[0].Mode != "dhcp" || !segs[0].Discovery {
		t.Fatalf("segments: %+v %v", segs, err)
	}
	leases, err := e.viewer.ListLeases(ctx, "lab")
	if err != nil || len(leases) != 1 || leases[0].MAC != macA || leases[0].IP != "10.77.0.100" {
		t.Fatalf("leases: %+v %v", leases, err)
	}
	if _, err := e.viewer.ListLeases(ctx, "office"); client.StatusOf(err) != 404 {
		t.Errorf("unconfigured segment: %v", err)
	}
}
