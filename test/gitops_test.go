package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// gitServer is Debian's `git daemon` serving one bare repository on
// 127.0.0.1 of the test's namespace, pushes allowed; it can be stopped (the
// remote is down) and started again on the same port.
type gitServer struct {
	t    *testing.T
	root string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

func startGitServer(t *testing.T) *gitServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	g := &gitServer{t: t, root: t.TempDir(), port: l.Addr().(*net.TCPAddr).Port}
	l.Close()
	gitRun(t, "", "init", "-q", "--bare", "-b", "main", g.repo())
	g.start()
	t.Cleanup(g.stop)
	return g
}

func (g *gitServer) repo() string { return filepath.Join(g.root, "fleet.git") }
func (g *gitServer) url() string  { return fmt.Sprintf("git://127.0.0.1:%d/fleet.git", g.port) }

func (g *gitServer) start() {
	g.cmd = exec.Command("git", "daemon", "--reuseaddr", "--listen=127.0.0.1", fmt.Sprintf("--port=%d", g.port),
		"--base-path="+g.root, "--export-all", "--enable=receive-pack", g.root)
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	g.cmd.Env = gitEnviron()
	must(g.t, g.cmd.Start())
	g.done = make(chan struct{})
	go func() { g.cmd.Wait(); close(g.done) }()
	waitFor(g.t, 10*time.Second, "git daemon", func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", g.port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func (g *gitServer) stop() {
	if g.cmd != nil {
		syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
		<-g.done
		g.cmd = nil
	}
}

// log is the history of path on the server, newest first, one
// "author|subject" line per commit.
func (g *gitServer) log(path string) []string {
	out, err := exec.Command("git", "--git-dir="+g.repo(), "log", "--format=%an|%s", "main", "--", path).Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// commit clones the repository as a person, writes files and pushes.
func (g *gitServer) commit(name, email, msg string, files map[string]string) {
	t := g.t
	t.Helper()
	dir := t.TempDir()
	gitRun(t, "", "clone", "-q", g.url(), dir)
	for p, content := range files {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, p), []byte(content), 0o644))
		gitRun(t, dir, "add", p)
	}
	gitRun(t, dir, "-c", "user.name="+name, "-c", "user.email="+email, "commit", "-q", "-m", msg)
	gitRun(t, dir, "push", "-q", "origin", "HEAD:main")
}

func gitEnviron() []string {
	return append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+os.TempDir(), "GIT_TERMINAL_PROMPT=0")
}

