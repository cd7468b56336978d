package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/api/client"
	"github.com/foundry-appliance/foundry/appliance/console"
	"github.com/foundry-appliance/foundry/test/vm"
)

// The appliance's three network cards in the ISO test: the provisioning
// segment, a management segment with no DHCP server (where the appliance
// is a DHCP client that must never answer), and QEMU's user-mode network
// whose forwarded port is how the test reaches the API.
const (
	isoProvMAC   = "52:54:00:15:00:01"
	isoMgmtMAC   = "52:54:00:15:00:02"
	isoUserMAC   = "52:54:00:15:00:03"
	isoClientMAC = "52:54:00:15:00:10"
	isoAddress   = "10.66.0.1/24"
)

// isoBuild is one ISO that `make iso-test` built, with its manifest.
type isoBuild struct {
	Path    string
	Version string
}

// isoBuilds returns the ISO of this tree (images/foundry-<version>.iso, the
// newest) and the "previous release" that make iso-test builds from the same
// tree with another version (build/iso/previous/), for the upgrade.
func isoBuilds(t *testing.T) (previous, current isoBuild) {
	t.Helper()
	pick := func(glob, env string) isoBuild {
		path := os.Getenv(env)
		if path == "" {
			matches, _ := filepath.Glob(glob)
			sort.Slice(matches, func(i, j int) bool { return modTime(matches[i]).After(modTime(matches[j])) })
			if len(matches) == 0 {
				t.Fatalf("no ISO at %s (run make iso-test, or set %s)", glob, env)
			}
			path = matches[0]
		}
		raw, err := os.ReadFile(path + ".json")
		if err != nil {
			t.Fatalf("manifest of %s: %v", path, err)
		}
		var m struct {
			Version string `json:"version"`
			Bytes   int64  `json:"bytes"`
		}
		if err := json.Unmarshal(raw, &m); err != nil || m.Version == "" {
			t.Fatalf("manifest of %s: %v (version %q)", path, err, m.Version)
		}
		t.Logf("ISO %s: version %s, %.1f MB", path, m.Version, float64(m.Bytes)/1e6)
		return isoBuild{Path: path, Version: m.Version}
	}
	return pick("../build/iso/previous/foundry-*.iso", "FOUNDRY_ISO_PREVIOUS"), pick("../images/foundry-*.iso", "FOUNDRY_ISO")
}

func modTime(p string) time.Time {
	st, err := os.Stat(p)
	if err != nil {
		return time.Time{}
	}
	return st.ModTime()
}

// isoAppliance is the appliance ISO booted in QEMU.
type isoAppliance struct {
	t    *testing.T
	m    *machine
	port int
	api  *client.Client
}

