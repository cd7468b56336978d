package api_test

import (
	"context"
	"testing"

	"github.com/foundry-appliance/foundry/api"
)

// TestProfileBootSafety: values the iPXE renderer would refuse at boot
// time are refused when the profile is written, naming the field, and
// nothing is stored.
func TestProfileBootSafety(t *testing.T) {
	e := newEnv(t)
	e.setup()
	admin := map[string]string{"Authorization": "Bearer " + e.adminToken}
	netboot := func(kv ...string) map[string]any {
		b := map[string]any{"name": "unsafe", "kind": "netboot", "kernel": "/images/k/vmlinuz"}
		for i := 0; i+1 < len(kv); i += 2 {
			b[kv[i]] = kv[i+1]
		}
		return b
	}
	cases := []struct {
		name string
		body map[string]any
		loc  string // "" = accepted
	}{
		{"kernel with iPXE expansion", netboot("kernel", "/images/${net0/mac}/vmlinuz"), "body.kernel"},
		{"kernel with a fragment", netboot("kernel", "http://10.77.0.1:8080/vmlinuz#x"), "body.kernel"},
		{"initrd with iPXE expansion", netboot("initrd", "http://10.77.0.1:8080/${x}"), "body.initrd"},
		{"cmdline with a command separator", netboot("cmdline", "console=ttyS0 || shell"), "body.cmdline"},
		{"cmdline starting a comment", netboot("cmdline", "quiet #x"), "body.cmdline"},
		{"cmdline with expansion", netboot("cmdline", "ip=${net0/ip}"), "body.cmdline"},
		{"template that does not parse", netboot("kernel", "", "script", "#!ipxe\nchain {{.BaseURL"), "body.script"},
		{"template with an unknown field", netboot("kernel", "", "script", "#!ipxe\nchain {{.Secret}}"), "body.script"},
		{"separator inside a word is harmless", netboot("cmdline", "a||b x;y"), ""},
		{"template with known fields", netboot("kernel", "", "script", "#!ipxe\nchain {{.BaseURL}}/boot/{{.MAC}}?host={{.Hostname}}"), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.raw("POST", "/profiles", tc.body, admin)
			if tc.loc == "" {
				if code != 201 {
					t.Fatalf("refused a safe profile: %d %s", code, body)
				}
				if err := e.admin.DeleteProfile(context.Background(), "unsafe"); err != nil {
					t.Fatal(err)
				}
				return
			}
			if code != 422 || !hasLocation(problem(t, body), tc.loc) {
				t.Fatalf("%d %s", code, body)
			}
			if _, err := e.db.GetProfile("unsafe"); err == nil {
				t.Fatal("a refused profile was stored")
			}
		})
	}
	t.Run("update", func(t *testing.T) {
		code, body := e.raw("PUT", "/profiles/netboot", map[string]any{"kind": "netboot", "kernel": "/images/prod/vmlinuz", "cmdline": "a ; b"}, admin)
		if code != 422 || !hasLocation(problem(t, body), "body.cmdline") {
			t.Fatalf("%d %s", code, body)
		}
		p, err := e.admin.GetProfile(context.Background(), "netboot")
		if err != nil || p.Cmdline != "console=ttyS0 marker=prod" {
			t.Fatalf("profile after a refused update: %+v %v", p, err)
		}
		if _, err := e.admin.UpdateProfile(context.Background(), "netboot", api.ProfileFields{Kind: "netboot", Kernel: "/images/prod/vmlinuz", Cmdline: "quiet"}); err != nil {
			t.Fatalf("safe update: %v", err)
		}
	})
}
