package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/foundry-appliance/foundry/api"
)

// Each discovery boot of a machine registers separately (a boot session
// with its own key, token and inventory). More than one active
// registration for a MAC is a MAC conflict: a second host answers for the
// MAC (possible spoofing), or the machine rebooted a minute or two ago.
// The CLI shows the conflict wherever the machine appears, and the
// registrations themselves in `machines show`.

// conflictMark follows the state in tables whose machine has a MAC
// conflict; conflictNote explains it once below the table.
const (
	conflictMark = "!conflict"
	conflictNote = conflictMark + ": more than one active registration for the MAC (possible spoofing); see `foundry machines show MAC`"
)

// stateCell is a machine's state for a table cell, marked on a conflict.
func stateCell(m api.Machine) string {
	if m.MACConflict {
		return m.State + " " + conflictMark
	}
	return m.State
}

// shortID is the part of a registration ID the text output shows: enough
// to tell registrations apart, and what the audit log shows.
func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func activeRegistrations(m api.Machine) int {
	n := 0
	for _, r := range m.Registrations {
		if r.Active {
			n++
		}
	}
	return n
}

// conflictWarning is the line `machines show` starts with on a conflict.
func conflictWarning(m api.Machine) string {
	return fmt.Sprintf("MAC CONFLICT: %d active registrations for this MAC — possible spoofing; "+
		"approve with the token shown on the console of the machine you can see, "+
		"end the others with `foundry machines end-registration %s ID`", activeRegistrations(m), m.MAC)
}

// tokenState is a registration token's state in a table cell.
func tokenState(t api.TokenStatus, now time.Time) string {
	switch {
	case t.Locked:
		return fmt.Sprintf("locked (%d wrong)", t.Failures)
	case t.Expired:
		return "expired"
	}
	s := "valid, expires in " + roundDur(t.ExpiresAt.Sub(now))
	if t.Failures > 0 {
		s += fmt.Sprintf(", %d wrong", t.Failures)
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// printRegistrations lists a machine's registrations under a heading;
// every cell goes through table's printable (IP, vendor and serial come
// from the machine).
func printRegistrations(w io.Writer, m api.Machine, now time.Time) error {
	if len(m.Registrations) == 0 {
		return nil
	}
	if _, err := textf(w, "\nRegistrations (%d; full IDs with -o json):\n", len(m.Registrations)); err != nil {
		return err
	}
	rows := make([][]string, 0, len(m.Registrations))
	for _, r := range m.Registrations {
		var system, serial string
		if s := r.Summary; s != nil {
			system, serial = strings.TrimSpace(s.Vendor+" "+s.Model), s.Serial
		}
		bound := ""
		if r.Bound {
			bound = "yes"
		}
		rows = append(rows, []string{shortID(r.ID), r.IP, ago(r.RegisteredAt, now), ago(r.LastSeen, now),
			yesNo(r.Active), bound, tokenState(r.Token, now), system, serial})
	}
	return table(w, []string{"ID", "IP", "REGISTERED", "LAST SEEN", "ACTIVE", "BOUND", "TOKEN", "SYSTEM", "SERIAL"}, rows)
}

// boundRegistration is the registration approval bound the machine to.
func boundRegistration(m api.Machine) (api.Registration, bool) {
	for _, r := range m.Registrations {
		if r.Bound {
			return r, true
		}
	}
	return api.Registration{}, false
}

// registrationText names a registration for a sentence: its short ID and
// where it came from.
func registrationText(r api.Registration) string {
	if r.IP == "" {
		return shortID(r.ID)
	}
	return shortID(r.ID) + " from " + r.IP
}

// resolveRegistration finds the registration of m that id names: the
// whole ID, or a prefix that only one of them has (what `machines show`
// prints). An ID that names none is returned unchanged, for the API to
// answer not found.
func resolveRegistration(m api.Machine, id string) (string, error) {
	var matches []string
	for _, r := range m.Registrations {
		if r.ID == id {
			return id, nil
		}
		if strings.HasPrefix(r.ID, id) {
			matches = append(matches, r.ID)
		}
	}
	switch len(matches) {
	case 0:
		return id, nil
	case 1:
		return matches[0], nil
	}
	for i, full := range matches {
		matches[i] = shortID(full)
	}
	return "", usageErr("registration %q is ambiguous: %s all start with it; give more of the ID", id, strings.Join(matches, ", "))
}

func machineEndRegistrationCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "end-registration MAC ID",
		Short: "End one registration of a machine (a spoofer's, or an earlier boot's)",
		Long: "End one registration (discovery boot session) of a machine. Every discovery boot registers separately; " +
			"more than one active registration for a MAC is a MAC conflict: another host answers for the MAC (possible spoofing), " +
			"or the machine rebooted a minute or two ago. Approve with the console token of the machine you can see " +
			"(approval binds to the registration whose token matches), then end the others: their agents can make no further call.\n\n" +
			"ID is a registration's ID as `foundry machines show MAC` lists it (its first characters are enough when no other " +
			"registration starts with them) or in full from -o json. Ending the registration approval bound leaves the machine " +
			"without an agent that may install it: rediscover it then. An ID that starts with '-' goes after `--`: " +
			"foundry machines end-registration -- MAC -xyz.",
		Args: args(2, "MAC", "ID"),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl := o.client()
			id := strings.TrimSpace(a[1])
			if id == "" {
				return usageErr("ID must not be empty")
			}
			cur, err := cl.GetMachine(cmd.Context(), a[0])
			if err != nil {
				return apiErr(err)
			}
			if id, err = resolveRegistration(cur, id); err != nil {
				return err
			}
			m, err := cl.EndRegistration(cmd.Context(), a[0], id)
			if err != nil {
				return apiErr(err)
			}
			if o.json() {
				return writeJSON(cmd.OutOrStdout(), m)
			}
			w := cmd.OutOrStdout()
			textf(w, "ended registration %s of %s: %d registration(s) left\n", shortID(id), m.MAC, len(m.Registrations))
			if m.MACConflict {
				textf(w, "%s\n", conflictWarning(m))
			}
			return nil
		},
	}
}

