package ipxe

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/lifecycle"
	"github.com/foundry-appliance/foundry/store"
)

// UPDATE_GOLDEN=1 go test ./ipxe rewrites testdata/*.ipxe from the
// current output; review the diff before committing it.
var update = os.Getenv("UPDATE_GOLDEN") != ""

const (
	testMAC   = "52:54:00:12:34:56"
	testBase  = "http://10.77.0.1:8080"
	testNonce = "n0nce-AbCdEfGhIjKlMnOpQrStUvWxYz_0123456789"
)

var profiles = map[string]*store.Profile{
	"debian": {Name: "debian", Kind: store.ProfileNetboot,
		Kernel: "/images/debian/vmlinuz", Initrd: "/images/debian/initrd.gz",
		Cmdline: "console=ttyS0,115200  ip=dhcp root=/dev/nfs nfsroot=10.77.0.1:/srv/root,vers=4 quiet"},
	"mirror": {Name: "mirror", Kind: store.ProfileNetboot,
		Kernel: "https://mirror.example.org/debian/linux?arch=amd64&v=1", Initrd: "http://[fd00::1]:8080/initrd.gz",
		Cmdline: "console=tty0"},
	"noinitrd": {Name: "noinitrd", Kind: store.ProfileNetboot, Kernel: "/images/memtest/memtest.efi"},
	"coreos": {Name: "coreos", Kind: store.ProfileNetboot, Script: `#!ipxe
# {{.Profile}} for {{.Cluster}}
set base {{.BaseURL}}/images/coreos
kernel ${base}/vmlinuz initrd=initrd ignition.config.url={{.BaseURL}}/ignition/{{.MAC}} hostname={{.Hostname}} ip={{.IP}}::10.77.0.1:255.255.255.0:{{.Hostname}}::none
initrd --name initrd ${base}/initramfs.img
boot`},
	"ubuntu-image": {Name: "ubuntu-image", Kind: store.ProfileImage,
		ImageURL: "http://10.77.0.1:8080/images/ubuntu.raw.zst"},
}

func machine(state store.State, profile string, menu bool) *store.Machine {
	return &store.Machine{MAC: testMAC, State: state, Hostname: "web01.lab.example", IP: "10.77.0.101",
		Cluster: "lab", Profile: profile, Menu: store.BootMenu{Enabled: menu}}
}

// input is a complete Input for m; nonces counts Nonce calls.
func input(m *store.Machine, nonces *int) Input {
	in := Input{MAC: testMAC, Machine: m, BaseURL: testBase, Segment: lifecycle.Segment{Discovery: true}, Nonce: func() (string, error) {
		*nonces++
		return testNonce, nil
	}}
	if m != nil && m.Profile != "" {
		in.Profile = profiles[m.Profile]
	}
	return in
}

