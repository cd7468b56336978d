package osimage_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/foundry-appliance/foundry/agentwire"
	"github.com/foundry-appliance/foundry/discovery-os/agent"
	"github.com/foundry-appliance/foundry/images/osimage"
	"github.com/foundry-appliance/foundry/test/nstest"
	"github.com/foundry-appliance/foundry/test/vm"
)

// bootCase is one machine installed from the image the way the agent
// installs it, and what its first boot must show.
type bootCase struct {
	name     string
	firmware vm.Firmware
	mac      string
	tap      string
	decision agentwire.Decision
	// addr is the address the machine must have: dnsmasq's reservation
	// for its MAC, or the seed's static address.
	addr string
}

// TestRealCloudInit installs the built Debian image on two disk files
// with the agent's own WriteImage and WriteSeed, boots one machine under
// BIOS with DHCP and one under UEFI with a static address from the seed,
// and logs in to each over SSH with the seed's key to see what the real
// cloud-init made of the seed: host name, address, route, name server,
// authorized key, a clean cloud-init result and host keys of its own.
func TestRealCloudInit(t *testing.T) {
	if nstest.Reexec(t) {
		return
	}
	if testing.Short() {
		t.Skip("boots two emulated machines for a few minutes (make test runs it)")
	}
	paths := osimage.Builder{Dir: filepath.Join("..", "..", "build", "os")}.Paths()
	sums, err := os.ReadFile(paths.Sums)
	if err != nil {
		t.Fatalf("the OS image is not built (make os-image builds it; make test does first): %v", err)
	}
	zstSum := sumOf(t, string(sums), filepath.Base(paths.Zst))

	nstest.Run(t, "ip", "link", "add", "br0", "type", "bridge")
	nstest.Run(t, "ip", "addr", "add", "10.77.0.1/24", "dev", "br0")
	nstest.Run(t, "ip", "link", "set", "br0", "up")
	for _, tap := range []string{"tapbios", "tapuefi"} {
		nstest.Run(t, "ip", "tuntap", "add", "dev", tap, "mode", "tap")
		nstest.Run(t, "ip", "link", "set", tap, "master", "br0")
		nstest.Run(t, "ip", "link", "set", tap, "up")
	}
	startDnsmasq(t, "52:54:00:0a:00:01,10.77.0.101")
	home := startPhoneHome(t, "10.77.0.1:0")
	// The agent downloads the image over HTTP; here from loopback.
	srv := httptest.NewServer(http.FileServer(http.Dir(filepath.Dir(paths.Zst))))
	t.Cleanup(srv.Close)
	imageURL := srv.URL + "/" + filepath.Base(paths.Zst)

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, _ := ssh.NewPublicKey(pub)
	authorized := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " operator@foundry-test"
	signer, _ := ssh.NewSignerFromKey(priv)

	firstBoot := func(mac string) string {
		return "http://" + home.addr + "/api/v1/first-boot/" + mac + "/" + rand.Text()
	}
	cases := []bootCase{
		{name: "bios-dhcp", firmware: vm.BIOS, mac: "52:54:00:0a:00:01", tap: "tapbios", addr: "10.77.0.101",
			decision: agentwire.Decision{Hostname: "bios1.lab.foundry.test", SSHKeys: []string{authorized},
				FirstBootURL: firstBoot("52:54:00:0a:00:01")}},
		{name: "uefi-static", firmware: vm.UEFI, mac: "52:54:00:0a:00:02", tap: "tapuefi", addr: "10.77.0.50",
			decision: agentwire.Decision{Hostname: "uefi1.lab.foundry.test", SSHKeys: []string{authorized},
				Network:      &agentwire.Network{Mode: "static", Address: "10.77.0.50/24", Gateway: "10.77.0.1", DNS: []string{"10.77.0.1"}},
				FirstBootURL: firstBoot("52:54:00:0a:00:02")}},
	}
	var mu sync.Mutex
	hostKeys := map[string]string{}
	t.Run("machines", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				key := bootAndCheck(t, c, imageURL, zstSum, authorized, signer, home)
				mu.Lock()
				hostKeys[c.name] = key
				mu.Unlock()
			})
		}
	})
	if len(hostKeys) == 2 && hostKeys["bios-dhcp"] == hostKeys["uefi-static"] {
		t.Errorf("both machines have the host key %s: the image carries one", hostKeys["bios-dhcp"])
	}
}