func machineVerifyTokenCmd(o *cliOptions) *cobra.Command {
	var tok string
	c := &cobra.Command{
		Use:   "verify-token MAC --console-token FOUNDRY-XXXX-XXXX-XXXX",
		Short: "Check a console token before approving, and see which registration it matches",
		Long: "Check the token shown on a machine's console without approving it. The answer names the registration " +
			"(discovery boot session) whose token matches: approval binds the machine to that one, which matters when " +
			"the MAC has more than one (a MAC conflict). A wrong token counts as a failed approval attempt.",
		Args: args(1, "MAC"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if tok == "" {
				return usageErr("--console-token is required")
			}
			cl := o.client()
			check, err := cl.VerifyToken(cmd.Context(), a[0], tok)
			if err != nil {
				return apiErr(err)
			}
			if o.json() {
				return writeJSON(cmd.OutOrStdout(), check)
			}
			what := shortID(check.Registration)
			// The answer names the registration; its address is in the
			// machine (best effort: the check itself is done).
			if m, err := cl.GetMachine(cmd.Context(), a[0]); err == nil {
				for _, r := range m.Registrations {
					if r.ID == check.Registration {
						what = registrationText(r)
					}
				}
			}
			if what == "" {
				_, err = textf(cmd.OutOrStdout(), "token valid for %s until %s\n", a[0], check.ExpiresAt.Format(time.RFC3339))
				return err
			}
			_, err = textf(cmd.OutOrStdout(), "token valid for %s until %s: matches registration %s\n", a[0], check.ExpiresAt.Format(time.RFC3339), what)
			return err
		},
	}
	c.Flags().StringVar(&tok, "console-token", "", "the registration token shown on the machine's console (required)")
	return c
}
