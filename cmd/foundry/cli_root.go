package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/foundry-appliance/foundry/api/client"
)

// Exit codes of the admin commands; scripts may rely on them.
const (
	exitGeneral  = 1 // anything else (network errors, server errors)
	exitUsage    = 2 // bad arguments or flags
	exitNotFound = 3 // the machine, cluster, profile, image or token does not exist
	exitRefused  = 4 // the server refused the input or the change conflicts with the state
	exitAuth     = 5 // no, unknown or insufficient API token
)

const cliExitCodes = `Exit codes:
  0  success
  1  general error (appliance unreachable, server error)
  2  usage error (arguments, flags)
  3  not found
  4  refused: invalid input, state conflict, locked (the message names the field)
  5  authentication or permission (missing, unknown or viewer token)

The appliance URL comes from --server or FOUNDRY_URL (default ` + client.DefaultURL + `),
the API token from --token or FOUNDRY_TOKEN.`

// exitError carries the process exit status for the root's exitCode.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// ExitCode is what the process exits with.
func (e exitError) ExitCode() int { return e.code }

func usageErr(format string, args ...any) error {
	return exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// apiErr classifies an API call's error by HTTP status.
func apiErr(err error) error {
	if err == nil {
		return nil
	}
	code := exitGeneral
	switch client.StatusOf(err) {
	case http.StatusNotFound:
		code = exitNotFound
	case http.StatusBadRequest, http.StatusConflict, http.StatusUnprocessableEntity, http.StatusLocked, http.StatusRequestEntityTooLarge:
		code = exitRefused
	case http.StatusUnauthorized, http.StatusForbidden:
		code = exitAuth
	}
	return exitError{code: code, err: err}
}

// cliOptions are the flags every admin command shares.
type cliOptions struct {
	server string
	token  string
	output string
}

func (o *cliOptions) client() *client.Client {
	server, token := o.server, o.token
	if server == "" {
		server = os.Getenv("FOUNDRY_URL")
	}
	if token == "" {
		token = os.Getenv("FOUNDRY_TOKEN")
	}
	return &client.Client{BaseURL: server, Token: token}
}

func (o *cliOptions) json() bool { return o.output == "json" }

// cliCommands returns the admin commands for the root command.
func cliCommands() []*cobra.Command {
	o := &cliOptions{}
	cmds := []*cobra.Command{machinesCmd(o), clustersCmd(o), profilesCmd(o), imagesCmd(o), auditCmd(o), tokensCmd(o)}
	for _, c := range cmds {
		f := c.PersistentFlags()
		f.StringVar(&o.server, "server", "", "appliance URL (default $FOUNDRY_URL or "+client.DefaultURL+")")
		f.StringVar(&o.token, "token", "", "API token (default $FOUNDRY_TOKEN)")
		f.StringVarP(&o.output, "output", "o", "table", "output format: table or json")
		c.PersistentPreRunE = func(*cobra.Command, []string) error {
			if o.output != "table" && o.output != "json" {
				return usageErr("--output must be table or json, not %q", o.output)
			}
			return nil
		}
		c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitError{code: exitUsage, err: err} })
		withExitCodes(c)
	}
	return cmds
}

// withExitCodes appends the exit codes to the help of c and its children.
func withExitCodes(c *cobra.Command) {
	long := c.Long
	if long == "" {
		long = c.Short + "."
	}
	c.Long = long + "\n\n" + cliExitCodes + "\n"
	for _, sub := range c.Commands() {
		withExitCodes(sub)
	}
}

// args checks the number of positional arguments.
func args(n int, names ...string) cobra.PositionalArgs {
	return func(_ *cobra.Command, a []string) error {
		if len(a) != n {
			if n == 0 {
				return usageErr("this command takes no arguments")
			}
			return usageErr("want %d argument(s): %s", n, strings.Join(names, " "))
		}
		return nil
	}
}

// writeJSON prints v indented.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table prints rows under a header, aligned; every cell goes through
// printable (a tab or newline in a value would also break the table).
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	line := func(cells []string) {
		out := make([]string, len(cells))
		for i, c := range cells {
			if out[i] = printable(c); out[i] == "" {
				out[i] = "-"
			}
		}
		fmt.Fprintln(tw, strings.Join(out, "\t"))
	}
	line(header)
	for _, r := range rows {
		line(r)
	}
	return tw.Flush()
}

// fields prints "key: value" lines, aligned, through printable.
func fields(w io.Writer, kv [][2]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, p := range kv {
		if p[1] == "" {
			continue
		}
		textf(tw, "%s:\t%s\n", p[0], p[1])
	}
	return tw.Flush()
}

func humanBytes(n uint64) string {
	if n == 0 {
		return ""
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func ago(t time.Time, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	if d < 0 {
		return "in " + roundDur(-d)
	}
	return roundDur(d) + " ago"
}

func roundDur(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// parseWhen accepts RFC 3339 or a duration meaning "that long ago".
func parseWhen(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, usageErr("--%s: want an RFC 3339 time (2026-01-02T15:04:05Z) or a duration (2h), not %q", flag, s)
}

// writeJSONLine prints v as one line (for streams).
func writeJSONLine(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}
