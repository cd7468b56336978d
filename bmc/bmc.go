// Package bmc talks to a machine's baseboard management controller: power
// status, on, off and cycle, the next boot from the network, and a new
// password for the appliance's own BMC user. It is a thin layer over
// github.com/bmc-toolbox/bmclib/v2, which speaks IPMI (through the
// ipmitool program) and Redfish (through gofish); this package picks the
// one protocol the endpoint names, bounds every call with a timeout, and
// turns bmclib's errors into an *Error that carries the BMC's own words.
//
// The package keeps no state between calls: every call opens a session,
// does its work and closes it, so that a BMC that hangs or refuses costs
// only that call.
package bmc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	bmclib "github.com/bmc-toolbox/bmclib/v2"
	"github.com/go-logr/logr"

	"github.com/foundry-appliance/foundry/names"
)

// Protocol is how the appliance speaks to a BMC.
type Protocol string

// Protocols.
const (
	IPMI    Protocol = "ipmi"    // IPMI 2.0 over LAN (RMCP+), UDP port 623 by default
	Redfish Protocol = "redfish" // Redfish over HTTPS, TCP port 443 by default
)

// ParseProtocol is the inverse of Protocol's string form.
func ParseProtocol(s string) (Protocol, error) {
	switch p := Protocol(strings.ToLower(strings.TrimSpace(s))); p {
	case IPMI, Redfish:
		return p, nil
	}
	return "", fmt.Errorf("unknown BMC protocol %q (want ipmi or redfish)", s)
}

// DefaultPort is the protocol's well-known port.
func (p Protocol) DefaultPort() int {
	if p == Redfish {
		return 443
	}
	return 623
}

// Endpoint is one BMC and the credential the appliance uses on it.
type Endpoint struct {
	Protocol Protocol
	// Host is the BMC's address or DNS name.
	Host string
	// Port is the BMC's port; 0 means the protocol's default.
	Port     int
	Username string
	Password string
}

// Validate checks what can be checked without talking to the BMC.
func (e Endpoint) Validate() error {
	if _, err := ParseProtocol(string(e.Protocol)); err != nil {
		return err
	}
	if err := checkHost(e.Host); err != nil {
		return err
	}
	if e.Port < 0 || e.Port > 65535 {
		return fmt.Errorf("BMC port %d is out of range", e.Port)
	}
	if e.Username == "" || len(e.Username) > 16 && e.Protocol == IPMI {
		return fmt.Errorf("BMC user name must be 1-16 characters for IPMI (got %d)", len(e.Username))
	}
	if len(e.Username) > 64 || strings.ContainsAny(e.Username, " \t\r\n\x00") {
		return errors.New("BMC user name may not contain blanks or control characters, at most 64 bytes")
	}
	if len(e.Password) > 64 || strings.ContainsAny(e.Password, "\r\n\x00") {
		return errors.New("BMC password may not contain line breaks or NUL, at most 64 bytes")
	}
	if e.Protocol == IPMI && len(e.Password) > 20 {
		return fmt.Errorf("an IPMI password is at most 20 characters (got %d)", len(e.Password))
	}
	return nil
}

// checkHost accepts an IP address or a DNS name by the one host-name rule
// (names.Hostname: RFC 1123, so nothing that could be read as an option or
// a URL by the programs the host is handed to).
func checkHost(h string) error {
	if _, err := netip.ParseAddr(h); err == nil {
		return nil
	}
	if _, err := names.Hostname(h); err != nil {
		return fmt.Errorf("BMC address %q is not an IP address, and %w", h, err)
	}
	return nil
}

func (e Endpoint) port() int {
	if e.Port == 0 {
		return e.Protocol.DefaultPort()
	}
	return e.Port
}

// String names the endpoint for messages and logs: never the password.
func (e Endpoint) String() string {
	return fmt.Sprintf("%s://%s@%s", e.Protocol, e.Username, net.JoinHostPort(e.Host, strconv.Itoa(e.port())))
}

// Client drives BMCs. The zero value is ready to use.
type Client struct {
	// Timeout bounds one call (connect, command, close); default
	// DefaultTimeout. A caller's shorter context deadline wins.
	Timeout time.Duration
	// Ipmitool is the ipmitool program bmclib's IPMI provider runs;
	// default "ipmitool" found in PATH.
	Ipmitool string
	// Logger receives a debug line per call; nil is silent.
	Logger *slog.Logger
}

