// Package etcdtest starts a real etcd cluster for a test: Debian's
// /usr/bin/etcd (etcd-server, 3.4), one process per member, listening on
// one address (127.0.0.1 by default) on free ports, with its data and
// logs in the test's temporary directory, stopped when the test ends.
// Members can be killed and restarted to test quorum loss; TLS generates a
// CA, a server and a client certificate and makes the members require
// the client's.
package etcdtest

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultBinary is where Debian's etcd-server installs etcd.
const DefaultBinary = "/usr/bin/etcd"

// Options describe the cluster. The zero value is one plain member on
// 127.0.0.1.
type Options struct {
	// Members is the number of members (default 1).
	Members int
	// TLS serves clients over TLS and requires a client certificate
	// (Cluster.ClientCert, ClientKey, CA). Peers talk plain HTTP.
	TLS bool
	// MaxTxnOps is --max-txn-ops (0: etcd's default, 128).
	MaxTxnOps int
	// QuotaBackendBytes is --quota-backend-bytes (0: etcd's default,
	// 2 GiB); a small one makes the cluster refuse writes for space.
	QuotaBackendBytes int64
	// Host is the address every member listens on (default 127.0.0.1):
	// an address of the network namespace the test runs in.
	Host string
	// Binary is the etcd executable (default DefaultBinary).
	Binary string
	// StartTimeout bounds the wait for a healthy cluster (default 30s).
	StartTimeout time.Duration
}

// Cluster is a running etcd cluster.
type Cluster struct {
	// ClientCert, ClientKey and CA are PEM files for a client (empty
	// without TLS).
	ClientCert, ClientKey, CA string

	opt     Options
	dir     string
	ownDir  bool // Launch's: removed by Close
	helper  func()
	fatalf  func(format string, args ...any)
	stopped sync.Once
	scheme  string
	https   *http.Client
	members []*member
	spawner chan func()
}

type member struct {
	name, client, peer, log string
	args                    []string
	mu                      sync.Mutex
	cmd                     *exec.Cmd
	exited                  chan struct{}
}

// ErrNoEtcd: the etcd binary is not installed.
var ErrNoEtcd = errors.New("etcdtest: no etcd server; `make deps` installs Debian's etcd-server")

// Start starts the cluster and waits until every member reports healthy;
// the test's cleanup kills it. Without the etcd binary it skips the test.
func Start(t testing.TB, opt Options) *Cluster {
	t.Helper()
	c, err := launch(opt, t.TempDir())
	if errors.Is(err, ErrNoEtcd) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	c.helper, c.fatalf = t.Helper, t.Fatalf
	t.Cleanup(func() {
		c.stopAll()
		if t.Failed() {
			t.Logf("etcdtest: member logs\n%s", c.logs())
		}
	})
	return c
}

// Launch starts a cluster outside any one test (from TestMain), its data
// in a temporary directory of its own; Close stops it and removes the
// directory. Without the etcd binary it fails with ErrNoEtcd. Stop and
// Start of a member panic where a test's would fail it.
func Launch(opt Options) (*Cluster, error) {
	dir, err := os.MkdirTemp("", "etcdtest-")
	if err != nil {
		return nil, err
	}
	c, err := launch(opt, dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c.ownDir = true
	return c, nil
}

// Close stops every member; a cluster from Launch also loses its data.
func (c *Cluster) Close() {
	c.stopAll()
	if c.ownDir {
		os.RemoveAll(c.dir)
	}
}

func launch(opt Options, dir string) (*Cluster, error) {
	if opt.Binary == "" {
		opt.Binary = DefaultBinary
	}
	if _, err := os.Stat(opt.Binary); err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrNoEtcd, err)
	}
	if opt.Members <= 0 {
		opt.Members = 1
	}
	if opt.Host == "" {
		opt.Host = "127.0.0.1"
	}
	if opt.StartTimeout <= 0 {
		opt.StartTimeout = 30 * time.Second
	}
	c := &Cluster{
		opt: opt, dir: dir, scheme: "http",
		https:  &http.Client{Timeout: 2 * time.Second},
		helper: func() {},
		fatalf: func(format string, args ...any) { panic(fmt.Sprintf(format, args...)) },
	}
	if opt.TLS {
		c.scheme = "https"
		tc, err := c.makeCerts()
		if err != nil {
			return nil, fmt.Errorf("etcdtest: certificates: %w", err)
		}
		c.https.Transport = &http.Transport{TLSClientConfig: tc}
	}
	ports, err := freePorts(opt.Host, 2*opt.Members)
	if err != nil {
		return nil, fmt.Errorf("etcdtest: %w", err)
	}
	var initial []string
	for i := range opt.Members {
		hp := func(p int) string { return net.JoinHostPort(opt.Host, strconv.Itoa(p)) }
		m := &member{
			name:   fmt.Sprintf("m%d", i),
			client: c.scheme + "://" + hp(ports[2*i]),
			peer:   "http://" + hp(ports[2*i+1]),
			log:    filepath.Join(c.dir, fmt.Sprintf("m%d.log", i)),
		}
		initial = append(initial, m.name+"="+m.peer)
		c.members = append(c.members, m)
	}
	token := fmt.Sprintf("etcdtest-%d-%d", os.Getpid(), time.Now().UnixNano())
	for _, m := range c.members {
		m.args = []string{
			"--name", m.name,
			"--data-dir", filepath.Join(c.dir, m.name+".etcd"),
			"--listen-client-urls", m.client, "--advertise-client-urls", m.client,
			"--listen-peer-urls", m.peer, "--initial-advertise-peer-urls", m.peer,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new", "--initial-cluster-token", token,
			"--logger", "zap", "--log-outputs", "stderr",
		}
		if opt.MaxTxnOps > 0 {
			m.args = append(m.args, "--max-txn-ops", strconv.Itoa(opt.MaxTxnOps))
		}
		if opt.QuotaBackendBytes > 0 {
			m.args = append(m.args, "--quota-backend-bytes", strconv.FormatInt(opt.QuotaBackendBytes, 10))
		}
		if opt.TLS {
			m.args = append(m.args, "--cert-file", filepath.Join(c.dir, "server.pem"),
				"--key-file", filepath.Join(c.dir, "server-key.pem"),
				"--trusted-ca-file", c.CA, "--client-cert-auth")
		}
	}
	c.spawner = make(chan func())
	go c.spawnLoop()
	for i := range c.members {
		if err := c.spawn(i); err != nil {
			c.stopAll()
			return nil, fmt.Errorf("etcdtest: %w", err)
		}
	}
	if err := c.waitHealthy(opt.StartTimeout, c.members...); err != nil {
		err = fmt.Errorf("etcdtest: %w\n%s", err, c.logs())
		c.stopAll()
		return nil, err
	}
	return c, nil
}

