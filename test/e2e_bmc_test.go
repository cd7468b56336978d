package test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/api/client"
	"github.com/foundry-appliance/foundry/test/bmcsim"
)

// Issue 13: a machine whose BMC is OpenIPMI's ipmi_sim. QEMU is its
// chassis (started and stopped by the simulator's power commands) and
// sees the BMC in band over KCS. The machine PXE-boots into discovery,
// its discovery OS creates the appliance's BMC user over /dev/ipmi0 when
// approval asks for it, and a release has the appliance power-cycle it
// into a network boot through that user: nobody touches the machine after
// its first power-on.
func TestE2EBMCReleasePowerCyclesIntoPXE(t *testing.T) {
	l := newE2ELab(t)
	bmcsim.Need(t)
	if d := os.Getenv("FOUNDRY_TEST_DISCOVERY"); d != "" {
		// A discovery image built elsewhere (this tree's agent while
		// images/ is busy): the test replaces the copy it serves.
		for _, f := range []string{"vmlinuz", "initrd"} {
			copyFile(t, filepath.Join(d, f), filepath.Join(l.images, "discovery", f))
		}
	}
	const mac = "52:54:00:e2:b3:01"
	console := filepath.Join(t.TempDir(), "console.log")
	disk := rawDisk(t, 64<<20)
	// The BMC listens on IPMI's own port on loopback, inside this test's
	// network namespace: the address it reports in band is 127.0.0.1,
	// which the appliance (in the same namespace) reaches.
	sim := bmcsim.Start(t, bmcsim.Options{Port: 623, QEMU: []string{
		"-accel", "tcg", "-m", "1024", "-display", "none",
		"-chardev", "file,id=con0,path=" + console + ",append=on", "-serial", "chardev:con0",
		"-netdev", "tap,id=n0,ifname=" + l.lab.tap() + ",script=no,downscript=no",
		"-device", "e1000,netdev=n0,mac=" + mac,
		"-drive", "file=" + disk + ",format=raw,if=virtio",
	}})
	text := func() string { b, _ := os.ReadFile(console); return string(b) }
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("chassis: %s\nsimulator: %s\nconsole:\n%s", sim.ChassisLog(), sim.Output(), text())
		}
	})
	ctx := context.Background()

	// Racked and powered on once by a person, network boot first.
	start := time.Now()
	for _, args := range [][]string{{"chassis", "bootdev", "pxe"}, {"chassis", "power", "on"}} {
		if out, err := sim.Ipmitool(ctx, sim.User, sim.Password, args...); err != nil {
			t.Fatalf("ipmitool %v: %v: %s", args, err, out)
		}
	}
	rec, ok := l.waitState(t, mac, "inventoried", registerTimeout)
	if !ok {
		t.Fatalf("not registered within %v (state %q)", registerTimeout, rec.State)
	}
	t.Logf("power-on to registered: %v", time.Since(start).Round(100*time.Millisecond))
	inv := parseInventory(t, rec)
	if inv.BMC == nil || inv.BMC.Interface != "ipmi" || inv.BMC.Type != "KCS" || inv.BMC.Address != "127.0.0.1" || inv.BMC.MAC != "52:54:00:ba:5e:01" {
		t.Fatalf("inventory's BMC %+v: want the KCS BMC at 127.0.0.1 (MAC 52:54:00:ba:5e:01) read in band", inv.BMC)
	}
	tok := lastToken(text())
	if tok == "" {
		t.Fatal("no registration token on the console")
	}

	l.setupCluster(t, "rack-bmc", api.ProfileCreate{Name: "netboot-bmc", ProfileFields: api.ProfileFields{
		Kind: "netboot", Kernel: e2eBase + "/images/discovery/vmlinuz", Initrd: e2eBase + "/images/discovery/initrd",
		Cmdline: "console=ttyS0,115200 foundry.e2e=bmc-production"}})
	approved := time.Now()
	if _, err := l.api.Approve(ctx, mac, api.ApproveRequest{Token: tok, Cluster: "rack-bmc", Profile: "netboot-bmc", BMCUser: true}); err != nil {
		t.Fatal(err)
	}
	rec, ok = l.waitFor(t, mac, func(m api.Machine) bool { return m.BMC != nil && m.BMC.Credential }, 2*time.Minute)
	if !ok {
		t.Fatalf("no BMC credential reported within 2 min (BMC %+v, message %q)", rec.BMC, rec.Message)
	}
	t.Logf("approval to BMC user created in band and reported: %v (%+v)", time.Since(approved).Round(100*time.Millisecond), *rec.BMC)
	if b := rec.BMC; b.Source != "agent" || b.Address != "127.0.0.1" || b.Username != api.DefaultBMCUser {
		t.Fatalf("BMC %+v: want user foundry created by the agent at 127.0.0.1", b)
	}
	if out, err := sim.Ipmitool(ctx, sim.User, sim.Password, "user", "list", "1"); err != nil || !strings.Contains(out, api.DefaultBMCUser) {
		t.Fatalf("the simulator's user table has no %s: %v\n%s", api.DefaultBMCUser, err, out)
	}
	if _, ok := l.waitState(t, mac, "ready", time.Minute); !ok {
		t.Fatal("the netboot approval did not make the machine ready")
	}
	p, err := l.api.Power(ctx, mac, true)
	if err != nil || p.State != "on" {
		t.Fatalf("power status through the appliance: %+v, %v", p, err)
	}

	// Release: the appliance sets the next boot to PXE and cycles the
	// machine through the user the discovery OS made; the chassis starts
	// a new QEMU process with a one-time network boot.
	before := sim.MachinePID()
	released := time.Now()
	if _, err := l.api.Release(ctx, mac, false); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 2*time.Minute, "the power-cycle into PXE", func() bool {
		pid := sim.MachinePID()
		return pid != 0 && pid != before && strings.HasSuffix(sim.ChassisLog(), "start once=n\n")
	})
	t.Logf("release to a new QEMU process booting from the network: %v", time.Since(released).Round(100*time.Millisecond))
	audit, err := l.api.ListAudit(ctx, client.AuditOptions{MAC: mac, Action: "power-pxe"})
	if err != nil || len(audit.Items) == 0 || !strings.Contains(audit.Items[0].Detail, "after release") {
		t.Fatalf("power-pxe audit: %+v, %v", audit.Items, err)
	}
	// Back in discovery: a new registration wipes the disks and says so.
	rec, ok = l.waitFor(t, mac, func(m api.Machine) bool {
		for _, r := range m.Registrations {
			if r.WipedAt != nil {
				return true
			}
		}
		return false
	}, registerTimeout)
	if !ok {
		t.Fatalf("no wiped registration after the power-cycle (state %s, message %q)", rec.State, rec.Message)
	}
	t.Logf("release to rediscovered and wiped with nobody at the machine: %v",
		time.Since(released).Round(100*time.Millisecond))

	// The password the discovery OS drew is replaced over the LAN; the
	// appliance keeps driving the BMC with the new one.
	rotated := time.Now()
	if _, err := l.api.RotateBMC(ctx, mac); err != nil {
		t.Fatal(err)
	}
	if _, err := l.api.SetPower(ctx, mac, "off"); err != nil || sim.MachinePID() != 0 {
		t.Fatalf("power off after the rotation: %v (pid %d)", err, sim.MachinePID())
	}
	t.Logf("rotation of the in-band user's password, then power off: %v; whole run %v",
		time.Since(rotated).Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond))
}

func lastToken(s string) string {
	all := tokenLine.FindAllStringSubmatch(s, -1)
	if len(all) == 0 {
		return ""
	}
	return all[len(all)-1][1]
}

func waitUntil(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !ok() {
		if time.Now().After(end) {
			t.Fatalf("no %s within %v", what, d)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