// DefaultTimeout bounds a call when Client.Timeout is zero. An IPMI call
// over a lossy link retries for a while inside ipmitool; a BMC that has
// not answered within this time is reported as failed.
const DefaultTimeout = 30 * time.Second

// Error is a failed BMC call. Msg is what the BMC (or the program that
// spoke to it) said, so that an operator sees "Unable to establish IPMI
// v2 / RMCP+ session" rather than a generic failure.
type Error struct {
	Op       string // "power status", "power on", "boot pxe", …
	Endpoint string // Endpoint.String()
	Msg      string
	Err      error // the underlying error, for errors.Is (context.DeadlineExceeded)
}

func (e *Error) Error() string {
	return fmt.Sprintf("bmc %s %s: %s", e.Op, e.Endpoint, e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }

// session runs fn with an open bmclib client limited to ep's protocol.
func (c *Client) session(ctx context.Context, ep Endpoint, op string, fn func(context.Context, *bmclib.Client) error) error {
	if err := ep.Validate(); err != nil {
		return &Error{Op: op, Endpoint: ep.String(), Msg: err.Error(), Err: err}
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	port := strconv.Itoa(ep.port())
	opts := []bmclib.Option{
		bmclib.WithLogger(logr.Discard()),
		bmclib.WithPerProviderTimeout(timeout),
		bmclib.WithIpmitoolPort(port),
		bmclib.WithRedfishPort(port),
	}
	if c.Ipmitool != "" {
		opts = append(opts, bmclib.WithIpmitoolPath(c.Ipmitool))
	}
	cl := bmclib.NewClient(ep.Host, ep.Username, ep.Password, opts...)
	// Only the named protocol's generic provider: bmclib would otherwise
	// try every vendor's (Dell, Supermicro, ASRock, Intel AMT) in turn.
	switch ep.Protocol {
	case IPMI:
		cl.Registry.Drivers = cl.Registry.For("ipmitool")
	case Redfish:
		cl.Registry.Drivers = cl.Registry.For("gofish")
	}
	if len(cl.Registry.Drivers) == 0 {
		err := fmt.Errorf("no %s provider available (is ipmitool installed?)", ep.Protocol)
		return &Error{Op: op, Endpoint: ep.String(), Msg: err.Error(), Err: err}
	}
	err := cl.Open(ctx)
	if err == nil {
		err = fn(ctx, cl)
		cl.Close(ctx)
	}
	if c.Logger != nil {
		c.Logger.Debug("bmc call", "op", op, "bmc", ep.String(), "took", time.Since(start).Round(time.Millisecond), "err", err)
	}
	if err == nil {
		return nil
	}
	if ctx.Err() != nil && !errors.Is(err, context.Canceled) {
		err = fmt.Errorf("%w: %w", ctx.Err(), err)
	}
	return &Error{Op: op, Endpoint: ep.String(), Msg: bmcMessage(cl, err), Err: err}
}

// bmcMessage is the BMC's own account of a failure: the providers'
// messages from bmclib's metadata, on one line, else the error's text.
func bmcMessage(cl *bmclib.Client, err error) string {
	md := cl.GetMetadata()
	var parts []string
	for _, name := range sortedKeys(md.FailedProviderDetail) {
		parts = append(parts, redfishMessage(oneLine(md.FailedProviderDetail[name])))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		parts = append([]string{"no answer in time"}, parts...)
	}
	if len(parts) == 0 {
		return redfishMessage(oneLine(err.Error()))
	}
	return strings.Join(parts, "; ")
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// redfishMessage replaces a Redfish error body (DSP0266's {"error":
// {"code", "message"}}) in s with its message and code.
func redfishMessage(s string) string {
	i := strings.Index(s, `{"error"`)
	if i < 0 {
		return s
	}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	dec := json.NewDecoder(strings.NewReader(s[i:]))
	if dec.Decode(&body) != nil || body.Error.Message == "" {
		return s
	}
	rest := s[i+int(dec.InputOffset()):]
	return s[:i] + body.Error.Message + " (" + body.Error.Code + ")" + rest
}

// oneLine folds a multi-line message (ipmitool's output, a multierror)
// into one line without its list decorations.
func oneLine(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "* "))
		if l == "" || strings.HasSuffix(l, "errors occurred:") || strings.HasSuffix(l, "error occurred:") {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, " / ")
}
