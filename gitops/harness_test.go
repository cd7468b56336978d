package gitops_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/foundry-appliance/foundry/gitops"
	"github.com/foundry-appliance/foundry/hardware"
	"github.com/foundry-appliance/foundry/names"
	"github.com/foundry-appliance/foundry/store"
)

// gitd is a real Git server: Debian's `git daemon` serving one bare
// repository (fleet.git) on 127.0.0.1 of the test's network namespace,
// pushes allowed. It can be stopped and started again on the same port.
type gitd struct {
	t    *testing.T
	root string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

func needGit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("needs git (Debian package git; make deps installs it)")
	}
}

func newGitd(t *testing.T) *gitd {
	t.Helper()
	needGit(t)
	g := &gitd{t: t, root: t.TempDir(), port: freePort(t)}
	runGit(t, "", "init", "-q", "--bare", "-b", "main", g.repo())
	g.start()
	t.Cleanup(g.stop)
	return g
}

func (g *gitd) repo() string { return filepath.Join(g.root, "fleet.git") }
func (g *gitd) url() string  { return fmt.Sprintf("git://127.0.0.1:%d/fleet.git", g.port) }

func (g *gitd) start() {
	t := g.t
	t.Helper()
	g.cmd = exec.Command("git", "daemon", "--reuseaddr", "--listen=127.0.0.1", fmt.Sprintf("--port=%d", g.port),
		"--base-path="+g.root, "--export-all", "--enable=receive-pack", "--informative-errors", g.root)
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	g.cmd.Env = gitEnv()
	if err := g.cmd.Start(); err != nil {
		t.Fatalf("git daemon: %v", err)
	}
	g.done = make(chan struct{})
	go func() { g.cmd.Wait(); close(g.done) }()
	eventually(t, 10*time.Second, "git daemon listening", func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", g.port), 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// stop kills the daemon and every connection it serves: the remote is
// down, as when its host is.
func (g *gitd) stop() {
	if g.cmd == nil {
		return
	}
	syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
	<-g.done
	g.cmd = nil
}

// git runs git on the server's bare repository.
func (g *gitd) git(args ...string) string {
	g.t.Helper()
	return runGit(g.t, "", append([]string{"--git-dir=" + g.repo()}, args...)...)
}

// log is the server's history of path (or of everything): one line per
// commit, "author name <email>|subject", newest first.
func (g *gitd) log(path string) []string {
	args := []string{"--git-dir=" + g.repo(), "log", "--format=%an <%ae>|%s", "main"}
	if path != "" {
		args = append(args, "--", path)
	}
	b, err := exec.Command("git", args...).Output()
	out := strings.TrimSpace(string(b))
	if err != nil || out == "" {
		return nil // no branch yet
	}
	return strings.Split(out, "\n")
}

// show is a file as the server's main branch has it ("" when absent).
func (g *gitd) show(path string) string {
	out, err := exec.Command("git", "--git-dir="+g.repo(), "show", "main:"+path).Output()
	if err != nil {
		return ""
	}
	return string(out)
}

// person is someone with a clone of the repository, using the git
// program as people do.
type person struct {
	t           *testing.T
	dir         string
	name, email string
}

func (g *gitd) person(name, email string) *person {
	g.t.Helper()
	p := &person{t: g.t, dir: g.t.TempDir(), name: name, email: email}
	runGit(g.t, "", "clone", "-q", g.url(), p.dir)
	return p
}

func (p *person) git(args ...string) string {
	p.t.Helper()
	return runGit(p.t, p.dir, append([]string{"-c", "user.name=" + p.name, "-c", "user.email=" + p.email}, args...)...)
}

// commit writes files (path → content; "" deletes) and pushes them.
func (p *person) commit(msg string, files map[string]string) {
	p.t.Helper()
	if strings.TrimSpace(p.git("ls-remote", "--heads", "origin", "main")) != "" {
		p.git("pull", "-q", "--rebase", "origin", "main")
	}
	for path, content := range files {
		full := filepath.Join(p.dir, path)
		if content == "" {
			p.git("rm", "-q", path)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			p.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			p.t.Fatal(err)
		}
		p.git("add", path)
	}
	p.git("commit", "-q", "-m", msg)
	p.git("push", "-q", "origin", "HEAD:main")
}

func gitEnv() []string {
	return append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+os.TempDir(), "GIT_TERMINAL_PROMPT=0")
}

func runGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func eventually(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fleet is the appliance side: a real Badger store on disk and the
// exporter, which can be stopped and started again on the same store and
// clone (an appliance restart).
type fleet struct {
	t      *testing.T
	db     *store.DB
	dbDir  string
	clone  string
	srv    *gitops.Server
	reg    *prometheus.Registry
	stop   func()
	config func(*gitops.Server)
	url    string
}

func newFleet(t *testing.T, url string, config func(*gitops.Server)) *fleet {
	t.Helper()
	f := &fleet{t: t, dbDir: t.TempDir(), clone: filepath.Join(t.TempDir(), "gitops"), url: url, config: config}
	f.open()
	for _, err := range []error{
		second(f.db.CreateProfile(store.Profile{Name: "debian", Kind: store.ProfileNetboot, Kernel: "http://x/k", Initrd: "http://x/i"}, store.Audit{Actor: "token:alice", Action: "create"})),
		second(f.db.CreateCluster(store.Cluster{Name: "rack1", DefaultProfile: "debian"}, store.Audit{Actor: "token:alice", Action: "create"})),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	f.start()
	t.Cleanup(func() {
		f.stop()
		f.db.Close()
	})
	return f
}

func second[T any](_ T, err error) error { return err }

func (f *fleet) open() {
	db, err := store.Open(f.dbDir, store.Options{})
	if err != nil {
		f.t.Fatal(err)
	}
	f.db = db
}

func (f *fleet) start() {
	f.reg = prometheus.NewRegistry()
	f.srv = &gitops.Server{
		Store: f.db, Repository: f.url, CloneDir: f.clone,
		AuthorName: "Foundry", AuthorEmail: "foundry@lab.example",
		Segments:     map[string]hardware.Segment{"lab": {Subnet: netip.MustParsePrefix("10.77.0.0/24"), Router: netip.MustParseAddr("10.77.0.1"), LeaseTime: time.Hour}},
		PullInterval: time.Hour, RetryMin: 100 * time.Millisecond, RetryMax: 300 * time.Millisecond,
		Timeout: 5 * time.Second, Registerer: f.reg,
		Logger: slog.New(slog.NewTextHandler(testWriter{f.t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if f.config != nil {
		f.config(f.srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- f.srv.Serve(ctx) }()
	eventually(f.t, 10*time.Second, "the exporter following the store", func() bool { return f.srv.Status().Following })
	stopped := false
	f.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-errc; err != nil {
			f.t.Errorf("gitops Serve: %v", err)
		}
	}
}

// restart stops the exporter and closes the store, then opens both again.
func (f *fleet) restart() {
	f.stop()
	if err := f.db.Close(); err != nil {
		f.t.Fatal(err)
	}
	f.open()
	f.start()
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// The life of a machine, written to the store as the appliance's services
// write it (actors and actions as DHCP, the agent API and the admin API
// record them).

func (f *fleet) discover(mac string) {
	f.t.Helper()
	_, err := f.db.CreateMachine(store.Machine{MAC: mac, State: store.StateDiscovered, Hostname: names.DiscoveredHostname(mac),
		Temporary: true, ExpiresAt: time.Now().Add(24 * time.Hour).Truncate(time.Second), Segment: "lab", IP: "10.77.0.100", Arch: "bios"},
		store.Audit{Actor: "dhcp", Action: "discover", Detail: "first DHCPDISCOVER on lab"})
	if err != nil {
		f.t.Fatal(err)
	}
}

func (f *fleet) register(mac string) {
	f.t.Helper()
	inv, _ := json.Marshal(map[string]any{"schema_version": 1, "system": map[string]any{"vendor": "QEMU"},
		"nics": []map[string]any{{"name": "ens3", "mac": mac}}, "disks": []map[string]any{{"name": "vda", "path": "/dev/vda", "size_bytes": 8 << 30}}})
	f.update(mac, store.Audit{Actor: "agent:" + mac, Action: "register", Detail: "session abcdef12 from 10.77.0.100"}, func(m *store.Machine) {
		m.State, m.Inventory = store.StateInventoried, inv
	})
}

func (f *fleet) approve(mac, by, host string) {
	f.t.Helper()
	f.update(mac, store.Audit{Actor: "token:" + by, Action: "approve", Detail: "cluster=rack1 profile=debian hostname=" + host + " disk=/dev/vda network=dhcp"}, func(m *store.Machine) {
		m.State, m.Temporary, m.ExpiresAt = store.StateApproved, false, time.Time{}
		m.Cluster, m.Profile, m.Hostname = "rack1", "debian", host
		m.Approval = &store.Approval{Disk: "/dev/vda", Network: store.Network{Mode: "dhcp"}, ApprovedBy: "token:" + by, ApprovedAt: time.Now().Truncate(time.Second)}
	})
}

func (f *fleet) update(mac string, a store.Audit, fn func(*store.Machine)) {
	f.t.Helper()
	if _, err := f.db.UpdateMachine(mac, a, func(m *store.Machine) error { fn(m); return nil }); err != nil {
		f.t.Fatal(err)
	}
}

func fileOf(mac string) string { return "hardware/" + strings.ReplaceAll(mac, ":", "-") + ".yaml" }

// metric is the value of a gauge or counter without labels; -1 when absent.
func (f *fleet) metric(name string) float64 {
	mfs, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) == 0 {
			continue
		}
		m := mf.GetMetric()[0]
		if g := m.GetGauge(); g != nil {
			return g.GetValue()
		}
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
	}
	return -1
}
