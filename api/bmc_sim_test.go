package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/bmc"
	"github.com/foundry-appliance/foundry/test/bmcsim"
	"github.com/foundry-appliance/foundry/test/nstest"
)

// The API against a real BMC: ipmi_sim, whose chassis is a QEMU process,
// driven through bmclib and ipmitool. A BMC entered by hand powers the
// machine on, a release power-cycles it into a one-time network boot,
// and the password rotation leaves only the new password working.
func TestBMCAgainstIPMISimulator(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ipmi_sim and QEMU")
	}
	if nstest.Reexec(t) {
		return
	}
	sim := bmcsim.Start(t, bmcsim.Options{})
	e := newEnv(t, withBMC(&bmc.Client{Timeout: 20 * time.Second}))
	e.setup()
	e.ready(macA)
	ctx := context.Background()
	if _, err := e.admin.SetBMC(ctx, macA, api.BMCRequest{Protocol: "ipmi", Address: "127.0.0.1", Port: sim.Port, Username: sim.User, Password: sim.Password}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if p, err := e.admin.SetPower(ctx, macA, "on"); err != nil || p.State != "on" {
		t.Fatalf("power on: %+v, %v", p, err)
	}
	t.Logf("power on through the API: %v", time.Since(start).Round(time.Millisecond))
	first := sim.MachinePID()
	if first == 0 {
		t.Fatal("power on started no QEMU")
	}
	e.clock.Add(time.Minute)
	if p, err := e.admin.Power(ctx, macA, true); err != nil || p.State != "on" {
		t.Fatalf("power status: %+v, %v", p, err)
	}

	start = time.Now()
	if code, body := e.post("/machines/"+macA+"/release", nil); code != 200 {
		t.Fatalf("release: %d %s", code, body)
	}
	t.Logf("release answered in %v", time.Since(start).Round(time.Millisecond))
	if a := e.auditWith(macA, "power-pxe", "after release"); !strings.Contains(a.Detail, "after release") {
		t.Fatalf("audit %q", a.Detail)
	}
	// ipmi_sim powers the machine on again a second after the cycle's
	// power-off.
	pid := 0
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if pid = sim.MachinePID(); pid != 0 && pid != first {
			break
		}
	}
	if pid == 0 || pid == first || !strings.HasSuffix(sim.ChassisLog(), "start once=n\n") {
		t.Fatalf("release did not power-cycle into a network boot: pid %d (was %d), chassis:\n%s", pid, first, sim.ChassisLog())
	}
	t.Logf("release to a new QEMU process booting from the network: %v", time.Since(start).Round(time.Millisecond))

	if _, err := e.admin.RotateBMC(ctx, macA); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.Ipmitool(ctx, sim.User, sim.Password, "chassis", "power", "status"); err == nil {
		t.Fatal("the old password still works after rotation")
	}
	if _, err := e.admin.SetPower(ctx, macA, "off"); err != nil {
		t.Fatalf("power off with the rotated password: %v", err)
	}
	if sim.MachinePID() != 0 {
		t.Fatal("power off left QEMU running")
	}
}

// A Redfish BMC entered by hand: power through the API, and a release
// cycles the machine into a one-time network boot.
func TestBMCRedfishByHand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts QEMU")
	}
	r := bmcsim.StartRedfish(t)
	e := newEnv(t, withBMC(&bmc.Client{Timeout: 20 * time.Second}))
	e.setup()
	e.ready(macA)
	ctx := context.Background()
	if _, err := e.admin.SetBMC(ctx, macA, api.BMCRequest{Protocol: "redfish", Address: r.Host, Port: r.Port, Username: r.User, Password: r.Password}); err != nil {
		t.Fatal(err)
	}
	if p, err := e.admin.SetPower(ctx, macA, "on"); err != nil || p.State != "on" || r.MachinePID() == 0 {
		t.Fatalf("power on: %+v, %v", p, err)
	}
	first := r.MachinePID()
	if code, body := e.post("/machines/"+macA+"/release", nil); code != 200 {
		t.Fatalf("release: %d %s", code, body)
	}
	e.auditOf(macA, "power-pxe")
	if pid := r.MachinePID(); pid == 0 || pid == first || !strings.Contains(strings.Join(r.Log(), ","), "Boot Pxe Once") {
		t.Fatalf("release did not cycle into PXE: pid %d (was %d), %q", pid, first, r.Log())
	}
}
