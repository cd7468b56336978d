package ipxe

import (
	"strings"
	"testing"

	"github.com/foundry-appliance/foundry/discovery-os/agent"
	"github.com/foundry-appliance/foundry/store"
)

// renderCase is one machine and profile, every value the fuzzer's.
type renderCase struct {
	kernel, initrd, cmdline, script    string
	hostname, ip, cluster, menuDefault string
	base, nonce, extra                 string
	state                              store.State
	menu                               bool
	image                              bool
}

func (c renderCase) input() Input {
	m := &store.Machine{MAC: testMAC, State: c.state, Hostname: c.hostname, IP: c.ip, Cluster: c.cluster, Profile: "p",
		Menu: store.BootMenu{Enabled: c.menu, Default: c.menuDefault}}
	p := &store.Profile{Name: "p", Kind: store.ProfileNetboot, Kernel: c.kernel, Initrd: c.initrd, Cmdline: c.cmdline, Script: c.script}
	if c.image {
		p.Kind = store.ProfileImage
	}
	in := input(m, new(int))
	in.Profile, in.BaseURL, in.ExtraDiscoveryArgs = p, c.base, c.extra
	in.Nonce = func() (string, error) { return c.nonce, nil }
	return in
}

// benign is the same case with values known to be plain, of the same
// shape (present or absent, template or not): the script the fuzzed one
// must match line for line.
func (c renderCase) benign() renderCase {
	plain := func(v, p string) string {
		if v == "" {
			return ""
		}
		return p
	}
	b := c
	b.kernel, b.initrd, b.cmdline = plain(c.kernel, "/images/k"), plain(c.initrd, "/images/i"), plain(c.cmdline, "quiet")
	b.hostname, b.ip, b.cluster = plain(c.hostname, "web01"), plain(c.ip, "10.77.0.9"), plain(c.cluster, "lab")
	b.base, b.nonce, b.extra = testBase, testNonce, plain(c.extra, "console=ttyS0")
	return b
}

// skeleton is what iPXE makes of a line's structure: the command, and the
// words that separate commands, start comments or labels, or expand
// settings, in order. Values may change a line's other words, never these.
func skeleton(line string) string {
	if strings.HasPrefix(line, ":") {
		return line
	}
	f := strings.Fields(line)
	if len(f) == 0 {
		return ""
	}
	sk := []string{f[0]}
	for _, w := range f[1:] {
		switch {
		case w == "||" || w == "&&" || w == ";" || strings.HasPrefix(w, "#"):
			sk = append(sk, w)
		case strings.Contains(w, "$"):
			sk = append(sk, "$")
		}
	}
	return strings.Join(sk, " ")
}

// FuzzRender: whatever the record and profile hold, Render refuses the
// script or produces one whose lines are exactly the intended ones: the
// script a plain machine of the same kind gets, line for line in
// structure, and clean to the linter. A profile ValidateProfile accepts
// boots a plain machine. The discovery kernel line reads back, through
// the agent's own parser, as the URL, MAC and nonce it was given.
func FuzzRender(f *testing.F) {
	p := profiles["debian"]
	f.Add(p.Kernel, p.Initrd, p.Cmdline, "", "web01.lab.example", "10.77.0.101", "lab", "", testBase, testNonce, "console=tty0", uint8(store.StateReady), false, false)
	f.Add(p.Kernel, p.Initrd, "quiet || shell", "", "web01", "", "", "", testBase, testNonce, "", uint8(store.StateReady), false, false)
	f.Add("http://x/k\nshell", "", "", "", "a\nshell", "10.0.0.1 || shell", "lab shell", "", testBase+"\nshell", "n n", "a && b", uint8(store.StateDiscovered), false, false)
	f.Add("", "", "", profiles["coreos"].Script, "web01", "10.77.0.101", "lab", "", testBase, testNonce, "", uint8(store.StateReady), false, false)
	f.Add(p.Kernel, "", "", "", "web01", "", "", "local", "https://[fd00::1]:8443/", testNonce, "", uint8(store.StateReady), true, false)
	f.Add("", "", "", "", "x${net0/ip}", "", "", "shell", testBase, "${nonce}", "console=${c}", uint8(store.StateReady), true, true)
	f.Add(p.Kernel, p.Initrd, "#c", "", "-n", "::1", "-lab", "", "tftp://x/", "-", "# x", uint8(store.StateApproved), false, false)
	f.Fuzz(func(t *testing.T, kernel, initrd, cmdline, script, hostname, ip, cluster, menuDefault, base, nonce, extra string, state uint8, menu, image bool) {
		c := renderCase{kernel: kernel, initrd: initrd, cmdline: cmdline, script: script, hostname: hostname, ip: ip, cluster: cluster,
			menuDefault: menuDefault, base: base, nonce: nonce, extra: extra, state: store.State(state % 8), menu: menu, image: image}
		in := c.input()
		if ValidateProfile(*in.Profile) == nil {
			plain := renderCase{kernel: kernel, initrd: initrd, cmdline: cmdline, script: script, hostname: "web01", ip: "10.77.0.9",
				cluster: "lab", base: testBase, nonce: testNonce, state: store.StateReady, image: image}
			if _, err := Render(plain.input()); err != nil {
				t.Fatalf("ValidateProfile accepted %+v, which does not boot: %v", *in.Profile, err)
			}
		}
		got, err := Render(in)
		if err != nil {
			return
		}
		// A template's own lines are the administrator's; only the values
		// placed in them are checked, against the plain case.
		template := script != "" && got.Kind == KindProduction
		if !template {
			if errs := lint(got.Text); len(errs) > 0 {
				t.Fatalf("%+v rendered a script the linter refuses: %v\n%s", c, errs, got.Text)
			}
		}
		want, err := Render(c.benign().input())
		if err != nil {
			t.Fatalf("the plain case of %+v: %v", c, err)
		}
		gl, wl := strings.Split(got.Text, "\n"), strings.Split(want.Text, "\n")
		if got.Kind != want.Kind || len(gl) != len(wl) {
			t.Fatalf("%+v: %s script of %d lines, the plain machine's is %s of %d:\n%s", c, got.Kind, len(gl), want.Kind, len(wl), got.Text)
		}
		for i := range gl {
			g, w := skeleton(gl[i]), skeleton(wl[i])
			if template {
				// A template may put a value where the command goes; it
				// stays one word (FuzzTemplate), so only what follows is
				// compared.
				_, g, _ = strings.Cut(g, " ")
				_, w, _ = strings.Cut(w, " ")
			}
			if g != w {
				t.Fatalf("%+v: line %d is %q, intended %q\n%s", c, i+1, gl[i], wl[i], got.Text)
			}
		}
		if got.Kind == KindDiscovery {
			checkAgentReads(t, got.Text, in)
		}
	})
}

