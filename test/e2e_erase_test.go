package test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/api/client"
	"github.com/foundry-appliance/foundry/test/vm"
)

// Issue 10, 4: a release that asks for the drive's own secure erase. The
// machine's only disk is QEMU's emulated NVMe controller, full of data;
// released with secure_erase, its next discovery boot has the drive erase
// itself (Format NVM with user-data erase, through the kernel's NVMe
// admin ioctl) and reports which disk was erased how. The test then reads
// the whole disk file: every byte is zero, the middle too, which no quick
// wipe touches, and the agent overwrote nothing itself (the report says
// the drive erased it).
func TestE2EReleaseSecureErase(t *testing.T) {
	l := newE2ELab(t)
	const mac = "52:54:00:e2:e5:01"
	const size = 64 << 20
	disk := rawDisk(t, size)
	must(t, os.WriteFile(disk, bytes.Repeat([]byte("foundry secure erase e2e "), size/25+1)[:size], 0o644))
	nvmeMachine := func() *machine {
		return startMachine(t, vm.Machine{MemoryMiB: e2eMemMiB, NIC: &vm.NIC{Tap: l.lab.tap(), MAC: mac},
			Extra: []string{"-drive", "file=" + disk + ",format=raw,if=none,id=nv0", "-device", "nvme,drive=nv0,serial=foundry-e2e-nvme"}})
	}
	m := nvmeMachine()
	rec, tok := l.registered(t, m, mac)
	if tok == "" {
		t.Fatal("no registration token on the console")
	}
	var fixed []string
	for _, d := range parseInventory(t, rec).Disks {
		if d.Fixed() {
			fixed = append(fixed, d.Name+" "+d.Driver)
		}
	}
	if len(fixed) != 1 || fixed[0] != "nvme0n1 nvme" {
		t.Fatalf("the inventory's fixed disks are %v: want the NVMe namespace nvme0n1 alone", fixed)
	}
	// A netboot approval is ready at once: the shortest way to a machine
	// that can be released.
	l.setupCluster(t, "rack-erase", api.ProfileCreate{Name: "netboot-erase", ProfileFields: api.ProfileFields{
		Kind: "netboot", Kernel: e2eBase + "/images/discovery/vmlinuz", Initrd: e2eBase + "/images/discovery/initrd"}})
	if _, err := l.approve(mac, tok, "rack-erase", "netboot-erase"); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.waitState(t, mac, "ready", time.Minute); !ok {
		t.Fatal("the netboot approval did not make the machine ready")
	}
	m.powerOff()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := l.api.ReleaseWith(ctx, mac, api.ReleaseRequest{SecureErase: true})
	if err != nil || got.Wipe == nil || !got.Wipe.SecureErase {
		t.Fatalf("release with secure_erase: %+v, %v", got.Wipe, err)
	}
	released := time.Now()
	again := nvmeMachine()
	wiped, ok := l.waitFor(t, mac, func(m api.Machine) bool { return strings.HasPrefix(m.Message, "disks wiped") }, registerTimeout)
	if !ok || wiped.State != "inventoried" {
		t.Fatalf("after the release: %s %q", wiped.State, wiped.Message)
	}
	t.Logf("release to secure-erased and inventoried: %v", time.Since(released).Round(100*time.Millisecond))
	again.powerOff()
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	audit, err := l.api.ListAudit(ctx, client.AuditOptions{MAC: mac, Action: "wiped"})
	if err != nil || len(audit.Items) == 0 || audit.Items[0].Detail != "wiped 1 disks (the drive's secure erase: nvme0n1)" {
		t.Fatalf("wipe report: %+v, %v; want the drive's secure erase of nvme0n1", audit.Items, err)
	}
	b, err := os.ReadFile(disk)
	must(t, err)
	if i := bytes.IndexFunc(b, func(r rune) bool { return r != 0 }); i >= 0 {
		t.Fatalf("byte %d of the secure-erased disk is not zero (%q…)", i, b[i:min(len(b), i+32)])
	}
}
