// Package client is a small typed Go client for Foundry's admin REST API
// (/api/v1), used by the `foundry` CLI and by tests. Request and response
// types are the api package's, so client and server cannot drift apart.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/foundry-appliance/foundry/api"
)

// DefaultURL is the appliance URL used when Client.BaseURL is empty.
const DefaultURL = "http://127.0.0.1:8080"

// Client calls the admin API. The zero value talks to DefaultURL without
// a token.
type Client struct {
	// BaseURL is the appliance, e.g. "http://10.77.0.1:8080"; default DefaultURL.
	BaseURL string
	// Token is the bearer token (FOUNDRY_TOKEN); empty sends none.
	Token string
	// HTTP is the HTTP client; default one with a 60 s timeout for plain
	// calls (event streams use no timeout beyond their context).
	HTTP *http.Client
}

// Problem is an RFC 9457 problem document as the API returns it.
type Problem struct {
	Type   string        `json:"type,omitempty"`
	Title  string        `json:"title,omitempty"`
	Status int           `json:"status,omitempty"`
	Detail string        `json:"detail,omitempty"`
	Errors []ErrorDetail `json:"errors,omitempty"`
}

// ErrorDetail names the field a problem is about.
type ErrorDetail struct {
	Message  string `json:"message,omitempty"`
	Location string `json:"location,omitempty"`
	Value    any    `json:"value,omitempty"`
}

// Error is a non-2xx answer.
type Error struct {
	// StatusCode is the HTTP status.
	StatusCode int
	Problem    Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	msg := e.Problem.Detail
	if msg == "" {
		msg = e.Problem.Title
	}
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	fmt.Fprintf(&b, "%s (HTTP %d)", msg, e.StatusCode)
	for _, d := range e.Problem.Errors {
		if d.Location != "" {
			fmt.Fprintf(&b, "\n  %s: %s", d.Location, d.Message)
		} else if d.Message != "" && d.Message != msg {
			fmt.Fprintf(&b, "\n  %s", d.Message)
		}
	}
	return b.String()
}

// StatusOf returns the HTTP status of an *Error in err's chain, or 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

func (c *Client) base() string {
	if c.BaseURL == "" {
		return DefaultURL
	}
	return strings.TrimRight(c.BaseURL, "/")
}

func (c *Client) httpClient(stream bool) *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	if stream {
		return &http.Client{}
	}
	return &http.Client{Timeout: 60 * time.Second}
}

// newRequest builds a request for path (under /api/v1) with query q and a
// JSON body (nil for none).
func (c *Client) newRequest(ctx context.Context, method, path string, q url.Values, body any) (*http.Request, error) {
	u := c.base() + api.Prefix + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	return req, nil
}

// do sends a request and decodes a 2xx JSON answer into out (nil: discard).
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	req, err := c.newRequest(ctx, method, path, q, body)
	if err != nil {
		return err
	}
	resp, err := c.httpClient(false).Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	if err := checkStatus(resp); err != nil {
		return err
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out); err != nil {
		return fmt.Errorf("decode answer of %s %s: %w", method, req.URL.Path, err)
	}
	return nil
}

// raw sends a GET that accepts accept and returns the 2xx body as is.
func (c *Client) raw(ctx context.Context, path string, q url.Values, accept string) ([]byte, error) {
	req, err := c.newRequest(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", accept+", application/problem+json")
	resp, err := c.httpClient(false).Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", req.URL.Path, err)
	}
	defer resp.Body.Close()
	if err := checkStatus(resp); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("read answer of GET %s: %w", req.URL.Path, err)
	}
	return b, nil
}

func checkStatus(resp *http.Response) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	e := &Error{StatusCode: resp.StatusCode}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(b, &e.Problem) != nil || e.Problem.Detail == "" && e.Problem.Title == "" {
		e.Problem.Detail = strings.TrimSpace(string(b))
	}
	return e
}

func esc(s string) string { return url.PathEscape(s) }
