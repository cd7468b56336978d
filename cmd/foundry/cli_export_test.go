package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/hardware"
	"github.com/foundry-appliance/foundry/ipxe"
	"github.com/foundry-appliance/foundry/lifecycle"
	"github.com/foundry-appliance/foundry/store"
)

func TestCLIScriptAndExport(t *testing.T) {
	e := newCLIEnv(t, func(s *api.Server) {
		s.Boot = &ipxe.Server{Store: s.Store.(*store.DB), BaseURL: "http://10.77.0.1:8080",
			Segments: map[string]lifecycle.Segment{"lab": {Discovery: true}}}
	})
	ctx := context.Background()
	t.Setenv("FOUNDRY_URL", e.url)
	t.Setenv("FOUNDRY_TOKEN", e.viewer)
	const mac = "52:54:00:12:34:56"
	code := e.registerMachine(mac)
	admin := []string{"--token", e.admin}

	steps := []struct {
		name string
		args []string
		exit int
		out  string // prefix of stdout
		err  string // substring of stderr
	}{
		{"script", []string{"machines", "script", mac}, 0, "#!ipxe\n", "discovery script"},
		{"script of an unknown machine", []string{"machines", "script", "52:54:00:00:00:99"}, 3, "", "not found"},
		{"script without a MAC", []string{"machines", "script"}, 2, "", "MAC"},
		{"export before approval", []string{"machines", "export", mac}, 4, "", "only approved machines"},
		{"export without a machine", []string{"machines", "export"}, 2, "", "--all"},
		{"export of one and all", []string{"machines", "export", mac, "--all"}, 2, "", "--all"},
		{"export all, none approved", []string{"machines", "export", "--all"}, 0, "", "no approved machines"},
		{"create profile", append([]string{"profiles", "create", "prod", "--kind", "netboot", "--kernel", "/images/prod/vmlinuz"}, admin...), 0, "", ""},
		{"unsafe profile", append([]string{"profiles", "create", "bad", "--kind", "netboot", "--kernel", "/images/prod/vmlinuz", "--cmdline", "quiet ; shell"}, admin...), 4, "", "body.cmdline"},
		{"create cluster", append([]string{"clusters", "create", "rack1", "--default-profile", "prod"}, admin...), 0, "", ""},
		{"approve", append([]string{"machines", "approve", mac, "--console-token", code, "--cluster", "rack1", "--hostname", "node-01"}, admin...), 0, "approved", ""},
		{"production script", []string{"machines", "script", mac}, 0, "#!ipxe\n", "production script"},
		{"export", []string{"machines", "export", mac}, 0, "apiVersion: tinkerbell.org/v1alpha1\n", ""},
		{"export with a bad namespace", []string{"machines", "export", "--all", "--namespace", "Not_A_Namespace"}, 4, "", "query.namespace"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			out, errOut, exit := e.run(ctx, s.args...)
			if exit != s.exit || !strings.HasPrefix(out, s.out) || !strings.Contains(errOut, s.err) {
				t.Fatalf("foundry %s: exit %d (want %d)\nstdout: %s\nstderr: %s", strings.Join(s.args, " "), exit, s.exit, out, errOut)
			}
		})
	}

	out, _, exit := e.run(ctx, "machines", "script", mac, "-o", "json")
	var bs api.BootScript
	if err := json.Unmarshal([]byte(out), &bs); exit != 0 || err != nil || bs.Kind != "production" || !strings.Contains(bs.Text, "kernel http://10.77.0.1:8080/images/prod/vmlinuz") {
		t.Fatalf("script -o json: exit %d %+v %v", exit, bs, err)
	}
	out, _, exit = e.run(ctx, "machines", "export", "--all", "--namespace", "tink-system")
	h, err := hardware.Parse([]byte(out))
	if exit != 0 || err != nil || h.Name != "node-01" || h.Namespace != "tink-system" ||
		len(h.Spec.Interfaces) != 1 || h.Spec.Interfaces[0].DHCP.MAC != mac || len(h.Spec.Disks) != 1 || h.Spec.Disks[0].Device != "/dev/disk/by-path/pci-0000:00:1f.2-ata-1" {
		t.Fatalf("export --all: exit %d %+v %v\n%s", exit, h, err, out)
	}
}

func TestCLIScriptWithoutBootServer(t *testing.T) {
	e := newCLIEnv(t)
	const mac = "52:54:00:12:34:57"
	e.registerMachine(mac)
	if _, errOut, exit := e.run(context.Background(), "machines", "script", mac, "--server", e.url, "--token", e.viewer); exit != 3 || !strings.Contains(errOut, "serves no boot scripts") {
		t.Fatalf("exit %d: %s", exit, errOut)
	}
}
