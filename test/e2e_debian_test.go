package test

// Issue 10: the real Debian image (make os-image) goes into the appliance's
// image library through the API, a profile names it, and two emulated
// machines are approved with it. Nothing in between is done by the test:
// the agent writes the image and the seed, the firmware boots the disk,
// the real cloud-init applies the seed and reports the first boot, and the
// test logs in over SSH as an operator would.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/images/osimage"
	"github.com/foundry-appliance/foundry/test/vm"
)

// debianMachine is one machine of the test and what its installed system
// must show.
type debianMachine struct {
	name     string
	firmware vm.Firmware
	mac      string
	hostname string
	// static is the approved address (address/prefix); "" means DHCP, in
	// which case the machine must have the appliance's lease.
	static string
}

// debianTimes is what one machine's install took.
type debianTimes struct {
	registered, written, osKernel, ready, login time.Duration // after power-on or approval, see the log
	deploySeconds                               float64
}

const (
	// installTimeout bounds approval → ready: a 1 GiB write under TCG,
	// two firmware boots and a first boot with cloud-init.
	installTimeout = 15 * time.Minute
	debianLibName  = "debian-12"
)

// Issue 10, "How it is tested": a BIOS machine with DHCP and a UEFI
// machine with a static address are approved with the real Debian image
// from the library. Each becomes ready only after its installed system's
// own first-boot report; the test then logs in over SSH from the
// appliance's side with the approved key and checks host name, address,
// authorized key and the host key the report recorded.
func TestE2EDebianImageToSSHLogin(t *testing.T) {
	begin := time.Now()
	l := newE2ELab(t)
	img := l.uploadOSImage(t)
	l.setupCluster(t, "prod", api.ProfileCreate{Name: "debian", ProfileFields: api.ProfileFields{
		Kind: "image", Image: img.Name, Description: "Debian 12 from the library"}})

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	must(t, err)
	sshPub, err := ssh.NewPublicKey(pub)
	must(t, err)
	authorized := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " operator@foundry-e2e"
	signer, err := ssh.NewSignerFromKey(priv)
	must(t, err)

	machines := []debianMachine{
		{name: "bios-dhcp", firmware: vm.BIOS, mac: "52:54:00:e2:d0:01", hostname: "deb-bios.lab.foundry.test"},
		{name: "uefi-static", firmware: vm.UEFI, mac: "52:54:00:e2:d0:02", hostname: "deb-uefi.lab.foundry.test", static: "10.77.0.50/24"},
	}
	var mu sync.Mutex
	times := map[string]debianTimes{}
	hostKeys := map[string]string{}
	t.Run("machines", func(t *testing.T) {
		for _, c := range machines {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				tm, key := l.installDebian(t, c, authorized, signer, img.Size)
				mu.Lock()
				times[c.name], hostKeys[c.name] = tm, key
				mu.Unlock()
			})
		}
	})
	if len(hostKeys) == 2 && hostKeys["bios-dhcp"] == hostKeys["uefi-static"] {
		t.Errorf("both machines showed the host key %s: the image carries one", hostKeys["bios-dhcp"])
	}
	for _, c := range machines {
		if tm, ok := times[c.name]; ok {
			t.Logf("%s: power-on to registered %v; approval to image written %v, to installed kernel %v, to ready %v (deploy_seconds %.1f), to SSH login %v",
				c.name, tm.registered, tm.written, tm.osKernel, tm.ready, tm.deploySeconds, tm.login)
		}
	}
	t.Logf("whole test (appliance start, upload, both machines in parallel): %v", time.Since(begin).Round(time.Second))
}