// checkAgentReads parses the discovery script's kernel line as the agent
// parses /proc/cmdline.
func checkAgentReads(t *testing.T, script string, in Input) {
	for _, line := range strings.Split(script, "\n") {
		args, ok := strings.CutPrefix(line, "kernel ")
		if !ok {
			continue
		}
		cl, err := agent.ParseCmdline(args)
		if strings.Contains(in.ExtraDiscoveryArgs, "foundry.") {
			return // the operator's own parameters come last and win
		}
		nonce, _ := in.Nonce()
		if err != nil || cl.URL != strings.TrimRight(in.BaseURL, "/") || cl.MAC != in.MAC || cl.Nonce != nonce {
			t.Fatalf("the agent reads %q as %+v, %v; rendered for %s %s %s", args, cl, err, in.BaseURL, in.MAC, nonce)
		}
		return
	}
	t.Fatalf("no kernel line in\n%s", script)
}

// FuzzValidateProfile: a profile is accepted only if every machine it
// could boot gets a script, and any accepted template renders within its
// budget to what text/template renders.
func FuzzValidateProfile(f *testing.F) {
	for _, p := range profiles {
		f.Add(p.Name, p.Kernel, p.Initrd, p.Cmdline, p.Script)
	}
	f.Add("p", "/k", "", "", "{{.Hostname}}{{.IP}}")
	f.Add("-p", "//evil/k", "http://x/i i", "a ; b", "")
	f.Fuzz(func(t *testing.T, name, kernel, initrd, cmdline, script string) {
		p := store.Profile{Name: name, Kind: store.ProfileNetboot, Kernel: kernel, Initrd: initrd, Cmdline: cmdline, Script: script}
		if name == "" || ValidateProfile(p) != nil {
			return // a stored profile has a name (the store's rule)
		}
		if script != "" && !checkAccepted(t, script) {
			t.Fatalf("ValidateProfile accepted a template runTemplate refuses: %q", script)
		}
		// Every machine the profile can boot: with or without a host
		// name, address and cluster, on another appliance URL.
		for i, m := range []store.Machine{
			{Hostname: "web01.lab.example", IP: "10.77.0.101", Cluster: "lab"},
			{},
			{Hostname: strings.Repeat("a", 63), IP: "fd00::1234", Cluster: strings.Repeat("c", 64)},
		} {
			m.MAC, m.State, m.Profile = testMAC, store.StateReady, name
			in := Input{MAC: testMAC, Machine: &m, Profile: &p, BaseURL: []string{testBase, "https://[fd00::1]:8443/x", "http://a"}[i]}
			sc, err := Render(in)
			if err != nil {
				t.Fatalf("ValidateProfile accepted %+v; machine %d cannot boot it: %v", p, i, err)
			}
			if script == "" {
				if errs := lint(sc.Text); len(errs) > 0 {
					t.Fatalf("%+v: script the linter refuses: %v\n%s", p, errs, sc.Text)
				}
			}
		}
	})
}
