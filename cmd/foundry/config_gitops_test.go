package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigGitOps(t *testing.T) {
	dir := t.TempDir()
	key, token, secret := filepath.Join(dir, "key"), filepath.Join(dir, "token"), filepath.Join(dir, "secret")
	for _, f := range []struct{ path, content string }{{key, "k"}, {token, "t\n"}, {secret, "0123456789abcdef0123\n"}} {
		if err := os.WriteFile(f.path, []byte(f.content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, err := parseConfig([]byte(goodConfig), fakeHost)
	if err != nil || c.GitOps != nil {
		t.Fatalf("no section: %+v %v", c.GitOps, err)
	}
	c, err = parseConfig([]byte(goodConfig+`
gitops:
  repository: ssh://git@git.example.org/infra/fleet.git
  ssh_key_file: `+key+`
  directory: clusters/lab/hardware
  namespace: tink-system
  pull_interval: 30s
  webhook_secret_file: `+secret+`
  author: {name: Lab Foundry, email: foundry@lab.example}
`), fakeHost)
	if err != nil {
		t.Fatal(err)
	}
	g := c.GitOps
	if g == nil || g.Branch != "main" || g.Directory != "clusters/lab/hardware" || g.PullInterval != 30*time.Second || g.RetryMax != time.Minute ||
		g.WebhookSecret != "0123456789abcdef0123" || g.AuthorEmail != "foundry@lab.example" || g.ApproveWithoutToken {
		t.Errorf("section: %+v", g)
	}
	for _, ok := range []string{
		"repository: /srv/git/fleet.git",
		"repository: git@git.example.org:infra/fleet.git\n  ssh_key_file: " + key,
		"repository: https://git.example.org/infra/fleet.git\n  token_file: " + token + "\n  username: oauth2",
		"repository: git://10.0.0.5/fleet.git\n  approve_without_token: true",
	} {
		if _, err := parseConfig([]byte(goodConfig+"gitops:\n  "+ok+"\n"), fakeHost); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, tc := range []struct{ section, want string }{
		{"branch: main", "gitops.repository: required"},
		{"repository: fleet.git", "absolute path"},
		{"repository: ftp://x/y.git", "scheme"},
		{"repository: https://me:secret@git.example.org/f.git", "must not carry a password"},
		{"repository: ssh://git@h/f.git", "gitops.ssh_key_file: required"},
		{"repository: https://h/f.git\n  ssh_key_file: " + key, "only for an ssh://"},
		{"repository: ssh://git@h/f.git\n  ssh_key_file: " + key + "\n  token_file: " + token, "only for an https://"},
		{"repository: /r.git\n  branch: 'a b'", "gitops.branch"},
		{"repository: /r.git\n  directory: ../up", "gitops.directory"},
		{"repository: /r.git\n  directory: /abs", "gitops.directory"},
		{"repository: /r.git\n  namespace: Tink_System", "gitops.namespace"},
		{"repository: /r.git\n  pull_interval: soon", "gitops.pull_interval"},
		{"repository: /r.git\n  author: {email: nobody}", "gitops.author.email"},
		{"repository: /r.git\n  webhook_secret_file: " + token, "at least 16"},
		{"repository: /r.git\n  webhook_secret_file: /nonexistent", "gitops.webhook_secret_file"},
		{"repository: /r.git\n  webhook_secret_file: /dev/zero", "longer than 4096 bytes"},
		{"repository: /r.git\n  colour: blue", "field colour not found"},
	} {
		_, err := parseConfig([]byte(goodConfig+"gitops:\n  "+tc.section+"\n"), fakeHost)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.section, err, tc.want)
		}
	}
}
