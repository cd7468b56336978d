//go:build qemu

package ipxe

// Boots real iPXE (the NIC option ROMs of Debian's ipxe-qemu, BIOS and
// UEFI under OVMF) in QEMU with user-mode networking, so that the scripts
// are run by the firmware they are written for. QEMU's DHCP hands out the
// script URL; 10.0.2.2 is the host's loopback as seen from the guest, so
// no traffic leaves the machine.
//
//	go test -tags qemu -run QEMU -v ./ipxe
//
// Needs qemu-system-x86, ipxe-qemu and ovmf. Each boot takes 10-60 s under
// TCG.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/lifecycle"
	"github.com/foundry-appliance/foundry/store"
	"github.com/foundry-appliance/foundry/test/vm"
)

type recorder struct {
	mu   sync.Mutex
	reqs []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, s)
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

func TestQEMU(t *testing.T) {
	for _, bin := range []string{"qemu-system-x86_64", vm.DefaultOVMFCode, "/usr/lib/ipxe/qemu/efi-e1000.rom"} {
		if _, err := exec.LookPath(bin); err != nil {
			if _, err := os.Stat(bin); err != nil {
				t.Skipf("%s not installed", bin)
			}
		}
	}
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a := store.Audit{Actor: "test", Action: "setup"}
	db.CreateCluster(store.Cluster{Name: "lab"}, a)
	for _, p := range []string{"debian", "ubuntu-image"} {
		if _, err := db.CreateProfile(*profiles[p], a); err != nil {
			t.Fatal(err)
		}
	}
	const (
		macDisc   = "52:54:00:00:01:01"
		macMenu   = "52:54:00:00:01:02"
		macLocal  = "52:54:00:00:01:03"
		macReject = "52:54:00:00:01:04"
	)
	for _, m := range []store.Machine{
		{MAC: macDisc, State: store.StateDiscovered, Segment: "lab", Hostname: "discovered-000101", Temporary: true, ExpiresAt: time.Now().Add(time.Hour)},
		{MAC: macMenu, State: store.StateReady, Hostname: "web01", Cluster: "lab", Profile: "debian", Menu: store.BootMenu{Enabled: true}},
		{MAC: macLocal, State: store.StateReady, Hostname: "db01", Cluster: "lab", Profile: "ubuntu-image"},
		{MAC: macReject, State: store.StateRejected, Hostname: "bad"},
	} {
		if _, err := db.CreateMachine(m, a); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	srv := &Server{Store: db, BaseURL: fmt.Sprintf("http://10.0.2.2:%d", port), MenuTimeout: time.Second,
		Segments: map[string]lifecycle.Segment{"lab": {Discovery: true}}, Grants: anyGrant{}}
	rec := &recorder{}
	mux := http.NewServeMux()
	mux.Handle("/boot/", srv)
	// The "kernel" is iPXE itself in the platform's format (a bzImage for
	// BIOS, an EFI application for UEFI): booting it starts a second iPXE
	// that asks for the script again, which shows that boot ran.
	var kernel []byte
	mux.HandleFunc("/images/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "vmlinuz") {
			w.Write(kernel)
			return
		}
		w.Write(make([]byte, 4096))
	})
	lkrn, err1 := os.ReadFile("/usr/lib/ipxe/ipxe.lkrn")
	efi, err2 := os.ReadFile("/usr/lib/ipxe/ipxe.efi")
	if err1 != nil || err2 != nil {
		t.Skipf("Debian's ipxe package is needed: %v %v", err1, err2)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// iPXE escapes the colons of the MAC (%3A); record the decoded path.
		u := r.URL.Path
		if r.URL.RawQuery != "" {
			u += "?" + r.URL.RawQuery
		}
		rec.add(u)
		mux.ServeHTTP(w, r)
	})}
	go hs.Serve(ln)
	defer hs.Close()

	disk := filepath.Join(dir, "disk.img")
	img := make([]byte, 1<<20)
	sector, err := vm.BootSector("FOUNDRY-LOCAL-DISK\r\n")
	if err != nil {
		t.Fatal(err)
	}
	copy(img, sector)
	if err := os.WriteFile(disk, img, 0o644); err != nil {
		t.Fatal(err)
	}

	boot := func(mac string) string { return "/boot/" + mac }
	// Each scenario names the requests the machine must make, in order, and
	// console lines that must appear in order.
	tests := []struct {
		name     string
		uefi     bool
		mac      string
		wantReqs []string
		console  []string
	}{
		// kernel → initrd → boot: both files fetched, then the "kernel"
		// (a second iPXE) starts.
		{"bios discovery", false, macDisc,
			[]string{boot(macDisc), "/images/discovery/vmlinuz", "/images/discovery/initrd"},
			[]string{"Foundry: discovery boot for " + macDisc, "/images/discovery/initrd... ok", "iPXE initialising devices"}},
		{"uefi discovery", true, macDisc,
			[]string{boot(macDisc), "/images/discovery/vmlinuz", "/images/discovery/initrd"},
			[]string{"Foundry: discovery boot for " + macDisc, "/images/discovery/initrd... ok", "iPXE initialising devices"}},
		// The menu times out to production, which chains to its script.
		{"bios menu default", false, macMenu,
			[]string{boot(macMenu), boot(macMenu) + "?mode=production", "/images/debian/vmlinuz", "/images/debian/initrd.gz"},
			[]string{"Rediscover (refresh inventory)", "Foundry: production boot of web01"}},
		{"bios local disk", false, macLocal, []string{boot(macLocal)},
			[]string{"booting db01 from its local disk", "FOUNDRY-LOCAL-DISK"}},
		// UEFI: iPXE exits and the firmware moves on to its next boot option.
		{"uefi local disk", true, macLocal, []string{boot(macLocal)},
			[]string{"booting db01 from its local disk", ">>Start PXE over IPv4"}},
		// Rejected: iPXE boots nothing; the firmware then tries its next
		// device, which here is the disk.
		{"bios rejected", false, macReject, []string{boot(macReject)},
			[]string{"was rejected by an administrator", "Could not boot image"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec.mu.Lock()
			rec.reqs = nil
			rec.mu.Unlock()
			spec := vm.Machine{MemoryMiB: 256, ExitOnReboot: true,
				NIC: &vm.NIC{User: true, BootFile: fmt.Sprintf("http://10.0.2.2:%d/boot/%s", port, tt.mac),
					MAC: tt.mac, BootIndex: 1},
				Disks: []vm.Disk{{Path: disk, Snapshot: true}}}
			kernel = lkrn
			if tt.uefi {
				spec.Firmware = vm.UEFI
				kernel = efi
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			in, err := spec.Start(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Stop()
			out := in.Console
			// The second iPXE of a discovery boot goes round again; only
			// the first requests are the script's.
			first := func() []string {
				got := rec.list()
				return got[:min(len(got), len(tt.wantReqs))]
			}
			done := func() bool {
				return slices.Equal(first(), tt.wantReqs) && inOrder(out(), tt.console)
			}
			for !done() && ctx.Err() == nil {
				time.Sleep(200 * time.Millisecond)
			}
			if got := first(); !slices.Equal(got, tt.wantReqs) {
				t.Errorf("requests %q, want %q first", got, tt.wantReqs)
			}
			console := out()
			if !inOrder(console, tt.console) {
				t.Errorf("console lacks %q in this order", tt.console)
			}
			if t.Failed() || testing.Verbose() {
				t.Logf("console:\n%s", tail(console, 3000))
			}
		})
	}
}

// inOrder reports whether every string of want appears in s, in order.
func inOrder(s string, want []string) bool {
	for _, w := range want {
		i := strings.Index(s, w)
		if i < 0 {
			return false
		}
		s = s[i+len(w):]
	}
	return true
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
