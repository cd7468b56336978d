package ipxe

import (
	"errors"
	"strings"
	"testing"

	"github.com/foundry-appliance/foundry/store"
)

// TestRenderRefusesUnsafeValues feeds values that would inject a command,
// a comment or a setting expansion into every place a value goes; each
// must make Render fail instead of producing a script.
func TestRenderRefusesUnsafeValues(t *testing.T) {
	netboot := func(edit func(p *store.Profile)) func(*Input) {
		return func(in *Input) {
			p := *profiles["debian"]
			edit(&p)
			in.Profile = &p
		}
	}
	template := func(edit func(m *store.Machine)) func(*Input) {
		return func(in *Input) {
			m := *in.Machine
			m.Profile = "coreos"
			edit(&m)
			in.Machine = &m
			in.Profile = profiles["coreos"]
		}
	}
	withMachine := func(edit func(m *store.Machine)) func(*Input) {
		return func(in *Input) {
			m := *in.Machine
			edit(&m)
			in.Machine = &m
		}
	}
	tests := []struct {
		name   string
		change func(*Input)
		unsafe bool // the error is ErrUnsafe (others are configuration errors)
	}{
		{"hostname with newline", withMachine(func(m *store.Machine) { m.Hostname = "a\nshell" }), true},
		{"hostname with newline, template", template(func(m *store.Machine) { m.Hostname = "a\nshell" }), true},
		{"hostname with expansion", withMachine(func(m *store.Machine) { m.Hostname = "web${net0/ip}" }), true},
		{"hostname with space", withMachine(func(m *store.Machine) { m.Hostname = "web && shell" }), true},
		{"hostname label too long", withMachine(func(m *store.Machine) { m.Hostname = strings.Repeat("a", 64) }), true},
		{"ip not an address", template(func(m *store.Machine) { m.IP = "10.0.0.1 || shell" }), true},
		{"cluster with space", template(func(m *store.Machine) { m.Cluster = "lab shell" }), true},
		{"cmdline expansion", netboot(func(p *store.Profile) { p.Cmdline = "quiet ${root-path}" }), true},
		{"cmdline lone dollar", netboot(func(p *store.Profile) { p.Cmdline = "x=$HOME" }), true},
		{"cmdline newline", netboot(func(p *store.Profile) { p.Cmdline = "quiet\nshell" }), true},
		{"cmdline CR", netboot(func(p *store.Profile) { p.Cmdline = "quiet\rshell" }), true},
		{"cmdline tab", netboot(func(p *store.Profile) { p.Cmdline = "quiet\tshell" }), true},
		{"cmdline NUL", netboot(func(p *store.Profile) { p.Cmdline = "quiet\x00" }), true},
		{"cmdline and-and", netboot(func(p *store.Profile) { p.Cmdline = "quiet && shell" }), true},
		{"cmdline or-or", netboot(func(p *store.Profile) { p.Cmdline = "quiet || shell" }), true},
		{"cmdline semicolon", netboot(func(p *store.Profile) { p.Cmdline = "quiet ; shell" }), true},
		{"cmdline comment", netboot(func(p *store.Profile) { p.Cmdline = "quiet #rest" }), true},
		{"cmdline non-ASCII", netboot(func(p *store.Profile) { p.Cmdline = "quiet é" }), true},
		{"cmdline too long", netboot(func(p *store.Profile) { p.Cmdline = strings.Repeat("a", 2049) }), true},
		{"kernel URL newline", netboot(func(p *store.Profile) { p.Kernel = "http://x/vmlinuz\nshell" }), true},
		{"kernel URL space", netboot(func(p *store.Profile) { p.Kernel = "http://x/vm linuz" }), true},
		{"kernel URL expansion", netboot(func(p *store.Profile) { p.Kernel = "http://x/${next-server}" }), true},
		{"kernel URL fragment", netboot(func(p *store.Profile) { p.Kernel = "http://x/vmlinuz#x" }), true},
		{"kernel path newline", netboot(func(p *store.Profile) { p.Kernel = "/images/vmlinuz\nshell" }), true},
		{"kernel relative", netboot(func(p *store.Profile) { p.Kernel = "images/vmlinuz" }), true},
		{"kernel scheme", netboot(func(p *store.Profile) { p.Kernel = "file:///vmlinuz" }), true},
		{"kernel no host", netboot(func(p *store.Profile) { p.Kernel = "http:///vmlinuz" }), true},
		{"kernel user info", netboot(func(p *store.Profile) { p.Kernel = "http://u:p@x/vmlinuz" }), true},
		{"kernel network path", netboot(func(p *store.Profile) { p.Kernel = "//evil/vmlinuz" }), true},
		{"initrd URL newline", netboot(func(p *store.Profile) { p.Initrd = "http://x/initrd\nshell" }), true},
		{"initrd URL space", netboot(func(p *store.Profile) { p.Initrd = "http://x/a b" }), true},
		{"base URL newline", func(in *Input) { in.BaseURL = "http://10.77.0.1:8080\nshell" }, true},
		{"base URL space", func(in *Input) { in.BaseURL = "http://10.77.0.1:8080 shell" }, true},
		{"base URL query", func(in *Input) { in.BaseURL = "http://10.77.0.1:8080/?a=b" }, true},
		{"base URL empty", func(in *Input) { in.BaseURL = "" }, true},
		{"MAC not canonical", func(in *Input) { in.MAC = "52-54-00-12-34-56" }, true},
		{"MAC injection", func(in *Input) { in.MAC = "52:54:00:12:34:56\nshell" }, true},
		{"template syntax", netboot(func(p *store.Profile) { p.Script = "#!ipxe\n{{.Hostname" }), false},
		{"template unknown field", netboot(func(p *store.Profile) { p.Script = "#!ipxe\necho {{.Password}}" }), false},
		{"template too long", netboot(func(p *store.Profile) { p.Script = "{{range 100000}}echo 0123456789\n{{end}}" }), false},
		{"profile missing", func(in *Input) { in.Profile = nil }, false},
		{"profile mismatch", func(in *Input) { in.Profile = profiles["mirror"] }, false},
		{"profile without kernel", netboot(func(p *store.Profile) { p.Kernel = "" }), false},
		{"profile unknown kind", netboot(func(p *store.Profile) { p.Kind = "pxelinux" }), false},
		{"record for another MAC", withMachine(func(m *store.Machine) { m.MAC = "52:54:00:00:00:01" }), false},
		{"unknown state", withMachine(func(m *store.Machine) { m.State = 99 }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := input(machine(store.StateReady, "debian", false), new(int))
			tt.change(&in)
			sc, err := Render(in)
			if err == nil {
				t.Fatalf("Render succeeded:\n%s", sc.Text)
			}
			t.Log(err)
			if tt.unsafe && !errors.Is(err, ErrUnsafe) {
				t.Errorf("error %v is not ErrUnsafe", err)
			}
			if strings.ContainsAny(err.Error(), "\n\r\x00") {
				t.Errorf("error message carries raw control bytes: %q", err)
			}
		})
	}
}

