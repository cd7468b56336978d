package main

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/foundry-appliance/foundry/gitops"
	"github.com/foundry-appliance/foundry/names"
)

// fileGitOps is the gitops section as written (README.md, docs/gitops.md).
type fileGitOps struct {
	Repository     string `yaml:"repository"`
	Branch         string `yaml:"branch"`
	Directory      string `yaml:"directory"`
	SSHKeyFile     string `yaml:"ssh_key_file"`
	KnownHostsFile string `yaml:"known_hosts_file"`
	TokenFile      string `yaml:"token_file"`
	Username       string `yaml:"username"`
	Author         struct {
		Name  string `yaml:"name"`
		Email string `yaml:"email"`
	} `yaml:"author"`
	Namespace           string `yaml:"namespace"`
	PullInterval        string `yaml:"pull_interval"`
	RetryMax            string `yaml:"retry_max"`
	WebhookSecretFile   string `yaml:"webhook_secret_file"`
	ApproveWithoutToken bool   `yaml:"approve_without_token"`
}

// gitopsConfig is the validated section; serve builds gitops.Server from it.
type gitopsConfig struct {
	Repository          string
	Branch              string
	Directory           string
	SSHKeyFile          string
	KnownHostsFile      string
	TokenFile           string
	Username            string
	AuthorName          string
	AuthorEmail         string
	Namespace           string
	PullInterval        time.Duration
	RetryMax            time.Duration
	WebhookSecret       string
	ApproveWithoutToken bool
}

// validate checks the section; nil f (no section) turns GitOps off.
func (f *fileGitOps) validate(errs *configErrors) *gitopsConfig {
	if f == nil {
		return nil
	}
	c := &gitopsConfig{
		Repository: f.Repository, Branch: or(f.Branch, gitops.DefaultBranch), Directory: or(f.Directory, gitops.DefaultDirectory),
		SSHKeyFile: f.SSHKeyFile, KnownHostsFile: f.KnownHostsFile, TokenFile: f.TokenFile, Username: f.Username,
		AuthorName: or(f.Author.Name, "Foundry"), AuthorEmail: or(f.Author.Email, "foundry@localhost"),
		Namespace: f.Namespace, ApproveWithoutToken: f.ApproveWithoutToken,
	}
	scheme := ""
	switch {
	case c.Repository == "":
		errs.add("gitops.repository", "required: the repository's ssh://, https://, git:// URL or the absolute path of a bare repository")
	default:
		ep, err := transport.NewEndpoint(c.Repository)
		switch {
		case err != nil:
			errs.add("gitops.repository", "%s is not a repository URL: %v", names.Label(gitops.Redact(c.Repository)), err)
		case ep.Protocol == "file" && !filepath.IsAbs(strings.TrimPrefix(c.Repository, "file://")):
			errs.add("gitops.repository", "a local repository must be an absolute path, not %s", names.Label(c.Repository))
		case ep.Protocol != "file" && ep.Protocol != "ssh" && ep.Protocol != "https" && ep.Protocol != "http" && ep.Protocol != "git":
			errs.add("gitops.repository", "scheme %s is not one of ssh, https, http, git or a local path", names.Label(ep.Protocol))
		default:
			scheme = ep.Protocol
		}
		if u, err := url.Parse(c.Repository); err == nil && u.User != nil {
			if _, ok := u.User.Password(); ok {
				errs.add("gitops.repository", "must not carry a password or token; put the token in gitops.token_file")
			}
		}
	}
	if err := plumbing.NewBranchReferenceName(c.Branch).Validate(); err != nil || strings.ContainsAny(c.Branch, " ~^:?*[\\") {
		errs.add("gitops.branch", "%s is not a valid branch name", names.Label(c.Branch))
	}
	if d := path.Clean(c.Directory); c.Directory != d || path.IsAbs(d) || d == ".." || strings.HasPrefix(d, "../") || strings.Contains(c.Directory, "\\") {
		errs.add("gitops.directory", "%s is not a clean relative folder of the repository such as hardware or clusters/lab/hardware", names.Label(c.Directory))
	}
	readable := func(key, file string) {
		if _, err := os.Stat(file); err != nil {
			errs.add(key, "%v", err)
		}
	}
	if c.SSHKeyFile != "" {
		readable("gitops.ssh_key_file", c.SSHKeyFile)
		if scheme != "" && scheme != "ssh" {
			errs.add("gitops.ssh_key_file", "only for an ssh:// repository (this one is %s)", scheme)
		}
	}
	if c.KnownHostsFile != "" {
		readable("gitops.known_hosts_file", c.KnownHostsFile)
	}
	if c.TokenFile != "" {
		readable("gitops.token_file", c.TokenFile)
		if scheme != "" && scheme != "https" && scheme != "http" {
			errs.add("gitops.token_file", "only for an https:// repository (this one is %s)", scheme)
		}
	}
	if scheme == "ssh" && c.SSHKeyFile == "" {
		errs.add("gitops.ssh_key_file", "required for an ssh:// repository")
	}
	if c.AuthorEmail != "" && (!strings.Contains(c.AuthorEmail, "@") || strings.ContainsAny(c.AuthorEmail, "<> \n")) {
		errs.add("gitops.author.email", "%s is not an e-mail address", names.Label(c.AuthorEmail))
	}
	if !names.Printable(c.AuthorName) || strings.ContainsAny(c.AuthorName, "<>\n") {
		errs.add("gitops.author.name", "%s: want printable text without < or >", names.Label(c.AuthorName))
	}
	if c.Namespace != "" {
		if p := validation.IsDNS1123Label(c.Namespace); len(p) > 0 {
			errs.add("gitops.namespace", "%s: %s", names.Label(c.Namespace), strings.Join(p, "; "))
		}
	}
	c.PullInterval = duration(errs, "gitops.pull_interval", f.PullInterval, gitops.DefaultPullInterval)
	c.RetryMax = duration(errs, "gitops.retry_max", f.RetryMax, time.Minute)
	if f.WebhookSecretFile != "" {
		b, err := readSmall(f.WebhookSecretFile, maxSecret)
		switch {
		case err != nil:
			errs.add("gitops.webhook_secret_file", "%v", err)
		case len(strings.TrimSpace(string(b))) < 16:
			errs.add("gitops.webhook_secret_file", "the secret must be at least 16 characters")
		default:
			c.WebhookSecret = strings.TrimSpace(string(b))
		}
	}
	return c
}

// auth is how serve authenticates to the repository.
func (c *gitopsConfig) auth() (transport.AuthMethod, error) {
	switch {
	case c.SSHKeyFile != "":
		return gitops.SSHAuth(c.Username, c.SSHKeyFile, c.KnownHostsFile)
	case c.TokenFile != "":
		return gitops.TokenAuth(c.Username, c.TokenFile)
	}
	return nil, nil
}

func (c *gitopsConfig) String() string {
	return fmt.Sprintf("%s branch %s, directory %s", gitops.Redact(c.Repository), c.Branch, c.Directory)
}

// maxSecret bounds a secret file: a secret is a line, and a path such as
// /dev/zero must give an error, not fill the memory.
const maxSecret = 4 << 10

// readSmall reads the file at path, refusing one longer than limit bytes.
func readSmall(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is longer than %d bytes: not a secret", path, limit)
	}
	return b, nil
}
