package test

// The end-to-end lab of issue 4: `foundry serve` on two bridges (one with
// discovery, one without) and QEMU machines under TCG that PXE-boot the real
// discovery OS (images/discovery, built by `make images`). The tests drive
// the appliance through the typed API client, as an administrator would, and
// read each machine's serial console, as a person at the machine would.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/api/client"
	"github.com/foundry-appliance/foundry/discovery-os/inventory"
	"github.com/foundry-appliance/foundry/test/vm"
)

const (
	e2eBase = "http://10.77.0.1:8080"
	// e2eMemMiB is the machines' RAM (issue 4: 2 GiB).
	e2eMemMiB = 2048
	// e2eDiskBytes is the BIOS machines' disk (issue 4: 8 GiB).
	e2eDiskBytes = 8 << 30
	// A discovery boot under TCG takes about a minute on an idle machine;
	// the limits leave room for a loaded CI host.
	registerTimeout = 8 * time.Minute
	bootTimeout     = 5 * time.Minute
)

// e2eConfig serves "lab" on e2e0 with discovery, and "office" on e2e1
// without: an unknown MAC there gets an address (allow_unknown) but no
// boot file. Debug logging puts every DHCP reply in the log.
const e2eConfig = `
http:
  listen: ":8080"
  advertise: "` + e2eBase + `"
tftp:
  listen: ":69"
segments:
  - name: lab
    interface: e2e0
    subnet: 10.77.0.0/24
    range: [10.77.0.100, 10.77.0.200]
    router: 10.77.0.1
    dns: [10.77.0.1]
    lease_time: 1h
    discovery: true
  - name: office
    interface: e2e1
    subnet: 10.78.0.0/24
    range: [10.78.0.100, 10.78.0.200]
    router: 10.78.0.1
    lease_time: 1h
    allow_unknown: true
    discovery: false
`

// e2eLab is one appliance with its two segments and an admin API client.
type e2eLab struct {
	lab, office *lab
	app         *appliance
	images      string
	api         *client.Client
}

// newE2ELab starts the appliance; extra files can be added to images (the
// appliance's image directory, served at /images/) at any time.
func newE2ELab(t *testing.T) *e2eLab {
	t.Helper()
	if testing.Short() {
		t.Skip("boots emulated machines into the discovery OS")
	}
	requireDiscoveryImage(t)
	l := &e2eLab{
		lab:    newLab(t, "e2e0", "10.77.0.1/24"),
		office: newLab(t, "e2e1", "10.78.0.1/24"),
		images: imageDir(t),
	}
	l.app = startAppliance(t, t.TempDir(), l.images, e2eConfig, e2eBase)
	l.api = &client.Client{BaseURL: e2eBase, Token: adminToken}
	return l
}

// requireDiscoveryImage fails (rather than skips) without the built
// discovery OS: imageDir would otherwise serve placeholders that cannot boot.
func requireDiscoveryImage(t *testing.T) {
	t.Helper()
	for _, f := range []string{"vmlinuz", "initrd"} {
		p := filepath.Join("..", "images", "discovery", f)
		st, err := os.Stat(p)
		if err != nil || st.Size() < 1<<20 {
			t.Fatalf("%s is missing or not a built image (run `make images`): %v", p, err)
		}
	}
}

// discoveryImageSize returns the bytes a machine downloads to boot discovery.
func discoveryImageSize(t *testing.T) (kernel, initrd int64) {
	t.Helper()
	k, err := os.Stat(filepath.Join("..", "images", "discovery", "vmlinuz"))
	must(t, err)
	i, err := os.Stat(filepath.Join("..", "images", "discovery", "initrd"))
	must(t, err)
	return k.Size(), i.Size()
}

// rawDisk creates a sparse raw disk file of size bytes.
func rawDisk(t *testing.T, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.raw")
	f, err := os.Create(p)
	must(t, err)
	must(t, f.Truncate(size))
	must(t, f.Close())
	return p
}

// bootBIOSMachine powers on a SeaBIOS machine with 2 GiB RAM whose e1000
// NIC carries iPXE as its option ROM, network boot first. Without
// -no-reboot, so the discovery OS can reboot it into production. disk ""
// means no disk.
func bootBIOSMachine(t *testing.T, tap, mac, disk string) *machine {
	t.Helper()
	spec := vm.Machine{MemoryMiB: e2eMemMiB, NIC: &vm.NIC{Tap: tap, MAC: mac}}
	if disk != "" {
		spec.Disks = []vm.Disk{{Path: disk}}
	}
	return startMachine(t, spec)
}

