package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/api/client"
	"github.com/foundry-appliance/foundry/ipxe"
	"github.com/foundry-appliance/foundry/store"
)

// readyNetboot approves mac with the netboot profile, so it is ready and
// its production boot can become the menu.
func (e *env) readyNetboot(mac string) store.Machine {
	e.t.Helper()
	a := e.inventoried(mac)
	if _, err := e.admin.Approve(context.Background(), mac, api.ApproveRequest{Token: a.tok.Value, Cluster: "rack2"}); err != nil {
		e.t.Fatalf("approve %s: %v", mac, err)
	}
	m := e.machine(mac)
	if m.State != store.StateReady {
		e.t.Fatalf("%s is %s after a netboot approval, want ready", mac, m.State)
	}
	return m
}

func bootAudit(t *testing.T, e *env, mac string) []api.AuditEntry {
	t.Helper()
	l, err := e.viewer.ListAudit(context.Background(), client.AuditOptions{MAC: mac, Action: "boot-settings"})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func TestSetBoot(t *testing.T) {
	e := newEnv(t, func(s *api.Server) {
		s.Boot = &ipxe.Server{Store: s.Store.(*store.DB), BaseURL: "http://10.77.0.1:8080"}
	})
	e.setup()
	ctx := context.Background()
	e.readyNetboot(macA)

	fresh, err := e.viewer.GetMachine(ctx, macA)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Menu != (api.BootMenu{Default: "production"}) || fresh.UEFIBinary != "" {
		t.Fatalf("a new machine shows menu %+v, uefi %q; want off, default production, the segment's binary", fresh.Menu, fresh.UEFIBinary)
	}

	want := api.BootSettings{Menu: api.BootMenu{Enabled: true, TimeoutSeconds: 10, Default: "local"}, UEFIBinary: "snponly.efi"}
	got, err := e.admin.SetBoot(ctx, "52-54-00-12-34-56", want)
	if err != nil {
		t.Fatal(err)
	}
	read, err := e.viewer.GetMachine(ctx, macA)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []api.Machine{got, read} {
		if m.Menu != want.Menu || m.UEFIBinary != want.UEFIBinary {
			t.Fatalf("machine shows menu %+v, uefi %q; want %+v", m.Menu, m.UEFIBinary, want)
		}
	}
	stored := e.machine(macA)
	if stored.Menu != (store.BootMenu{Enabled: true, TimeoutSeconds: 10, Default: store.MenuLocal}) || stored.UEFIBinary != "snponly.efi" {
		t.Fatalf("stored menu %+v, uefi %q", stored.Menu, stored.UEFIBinary)
	}
	// What the machine really gets on its next boot.
	bs, err := e.viewer.BootScript(ctx, macA)
	if err != nil {
		t.Fatal(err)
	}
	if bs.Kind != "menu" || !strings.Contains(bs.Text, "choose --timeout 10000 --default local selected || goto local\n") {
		t.Fatalf("boot script after the menu was set: kind %s\n%s", bs.Kind, bs.Text)
	}
	audit := bootAudit(t, e, macA)
	if len(audit) != 1 || audit[0].Actor != "token:admin" ||
		audit[0].Detail != "menu off -> on, timeout default -> 10s, default production -> local, uefi_binary segment's -> snponly.efi" {
		t.Fatalf("audit after setting: %+v", audit)
	}

	// The same settings again change nothing and write nothing.
	again, err := e.admin.SetBoot(ctx, macA, want)
	if err != nil {
		t.Fatal(err)
	}
	if again.Revision != stored.Revision || len(bootAudit(t, e, macA)) != 1 {
		t.Fatalf("a no-op PUT moved the revision %d -> %d or wrote an audit entry", stored.Revision, again.Revision)
	}

	// Absent fields mean the defaults: PUT replaces the settings whole.
	off, err := e.admin.SetBoot(ctx, macA, api.BootSettings{})
	if err != nil {
		t.Fatal(err)
	}
	if off.Menu != (api.BootMenu{Default: "production"}) || off.UEFIBinary != "" {
		t.Fatalf("after resetting: menu %+v, uefi %q", off.Menu, off.UEFIBinary)
	}
	if a := bootAudit(t, e, macA); len(a) != 2 ||
		a[0].Detail != "menu on -> off, timeout 10s -> default, default local -> production, uefi_binary snponly.efi -> segment's" {
		t.Fatalf("audit after resetting: %+v", a)
	}
	if bs, err := e.viewer.BootScript(ctx, macA); err != nil || bs.Kind != "production" {
		t.Fatalf("boot script with the menu off: %v %+v", err, bs)
	}
}

// TestSetBootRefused: every refusal names its field or reason and leaves
// the record as it was.
func TestSetBootRefused(t *testing.T) {
	e := newEnv(t)
	e.setup()
	ctx := context.Background()
	e.readyNetboot(macA)
	rej := e.inventoried(macB)
	if _, err := e.admin.Reject(ctx, rej.mac, "not ours"); err != nil {
		t.Fatal(err)
	}
	auth := map[string]string{"Authorization": "Bearer " + e.adminToken}
	good := map[string]any{"menu": map[string]any{"enabled": true, "timeout_seconds": 5, "default": "local"}}

	cases := []struct {
		name     string
		mac      string
		body     any
		headers  map[string]string
		status   int
		location string // blamed field, when the status is 422
	}{
		{"unknown default", macA, map[string]any{"menu": map[string]any{"enabled": true, "default": "floppy"}}, auth, 422, "body.menu.default"},
		{"timeout too long", macA, map[string]any{"menu": map[string]any{"enabled": true, "timeout_seconds": 601}}, auth, 422, "body.menu.timeout_seconds"},
		{"negative timeout", macA, map[string]any{"menu": map[string]any{"enabled": true, "timeout_seconds": -1}}, auth, 422, "body.menu.timeout_seconds"},
		{"BIOS binary as UEFI binary", macA, map[string]any{"menu": map[string]any{"enabled": false}, "uefi_binary": "undionly.kpxe"}, auth, 422, "body.uefi_binary"},
		{"no menu", macA, map[string]any{"uefi_binary": "ipxe.efi"}, auth, 422, "body.menu"},
		{"menu without enabled", macA, map[string]any{"menu": map[string]any{"default": "local"}}, auth, 422, "body.menu.enabled"},
		{"not a MAC", "nope", good, auth, 422, "path.mac"},
		{"viewer", macA, good, map[string]string{"Authorization": "Bearer " + e.viewer.Token}, 403, ""},
		{"no token", macA, good, nil, 401, ""},
		{"rejected machine", macB, good, auth, 409, ""},
		{"unknown machine", "52:54:00:00:00:99", good, auth, 404, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var before store.Machine
			if tc.status != 404 && tc.mac != "nope" {
				before = e.machine(tc.mac)
			}
			code, body := e.raw(http.MethodPut, "/machines/"+tc.mac+"/boot", tc.body, tc.headers)
			if code != tc.status {
				t.Fatalf("status %d, want %d: %s", code, tc.status, body)
			}
			if p := problem(t, body); tc.location != "" && !hasLocation(p, tc.location) {
				t.Errorf("problem does not name %s: %s", tc.location, body)
			}
			if before.MAC != "" {
				if after := e.machine(tc.mac); after.Revision != before.Revision || after.Menu != before.Menu || after.UEFIBinary != before.UEFIBinary {
					t.Errorf("refused call changed the record: revision %d -> %d, menu %+v -> %+v", before.Revision, after.Revision, before.Menu, after.Menu)
				}
			}
		})
	}
	if a := bootAudit(t, e, ""); len(a) != 0 {
		t.Fatalf("refused calls wrote audit entries: %+v", a)
	}
}

