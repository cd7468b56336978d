package gitops_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/foundry-appliance/foundry/gitops"
	"github.com/foundry-appliance/foundry/test/nstest"
)

// sshGitServer is an SSH server (golang.org/x/crypto/ssh) that runs the
// real git-upload-pack and git-receive-pack for the commands clients ask
// for, as a Git host does, accepting one client key.
type sshGitServer struct {
	addr    string
	hostKey ssh.PublicKey
}

func startSSHGitServer(t *testing.T, client ssh.PublicKey) *sshGitServer {
	t.Helper()
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if string(k.Marshal()) != string(client.Marshal()) {
			return nil, fmt.Errorf("unknown key")
		}
		return nil, nil
	}}
	cfg.AddHostKey(signer)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serveSSH(c, cfg)
		}
	}()
	return &sshGitServer{addr: l.Addr().String(), hostKey: signer.PublicKey()}
}

func serveSSH(c net.Conn, cfg *ssh.ServerConfig) {
	defer c.Close()
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, in, err := nc.Accept()
		if err != nil {
			return
		}
		go func() {
			defer ch.Close()
			for req := range in {
				if req.Type != "exec" {
					req.Reply(false, nil)
					continue
				}
				cmdline := string(req.Payload[4:])
				req.Reply(true, nil)
				// Only the two Git services, as a Git host allows.
				if !strings.HasPrefix(cmdline, "git-upload-pack ") && !strings.HasPrefix(cmdline, "git-receive-pack ") {
					exit(ch, 1)
					return
				}
				cmd := exec.Command("sh", "-c", cmdline)
				cmd.Env = gitEnv()
				cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
				code := 0
				if err := cmd.Run(); err != nil {
					code = 1
					if ee, ok := err.(*exec.ExitError); ok {
						code = ee.ExitCode()
					}
				}
				exit(ch, code)
				return
			}
		}()
	}
}

func exit(ch ssh.Channel, code int) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(code))
	ch.SendRequest("exit-status", false, b[:])
}

// Over SSH with a key file, the server's host key checked against a
// known_hosts file: commits arrive; a host whose key is not the known one
// is refused and the failure shows.
func TestSSHRemoteWithKnownHosts(t *testing.T) {
	if nstest.Reexec(t) {
		return
	}
	needGit(t)
	dir := t.TempDir()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "foundry")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	clientKey, _ := ssh.NewPublicKey(pub)
	srv := startSSHGitServer(t, clientKey)
	bare := filepath.Join(dir, "fleet.git")
	runGit(t, "", "init", "-q", "--bare", "-b", "main", bare)
	_, port, _ := net.SplitHostPort(srv.addr)
	url := fmt.Sprintf("ssh://git@127.0.0.1:%s%s", port, bare)

	knownHosts := func(key ssh.PublicKey) string {
		p := filepath.Join(t.TempDir(), "known_hosts")
		line := knownhosts.Line([]string{knownhosts.Normalize(srv.addr)}, key)
		if err := os.WriteFile(p, []byte(line+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	auth, err := gitops.SSHAuth("git", keyFile, knownHosts(srv.hostKey))
	if err != nil {
		t.Fatal(err)
	}
	f := newFleet(t, url, func(s *gitops.Server) { s.Auth = auth })
	const mac = "52:54:00:ab:00:01"
	f.discover(mac)
	eventually(t, 10*time.Second, "the commit over ssh", func() bool {
		out, err := exec.Command("git", "--git-dir="+bare, "log", "--format=%an|%s", "main").Output()
		return err == nil && strings.Contains(string(out), "Foundry|discover discovered-ab0001")
	})
	f.stop()

	// Another key for that host: a man in the middle, refused.
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	other, _ := ssh.NewSignerFromKey(otherPriv)
	bad, err := gitops.SSHAuth("git", keyFile, knownHosts(other.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	g := newFleet(t, url, func(s *gitops.Server) { s.Auth = bad })
	g.discover("52:54:00:ab:00:02")
	eventually(t, 10*time.Second, "the refusal", func() bool { return g.srv.Ready() != nil })
	if st := g.srv.Status(); !strings.Contains(st.LastError, "key mismatch") {
		t.Errorf("last error %q, want a host key mismatch", st.LastError)
	}
}
