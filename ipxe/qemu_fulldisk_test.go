//go:build qemu

package ipxe

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/lifecycle"
	"github.com/foundry-appliance/foundry/store"
	"github.com/foundry-appliance/foundry/test/vm"
)

// Real iPXE (BIOS, Debian's ipxe-qemu) asks for its discovery script while
// the data disk is full: it gets 503 with Retry-After, asks again after
// that many seconds for as long as the disk is full, and boots discovery
// once space is freed — the machine waits instead of falling through to
// its next boot device.
//
//	go test -tags qemu -run QEMUFullDisk -v ./ipxe
func TestQEMUFullDisk(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	lkrn, err := os.ReadFile("/usr/lib/ipxe/ipxe.lkrn")
	if err != nil {
		t.Skipf("Debian's ipxe package is needed: %v", err)
	}
	dir := t.TempDir()
	var free atomic.Int64
	free.Store(1 << 40)
	db, err := store.Open(filepath.Join(dir, "db"), store.Options{SpaceReserve: 4 << 20,
		FreeSpace: func(string) (int64, error) { return free.Load(), nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const mac = "52:54:00:00:02:01"
	_, err = db.CreateMachine(store.Machine{MAC: mac, State: store.StateDiscovered, Segment: "lab", Hostname: "discovered-000201",
		Temporary: true, ExpiresAt: time.Now().Add(time.Hour)}, store.Audit{Actor: "test", Action: "setup"})
	if err != nil {
		t.Fatal(err)
	}
	free.Store(1 << 20)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	const retry = 2 * time.Second
	srv := &Server{Store: db, BaseURL: fmt.Sprintf("http://10.0.2.2:%d", port), FullDiskRetry: retry,
		Segments: map[string]lifecycle.Segment{"lab": {Discovery: true}}, Grants: anyGrant{}}
	var (
		mu      sync.Mutex
		scripts []time.Time // each request for the script
		kernel  bool
	)
	mux := http.NewServeMux()
	mux.Handle("/boot/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		scripts = append(scripts, time.Now())
		mu.Unlock()
		srv.ServeHTTP(w, r)
	}))
	mux.HandleFunc("/images/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "vmlinuz") {
			mu.Lock()
			kernel = true
			mu.Unlock()
			w.Write(lkrn)
			return
		}
		w.Write(make([]byte, 4096))
	})
	hs := &http.Server{Handler: mux}
	go hs.Serve(ln)
	defer hs.Close()

	spec := vm.Machine{MemoryMiB: 256, ExitOnReboot: true,
		NIC: &vm.NIC{User: true, BootFile: fmt.Sprintf("http://10.0.2.2:%d/boot/%s", port, mac), MAC: mac, BootIndex: 1}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	in, err := spec.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Stop()
	seen := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		return len(scripts), kernel
	}
	for n, _ := seen(); n < 3 && ctx.Err() == nil; n, _ = seen() {
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	asked := append([]time.Time(nil), scripts...)
	mu.Unlock()
	if len(asked) < 3 {
		t.Fatalf("iPXE asked for its script %d times on a full disk, want it to keep asking\nconsole:\n%s", len(asked), tail(in.Console(), 3000))
	}
	for i := 1; i < len(asked); i++ {
		if gap := asked[i].Sub(asked[i-1]); gap < retry-500*time.Millisecond {
			t.Errorf("request %d came %s after the previous one, before Retry-After's %s", i+1, gap, retry)
		}
	}
	free.Store(1 << 40)
	for _, k := seen(); !k && ctx.Err() == nil; _, k = seen() {
		time.Sleep(100 * time.Millisecond)
	}
	console := in.Console()
	if _, k := seen(); !k || !strings.Contains(console, "Foundry: discovery boot for "+mac) {
		t.Errorf("no discovery boot once space was freed\nconsole:\n%s", tail(console, 3000))
	}
	if testing.Verbose() {
		t.Logf("script requests at %v; console:\n%s", asked, tail(console, 2000))
	}
}