func TestDiscoveryRefusesUnsafeValues(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Input)
	}{
		{"nonce with space", func(in *Input) { in.Nonce = func() (string, error) { return "abc shell", nil } }},
		{"nonce with expansion", func(in *Input) { in.Nonce = func() (string, error) { return "${x}", nil } }},
		{"empty nonce", func(in *Input) { in.Nonce = func() (string, error) { return "", nil } }},
		{"extra args expansion", func(in *Input) { in.ExtraDiscoveryArgs = "console=${console}" }},
		{"extra args injection", func(in *Input) { in.ExtraDiscoveryArgs = "quiet && shell" }},
		{"kernel newline", func(in *Input) { in.DiscoveryKernel = "/images/vmlinuz\nshell" }},
		{"initrd space", func(in *Input) { in.DiscoveryInitrd = "/images/initrd shell" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := input(machine(store.StateDiscovered, "", false), new(int))
			tt.change(&in)
			if sc, err := Render(in); !errors.Is(err, ErrUnsafe) {
				t.Fatalf("Render = %v, want ErrUnsafe:\n%s", err, sc.Text)
			}
		})
	}
}

// TestDisplayTextIsSanitised: free text only reaches echo, menu and item
// lines through text(), which must leave nothing iPXE would interpret.
func TestDisplayTextIsSanitised(t *testing.T) {
	for _, s := range []string{"a\nshell", "x ${net0/mac} y", "a || b && c ; d #e", "-n x", "x -n", "é\x00\r\t", strings.Repeat("long ", 50)} {
		got := text(s)
		if strings.ContainsAny(got, "\n\r\t\x00$#|&;{}") || strings.HasPrefix(got, "-") || strings.Contains(got, " -") || len(got) > 80 {
			t.Errorf("text(%q) = %q", s, got)
		}
		if errs := lint("#!ipxe\necho " + got + "\nitem x " + got + "\nmenu " + got + "\n:x\n"); len(errs) > 0 {
			t.Errorf("text(%q) = %q: %v", s, got, errs)
		}
	}
}

func TestParseMAC(t *testing.T) {
	tests := []struct{ in, want string }{
		{"52:54:00:12:34:56", testMAC},
		{"52:54:00:AB:CD:EF", "52:54:00:ab:cd:ef"},
		{"52-54-00-12-34-56", testMAC},
		{"5254.0012.3456", testMAC},
		{"52:54:00:12:34", ""},
		{"52:54:00:12:34:56:78:9a", ""},                                     // EUI-64
		{"00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01", ""}, // IPoIB
		{"52:54:00:12:34:5g", ""},
		{"../../etc", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, err := ParseMAC(tt.in)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("ParseMAC(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestValidateProfile(t *testing.T) {
	for name, p := range profiles {
		if err := ValidateProfile(*p); err != nil {
			t.Errorf("ValidateProfile(%s) = %v", name, err)
		}
	}
	bad := []store.Profile{
		{Name: "a b", Kind: store.ProfileNetboot, Kernel: "/k"},
		{Name: "p", Kind: store.ProfileNetboot},
		{Name: "p", Kind: store.ProfileNetboot, Kernel: "/k\nshell"},
		{Name: "p", Kind: store.ProfileNetboot, Kernel: "/k", Initrd: "http://x/i i"},
		{Name: "p", Kind: store.ProfileNetboot, Kernel: "/k", Cmdline: "a && shell"},
		{Name: "p", Kind: store.ProfileNetboot, Script: "{{.Nope}}"},
		{Name: "p", Kind: store.ProfileNetboot, Script: "{{if}}"},
	}
	for _, p := range bad {
		if err := ValidateProfile(p); err == nil {
			t.Errorf("ValidateProfile(%+v) accepted it", p)
		}
	}
}
