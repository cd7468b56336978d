package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The agent API, as docs/architecture.md defines it.
const (
	pathRegister = "/api/v1/agent/register"
	pathToken    = "/api/v1/agent/token"
	pathDecision = "/api/v1/agent/decision"
	pathProgress = "/api/v1/agent/progress"
	pathResult   = "/api/v1/agent/result"
	// NonceHeader carries the boot nonce on every agent call.
	NonceHeader = "X-Foundry-Nonce"
)

// TokenHash is the salted hash of a registration token, as sent.
type TokenHash struct {
	Salt      []byte    `json:"salt"` // base64 in JSON
	Hash      []byte    `json:"hash"`
	ExpiresAt time.Time `json:"expires_at"`
}

// RegisterRequest is the body of POST /api/v1/agent/register.
type RegisterRequest struct {
	MAC       string    `json:"mac"`
	Inventory any       `json:"inventory"`
	Token     TokenHash `json:"token"`
}

// Decision kinds.
const (
	DecisionWait    = "wait"
	DecisionNetboot = "netboot"
	DecisionImage   = "image"
	DecisionReject  = "reject"
)

// Decision is the answer of GET /api/v1/agent/decision.
type Decision struct {
	Decision string   `json:"decision"`
	Hostname string   `json:"hostname,omitempty"`
	Image    *Image   `json:"image,omitempty"`
	SSHKeys  []string `json:"ssh_keys,omitempty"`
	Network  *Network `json:"network,omitempty"`
}

// Image says what to write where.
type Image struct {
	URL    string `json:"url"`
	SHA256 string `json:"sha256"`
	// Disk is the target: a device path ("/dev/sda"), or a disk's by-path
	// name, kernel name, WWN or serial from the inventory.
	Disk string `json:"disk"`
}

// Network is the production network configuration (the appliance's
// store.Network): mode "dhcp" or "static" with address as a prefix.
type Network struct {
	Mode    string   `json:"mode"`
	Address string   `json:"address,omitempty"`
	Gateway string   `json:"gateway,omitempty"`
	DNS     []string `json:"dns,omitempty"`
}

// API is the appliance as the agent sees it.
type API interface {
	Register(ctx context.Context, req RegisterRequest) (state string, err error)
	Token(ctx context.Context, t TokenHash) error
	Decision(ctx context.Context, wait time.Duration) (Decision, error)
	Progress(ctx context.Context, percent int, message string) error
	Result(ctx context.Context, success bool, message string) error
}

// Client calls the agent API over HTTP.
type Client struct {
	// BaseURL is the appliance URL from foundry.url.
	BaseURL string
	// Nonce is sent in X-Foundry-Nonce.
	Nonce string
	// HTTP is the client used. Default: http.DefaultClient.
	HTTP *http.Client
}

// APIError is a non-2xx answer; Detail comes from an RFC 9457 problem body.
type APIError struct {
	Status int
	Detail string
}

func (e *APIError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("appliance answered %d %s", e.Status, http.StatusText(e.Status))
	}
	return fmt.Sprintf("appliance answered %d: %s", e.Status, e.Detail)
}

// maxAnswer bounds what the agent reads from any API answer.
const maxAnswer = 1 << 20

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode %s body: %w", path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set(NonceHeader, c.Nonce)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var problem struct {
			Title  string `json:"title"`
			Detail string `json:"detail"`
		}
		_ = json.Unmarshal(data, &problem)
		return fmt.Errorf("%s %s: %w", method, path, &APIError{Status: resp.StatusCode, Detail: printable(firstOf(problem.Detail, problem.Title))})
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// Register posts the inventory and the token hash.
func (c *Client) Register(ctx context.Context, req RegisterRequest) (string, error) {
	var out struct {
		State string `json:"state"`
	}
	err := c.do(ctx, http.MethodPost, pathRegister, req, &out)
	return out.State, err
}

// Token replaces the registration token hash.
func (c *Client) Token(ctx context.Context, t TokenHash) error {
	return c.do(ctx, http.MethodPost, pathToken, t, nil)
}

// Decision long-polls for the administrator's decision.
func (c *Client) Decision(ctx context.Context, wait time.Duration) (Decision, error) {
	var d Decision
	err := c.do(ctx, http.MethodGet, pathDecision+"?wait="+strconv.Itoa(int(wait.Seconds())), nil, &d)
	return d, err
}

// Progress reports provisioning progress.
func (c *Client) Progress(ctx context.Context, percent int, message string) error {
	return c.do(ctx, http.MethodPost, pathProgress, map[string]any{"percent": percent, "message": message}, nil)
}

// Result reports the outcome of carrying out the decision.
func (c *Client) Result(ctx context.Context, success bool, message string) error {
	return c.do(ctx, http.MethodPost, pathResult, map[string]any{"success": success, "message": message}, nil)
}

// IsPermanent reports whether an API error will not go away by retrying
// (the nonce was refused, or the request is malformed).
func IsPermanent(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 && ae.Status != http.StatusTooManyRequests && ae.Status != http.StatusRequestTimeout
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// printable keeps text from the network fit for a console: no escape
// sequences, bounded length.
func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "…"
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
