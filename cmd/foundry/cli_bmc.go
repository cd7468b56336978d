package main

import (
	"bufio"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/foundry-appliance/foundry/api"
)

// Power control through a machine's BMC: `machines power`, `machines
// pxe-next` and `machines bmc set|rotate|delete`. The BMC's own error is
// printed when it refuses (the API answers 502 with it).

func machinePowerCmd(o *cliOptions) *cobra.Command {
	var refresh bool
	c := &cobra.Command{
		Use:   "power MAC [status|on|off|cycle]",
		Short: "Show a machine's power state, or power it on, off or cycle it through its BMC",
		Long: "Without an action, show the power state the appliance last read from the machine's BMC (--refresh asks the BMC now). " +
			"on, off and cycle (a hard power-off, then on) go to the BMC at once and are audited; a BMC that refuses is reported " +
			"with its own message. The machine needs a BMC credential: one its discovery OS created, or one entered with " +
			"`foundry machines bmc set`.",
		Args: func(cmd *cobra.Command, a []string) error {
			if len(a) < 1 || len(a) > 2 {
				return usageErr("want MAC and an optional action: status, on, off or cycle")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, a []string) error {
			action := "status"
			if len(a) == 2 {
				action = strings.ToLower(a[1])
			}
			var p api.PowerStatus
			var err error
			switch action {
			case "status":
				p, err = o.client().Power(cmd.Context(), a[0], refresh)
			case "on", "off", "cycle":
				p, err = o.client().SetPower(cmd.Context(), a[0], action)
			default:
				return usageErr("unknown action %q: want status, on, off or cycle", a[1])
			}
			if err != nil {
				return apiErr(err)
			}
			if o.json() {
				return writeJSON(cmd.OutOrStdout(), p)
			}
			_, err = textf(cmd.OutOrStdout(), "%s\n", powerText(p))
			return err
		},
	}
	c.Flags().BoolVar(&refresh, "refresh", false, "ask the BMC now instead of showing the last reading")
	return c
}

// powerText is a power reading in a line: the state, when it was read,
// and the BMC's last error if one came after.
func powerText(p api.PowerStatus) string {
	s := "power " + p.State
	if p.CheckedAt != nil {
		s += " (read " + p.CheckedAt.Format(time.RFC3339) + ")"
	} else {
		s += " (never read)"
	}
	if p.Error != "" && p.ErrorAt != nil && (p.CheckedAt == nil || p.ErrorAt.After(*p.CheckedAt)) {
		s += "; the BMC's last error (" + p.ErrorAt.Format(time.RFC3339) + "): " + p.Error
	}
	return s
}

func machinePXENextCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "pxe-next MAC",
		Short: "Make a machine's next boot (only the next) a network boot, through its BMC",
		Args:  args(1, "MAC"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if _, err := o.client().PXENext(cmd.Context(), a[0]); err != nil {
				return apiErr(err)
			}
			_, err := textf(cmd.OutOrStdout(), "next boot of %s: network (PXE); power-cycle it to boot now: foundry machines power %s cycle\n", a[0], a[0])
			return err
		},
	}
}

func machineBMCCmd(o *cliOptions) *cobra.Command {
	c := &cobra.Command{
		Use:   "bmc",
		Short: "A machine's BMC: enter it by hand, rotate the appliance's password, forget it",
		Long: "The discovery OS reports a machine's BMC and, when approval asks for it, creates a BMC user for the appliance. " +
			"For a machine without in-band access, enter its BMC here. Passwords are stored encrypted and never shown. " +
			"`foundry machines show MAC` shows the BMC.",
	}
	c.AddCommand(machineBMCSetCmd(o), machineBMCRotateCmd(o), machineBMCDeleteCmd(o))
	return c
}