// bootUEFIMachine powers on a q35 machine with OVMF whose virtio-net NIC has
// no option ROM (romfile=): the firmware's own PXE client boots it, which
// needs ipxe.efi over TFTP before iPXE can fetch its script over HTTP.
func bootUEFIMachine(t *testing.T, tap, mac string) *machine {
	t.Helper()
	return startMachine(t, vm.Machine{Firmware: vm.UEFI, MemoryMiB: e2eMemMiB,
		NIC: &vm.NIC{Tap: tap, MAC: mac, Model: "virtio-net-pci", NoROM: true, BootIndex: 1}})
}

// powerOff stops the machine and waits for QEMU to exit, so that its disk
// file is complete.
func (m *machine) powerOff() {
	m.vm.Stop()
}

// waitState polls the API until the machine is in state, and returns it.
func (l *e2eLab) waitState(t *testing.T, mac, state string, timeout time.Duration) (api.Machine, bool) {
	t.Helper()
	return l.waitFor(t, mac, func(m api.Machine) bool { return m.State == state }, timeout)
}

// waitFor polls the machine until ok says so or timeout passes; it returns
// the last record seen and whether ok held.
func (l *e2eLab) waitFor(t *testing.T, mac string, ok func(api.Machine) bool, timeout time.Duration) (api.Machine, bool) {
	t.Helper()
	var last api.Machine
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m, err := l.api.GetMachine(ctx, mac)
		cancel()
		if err == nil {
			last = m
			if ok(m) {
				return m, true
			}
		} else if client.StatusOf(err) != 404 {
			t.Logf("get machine %s: %v", mac, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	return last, false
}

var tokenLine = regexp.MustCompile(`registration token: (FOUNDRY-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4})`)

// consoleToken returns the last registration token the console showed.
func (m *machine) consoleToken() string {
	all := tokenLine.FindAllStringSubmatch(m.text(), -1)
	if len(all) == 0 {
		return ""
	}
	return all[len(all)-1][1]
}

// registered waits until the machine is inventoried and its console shows a
// token, and returns the record (with inventory) and the token.
func (l *e2eLab) registered(t *testing.T, m *machine, mac string) (api.Machine, string) {
	t.Helper()
	rec, ok := l.waitState(t, mac, "inventoried", registerTimeout)
	if !ok {
		t.Fatalf("machine %s did not register within %v (last record: state %q)", mac, registerTimeout, rec.State)
	}
	if !m.waitConsole(30*time.Second, "registration token: FOUNDRY-") {
		t.Fatalf("machine %s registered but its console shows no registration token", mac)
	}
	return rec, m.consoleToken()
}

// parseInventory decodes the inventory the API returned.
func parseInventory(t *testing.T, m api.Machine) inventory.Inventory {
	t.Helper()
	var inv inventory.Inventory
	if err := json.Unmarshal(m.Inventory, &inv); err != nil {
		t.Fatalf("inventory of %s: %v\n%s", m.MAC, err, m.Inventory)
	}
	return inv
}

// setupCluster creates a cluster and a profile.
func (l *e2eLab) setupCluster(t *testing.T, cluster string, p api.ProfileCreate) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := l.api.CreateProfile(ctx, p); err != nil {
		t.Fatalf("create profile %s: %v", p.Name, err)
	}
	if _, err := l.api.CreateCluster(ctx, api.ClusterCreate{Name: cluster}); err != nil {
		t.Fatalf("create cluster %s: %v", cluster, err)
	}
}

// approve approves mac with the given token into cluster/profile.
func (l *e2eLab) approve(mac, tok, cluster, profile string) (api.Machine, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return l.api.Approve(ctx, mac, api.ApproveRequest{Token: tok, Cluster: cluster, Profile: profile})
}

// randomMarker returns prefix followed by 12 random hex digits: a string
// that can only appear on a console if this run put it there.
func randomMarker(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 6)
	_, err := rand.Read(b)
	must(t, err)
	return prefix + hex.EncodeToString(b)
}

// problemAt reports whether err is an API error with status code and a
// detail located at loc.
func problemAt(err error, code int, loc string) bool {
	var e *client.Error
	if !errors.As(err, &e) || e.StatusCode != code {
		return false
	}
	for _, d := range e.Problem.Errors {
		if d.Location == loc {
			return true
		}
	}
	return false
}

// agentLines returns the discovery agent's plain serial lines (status,
// errors, token): what automation reads, and a record of the boot.
func (m *machine) agentLines() string {
	var b strings.Builder
	for _, line := range strings.Split(m.text(), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "foundry:") || strings.HasPrefix(line, "registration token:") {
			b.WriteString("\t" + line + "\n")
		}
	}
	return b.String()
}

// consoleLine returns the first console line containing every word.
func (m *machine) consoleLine(words ...string) string {
	for _, line := range strings.Split(m.text(), "\n") {
		if containsAll(line, words) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}