// bootISO boots the appliance: iso as a CD-ROM (cdrom) or as a hard disk
// (as a USB stick written with dd boots), with data as its data disk.
func bootISO(t *testing.T, fw vm.Firmware, iso string, cdrom bool, data, provTap, mgmtTap string) *isoAppliance {
	t.Helper()
	port := freePort(t)
	spec := vm.Machine{
		Firmware: fw, MemoryMiB: 1536, Input: true,
		NIC: &vm.NIC{Tap: provTap, MAC: isoProvMAC, Model: "virtio-net-pci", NoROM: true},
		MoreNICs: []vm.NIC{
			{Tap: mgmtTap, MAC: isoMgmtMAC, Model: "e1000", NoROM: true},
			{User: true, Restrict: true, MAC: isoUserMAC, Model: "virtio-net-pci", NoROM: true,
				HostForward: []string{fmt.Sprintf("tcp:127.0.0.1:%d-:8080", port)}},
		},
		Disks: []vm.Disk{{Path: data, Interface: "virtio"}},
	}
	if cdrom {
		spec.CDROM = iso
	} else {
		// Snapshot: the ISO file is shared with other runs and must stay
		// as built.
		spec.Disks = append([]vm.Disk{{Path: iso, Interface: "virtio", BootIndex: 1, Snapshot: true}}, spec.Disks...)
	}
	return &isoAppliance{t: t, m: startMachine(t, spec), port: port}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// answer waits for prompt on the serial console (after what was already
// answered) and types reply and Enter.
func (a *isoAppliance) answer(seen *int, prompt, reply string, timeout time.Duration) {
	a.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		text := a.m.text()
		if i := strings.Index(text[*seen:], prompt); i >= 0 {
			*seen += i + len(prompt)
			break
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("the console never asked %q", prompt)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err := a.m.vm.Type(reply + "\n"); err != nil {
		a.t.Fatalf("type %q: %v", reply, err)
	}
}

var adminTokenLine = regexp.MustCompile(`Admin token\s+(fdy_[A-Za-z0-9_-]+)`)

// adminToken asks the console for the admin token, as an operator at the
// box does, and returns the API client that uses it.
func (a *isoAppliance) connect(timeout time.Duration) *client.Client {
	a.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if err := a.m.vm.Type("t\n"); err != nil {
			a.t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		all := adminTokenLine.FindAllStringSubmatch(a.m.text(), -1)
		if len(all) == 0 {
			continue
		}
		c := &client.Client{BaseURL: fmt.Sprintf("http://127.0.0.1:%d", a.port), Token: all[len(all)-1][1]}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := c.About(ctx)
		cancel()
		if err == nil {
			a.api = c
			return c
		}
		a.t.Logf("API through the forwarded port: %v", err)
	}
	a.t.Fatalf("no admin token on the console, or the API never answered through port %d", a.port)
	return nil
}

// powerButton presses the ACPI power button and waits for the machine to
// power itself off.
func (a *isoAppliance) powerButton(timeout time.Duration) {
	a.t.Helper()
	if err := a.m.vm.PowerButton(); err != nil {
		a.t.Fatalf("press the power button: %v", err)
	}
	if !a.m.vm.WaitExit(timeout) {
		a.t.Fatalf("the appliance did not power off within %v of the power button", timeout)
	}
}

// mgmtWatch listens on the management bridge, as a DHCP server would, and
// records who sends what there.
type mgmtWatch struct {
	mu   sync.Mutex
	seen []string // "<type> from <mac>"
}

func (w *mgmtWatch) record(mac string, typ dhcpv4.MessageType) {
	w.mu.Lock()
	w.seen = append(w.seen, typ.String()+" from "+mac)
	w.mu.Unlock()
}

func (w *mgmtWatch) saw(s string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Contains(w.seen, s)
}

// TestE2EISOAppliance is issue 11's acceptance run: the appliance ISO, with
// a blank data disk, BIOS, set up on its serial console; a machine on the
// same L2 segment PXE-boots from it into discovery and registers; the
// appliance never answers DHCP on its management link; the ACPI power
// button shuts it down cleanly; then a newer ISO, UEFI, booted the way a
// USB stick boots, on the same data disk, still has the machine, its lease
// and its audit entries.
func TestE2EISOAppliance(t *testing.T) {
	if testing.Short() {
		t.Skip("boots the appliance ISO and a machine under TCG (about 5 minutes)")
	}
	previous, current := isoBuilds(t)
	prov := newLab(t, "isop", "10.66.0.254/24")
	mgmt := newLab(t, "isom", "10.88.0.1/24")
	provTap, clientTap, mgmtTap := prov.tap(), prov.tap(), mgmt.tap()
	data := rawDisk(t, 2<<30)

	// A DHCP server's ear on the management segment: the appliance's own
	// DISCOVERs show its link is there; nothing else must answer ours.
	var watch mgmtWatch
	conn, err := server4.NewIPv4UDPConn(mgmt.bridge, &net.UDPAddr{IP: net.IPv4zero, Port: dhcpv4.ServerPort})
	must(t, err)
	srv, err := server4.NewServer(mgmt.bridge, nil, func(_ net.PacketConn, _ net.Addr, m *dhcpv4.DHCPv4) {
		watch.record(m.ClientHWAddr.String(), m.MessageType())
	}, server4.WithConn(conn))
	must(t, err)
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })

	// Phase 1: the previous release, BIOS, CD-ROM, blank data disk.
	start := time.Now()
	app := bootISO(t, vm.BIOS, previous.Path, true, data, provTap, mgmtTap)
	seen := 0
	app.answer(&seen, console.PromptInterface, isoProvMAC, 4*time.Minute)
	t.Logf("setup asked after %v", time.Since(start).Round(time.Second))
	app.answer(&seen, console.PromptAddress, isoAddress, time.Minute)
	app.answer(&seen, console.PromptRange, "", time.Minute)
	app.answer(&seen, console.PromptRouter, "", time.Minute)
	app.answer(&seen, console.PromptFormat, "y", time.Minute)
	app.answer(&seen, console.PromptApply, "", time.Minute)
	c := app.connect(3 * time.Minute)
	t.Logf("API answered through the forwarded port %v after power-on", time.Since(start).Round(time.Second))
	ctx := context.Background()
	about, err := c.About(ctx)
	must(t, err)
	if about.Version != previous.Version {
		t.Errorf("the first boot runs %s, want %s", about.Version, previous.Version)
	}
	if !strings.Contains(app.m.text(), "FOUNDRY-DATA") || strings.Contains(app.m.text(), "RUNNING FROM RAM") {
		t.Errorf("the console does not show the formatted data disk in use")
	}

	// The image library works on the appliance: a qcow2 upload is
	// converted with the ISO's own qemu-img and kept on the data disk.
	qcow := filepath.Join(t.TempDir(), "tiny.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", qcow, "16M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	f, err := os.Open(qcow)
	must(t, err)
	st, _ := f.Stat()
	img, err := c.UploadImage(ctx, "tiny", f, st.Size(), "")
	f.Close()
	if err != nil || img.State != "ready" || img.Format != "zst" {
		t.Fatalf("qcow2 upload on the appliance: %+v, %v", img, err)
	}

	// A machine on the provisioning segment PXE-boots from the appliance
	// and registers.
	pxe := bootBIOS(t, clientTap, isoClientMAC)
	var rec api.Machine
	deadline := time.Now().Add(registerTimeout)
	for {
		m, err := c.GetMachine(ctx, isoClientMAC)
		if err == nil && m.State == "inventoried" {
			rec = m
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the machine did not register within %v (last %+v, %v)\nmachine console:\n%s", registerTimeout, m, err, pxe.text())
		}
		time.Sleep(time.Second)
	}
	t.Logf("machine registered %v after the appliance's power-on", time.Since(start).Round(time.Second))
	pxe.vm.Stop()
	leases, err := c.ListLeases(ctx, "provisioning")
	must(t, err)
	if !slices.ContainsFunc(leases, func(l api.Lease) bool { return strings.EqualFold(l.MAC, isoClientMAC) }) {
		t.Fatalf("no lease for %s on the provisioning segment: %+v", isoClientMAC, leases)
	}
	audit, err := c.ListAudit(ctx, client.AuditOptions{Limit: 1000})
	must(t, err)

	// Nothing but the appliance's own DHCP client is heard on the
	// management segment, and our DISCOVER gets no OFFER from it.
	if !watch.saw("DISCOVER from " + isoMgmtMAC) {
		t.Errorf("the appliance never asked for a management address: %v", watch.seen)
	}
	probeNoOffer(t, mgmt.bridge)

	// The status page shows the registered machine and the event.
	if !waitText(app.m, time.Minute, "1 inventoried") {
		t.Errorf("the status page never counted the registered machine")
	}

	// ACPI power button: a clean shutdown, the database flushed.
	app.powerButton(2 * time.Minute)
	if !strings.Contains(app.m.text(), "data disk unmounted cleanly") {
		t.Errorf("the power-off did not unmount the data disk cleanly:\n%s", tail(app.m.text(), 20))
	}

	// Phase 2: the current release, UEFI, the ISO as a disk (a USB
	// stick), the same data disk: no setup, everything kept.
	start = time.Now()
	app = bootISO(t, vm.UEFI, current.Path, false, data, provTap, mgmtTap)
	c = app.connect(4 * time.Minute)
	t.Logf("upgraded appliance answered %v after power-on", time.Since(start).Round(time.Second))
	if strings.Contains(app.m.text(), console.PromptInterface) {
		t.Errorf("the upgraded appliance ran the setup again instead of using the data disk's plan")
	}
	about, err = c.About(ctx)
	must(t, err)
	if about.Version != current.Version {
		t.Errorf("after the upgrade the appliance runs %s, want %s", about.Version, current.Version)
	}
	got, err := c.GetMachine(ctx, isoClientMAC)
	must(t, err)
	regIDs := func(m api.Machine) (ids []string) {
		for _, r := range m.Registrations {
			ids = append(ids, r.ID)
		}
		return ids
	}
	if got.State != rec.State || !got.FirstSeen.Equal(rec.FirstSeen) || len(rec.Registrations) == 0 || !slices.Equal(regIDs(got), regIDs(rec)) {
		t.Errorf("machine after the upgrade: %s first seen %v registrations %v; before: %s %v %v",
			got.State, got.FirstSeen, regIDs(got), rec.State, rec.FirstSeen, regIDs(rec))
	}
	leases2, err := c.ListLeases(ctx, "provisioning")
	must(t, err)
	if !slices.ContainsFunc(leases2, func(l api.Lease) bool { return strings.EqualFold(l.MAC, isoClientMAC) }) {
		t.Errorf("the lease of %s is gone after the upgrade: %+v", isoClientMAC, leases2)
	}
	audit2, err := c.ListAudit(ctx, client.AuditOptions{Limit: 1000})
	must(t, err)
	ids := map[string]bool{}
	for _, e := range audit2.Items {
		ids[e.ID] = true
	}
	for _, e := range audit.Items {
		if !ids[e.ID] {
			t.Errorf("audit entry %s (%s %s) lost in the upgrade", e.ID, e.Action, e.MAC)
		}
	}
	if img2, err := c.GetImage(ctx, "tiny"); err != nil || img2.SHA256 != img.SHA256 || img2.State != "ready" {
		t.Errorf("library image after the upgrade: %+v, %v; before %+v", img2, err, img)
	}
	t.Logf("kept across the upgrade: machine %s (%s), %d leases, %d audit entries", got.MAC, got.State, len(leases2), len(audit.Items))
	app.powerButton(2 * time.Minute)

	// Phase 3: UEFI from the CD-ROM on another blank disk, set up on the
	// console like phase 1, and powered off with the console's p command.
	start = time.Now()
	app = bootISO(t, vm.UEFI, current.Path, true, rawDisk(t, 1<<30), provTap, mgmtTap)
	seen = 0
	app.answer(&seen, console.PromptInterface, isoProvMAC, 4*time.Minute)
	app.answer(&seen, console.PromptAddress, "10.66.0.2/24", time.Minute)
	app.answer(&seen, console.PromptRange, "10.66.0.10-10.66.0.20", time.Minute)
	app.answer(&seen, console.PromptRouter, "", time.Minute)
	app.answer(&seen, console.PromptFormat, "y", time.Minute)
	app.answer(&seen, console.PromptApply, "", time.Minute)
	c = app.connect(3 * time.Minute)
	t.Logf("UEFI appliance set up on a blank disk answered %v after power-on", time.Since(start).Round(time.Second))
	segs, err := c.ListSegments(ctx)
	must(t, err)
	if len(segs) != 1 || segs[0].Name != "provisioning" || segs[0].Subnet != "10.66.0.0/24" ||
		segs[0].RangeStart != "10.66.0.10" || segs[0].RangeEnd != "10.66.0.20" {
		t.Errorf("segments after the UEFI setup: %+v, want only provisioning, 10.66.0.10-10.66.0.20", segs)
	}
	if !strings.Contains(app.m.text(), "10.66.0.10-10.66.0.20") {
		t.Errorf("the status page does not show the range the setup was given")
	}
	must(t, app.m.vm.Type("p\n"))
	if !app.m.vm.WaitExit(2 * time.Minute) {
		t.Fatalf("the console's p command did not power the appliance off")
	}
	if !strings.Contains(app.m.text(), "data disk unmounted cleanly") {
		t.Errorf("p did not unmount the data disk cleanly:\n%s", tail(app.m.text(), 20))
	}

	// Phase 4: GRUB's "run from RAM" entry, chosen on the serial console,
	// with phase 1's data disk attached: the disk is left alone, the
	// status page says loudly that nothing is kept, and the machine the
	// disk knows is not there.
	app = bootISO(t, vm.BIOS, current.Path, true, data, provTap, mgmtTap)
	// The countdown line is drawn once the menu is complete and GRUB
	// reads keys; the entry's hotkey then boots it.
	if !app.m.waitConsole(3*time.Minute, "run from RAM, ignore data disks (key r)") ||
		!app.m.waitConsole(time.Minute, "executed automatically in") {
		t.Fatalf("no GRUB menu on the serial console:\n%s", tail(app.m.text(), 20))
	}
	must(t, app.m.vm.Type("r"))
	seen = 0
	app.answer(&seen, console.PromptInterface, isoProvMAC, 4*time.Minute)
	app.answer(&seen, console.PromptAddress, isoAddress, time.Minute)
	app.answer(&seen, console.PromptRange, "", time.Minute)
	app.answer(&seen, console.PromptRouter, "", time.Minute)
	app.answer(&seen, console.PromptApply, "", time.Minute)
	c = app.connect(3 * time.Minute)
	if !strings.Contains(app.m.text(), "RUNNING FROM RAM") || !strings.Contains(app.m.text(), "foundry.data=ram") {
		t.Errorf("no loud RAM warning, or not booted with foundry.data=ram:\n%s", tail(app.m.text(), 40))
	}
	if _, err := c.GetMachine(ctx, isoClientMAC); client.StatusOf(err) != 404 {
		t.Errorf("running from RAM, the data disk's machine is visible: %v", err)
	}
	app.powerButton(2 * time.Minute)
}

// probeNoOffer sends a DISCOVER on the management bridge and fails the
// test if any OFFER comes back within a few seconds: the appliance must
// answer DHCP on its provisioning interface only.
func probeNoOffer(t *testing.T, bridge string) {
	t.Helper()
	conn, err := server4.NewIPv4UDPConn(bridge, &net.UDPAddr{IP: net.IPv4zero, Port: dhcpv4.ClientPort})
	must(t, err)
	defer conn.Close()
	hw, _ := net.ParseMAC("52:54:00:15:00:99")
	d, err := dhcpv4.NewDiscovery(hw)
	must(t, err)
	_, err = conn.WriteTo(d.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ServerPort})
	must(t, err)
	buf := make([]byte, 1500)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return // the deadline: nothing answered
		}
		if m, err := dhcpv4.FromBytes(buf[:n]); err == nil && m.TransactionID == d.TransactionID && m.MessageType() == dhcpv4.MessageTypeOffer {
			t.Fatalf("%v answered a DISCOVER on the management segment with an OFFER of %v", from, m.YourIPAddr)
		}
	}
}

func waitText(m *machine, timeout time.Duration, s string) bool { return m.waitConsole(timeout, s) }

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}
