package test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/api/client"
	"github.com/foundry-appliance/foundry/store/kv/etcdtest"
)

// Issue 16: a QEMU machine PXE-boots the real discovery OS through the
// appliance on its segment and registers there; an administrator at
// another appliance of the fleet (one etcd cluster of three members, no
// segment of its own) approves it with the token on the machine's console,
// and the machine's next boot, from the first appliance, is the production
// kernel.
func TestE2EFleetRegisterHereApproveThere(t *testing.T) {
	if testing.Short() {
		t.Skip("boots an emulated machine into the discovery OS")
	}
	requireDiscoveryImage(t)
	c := etcdtest.Start(t, etcdtest.Options{Members: 3})
	l := &e2eLab{lab: newLab(t, "e2e0", "10.77.0.1/24"), office: newLab(t, "e2e1", "10.78.0.1/24"), images: imageDir(t)}
	l.app = startAppliance(t, t.TempDir(), l.images, fleetConfig(c.Endpoints(), e2eConfig), e2eBase)
	l.api = &client.Client{BaseURL: e2eBase, Token: adminToken}
	const hqBase = "http://127.0.0.1:8093"
	startAppliance(t, t.TempDir(), imageDir(t), fleetConfig(c.Endpoints(), `
http:
  listen: "127.0.0.1:8093"
  advertise: "`+hqBase+`"
tftp:
  listen: "127.0.0.1:6993"
`), hqBase)
	hq := &e2eLab{api: &client.Client{BaseURL: hqBase, Token: adminToken}}

	const mac = "52:54:00:e2:f1:01"
	m := bootBIOSMachine(t, l.lab.tap(), mac, rawDisk(t, e2eDiskBytes))
	rec, tok := l.registered(t, m, mac)
	if tok == "" {
		t.Fatal("no registration token on the console")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	there, err := hq.api.GetMachine(ctx, mac)
	cancel()
	if err != nil || there.State != "inventoried" || there.Segment != "lab" || len(there.Inventory) == 0 || there.Hostname != rec.Hostname {
		t.Fatalf("the other appliance's view of the registered machine: state %q segment %q inventory %d bytes, %v",
			there.State, there.Segment, len(there.Inventory), err)
	}

	marker := randomMarker(t, "e2e-fleet-")
	hq.setupCluster(t, "rack1", api.ProfileCreate{Name: "netboot-fleet", ProfileFields: api.ProfileFields{
		Kind:    "netboot",
		Kernel:  e2eBase + "/images/discovery/vmlinuz",
		Initrd:  e2eBase + "/images/discovery/initrd",
		Cmdline: "console=ttyS0,115200 foundry.e2e=" + marker,
	}})
	approved, err := hq.approve(mac, tok, "rack1", "netboot-fleet")
	if err != nil || approved.State != "ready" {
		t.Fatalf("approval through the other appliance with the console token: %+v, %v", approved.State, err)
	}
	approvedAt := time.Now()
	if !m.waitConsole(bootTimeout, "foundry.e2e="+marker) {
		t.Fatalf("the production kernel (marker %s) never appeared on the console after the approval elsewhere", marker)
	}
	t.Logf("registered through %s, approved through %s; production kernel running %v later: %q",
		e2eBase, hqBase, time.Since(approvedAt).Round(100*time.Millisecond), m.consoleLine("Command line:", marker))
	if !strings.Contains(m.text(), "production boot of") {
		t.Errorf("iPXE never announced the production script")
	}
}
