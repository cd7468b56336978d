package bmc_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/bmc"
	"github.com/foundry-appliance/foundry/test/bmcsim"
	"github.com/foundry-appliance/foundry/test/nstest"
)

// Against OpenIPMI's ipmi_sim, whose chassis is a real QEMU process: every
// power call through bmclib must start or stop that process.
func TestIPMISimulator(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ipmi_sim and QEMU")
	}
	if nstest.Reexec(t) {
		return
	}
	sim := bmcsim.Start(t, bmcsim.Options{})
	c := &bmc.Client{Timeout: 20 * time.Second}
	ep := bmc.Endpoint{Protocol: bmc.IPMI, Host: "127.0.0.1", Port: sim.Port, Username: sim.User, Password: sim.Password}
	ctx := context.Background()

	status := func(want bmc.PowerState) {
		t.Helper()
		got, err := c.PowerState(ctx, ep)
		if err != nil || got != want {
			t.Fatalf("power status = %s, %v; want %s", got, err, want)
		}
	}
	status(bmc.PowerOff)
	if sim.MachinePID() != 0 {
		t.Fatal("a machine runs before power-on")
	}

	start := time.Now()
	if err := c.Power(ctx, ep, bmc.ActionOn); err != nil {
		t.Fatal(err)
	}
	t.Logf("power on: %v", time.Since(start).Round(time.Millisecond))
	first := sim.MachinePID()
	if first == 0 {
		t.Fatalf("power on started no QEMU; chassis: %s", sim.ChassisLog())
	}
	status(bmc.PowerOn)

	// Next boot from the network, then a cycle: the chassis kills the
	// QEMU process and starts a new one with a one-time network boot.
	start = time.Now()
	was, err := c.RestartPXE(ctx, ep)
	if err != nil || was != bmc.PowerOn {
		t.Fatalf("RestartPXE = %s, %v", was, err)
	}
	waitFor(t, 15*time.Second, "a new QEMU process", func() bool {
		pid := sim.MachinePID()
		return pid != 0 && pid != first
	})
	t.Logf("next boot PXE + power cycle to a new QEMU process: %v", time.Since(start).Round(time.Millisecond))
	if log := sim.ChassisLog(); !strings.Contains(log, "set boot pxe") || !strings.HasSuffix(log, "start once=n\n") {
		t.Fatalf("chassis did not boot the new machine from the network once:\n%s", log)
	}
	status(bmc.PowerOn)

	if err := c.Power(ctx, ep, bmc.ActionOff); err != nil {
		t.Fatal(err)
	}
	if sim.MachinePID() != 0 {
		t.Fatal("power off left QEMU running")
	}
	status(bmc.PowerOff)
	// Power-on from off through RestartPXE (a cycle would be refused by
	// many BMCs).
	if was, err := c.RestartPXE(ctx, ep); err != nil || was != bmc.PowerOff || sim.MachinePID() == 0 {
		t.Fatalf("RestartPXE from off = %s, %v, pid %d", was, err, sim.MachinePID())
	}

	// A dedicated user, then its password rotated: the new one opens a
	// session, the old one no longer does.
	out, err := sim.Ipmitool(ctx, sim.User, sim.Password, "user", "set", "name", "3", "foundry")
	if err != nil {
		t.Fatalf("create user: %v: %s", err, out)
	}
	for _, args := range [][]string{{"user", "set", "password", "3", "Initial1pass"}, {"user", "priv", "3", "4", "1"}, {"user", "enable", "3"}, {"channel", "setaccess", "1", "3", "link=on", "ipmi=on", "callin=on", "privilege=4"}} {
		if out, err := sim.Ipmitool(ctx, sim.User, sim.Password, args...); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	mine := bmc.Endpoint{Protocol: bmc.IPMI, Host: "127.0.0.1", Port: sim.Port, Username: "foundry", Password: "Initial1pass"}
	next, err := bmc.GeneratePassword()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetPassword(ctx, mine, next); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PowerState(ctx, mine); err == nil {
		t.Fatal("the old password still opens a session after rotation")
	} else {
		// The refusal is reported in ipmitool's (the BMC's) words.
		var be *bmc.Error
		if !errors.As(err, &be) || !strings.Contains(be.Msg, "RMCP+") {
			t.Fatalf("wrong-password error %v does not carry the BMC's message", err)
		}
		t.Logf("a wrong password is reported as: %v", err)
	}
	mine.Password = next
	if st, err := c.PowerState(ctx, mine); err != nil || st != bmc.PowerOn {
		t.Fatalf("new password: %s, %v", st, err)
	}
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !ok() {
		if time.Now().After(end) {
			t.Fatalf("no %s after %v", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Redfish through bmclib's gofish provider, against the test Redfish
// service (test/bmcsim: no Redfish emulator installs here), whose Reset
// starts and stops a real QEMU process.
func TestRedfishService(t *testing.T) {
	if testing.Short() {
		t.Skip("starts QEMU")
	}
	r := bmcsim.StartRedfish(t)
	c := &bmc.Client{Timeout: 20 * time.Second}
	ep := bmc.Endpoint{Protocol: bmc.Redfish, Host: r.Host, Port: r.Port, Username: r.User, Password: r.Password}
	ctx := context.Background()
	if st, err := c.PowerState(ctx, ep); err != nil || st != bmc.PowerOff {
		t.Fatalf("power status = %s, %v", st, err)
	}
	if err := c.Power(ctx, ep, bmc.ActionOn); err != nil || r.MachinePID() == 0 {
		t.Fatalf("power on: %v, pid %d", err, r.MachinePID())
	}
	first := r.MachinePID()
	if was, err := c.RestartPXE(ctx, ep); err != nil || was != bmc.PowerOn {
		t.Fatalf("RestartPXE = %s, %v", was, err)
	}
	if pid := r.MachinePID(); pid == 0 || pid == first {
		t.Fatalf("no new QEMU process after the cycle: %d (was %d)", pid, first)
	}
	log := strings.Join(r.Log(), ", ")
	if !strings.Contains(log, "Boot Pxe Once") || !strings.Contains(log, "Reset On") {
		t.Fatalf("service was asked: %s", log)
	}
	if err := c.Power(ctx, ep, bmc.ActionOff); err != nil || r.MachinePID() != 0 {
		t.Fatalf("power off: %v, pid %d", err, r.MachinePID())
	}
	next, _ := bmc.GeneratePassword()
	if err := c.SetPassword(ctx, ep, next); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PowerState(ctx, ep); err == nil {
		t.Fatal("the old Redfish password still works")
	} else if !strings.Contains(err.Error(), "There is no valid session established with the implementation. (Base.1.8.NoValidSession)") {
		t.Fatalf("wrong-password error %v does not carry the service's message", err)
	} else {
		t.Logf("a wrong Redfish password is reported as: %v", err)
	}
	ep.Password = next
	if st, err := c.PowerState(ctx, ep); err != nil || st != bmc.PowerOff {
		t.Fatalf("new password: %s, %v", st, err)
	}
}