// openAPIEnums reads the served OpenAPI document's enums: schema →
// property → values.
func openAPIEnums(t *testing.T, e *env) map[string]map[string][]string {
	t.Helper()
	resp, err := e.ts.Client().Get(e.ts.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("openapi.json: %s", resp.Status)
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Enum []string `json:"enum"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string][]string{}
	for name, schema := range doc.Components.Schemas {
		out[name] = map[string][]string{}
		for prop, p := range schema.Properties {
			out[name][prop] = p.Enum
		}
	}
	return out
}

// TestBootMenuEnumIsTheStores keeps the API's documented menu items equal
// to the store's, which the iPXE menu script is built from.
func TestBootMenuEnumIsTheStores(t *testing.T) {
	enums := openAPIEnums(t, newEnv(t))
	got := enums["BootMenu"]["default"]
	if !slices.Equal(got, store.MenuItems()) {
		t.Fatalf("BootMenu.default enum is %v, store.MenuItems() is %v", got, store.MenuItems())
	}
	for _, schema := range []string{"BootSettings", "Machine"} {
		if got := enums[schema]["uefi_binary"]; !slices.Equal(got, []string{"", "ipxe.efi", "snponly.efi"}) {
			t.Errorf("%s.uefi_binary enum is %q", schema, got)
		}
	}
}
