package gitops

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
)

// SSHAuth authenticates as user (default "git") with the private key in
// keyFile (OpenSSH or PEM, unencrypted). The server's key is checked
// against knownHostsFile; "" uses SSH_KNOWN_HOSTS, ~/.ssh/known_hosts and
// /etc/ssh/ssh_known_hosts, as ssh does.
func SSHAuth(user, keyFile, knownHostsFile string) (transport.AuthMethod, error) {
	keys, err := gitssh.NewPublicKeysFromFile(or(user, "git"), keyFile, "")
	if err != nil {
		return nil, fmt.Errorf("read ssh key %s: %w", keyFile, err)
	}
	var files []string
	if knownHostsFile != "" {
		files = []string{knownHostsFile}
	}
	cb, err := gitssh.NewKnownHostsCallback(files...)
	if err != nil {
		return nil, fmt.Errorf("read known hosts: %w", err)
	}
	keys.HostKeyCallback = cb
	return keys, nil
}

// TokenAuth authenticates over HTTPS with the access token in tokenFile
// (surrounding white space ignored) as the password of user (default
// "git"; forges accept any name with a token, GitLab wants "oauth2").
func TokenAuth(user, tokenFile string) (transport.AuthMethod, error) {
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		return nil, fmt.Errorf("read token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return nil, fmt.Errorf("token file %s is empty", tokenFile)
	}
	return &githttp.BasicAuth{Username: or(user, "git"), Password: tok}, nil
}

// ErrWebhook refuses a webhook call whose secret does not match.
var ErrWebhook = errors.New("webhook secret does not match")

// Webhook checks a push notification against WebhookSecret and, when it
// matches, fetches the remote soon (Pull). Forges prove the secret in one
// of two ways, both accepted: an HMAC-SHA256 of the body in
// X-Hub-Signature-256 ("sha256=<hex>"; GitHub, Gitea, Forgejo) or the
// secret itself in X-Gitlab-Token (GitLab). The comparison is constant
// time. The body is otherwise ignored: a fetch reads what changed.
func (s *Server) Webhook(h http.Header, body []byte) error {
	if err := s.init(); err != nil {
		return err
	}
	if s.WebhookSecret == "" {
		return fmt.Errorf("%w: no webhook secret is configured", ErrWebhook)
	}
	if !VerifyWebhook(s.WebhookSecret, h, body) {
		return ErrWebhook
	}
	s.Pull()
	return nil
}

// VerifyWebhook reports whether h proves secret for body (see Webhook).
func VerifyWebhook(secret string, h http.Header, body []byte) bool {
	if secret == "" {
		return false
	}
	if sig := h.Get("X-Hub-Signature-256"); sig != "" {
		got, err := hex.DecodeString(strings.TrimPrefix(sig, "sha256="))
		if err != nil || !strings.HasPrefix(sig, "sha256=") {
			return false
		}
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		return hmac.Equal(got, mac.Sum(nil))
	}
	if tok := h.Get("X-Gitlab-Token"); tok != "" {
		return subtle.ConstantTimeCompare([]byte(tok), []byte(secret)) == 1
	}
	return false
}