func gitRun(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir, cmd.Env = dir, gitEnviron()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// declaration is a Hardware file as a person writes one to declare a
// machine (docs/gitops.md).
func declaration(mac, host string) string {
	return fmt.Sprintf(`apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata:
  name: %[2]s
  labels:
    foundry/cluster: rack1
    foundry/profile: prod
spec:
  interfaces:
    - dhcp:
        mac: "%[1]s"
        hostname: %[2]s
  metadata:
    instance:
      hostname: %[2]s
`, mac, host)
}

func gitopsConfig(repo, secretFile string, withoutToken bool) string {
	return fmt.Sprintf(`http:
  listen: ":8080"
  advertise: "http://10.77.0.1:8080"
tftp:
  listen: ":69"
segments:
  - name: lab
    interface: br0
    subnet: 10.77.0.0/24
    range: [10.77.0.100, 10.77.0.200]
    router: 10.77.0.1
    lease_time: 1m
    discovery: true
gitops:
  repository: %s
  author: {name: Lab Foundry, email: foundry@lab.example}
  pull_interval: 1h
  webhook_secret_file: %s
  approve_without_token: %t
`, repo, secretFile, withoutToken)
}

// gitopsState is GET /api/v1/gitops.
func gitopsState(t *testing.T, a *appliance) (st struct {
	Enabled      bool   `json:"enabled"`
	Pending      int    `json:"pending"`
	LastError    string `json:"last_error"`
	Declarations int    `json:"declarations"`
	Following    bool   `json:"following"`
}) {
	t.Helper()
	req, _ := http.NewRequest("GET", a.base+"/api/v1/gitops", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	must(t, json.NewDecoder(resp.Body).Decode(&st))
	return st
}

// The whole GitOps loop against the real appliance and a real Git server:
// machines people declare in Git are approved when they register (with
// the console token by default, on their own with approve_without_token);
// every step is a commit with its author; a change made while the server
// is down reaches it after an appliance restart.
func TestGitOpsAgainstServe(t *testing.T) {
	labNet := newLab(t, "br0", "10.77.0.1/24")
	g := startGitServer(t)
	data := t.TempDir()
	secret := filepath.Join(t.TempDir(), "webhook-secret")
	must(t, os.WriteFile(secret, []byte("a-webhook-secret-of-some-length\n"), 0o600))
	const tokenMAC, autoMAC = "52:54:00:9a:00:01", "52:54:00:9a:00:02"

	// Dana declares node-07 before it was ever seen.
	g.commit("Dana Ops", "dana@example.org", "declare node-07", map[string]string{"hardware/node-07.yaml": declaration(tokenMAC, "node-07")})
	cfg := gitopsConfig(g.url(), secret, false)
	a := startAppliance(t, data, imageDir(t), cfg, "http://10.77.0.1:8080")
	for _, args := range [][]string{
		{"profiles", "create", "prod", "--kind", "netboot", "--kernel", "http://10.77.0.1:8080/images/discovery/vmlinuz", "--initrd", "http://10.77.0.1:8080/images/discovery/initrd"},
		{"clusters", "create", "rack1", "--default-profile", "prod"},
	} {
		if out, code := cli(t, a, adminToken, args...); code != 0 {
			t.Fatalf("foundry %v: exit %d\n%s", args, code, out)
		}
	}
	waitFor(t, 20*time.Second, "the declaration read", func() bool { return gitopsState(t, a).Declarations == 1 })

	// By default the console token is still required: the machine waits,
	// and the administrator types only the token.
	ns := labNet.client(tokenMAC)
	must(t, newDHClient(t, ns).once(40*time.Second))
	console := registerAgent(t, a, ns, tokenMAC)
	time.Sleep(3 * time.Second)
	if m := showMachine(t, a, tokenMAC); m.State != "inventoried" {
		t.Fatalf("declared machine approved without its console token (default setting): %+v", m)
	}
	if out, code := cli(t, a, adminToken, "machines", "approve", tokenMAC, "--console-token", console); code != 0 {
		t.Fatalf("approve with the token only: exit %d\n%s", code, out)
	}
	if m := showMachine(t, a, tokenMAC); m.State != "ready" || m.Hostname != "node-07" || m.Cluster != "rack1" || m.Profile != "prod" {
		t.Fatalf("approved from the declaration: %+v", m)
	}
	waitFor(t, 20*time.Second, "the approval in Git", func() bool {
		l := g.log("hardware/node-07.yaml")
		return len(l) > 0 && strings.HasPrefix(l[0], "env|ready node-07")
	})
	want := []string{"env|ready node-07", "env|approve node-07", "Lab Foundry|register node-07", "Lab Foundry|discover node-07", "Dana Ops|declare node-07"}
	got := g.log("hardware/node-07.yaml")
	for i, w := range want {
		if i >= len(got) || !strings.HasPrefix(got[i], w) {
			t.Fatalf("history of node-07:\n%s\nwant prefixes\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}

	// With approve_without_token the declaration is the approval: Dana
	// declares node-08 (the webhook says so at once), it registers, and it
	// is approved in Dana's name.
	a.stop()
	a = startAppliance(t, data, imageDir(t), gitopsConfig(g.url(), secret, true), "http://10.77.0.1:8080")
	waitFor(t, 20*time.Second, "following", func() bool { return gitopsState(t, a).Following })
	g.commit("Dana Ops", "dana@example.org", "declare node-08", map[string]string{"hardware/node-08.yaml": declaration(autoMAC, "node-08")})
	req, _ := http.NewRequest("POST", a.base+"/api/v1/gitops/webhook", strings.NewReader(`{"ref":"refs/heads/main"}`))
	req.Header.Set("X-Gitlab-Token", "a-webhook-secret-of-some-length")
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("webhook: %s", resp.Status)
	}
	waitFor(t, 20*time.Second, "the declaration fetched on the webhook", func() bool { return gitopsState(t, a).Declarations == 1 })
	ns2 := labNet.client(autoMAC)
	must(t, newDHClient(t, ns2).once(40*time.Second))
	start := time.Now()
	registerAgent(t, a, ns2, autoMAC)
	waitFor(t, 20*time.Second, "approval by the declaration", func() bool { return showMachine(t, a, autoMAC).State == "ready" })
	t.Logf("registration to approval by declaration: %s", time.Since(start).Round(time.Millisecond))
	if m := showMachine(t, a, autoMAC); m.Hostname != "node-08" || m.Cluster != "rack1" {
		t.Fatalf("node-08: %+v", m)
	}
	waitFor(t, 20*time.Second, "Dana's approval commit", func() bool {
		l := g.log("hardware/node-08.yaml")
		return len(l) > 0 && strings.HasPrefix(l[0], "Dana Ops|ready node-08")
	})
	if l := g.log("hardware/node-08.yaml"); len(l) < 2 || !strings.HasPrefix(l[1], "Dana Ops|approve node-08") {
		t.Fatalf("history of node-08:\n%s", strings.Join(l, "\n"))
	}

	// The server goes down; a deletion waits, through a restart, and is
	// delivered when the server is back.
	g.stop()
	if out, code := cli(t, a, adminToken, "machines", "delete", tokenMAC); code != 0 {
		t.Fatalf("delete: exit %d\n%s", code, out)
	}
	waitFor(t, 20*time.Second, "/readyz failing", func() bool {
		code, body := get(t, a.base+"/readyz")
		return code == 503 && strings.Contains(body, "gitops")
	})
	if st := gitopsState(t, a); st.Pending < 1 || st.LastError == "" {
		t.Fatalf("while down: %+v", st)
	}
	if _, body := get(t, a.base+"/metrics"); !strings.Contains(body, "foundry_gitops_remote_up 0") {
		t.Errorf("metrics while down lack foundry_gitops_remote_up 0")
	}
	a.restart()
	g.start()
	back := time.Now()
	waitFor(t, 30*time.Second, "the deletion delivered", func() bool {
		l := g.log("hardware/node-07.yaml")
		return len(l) > 0 && strings.HasPrefix(l[0], "env|delete node-07")
	})
	t.Logf("delivered %s after the server came back (appliance restarted meanwhile)", time.Since(back).Round(time.Millisecond))
	waitFor(t, 20*time.Second, "/readyz again", func() bool { code, _ := get(t, a.base+"/readyz"); return code == 200 })
}