func machineBMCSetCmd(o *cliOptions) *cobra.Command {
	var req api.BMCRequest
	var stdin bool
	c := &cobra.Command{
		Use:   "set MAC --address ADDR --username USER --password-stdin [--protocol ipmi|redfish] [--port N]",
		Short: "Enter a machine's BMC and the credential the appliance uses on it",
		Long: "The password is read from standard input (its first line), never from the command line, where other users " +
			"of this host could read it. The power state is read at once: `foundry machines power MAC` shows it.",
		Args: args(1, "MAC"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if req.Address == "" || req.Username == "" {
				return usageErr("--address and --username are required")
			}
			if !stdin {
				return usageErr("--password-stdin is required: pipe the password in")
			}
			pw, err := firstLine(cmd.InOrStdin())
			if err != nil || pw == "" {
				return usageErr("no password on standard input")
			}
			req.Password = pw
			m, err := o.client().SetBMC(cmd.Context(), a[0], req)
			if err != nil {
				return apiErr(err)
			}
			if o.json() {
				return writeJSON(cmd.OutOrStdout(), m.BMC)
			}
			_, err = textf(cmd.OutOrStdout(), "BMC of %s: %s\n", m.MAC, bmcText(m.BMC))
			return err
		},
	}
	f := c.Flags()
	f.StringVar(&req.Protocol, "protocol", "ipmi", "ipmi or redfish")
	f.StringVar(&req.Address, "address", "", "the BMC's IP address or host name (required)")
	f.IntVar(&req.Port, "port", 0, "the BMC's port (default: IPMI 623, Redfish 443)")
	f.StringVar(&req.Username, "username", "", "the BMC user (required)")
	f.BoolVar(&stdin, "password-stdin", false, "read the password from standard input (required)")
	return c
}

func firstLine(r io.Reader) (string, error) {
	s := bufio.NewScanner(io.LimitReader(r, 4096))
	if !s.Scan() {
		return "", s.Err()
	}
	return strings.TrimRight(s.Text(), "\r"), nil
}

func machineBMCRotateCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate MAC",
		Short: "Give the appliance's BMC user of a machine a new password",
		Long: "A new password is drawn, set on the BMC with the current one and checked; only then is it stored (encrypted). " +
			"A BMC that refuses keeps the current password, and its message is printed.",
		Args: args(1, "MAC"),
		RunE: func(cmd *cobra.Command, a []string) error {
			m, err := o.client().RotateBMC(cmd.Context(), a[0])
			if err != nil {
				return apiErr(err)
			}
			if o.json() {
				return writeJSON(cmd.OutOrStdout(), m.BMC)
			}
			_, err = textf(cmd.OutOrStdout(), "new BMC password for %s stored: %s\n", m.MAC, bmcText(m.BMC))
			return err
		},
	}
}

func machineBMCDeleteCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "delete MAC",
		Short: "Forget a machine's BMC and its credential (the BMC's user stays on the BMC)",
		Args:  args(1, "MAC"),
		RunE: func(cmd *cobra.Command, a []string) error {
			m, err := o.client().DeleteBMC(cmd.Context(), a[0])
			if err != nil {
				return apiErr(err)
			}
			_, err = textf(cmd.OutOrStdout(), "forgot the BMC of %s\n", m.MAC)
			return err
		},
	}
}

// bmcText describes a BMC in a line, for show and the bmc commands.
func bmcText(b *api.BMCInfo) string {
	if b == nil {
		return ""
	}
	s := b.Protocol + " " + b.Address
	if b.Port != 0 {
		s += ":" + strconv.Itoa(b.Port)
	}
	if b.Username != "" {
		s += " user " + b.Username
	}
	if b.Credential {
		s += ", password stored"
	} else {
		s += ", no credential"
	}
	if b.Source == "agent" {
		s += " (created by the discovery OS)"
	} else {
		s += " (entered by hand)"
	}
	if b.RotatedAt != nil {
		s += ", rotated " + b.RotatedAt.Format(time.RFC3339)
	}
	return s
}