// bootAndCheck installs, boots and inspects one machine; it returns the
// host key the machine's SSH server showed.
func bootAndCheck(t *testing.T, c bootCase, imageURL, zstSum, authorized string, signer ssh.Signer, home *phoneHome) string {
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	disk := filepath.Join(t.TempDir(), "disk.raw")
	f, err := os.Create(disk)
	if err != nil {
		t.Fatal(err)
	}
	// A disk larger than the image, as real ones are: the seed goes at
	// its end and the root partition may grow into the space between.
	if err := f.Truncate(4 << 30); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n, err := agent.WriteImage(ctx, http.DefaultClient, imageURL, zstSum, f, nil)
	f.Close()
	if err != nil {
		t.Fatalf("WriteImage: %v", err)
	}
	instanceID := "foundry-" + strings.ReplaceAll(c.mac, ":", "") + "-1"
	files, err := agent.NoCloudFiles(instanceID, c.mac, c.decision)
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.WriteSeed(disk, files); err != nil {
		t.Fatalf("WriteSeed: %v", err)
	}
	t.Logf("image (%d bytes) and seed written in %s; network-config: %s", n, time.Since(start).Round(time.Millisecond), files["network-config"])

	m := vm.Machine{Firmware: c.firmware, MemoryMiB: 1024,
		NIC: &vm.NIC{Model: "virtio-net-pci", MAC: c.mac, Tap: c.tap, NoROM: true},
		// The disk boots first, before any network boot the firmware
		// would try on the card.
		Extra: []string{"-drive", "file=" + disk + ",format=raw,if=none,id=disk0",
			"-device", "virtio-blk-pci,drive=disk0,bootindex=1"}}
	boot := time.Now()
	inst, err := m.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		inst.Stop()
		if t.Failed() {
			t.Logf("console of %s:\n%s", c.name, inst.Console())
		}
	}()
	// cloud-init's last stage prints the host keys it made and then its
	// "finished" line; by then the seed has been applied.
	const keysEnd = "-----END SSH HOST KEY KEYS-----"
	if !inst.WaitConsole(8*time.Minute, keysEnd) || !inst.WaitConsole(time.Minute, "finished at") {
		t.Fatalf("%s: cloud-init did not finish within the time (console below)", c.name)
	}
	consoleKeys := hostKeysOnConsole(inst.Console())
	if len(consoleKeys) == 0 {
		t.Fatalf("%s: no host keys between cloud-init's markers on the console", c.name)
	}
	t.Logf("%s: cloud-init finished %s after power-on", c.name, time.Since(boot).Round(time.Second))

	var shown string
	cfg := &ssh.ClientConfig{User: "debian", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, Timeout: 20 * time.Second,
		// The only trustworthy host key is one the machine printed on its
		// own console at first boot.
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			shown = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
			if !consoleKeys[shown] {
				return fmt.Errorf("host key %s is not one the machine printed", shown)
			}
			return nil
		}}
	var client *ssh.Client
	for deadline := time.Now().Add(2 * time.Minute); ; {
		client, err = ssh.Dial("tcp", net.JoinHostPort(c.addr, "22"), cfg)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	if err != nil {
		t.Fatalf("%s: ssh debian@%s with the seed's key: %v", c.name, c.addr, err)
	}
	defer client.Close()
	t.Logf("%s: logged in over SSH %s after power-on", c.name, time.Since(boot).Round(time.Second))

	fqdn := c.decision.Hostname
	short, _, _ := strings.Cut(fqdn, ".")
	checks := []check{
		{"hostname", func(o string) bool { return o == short }, "host name " + short},
		{"hostname -f", func(o string) bool { return o == fqdn }, "fully qualified name " + fqdn},
		{"ip -4 -o addr show scope global", func(o string) bool { return strings.Contains(o, " "+c.addr+"/24 ") }, "address " + c.addr + "/24"},
		{"ip -4 route show default", func(o string) bool { return strings.HasPrefix(o, "default via 10.77.0.1 ") }, "default route via 10.77.0.1"},
		{"cat .ssh/authorized_keys", func(o string) bool { return o == authorized }, "exactly the seed's key"},
		// No unit failed (cloud-init's own units included).
		{"systemctl is-system-running --wait", func(o string) bool { return o == "running" }, "running, not degraded"},
		{"sudo -n id -u", func(o string) bool { return o == "0" }, "password-less sudo for the operator"},
		{"cat /run/cloud-init/result.json", cloudInitClean, "cloud-init done with NoCloud and no errors"},
		// cloud-init grew the root into the space the seed partition left
		// between the image and the end of the 4 GiB disk.
		{"findmnt -bno SIZE /", func(o string) bool { n, _ := strconv.ParseInt(o, 10, 64); return n > 3<<30 }, "a root file system grown past 3 GiB"},
	}
	if c.decision.Network != nil {
		checks = append(checks, check{"cat /etc/resolv.conf", func(o string) bool { return strings.Contains(o, "nameserver 10.77.0.1") }, "the seed's name server"})
	}
	for _, ch := range checks {
		out, err := runSSH(client, ch.cmd)
		if err != nil || !ch.want(out) {
			t.Errorf("%s: %q gave %q (err %v), want %s", c.name, ch.cmd, out, err, ch.what)
		}
	}
	// The first-boot report: cloud-init's phone_home posts a form to the
	// seed's URL with the instance ID, the names and the host keys, one of
	// which the SSH server just showed.
	if r, ok := home.wait(c.decision.FirstBootURL, time.Minute); !ok {
		t.Errorf("%s: no first-boot report at %s", c.name, c.decision.FirstBootURL)
	} else {
		keys := map[string]bool{}
		for _, k := range []string{"pub_key_ed25519", "pub_key_ecdsa", "pub_key_rsa"} {
			if f := strings.Fields(r.form.Get(k)); len(f) >= 2 {
				keys[f[0]+" "+f[1]] = true
			}
		}
		if r.contentType != "application/x-www-form-urlencoded" || r.form.Get("instance_id") != instanceID ||
			r.form.Get("fqdn") != fqdn || !keys[shown] {
			t.Errorf("%s: first-boot report %s %v, want a form with instance %s, fqdn %s and the host key %s",
				c.name, r.contentType, r.form, instanceID, fqdn, shown)
		}
	}
	// A warning is cloud-init saying it skipped or misread part of the
	// seed or the image (the errors in result.json are only the fatal ones).
	if warnings, err := runSSH(client, "sudo grep -c WARNING /var/log/cloud-init.log; sudo grep WARNING /var/log/cloud-init.log | cut -c1-300"); warnings != "0" {
		t.Errorf("%s: cloud-init warned (err %v):\n%s", c.name, err, warnings)
	}
	if t.Failed() {
		for _, diag := range []string{"cat /etc/network/interfaces.d/*", "sudo cloud-init status --long", "sudo grep -iE 'warn|error|trace' /var/log/cloud-init.log"} {
			out, _ := runSSH(client, diag)
			t.Logf("%s: %s:\n%s", c.name, diag, out)
		}
	}
	return shown
}

