package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/foundry-appliance/foundry/agentsig"
	"github.com/foundry-appliance/foundry/agentwire"
)

// API is the appliance as the agent sees it. Client implements it over
// HTTP with the wire types of package agentwire.
type API interface {
	Register(ctx context.Context, req agentwire.AgentRegister) (state string, err error)
	Token(ctx context.Context, t agentwire.AgentToken) error
	Decision(ctx context.Context, wait time.Duration) (agentwire.Decision, error)
	ReportProgress(ctx context.Context, p agentwire.AgentProgress) error
	Result(ctx context.Context, success bool, message string) error
}

// Client calls the agent API over HTTP. Every request is signed with Key
// (package agentsig) as the next call of the boot session: the first
// request is call 1, and each request after it, retries included, takes
// the next number, so that none can be replayed. The appliance refuses a
// number below one it has accepted, so calls are made one at a time (as
// Agent does). A Client must not be copied after its first call.
type Client struct {
	// BaseURL is the appliance URL from foundry.url.
	BaseURL string
	// Nonce is the boot nonce from foundry.nonce, sent in the
	// agentwire.NonceHeader header of the registration only.
	Nonce string
	// Key is this boot's Ed25519 key: Register sends its public half, and
	// every request is signed with it. Required; made fresh at each boot
	// and never stored.
	Key ed25519.PrivateKey
	// HTTP is the client used. Default: http.DefaultClient.
	HTTP *http.Client

	// seq is the number of the last call signed.
	seq atomic.Uint64
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

// publicKey is Key's public half, or an error if Key is not an Ed25519
// private key.
func (c *Client) publicKey() (ed25519.PublicKey, error) {
	if len(c.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("the agent client has no Ed25519 key to sign with")
	}
	return c.Key.Public().(ed25519.PublicKey), nil
}

// do sends one signed request, with nonce in agentwire.NonceHeader unless
// it is empty. It never resends a request: a retry is a new call, with a
// new number.
func (c *Client) do(ctx context.Context, method, path, nonce string, body, out any) error {
	if _, err := c.publicKey(); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
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
	if nonce != "" {
		req.Header.Set(agentwire.NonceHeader, nonce)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	// A new connection for every call: on a reused connection that fails
	// while the answer is awaited, net/http sends a GET again as it was,
	// and the appliance, which may have accepted its number already,
	// would refuse it as a replay and so end this boot's session.
	req.Close = true
	if err := agentsig.Sign(req, c.Key, c.seq.Add(1)); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
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

// Register posts Key's public half, the inventory and the token hash with
// the boot nonce, and returns the machine's state. req.PublicKey is
// ignored: the key registered is always the one the calls are signed with.
func (c *Client) Register(ctx context.Context, req agentwire.AgentRegister) (string, error) {
	pub, err := c.publicKey()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", http.MethodPost, agentwire.PathRegister, err)
	}
	req.PublicKey = pub
	var out agentwire.AgentState
	err = c.do(ctx, http.MethodPost, agentwire.PathRegister, c.Nonce, req, &out)
	return out.State, err
}

// Token replaces the registration token hash.
func (c *Client) Token(ctx context.Context, t agentwire.AgentToken) error {
	return c.do(ctx, http.MethodPost, agentwire.PathToken, "", t, nil)
}

// Decision long-polls for the administrator's decision.
func (c *Client) Decision(ctx context.Context, wait time.Duration) (agentwire.Decision, error) {
	var d agentwire.Decision
	err := c.do(ctx, http.MethodGet, agentwire.PathDecision+"?wait="+strconv.Itoa(int(wait.Seconds())), "", nil, &d)
	return d, err
}

// Progress reports provisioning progress: a percentage and a message.
func (c *Client) Progress(ctx context.Context, percent int, message string) error {
	return c.ReportProgress(ctx, agentwire.AgentProgress{Percent: percent, Message: message})
}

// ReportProgress reports provisioning progress with the download's bytes,
// rate and time left.
func (c *Client) ReportProgress(ctx context.Context, p agentwire.AgentProgress) error {
	return c.do(ctx, http.MethodPost, agentwire.PathProgress, "", p, nil)
}

// Result reports the outcome of carrying out the decision.
func (c *Client) Result(ctx context.Context, success bool, message string) error {
	return c.do(ctx, http.MethodPost, agentwire.PathResult, "", agentwire.AgentResult{Success: success, Message: message}, nil)
}

// IsPermanent reports whether an API error will not go away by retrying
// (the session was refused, or the request is malformed).
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