// spawnLoop starts every member process from one locked OS thread that
// lives as long as the cluster: Pdeathsig, which kills the members if the
// test binary dies, fires when the starting thread ends, not the process.
func (c *Cluster) spawnLoop() {
	runtime.LockOSThread()
	for fn := range c.spawner {
		fn()
	}
}

func (c *Cluster) spawn(i int) error {
	m := c.members[i]
	logf, err := os.OpenFile(m.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(c.opt.Binary, m.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = []string{} // no ETCD_* from the caller's environment
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	done := make(chan error)
	c.spawner <- func() { done <- cmd.Start() }
	if err := <-done; err != nil {
		return fmt.Errorf("start %s: %w", m.name, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	m.mu.Lock()
	m.cmd, m.exited = cmd, exited
	m.mu.Unlock()
	return nil
}

// Endpoints are the members' client URLs, stopped members included.
func (c *Cluster) Endpoints() []string {
	var out []string
	for _, m := range c.members {
		out = append(out, m.client)
	}
	return out
}

// Client is a raw etcd client of a plain (not TLS) cluster, for tests
// that act on etcd beside the engine: a key put behind its back, a
// compaction, the leader's index. It is closed when t ends.
func (c *Cluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	if c.opt.TLS {
		t.Fatal("etcdtest: Client serves plain clusters; a TLS one needs ClientCert, ClientKey and CA")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("etcdtest: client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Endpoint is member i's client URL.
func (c *Cluster) Endpoint(i int) string { return c.members[i].client }

// Stop kills member i (SIGKILL: no clean shutdown) and waits for it to
// exit; its data stays for Start.
func (c *Cluster) Stop(i int) {
	c.helper()
	m := c.members[i]
	m.mu.Lock()
	cmd, exited := m.cmd, m.exited
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		c.fatalf("etcdtest: member %d is not running", i)
	}
	cmd.Process.Kill()
	<-exited
}

// Start restarts member i on its data and waits until it is healthy (or,
// while too few members run for a quorum, until it listens).
func (c *Cluster) Start(i int) {
	c.helper()
	if c.running(c.members[i]) {
		c.fatalf("etcdtest: member %d is running", i)
	}
	if err := c.spawn(i); err != nil {
		c.fatalf("etcdtest: %v", err)
	}
	var err error
	if n := c.runningCount(); n > len(c.members)/2 {
		err = c.waitHealthy(c.opt.StartTimeout, c.members[i])
	} else {
		err = c.waitListening(c.opt.StartTimeout, c.members[i])
	}
	if err != nil {
		c.fatalf("etcdtest: restart member %d: %v\n%s", i, err, c.logs())
	}
}

func (c *Cluster) running(m *member) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cmd != nil
}

func (c *Cluster) runningCount() int {
	n := 0
	for _, m := range c.members {
		if c.running(m) {
			n++
		}
	}
	return n
}

// stopAll kills every member, once.
func (c *Cluster) stopAll() {
	c.stopped.Do(func() {
		for _, m := range c.members {
			m.mu.Lock()
			if m.cmd != nil {
				m.cmd.Process.Kill()
				<-m.exited
				m.cmd = nil
			}
			m.mu.Unlock()
		}
		close(c.spawner)
	})
}