// check is a command run on the machine and what its output must be.
type check struct {
	cmd  string
	want func(out string) bool
	what string
}

// cloudInitClean reads cloud-init's result.json.
func cloudInitClean(out string) bool {
	var r struct {
		V1 struct {
			Datasource string   `json:"datasource"`
			Errors     []string `json:"errors"`
		} `json:"v1"`
	}
	if json.Unmarshal([]byte(out), &r) != nil {
		return false
	}
	return strings.Contains(r.V1.Datasource, "NoCloud") && len(r.V1.Errors) == 0
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

var hostKeyLine = regexp.MustCompile(`(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) (AAAA[A-Za-z0-9+/=]+)`)

// hostKeysOnConsole returns the public keys cloud-init printed between
// its host key markers.
func hostKeysOnConsole(console string) map[string]bool {
	keys := map[string]bool{}
	_, rest, ok := strings.Cut(console, "-----BEGIN SSH HOST KEY KEYS-----")
	if !ok {
		return keys
	}
	block, _, _ := strings.Cut(rest, "-----END SSH HOST KEY KEYS-----")
	for _, m := range hostKeyLine.FindAllStringSubmatch(block, -1) {
		keys[m[1]+" "+m[2]] = true
	}
	return keys
}

// sumOf finds name's checksum in sha256sum's format.
func sumOf(t *testing.T, sums, name string) string {
	t.Helper()
	for _, l := range strings.Split(sums, "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[1] == name {
			return f[0]
		}
	}
	t.Fatalf("no checksum for %s in:\n%s", name, sums)
	return ""
}

// startDnsmasq serves DHCP on br0 with a reservation (MAC,address).
func startDnsmasq(t *testing.T, reservation string) {
	t.Helper()
	cmd := exec.Command("dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
		"--bind-interfaces", "--interface=br0", "--except-interface=lo",
		"--dhcp-range=10.77.0.100,10.77.0.199,255.255.255.0,1h", "--dhcp-host="+reservation,
		"--dhcp-option=option:router,10.77.0.1", "--dhcp-authoritative", "--leasefile-ro",
		"--pid-file=", "--log-dhcp", "--log-facility=-")
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dnsmasq: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("dnsmasq:\n%s", log.String())
		}
	})
}

// phoneHome receives first-boot reports, as the appliance would.
type phoneHome struct {
	addr    string
	mu      sync.Mutex
	reports map[string]report
}

type report struct {
	contentType string
	form        url.Values
}

// startPhoneHome serves on addr (inside the test's namespace) and records
// each POST by its URL.
func startPhoneHome(t *testing.T, addr string) *phoneHome {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	h := &phoneHome{addr: ln.Addr().String(), reports: map[string]report{}}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.ParseForm() != nil {
			http.Error(w, "a form, posted", http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.reports["http://"+h.addr+r.URL.Path] = report{contentType: r.Header.Get("Content-Type"), form: r.PostForm}
		h.mu.Unlock()
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return h
}

// wait waits for the report posted to u.
func (h *phoneHome) wait(u string, timeout time.Duration) (report, bool) {
	for deadline := time.Now().Add(timeout); ; time.Sleep(time.Second) {
		h.mu.Lock()
		r, ok := h.reports[u]
		h.mu.Unlock()
		if ok || time.Now().After(deadline) {
			return r, ok
		}
	}
}