func TestRenderGolden(t *testing.T) {
	discovered := machine(store.StateDiscovered, "", false)
	discovered.Hostname = "discovered-123456"
	tests := []struct {
		golden string
		m      *store.Machine
		change func(*Input)
		want   Kind
	}{
		{"unknown", nil, nil, KindUnknown},
		{"discovered", discovered, nil, KindDiscovery},
		{"inventoried", machine(store.StateInventoried, "", false), nil, KindDiscovery},
		{"rejected", machine(store.StateRejected, "", false), nil, KindRejected},
		{"image-approved", machine(store.StateApproved, "ubuntu-image", false), nil, KindDiscovery},
		{"image-provisioning", machine(store.StateProvisioning, "ubuntu-image", false), nil, KindDiscovery},
		{"image-failed", machine(store.StateFailed, "ubuntu-image", false), nil, KindDiscovery},
		{"image-ready", machine(store.StateReady, "ubuntu-image", false), nil, KindLocal},
		{"netboot-approved", machine(store.StateApproved, "debian", false), nil, KindProduction},
		{"netboot-ready", machine(store.StateReady, "debian", false), nil, KindProduction},
		{"netboot-provisioning", machine(store.StateProvisioning, "debian", false), nil, KindDiscovery},
		{"netboot-absolute-urls", machine(store.StateReady, "mirror", false), nil, KindProduction},
		{"netboot-no-initrd", machine(store.StateReady, "noinitrd", false), nil, KindProduction},
		{"netboot-template", machine(store.StateReady, "coreos", false), nil, KindProduction},
		{"menu-netboot", machine(store.StateReady, "debian", true), nil, KindMenu},
		{"menu-image-ready", machine(store.StateReady, "ubuntu-image", true), func(in *Input) { in.MenuTimeout = 30 * time.Second }, KindMenu},
		{"menu-mode-production", machine(store.StateApproved, "debian", true), func(in *Input) { in.Mode = ModeProduction }, KindProduction},
		{"menu-mode-discovery", machine(store.StateReady, "debian", true), func(in *Input) { in.Mode = ModeDiscovery }, KindDiscovery},
		{"menu-image-mode-production", machine(store.StateReady, "ubuntu-image", true), func(in *Input) { in.Mode = ModeProduction }, KindLocal},
		// A mode only changes a menu machine's boot.
		{"netboot-ready", machine(store.StateReady, "debian", false), func(in *Input) { in.Mode = ModeDiscovery }, KindProduction},
		{"discovered", discovered, func(in *Input) { in.Mode = ModeProduction }, KindDiscovery},
		{"image-provisioning", machine(store.StateProvisioning, "ubuntu-image", true), func(in *Input) { in.Mode = ModeProduction }, KindDiscovery},
		// Configuration: other base URL (with a path and a trailing slash),
		// other discovery files and arguments.
		{"discovery-custom", discovered, func(in *Input) {
			in.BaseURL = "https://foundry.lab.example/pxe/"
			in.DiscoveryKernel = "/files/vmlinuz-6.1"
			in.DiscoveryInitrd = "http://10.77.0.2/initrd.zst"
			in.ExtraDiscoveryArgs = "console=ttyS1,9600 quiet"
		}, KindDiscovery},
		{"discovery-preview", discovered, func(in *Input) { in.Nonce = nil }, KindDiscovery},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			nonces := 0
			in := input(tt.m, &nonces)
			if tt.change != nil {
				tt.change(&in)
			}
			sc, err := Render(in)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if sc.Kind != tt.want {
				t.Errorf("kind %s, want %s", sc.Kind, tt.want)
			}
			wantNonces := 0
			if sc.Kind == KindDiscovery && in.Nonce != nil {
				wantNonces = 1
			}
			if nonces != wantNonces {
				t.Errorf("Nonce called %d times, want %d", nonces, wantNonces)
			}
			golden(t, tt.golden, sc.Text)
			if errs := lint(sc.Text); len(errs) > 0 {
				t.Errorf("not a valid iPXE script:\n%s\n%s", strings.Join(errs, "\n"), sc.Text)
			}
		})
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".ipxe")
	if update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with UPDATE_GOLDEN=1 to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (UPDATE_GOLDEN=1 to accept):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// TestGoldenFilesAreValid lints every golden file, including any written
// by hand, and checks that each one is produced by a test case.
func TestGoldenFilesAreValid(t *testing.T) {
	files, err := filepath.Glob("testdata/*.ipxe")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if errs := lint(string(b)); len(errs) > 0 {
			t.Errorf("%s:\n%s", f, strings.Join(errs, "\n"))
		}
	}
}

func TestRenderDiscoveryContract(t *testing.T) {
	// docs/architecture.md fixes the discovery kernel command line.
	nonces := 0
	sc, err := Render(input(machine(store.StateDiscovered, "", false), &nonces))
	if err != nil {
		t.Fatal(err)
	}
	want := "kernel " + testBase + "/images/discovery/vmlinuz initrd=initrd foundry.url=" + testBase +
		" foundry.mac=" + testMAC + " foundry.nonce=" + testNonce + " console=tty0 console=ttyS0,115200\n" +
		"initrd --name initrd " + testBase + "/images/discovery/initrd\nboot\n"
	if !strings.HasSuffix(sc.Text, want) {
		t.Errorf("discovery script does not end with\n%s\ngot\n%s", want, sc.Text)
	}
}

func TestRenderNonceError(t *testing.T) {
	in := input(machine(store.StateDiscovered, "", false), new(int))
	in.Nonce = func() (string, error) { return "", errors.New("disk full") }
	if _, err := Render(in); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Render = %v, want the nonce error", err)
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindUnknown: "unknown", KindDiscovery: "discovery", KindProduction: "production",
		KindLocal: "local", KindMenu: "menu", KindRejected: "rejected", Kind(42): "kind(42)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}

func TestParseMode(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Mode
		ok   bool
	}{{"", ModeNormal, true}, {"discovery", ModeDiscovery, true}, {"production", ModeProduction, true},
		{"shell", "", false}, {"Discovery", "", false}, {"discovery\n", "", false}} {
		got, err := ParseMode(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ParseMode(%q) = %q, %v", tt.in, got, err)
		}
	}
}
