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

	"github.com/foundry-appliance/foundry/agentwire"
)

// API is the appliance as the agent sees it. Client implements it over
// HTTP with the wire types of package agentwire.
type API interface {
	Register(ctx context.Context, req agentwire.AgentRegister) (state string, err error)
	Token(ctx context.Context, t agentwire.AgentToken) error
	Decision(ctx context.Context, wait time.Duration) (agentwire.Decision, error)
	Progress(ctx context.Context, percent int, message string) error
	Result(ctx context.Context, success bool, message string) error
}

// Client calls the agent API over HTTP.
type Client struct {
	// BaseURL is the appliance URL from foundry.url.
	BaseURL string
	// Nonce is sent in the agentwire.NonceHeader header.
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
	req.Header.Set(agentwire.NonceHeader, c.Nonce)
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

// Register posts the inventory and the token hash and returns the
// machine's state.
func (c *Client) Register(ctx context.Context, req agentwire.AgentRegister) (string, error) {
	var out agentwire.AgentState
	err := c.do(ctx, http.MethodPost, agentwire.PathRegister, req, &out)
	return out.State, err
}

// Token replaces the registration token hash.
func (c *Client) Token(ctx context.Context, t agentwire.AgentToken) error {
	return c.do(ctx, http.MethodPost, agentwire.PathToken, t, nil)
}

// Decision long-polls for the administrator's decision.
func (c *Client) Decision(ctx context.Context, wait time.Duration) (agentwire.Decision, error) {
	var d agentwire.Decision
	err := c.do(ctx, http.MethodGet, agentwire.PathDecision+"?wait="+strconv.Itoa(int(wait.Seconds())), nil, &d)
	return d, err
}

// Progress reports provisioning progress.
func (c *Client) Progress(ctx context.Context, percent int, message string) error {
	return c.do(ctx, http.MethodPost, agentwire.PathProgress, agentwire.AgentProgress{Percent: percent, Message: message}, nil)
}

// Result reports the outcome of carrying out the decision.
func (c *Client) Result(ctx context.Context, success bool, message string) error {
	return c.do(ctx, http.MethodPost, agentwire.PathResult, agentwire.AgentResult{Success: success, Message: message}, nil)
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