// uploadOSImage streams build/os's zstd image into the library with the
// client's upload, the checksum make os-image recorded checked by the
// appliance, and returns the ready image.
func (l *e2eLab) uploadOSImage(t *testing.T) api.Image {
	t.Helper()
	paths := osimage.Builder{Dir: filepath.Join("..", "build", "os")}.Paths()
	sums, err := os.ReadFile(paths.Sums)
	if err != nil {
		t.Fatalf("the OS image is not built (make os-image builds it; make test and make e2e do first): %v", err)
	}
	var sum string
	for _, line := range strings.Split(string(sums), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[1] == filepath.Base(paths.Zst) {
			sum = f[0]
		}
	}
	if sum == "" {
		t.Fatalf("no checksum of %s in %s", filepath.Base(paths.Zst), paths.Sums)
	}
	f, err := os.Open(paths.Zst)
	must(t, err)
	defer f.Close()
	st, err := f.Stat()
	must(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	img, err := l.api.UploadImage(ctx, debianLibName, f, st.Size(), sum)
	if err != nil {
		t.Fatalf("upload %s into the library: %v", paths.Zst, err)
	}
	took := time.Since(start)
	if img.State != "ready" || img.Format != "zst" || img.Size != st.Size() || img.SHA256 != sum || img.URL == "" {
		t.Fatalf("uploaded image: %+v; want ready, zst, %d bytes, sha256 %s", img, st.Size(), sum)
	}
	t.Logf("library image %s: %d bytes (zst) uploaded in %v, served at %s", img.Name, img.Size, took.Round(time.Millisecond), img.URL)
	return img
}

// installDebian boots machine c, approves it with the library image (of
// imgSize bytes) and follows it to ready and an SSH login; it returns its
// times and the host key its SSH server showed.
func (l *e2eLab) installDebian(t *testing.T, c debianMachine, authorized string, signer ssh.Signer, imgSize int64) (debianTimes, string) {
	var tm debianTimes
	disk := rawDisk(t, e2eDiskBytes)
	poweredOn := time.Now()
	var m *machine
	switch c.firmware {
	case vm.BIOS:
		// iPXE's sanboot hands over to the first BIOS disk.
		m = bootBIOSMachine(t, l.lab.tap(), c.mac, disk)
	case vm.UEFI:
		// The network first, then the disk: iPXE's exit for a local boot
		// returns to the firmware, which tries its next boot options (the
		// card's HTTP boot, then the disk). IPv6 PXE is switched off, as
		// in a firmware's setup, to spare the test its DHCPv6 timeout.
		m = startMachine(t, vm.Machine{Firmware: vm.UEFI, MemoryMiB: e2eMemMiB,
			NIC: &vm.NIC{Tap: l.lab.tap(), MAC: c.mac, Model: "virtio-net-pci", NoROM: true, BootIndex: 1},
			Extra: []string{"-drive", "file=" + disk + ",format=raw,if=none,id=disk0",
				"-device", "virtio-blk-pci,drive=disk0,bootindex=2",
				"-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=no"}})
	}
	_, tok := l.registered(t, m, c.mac)
	tm.registered = time.Since(poweredOn).Round(time.Second)
	if tok == "" {
		t.Fatalf("no registration token on the console")
	}

	if c.firmware == vm.UEFI {
		// Debian's ipxe.efi hangs when its script exits to hand the
		// machine to the firmware's next boot option (the disk);
		// snponly.efi, on the firmware's own network driver, returns.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		set, err := l.api.SetBoot(ctx, c.mac, api.BootSettings{UEFIBinary: "snponly.efi"})
		cancel()
		if err != nil || set.UEFIBinary != "snponly.efi" {
			t.Fatalf("set snponly.efi for %s: %v (machine says %q)", c.mac, err, set.UEFIBinary)
		}
	}

	req := api.ApproveRequest{Token: tok, Cluster: "prod", Profile: "debian", Hostname: c.hostname, SSHKeys: []string{authorized}}
	addr := ""
	if c.static != "" {
		req.Network = &api.Network{Mode: "static", Address: c.static, Gateway: "10.77.0.1", DNS: []string{"10.77.0.1"}}
		addr, _, _ = strings.Cut(c.static, "/")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	approved, err := l.api.Approve(ctx, c.mac, req)
	cancel()
	approvedAt := time.Now()
	if err != nil {
		t.Fatalf("approve with the console token %s: %v", tok, err)
	}
	if approved.State != "approved" || approved.Approval == nil || approved.Approval.Disk == "" {
		t.Fatalf("after approval: state %s, approval %+v; want approved with a target disk", approved.State, approved.Approval)
	}
	t.Logf("approved %s as %s onto %s", c.mac, approved.Hostname, approved.Approval.Disk)

	// Follow the machine: the image written (provisioning, installed), the
	// installed kernel on the console while the machine is still not
	// ready, then ready with the report.
	var (
		lastStep  string
		installed bool
		osSeen    bool
		ready     api.Machine
		// live is a progress report of the write with all its figures.
		live *api.ProgressDetail
	)
	deadline := approvedAt.Add(installTimeout)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("not ready %v after approval: state %s, installed %v, progress %d, message %q",
				installTimeout, ready.State, ready.Installed, ready.Progress, ready.Message)
		}
		// The console is read before the record: what the console showed
		// had happened before the state was read.
		kernel := installedKernelLine(m.text())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rec, err := l.api.GetMachine(ctx, c.mac)
		cancel()
		if err != nil {
			t.Logf("get machine: %v", err)
			time.Sleep(time.Second)
			continue
		}
		ready = rec
		// The agent's live progress, every tenth of the write.
		if d := rec.ProgressDetail; live == nil && d != nil && rec.State == "provisioning" && !rec.Installed &&
			d.BytesTotal == imgSize && d.BytesDone > 0 && d.BytesDone < imgSize && d.RateBps > 0 && d.ETASeconds > 0 {
			live = d
		}
		if step := fmt.Sprintf("%d %s", rec.Progress/10, rec.Message); step != lastStep && rec.State == "provisioning" && !rec.Installed {
			lastStep = step
			t.Logf("+%v %s %d%%: %s", time.Since(approvedAt).Round(time.Second), rec.State, rec.Progress, rec.Message)
		}
		if line := m.consoleLine("BUG: soft lockup"); line != "" {
			t.Fatalf("a kernel on the machine hung (%s); state %s, installed %v, message %q",
				line, rec.State, rec.Installed, rec.Message)
		}
		if rec.State == "failed" {
			t.Fatalf("install failed: %s", rec.Message)
		}
		if rec.State == "ready" && rec.FirstBoot == nil {
			t.Fatalf("ready without a first-boot report: %+v", rec)
		}
		if rec.Installed && !installed {
			installed = true
			tm.written = time.Since(approvedAt).Round(time.Second)
			if rec.Progress != 100 {
				t.Errorf("installed at progress %d", rec.Progress)
			}
		}
		if kernel != "" && !osSeen {
			osSeen = true
			tm.osKernel = time.Since(approvedAt).Round(time.Second)
			t.Logf("+%v the installed system's kernel is running (%q); the machine is %s, installed %v",
				tm.osKernel, kernel, rec.State, rec.Installed)
			// The disk boots, cloud-init has not run yet: the machine
			// must still wait for its own report.
			if rec.State != "provisioning" || !rec.Installed || rec.ReadyAt != nil || rec.FirstBoot != nil {
				t.Fatalf("while the installed system boots the machine is %s (installed %v, ready_at %v, first_boot %v); want provisioning, installed, no report",
					rec.State, rec.Installed, rec.ReadyAt, rec.FirstBoot)
			}
		}
		if rec.State == "ready" {
			break
		}
		time.Sleep(time.Second)
	}
	tm.ready = time.Since(approvedAt).Round(time.Second)
	if !osSeen || !installed {
		t.Fatalf("ready before the installed kernel ran (seen %v) or the image was reported written (%v)", osSeen, installed)
	}
	if live == nil {
		t.Errorf("no live progress of the write with bytes (of %d), rate and time left", imgSize)
	} else {
		t.Logf("live progress seen: %d of %d bytes at %d B/s, %d s left", live.BytesDone, live.BytesTotal, live.RateBps, live.ETASeconds)
	}
	if ready.DeploySeconds == nil || ready.ReadyAt == nil {
		t.Fatalf("ready without deploy_seconds or ready_at: %+v", ready)
	}
	tm.deploySeconds = *ready.DeploySeconds
	t.Logf("ready %v after approval; the API's deploy_seconds: %.1f", tm.ready, tm.deploySeconds)
	if d := time.Duration(tm.deploySeconds * float64(time.Second)); d <= 0 || d > tm.ready+5*time.Second {
		t.Errorf("deploy_seconds %.1f does not fit the %v the test measured", tm.deploySeconds, tm.ready)
	}
	fb := ready.FirstBoot
	if fb.Hostname != c.hostname || len(fb.SSHHostKeys) == 0 {
		t.Errorf("first-boot report: host %q, %d host keys; want %s and its keys", fb.Hostname, len(fb.SSHHostKeys), c.hostname)
	}

	if addr == "" {
		addr = l.leaseOf(t, c.mac)
	}
	// The report came from the machine itself, at its production address:
	// the access log names the caller of the first-boot URL.
	if line, ok := l.app.waitLog(time.Second, "POST", "path=/api/v1/first-boot/"+c.mac+"/", "status=200"); !ok {
		t.Errorf("no accepted first-boot POST in the appliance log")
	} else if !strings.Contains(line, "remote="+addr+":") {
		t.Errorf("the first-boot report came from elsewhere than %s: %s", addr, line)
	}

	// Log in from the appliance's side, trusting only the host keys the
	// installed system reported.
	known := map[string]bool{}
	for _, k := range fb.SSHHostKeys {
		if f := strings.Fields(k); len(f) >= 2 {
			known[f[0]+" "+f[1]] = true
		}
	}
	var shown string
	cfg := &ssh.ClientConfig{User: "debian", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, Timeout: 20 * time.Second,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			shown = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
			if !known[shown] {
				return fmt.Errorf("host key %s is not one of the first-boot report's %v", shown, fb.SSHHostKeys)
			}
			return nil
		}}
	var cl *ssh.Client
	for until := time.Now().Add(2 * time.Minute); ; time.Sleep(2 * time.Second) {
		cl, err = ssh.Dial("tcp", net.JoinHostPort(addr, "22"), cfg)
		if err == nil || time.Now().After(until) {
			break
		}
	}
	if err != nil {
		t.Fatalf("ssh debian@%s with the approved key: %v", addr, err)
	}
	defer cl.Close()
	tm.login = time.Since(approvedAt).Round(time.Second)
	t.Logf("logged in as debian@%s %v after approval (host key %s)", addr, tm.login, shown)

	short, _, _ := strings.Cut(c.hostname, ".")
	checks := []check{
		{"hostname", func(o string) bool { return o == short }, "host name " + short},
		{"hostname -f", func(o string) bool { return o == c.hostname }, "fully qualified name " + c.hostname},
		{"ip -4 -o addr show scope global", func(o string) bool { return strings.Contains(o, " "+addr+"/24 ") }, "address " + addr + "/24"},
		{"cat .ssh/authorized_keys", func(o string) bool { return o == authorized }, "exactly the approved key"},
		{"cloud-init status", func(o string) bool { return o == "status: done" }, "cloud-init done"},
	}
	if c.static != "" {
		checks = append(checks, check{"ip -4 route show default", func(o string) bool { return strings.HasPrefix(o, "default via 10.77.0.1 ") }, "default route via 10.77.0.1"})
	}
	for _, ch := range checks {
		out, err := runSSH(cl, ch.cmd)
		if err != nil || !ch.want(out) {
			t.Errorf("%q gave %q (err %v), want %s", ch.cmd, out, err, ch.what)
		}
	}
	return tm, shown
}

// installedKernelLine returns the installed system's kernel command line
// from the console ("root=UUID=", which the discovery kernel's lacks), or "".
func installedKernelLine(console string) string {
	for _, line := range strings.Split(console, "\n") {
		if strings.Contains(line, "Command line:") && strings.Contains(line, "root=UUID=") {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// leaseOf returns the lab segment's lease of mac.
func (l *e2eLab) leaseOf(t *testing.T, mac string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	leases, err := l.api.ListLeases(ctx, "lab")
	must(t, err)
	for _, le := range leases {
		if le.MAC == mac && !le.Declined {
			return le.IP
		}
	}
	t.Fatalf("no lease of %s on lab: %+v", mac, leases)
	return ""
}

// check is a command run on the machine and what its output must be.
type check struct {
	cmd  string
	want func(out string) bool
	what string
}

func runSSH(c *ssh.Client, cmd string) (string, error) {
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	return strings.TrimSpace(string(out)), err
}
