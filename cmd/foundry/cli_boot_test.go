package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/store"
)

func TestCLIMachineBoot(t *testing.T) {
	e := newCLIEnv(t)
	ctx := context.Background()
	t.Setenv("FOUNDRY_URL", e.url)
	t.Setenv("FOUNDRY_TOKEN", e.admin)
	const mac = "52:54:00:12:34:56"
	code := e.registerMachine(mac)
	for _, args := range [][]string{
		{"profiles", "create", "prod", "--kind", "netboot", "--kernel", "/images/prod/vmlinuz"},
		{"clusters", "create", "rack1", "--default-profile", "prod"},
		{"machines", "approve", mac, "--console-token", code, "--cluster", "rack1"},
	} {
		if out, errOut, exit := e.run(ctx, args...); exit != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, exit, out, errOut)
		}
	}

	// line matches one "Key:   value" row of the table output.
	line := func(key, value string) *regexp.Regexp {
		return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `:\s+` + regexp.QuoteMeta(value) + `$`)
	}
	steps := []struct {
		name string
		args []string
		exit int
		out  []*regexp.Regexp
		err  string // substring of stderr
		menu store.BootMenu
		uefi string
	}{
		{"show defaults", []string{mac}, 0,
			[]*regexp.Regexp{line("Menu", "off"), line("Menu timeout", "appliance default"), line("Menu default", "production"), line("UEFI binary", "segment's choice")},
			"", store.BootMenu{}, ""},
		{"set everything", []string{"52-54-00-12-34-56", "--menu", "on", "--menu-timeout", "10s", "--menu-default", "local", "--uefi-binary", "snponly.efi"}, 0,
			[]*regexp.Regexp{line("Menu", "on"), line("Menu timeout", "10s"), line("Menu default", "local"), line("UEFI binary", "snponly.efi")},
			"", store.BootMenu{Enabled: true, TimeoutSeconds: 10, Default: "local"}, "snponly.efi"},
		{"only the named setting changes", []string{mac, "--uefi-binary", "segment"}, 0,
			[]*regexp.Regexp{line("Menu", "on"), line("Menu timeout", "10s"), line("UEFI binary", "segment's choice")},
			"", store.BootMenu{Enabled: true, TimeoutSeconds: 10, Default: "local"}, ""},
		{"not whole seconds", []string{mac, "--menu-timeout", "1500ms"}, 2, nil, "whole seconds",
			store.BootMenu{Enabled: true, TimeoutSeconds: 10, Default: "local"}, ""},
		{"not on or off", []string{mac, "--menu", "maybe"}, 2, nil, "want on or off",
			store.BootMenu{Enabled: true, TimeoutSeconds: 10, Default: "local"}, ""},
		{"unknown item names the field", []string{mac, "--menu-default", "floppy"}, 4, nil, "body.menu.default",
			store.BootMenu{Enabled: true, TimeoutSeconds: 10, Default: "local"}, ""},
		{"timeout out of range names the field", []string{mac, "--menu-timeout", "11m"}, 4, nil, "body.menu.timeout_seconds",
			store.BootMenu{Enabled: true, TimeoutSeconds: 10, Default: "local"}, ""},
		{"viewer may not", []string{mac, "--menu", "off", "--token", e.viewer}, 5, nil, "",
			store.BootMenu{Enabled: true, TimeoutSeconds: 10, Default: "local"}, ""},
		{"unknown machine", []string{"52:54:00:00:00:99", "--menu", "on"}, 3, nil, "",
			store.BootMenu{Enabled: true, TimeoutSeconds: 10, Default: "local"}, ""},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			out, errOut, exit := e.run(ctx, append([]string{"machines", "boot"}, s.args...)...)
			if exit != s.exit {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", exit, s.exit, out, errOut)
			}
			for _, re := range s.out {
				if !re.MatchString(out) {
					t.Errorf("stdout lacks %s:\n%s", re, out)
				}
			}
			if !strings.Contains(errOut, s.err) {
				t.Errorf("stderr lacks %q: %s", s.err, errOut)
			}
			m, err := e.db.GetMachine(mac)
			if err != nil {
				t.Fatal(err)
			}
			if m.Menu != s.menu || m.UEFIBinary != s.uefi {
				t.Errorf("stored menu %+v uefi %q, want %+v %q", m.Menu, m.UEFIBinary, s.menu, s.uefi)
			}
		})
	}

	out, errOut, exit := e.run(ctx, "machines", "boot", mac, "--menu", "off", "-o", "json")
	if exit != 0 {
		t.Fatalf("-o json: exit %d: %s", exit, errOut)
	}
	var m api.Machine
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("-o json prints no machine: %v\n%s", err, out)
	}
	if m.MAC != mac || m.Menu != (api.BootMenu{TimeoutSeconds: 10, Default: "local"}) || m.UEFIBinary != "" {
		t.Fatalf("-o json: %+v", m)
	}
}
