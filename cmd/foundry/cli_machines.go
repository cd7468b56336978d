package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/api/client"
)

func machinesCmd(o *cliOptions) *cobra.Command {
	c := &cobra.Command{
		Use:   "machines",
		Short: "List, inspect, approve and reject machines",
		Long:  "Review the machines Foundry discovered and decide what becomes of them.",
	}
	c.AddCommand(machinesLsCmd(o), machineShowCmd(o), machineApproveCmd(o), machineRejectCmd(o),
		machineSimpleCmd(o, "rediscover", "Send an approved or ready machine back to discovery on its next boot"),
		machineSimpleCmd(o, "retry", "Retry the provisioning of a failed machine"),
		machineSimpleCmd(o, "delete", "Delete a machine record (its audit history stays)"),
		machineReleaseCmd(o), machineRedeployCmd(o), machineBindCmd(o),
		machineVerifyTokenCmd(o), machineEndRegistrationCmd(o),
		machineWatchCmd(o), machineScriptCmd(o), machineExportCmd(o), machineBootCmd(o),
		machinePowerCmd(o), machinePXENextCmd(o), machineBMCCmd(o))
	return c
}

func machinesLsCmd(o *cliOptions) *cobra.Command {
	var lo client.ListOptions
	var all bool
	c := &cobra.Command{
		Use:   "ls",
		Short: "List machines",
		Long: "List machines. A state followed by " + conflictMark + " has more than one active registration for its MAC " +
			"(a MAC conflict, possible spoofing): `foundry machines show MAC` lists them.",
		Args: args(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl := o.client()
			var items []api.Machine
			var page api.MachineList
			for {
				var err error
				if page, err = cl.ListMachines(cmd.Context(), lo); err != nil {
					return apiErr(err)
				}
				items = append(items, page.Items...)
				if !all || page.NextCursor == "" {
					break
				}
				lo.Cursor = page.NextCursor
			}
			if o.json() {
				page.Items = items
				if all {
					page.NextCursor = ""
				}
				return writeJSON(cmd.OutOrStdout(), page)
			}
			now := time.Now()
			rows := make([][]string, 0, len(items))
			conflicts := false
			for _, m := range items {
				conflicts = conflicts || m.MACConflict
				rows = append(rows, []string{m.MAC, stateCell(m), m.Hostname, m.Segment, m.Cluster, m.Profile,
					strings.TrimSpace(m.Summary.Vendor + " " + m.Summary.Model), cpus(m.Summary), humanBytes(m.Summary.MemoryBytes),
					disks(m.Summary), ago(m.FirstSeen, now), progress(m)})
			}
			if err := table(cmd.OutOrStdout(), []string{"MAC", "STATE", "HOSTNAME", "SEGMENT", "CLUSTER", "PROFILE", "SYSTEM", "CPU", "MEMORY", "DISKS", "SEEN", "PROGRESS"}, rows); err != nil {
				return err
			}
			if conflicts {
				textf(cmd.ErrOrStderr(), "%s\n", conflictNote)
			}
			if page.NextCursor != "" {
				textf(cmd.ErrOrStderr(), "(%d of %d shown; --all for every page)\n", len(items), page.Total)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringSliceVar(&lo.State, "state", nil, "only these states (repeat or comma-separate)")
	f.StringVar(&lo.Cluster, "cluster", "", "only this cluster")
	f.StringVar(&lo.Segment, "segment", "", "only this segment")
	f.StringVarP(&lo.Q, "query", "q", "", "text search (MAC, hostname, IP, vendor, model, serial)")
	f.StringVar(&lo.Sort, "sort", "mac", "sort key: mac, hostname, state, first_seen, last_seen; '-' prefix for descending")
	f.IntVar(&lo.Limit, "limit", 100, "machines per page")
	f.BoolVar(&all, "all", false, "fetch every page")
	return c
}

func cpus(s api.Summary) string {
	if s.Threads == 0 {
		return ""
	}
	return strconv.Itoa(s.Threads)
}

func disks(s api.Summary) string {
	if s.Disks == 0 {
		return ""
	}
	return fmt.Sprintf("%d (%s)", s.Disks, humanBytes(s.DiskBytes))
}

func progress(m api.Machine) string {
	switch m.State {
	case "provisioning":
		if m.Installed {
			return "installed, waiting for its first boot"
		}
		return fmt.Sprintf("%d%%", m.Progress) + transferText(m.ProgressDetail, time.Now())
	case "failed":
		return "failed: " + m.Message + transferText(m.ProgressDetail, time.Time{})
	}
	if m.Wipe != nil {
		return "released: wipe pending"
	}
	return ""
}

// transferText describes an image download: " (1.2 GiB of 2.9 GiB,
// 85.0 MiB/s, 20s left)". The time left is counted down from the report
// to now; a zero now leaves it out (a failed download has none).
func transferText(d *api.ProgressDetail, now time.Time) string {
	if d == nil || (d.BytesDone <= 0 && d.BytesTotal <= 0) {
		return ""
	}
	parts := []string{humanBytes(uint64(max(d.BytesDone, 0)))}
	if parts[0] == "" {
		parts[0] = "0 B"
	}
	if d.BytesTotal > 0 {
		parts[0] += " of " + humanBytes(uint64(d.BytesTotal))
	}
	if d.RateBps > 0 && !now.IsZero() {
		parts = append(parts, humanBytes(uint64(d.RateBps))+"/s")
	}
	if d.ETASeconds > 0 && !now.IsZero() {
		left := time.Duration(d.ETASeconds)*time.Second - max(now.Sub(d.At), 0)
		parts = append(parts, roundDur(max(left, 0))+" left")
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func machineShowCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "show MAC",
		Short: "Show a machine and its inventory summary (-o json: the whole inventory)",
		Args:  args(1, "MAC"),
		RunE: func(cmd *cobra.Command, a []string) error {
			m, err := o.client().GetMachine(cmd.Context(), a[0])
			if err != nil {
				return apiErr(err)
			}
			if o.json() {
				return writeJSON(cmd.OutOrStdout(), m)
			}
			return printMachine(cmd, m)
		},
	}
}

func printMachine(cmd *cobra.Command, m api.Machine) error {
	now := time.Now()
	w := cmd.OutOrStdout()
	if m.MACConflict {
		if _, err := textf(w, "%s\n\n", conflictWarning(m)); err != nil {
			return err
		}
	}
	kv := [][2]string{
		{"MAC", m.MAC}, {"State", m.State}, {"Hostname", m.Hostname}, {"Segment", m.Segment}, {"IP", m.IP},
		{"Arch", m.Arch}, {"Cluster", m.Cluster}, {"Profile", m.Profile},
		{"First seen", m.FirstSeen.Format(time.RFC3339) + " (" + ago(m.FirstSeen, now) + ")"},
		{"Last seen", m.LastSeen.Format(time.RFC3339) + " (" + ago(m.LastSeen, now) + ")"},
		{"System", strings.TrimSpace(m.Summary.Vendor + " " + m.Summary.Model)}, {"Serial", m.Summary.Serial},
		{"CPU", strings.TrimSpace(fmt.Sprintf("%s %s", m.Summary.CPUModel, threadsText(m.Summary)))},
		{"Memory", humanBytes(m.Summary.MemoryBytes)}, {"Disks", disks(m.Summary)}, {"Progress", progressRow(m)}, {"Message", m.Message},
		{"Installed", installText(m)}, {"Ready at", readyText(m)}, {"First boot", firstBootText(m)}, {"Wipe", wipeText(m)}, {"BMC", bmcText(m.BMC)},
	}
	if m.ExpiresAt != nil {
		kv = append(kv, [2]string{"Expires", m.ExpiresAt.Format(time.RFC3339) + " (" + ago(*m.ExpiresAt, now) + ")"})
	}
	if t := m.Token; t != nil {
		status := "valid until " + t.ExpiresAt.Format(time.RFC3339)
		switch {
		case t.Locked:
			status = fmt.Sprintf("locked after %d wrong attempts", t.Failures)
		case t.Expired:
			status = "expired"
		case t.Failures > 0:
			status += fmt.Sprintf(", %d wrong attempt(s)", t.Failures)
		}
		label := "Token"
		if len(m.Registrations) > 1 {
			label = "Token (newest)"
		}
		kv = append(kv, [2]string{label, status})
	}
	if a := m.Approval; a != nil {
		net := a.Network.Mode
		if a.Network.Address != "" {
			net += " " + a.Network.Address + " via " + a.Network.Gateway
		}
		kv = append(kv, [2]string{"Approved by", a.ApprovedBy + " at " + a.ApprovedAt.Format(time.RFC3339)},
			[2]string{"Disk", a.Disk}, [2]string{"Network", net}, [2]string{"SSH keys", strconv.Itoa(len(a.SSHKeys))})
	}
	if err := fields(w, kv); err != nil {
		return err
	}
	if err := printHostKeys(w, m); err != nil {
		return err
	}
	return printRegistrations(w, m, now)
}

func threadsText(s api.Summary) string {
	if s.Threads == 0 {
		return ""
	}
	return fmt.Sprintf("(%d cores, %d threads)", s.Cores, s.Threads)
}

func machineApproveCmd(o *cliOptions) *cobra.Command {
	var req api.ApproveRequest
	var keyFiles []string
	var static, gateway string
	var dns []string
	c := &cobra.Command{
		Use:   "approve MAC --console-token FOUNDRY-XXXX-XXXX-XXXX --cluster NAME",
		Short: "Approve an inventoried machine with the token shown on its console",
		Long: "Approve an inventoried machine. The token is the one its console shows; the cluster is required; " +
			"the profile defaults to the cluster's, the disk to the first fixed disk by stable path, the network to DHCP. " +
			"When the MAC has more than one registration (a MAC conflict), approval binds to the one whose token matches; " +
			"the answer names it.",
		Args: args(1, "MAC"),
		RunE: func(cmd *cobra.Command, a []string) error {
			for _, f := range keyFiles {
				b, err := os.ReadFile(f)
				if err != nil {
					return usageErr("--ssh-key-file: %v", err)
				}
				for _, line := range strings.Split(string(b), "\n") {
					if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
						req.SSHKeys = append(req.SSHKeys, line)
					}
				}
			}
			if static != "" || gateway != "" || len(dns) > 0 {
				req.Network = &api.Network{Mode: "dhcp", Gateway: gateway, DNS: dns}
				if static != "" {
					req.Network.Mode, req.Network.Address = "static", static
				}
			}
			m, err := o.client().Approve(cmd.Context(), a[0], req)
			if err != nil {
				return apiErr(err)
			}
			if o.json() {
				return writeJSON(cmd.OutOrStdout(), m)
			}
			textf(cmd.OutOrStdout(), "approved %s as %s (cluster %s, profile %s): %s\n", m.MAC, m.Hostname, m.Cluster, m.Profile, m.State)
			if r, ok := boundRegistration(m); ok {
				textf(cmd.OutOrStdout(), "bound to registration %s (the one whose token matched)\n", registrationText(r))
			}
			if m.MACConflict {
				textf(cmd.OutOrStdout(), "%s\n", conflictWarning(m))
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&req.Token, "console-token", "", "the registration token shown on the machine's console (FOUNDRY-XXXX-XXXX-XXXX)")
	f.StringVar(&req.Cluster, "cluster", "", "cluster (required unless the machine is declared in the GitOps repository)")
	f.StringVar(&req.Profile, "profile", "", "profile (default: the cluster's default profile)")
	f.StringVar(&req.Hostname, "hostname", "", "RFC 1123 host name (default: the current one)")
	f.StringVar(&req.Disk, "disk", "", "target disk: path, by-path name or kernel name (default: first fixed disk by stable path)")
	f.BoolVar(&req.BMCUser, "bmc-user", false, "have the discovery OS create a BMC user for the appliance in band (default: the cluster's setting)")
	f.StringArrayVar(&req.SSHKeys, "ssh-key", nil, "authorized_keys line (repeatable)")
	f.StringArrayVar(&keyFiles, "ssh-key-file", nil, "file of authorized_keys lines (repeatable)")
	f.StringVar(&static, "static", "", "static address with prefix, e.g. 10.77.0.50/24 (default: DHCP)")
	f.StringVar(&gateway, "gateway", "", "gateway for --static (default: the segment's router)")
	f.StringSliceVar(&dns, "dns", nil, "DNS servers (default: the segment's)")
	return c
}

func machineRejectCmd(o *cliOptions) *cobra.Command {
	var reason string
	c := &cobra.Command{
		Use:   "reject MAC --reason TEXT",
		Short: "Reject an inventoried machine (it gets no boot offer until deleted)",
		Args:  args(1, "MAC"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if reason == "" {
				return usageErr("--reason is required")
			}
			m, err := o.client().Reject(cmd.Context(), a[0], reason)
			return o.report(cmd, m, err, "rejected")
		},
	}
	c.Flags().StringVar(&reason, "reason", "", "why (required; recorded in the audit log)")
	return c
}

func machineSimpleCmd(o *cliOptions, verb, short string) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " MAC",
		Short: short,
		Args:  args(1, "MAC"),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl := o.client()
			switch verb {
			case "rediscover":
				m, err := cl.Rediscover(cmd.Context(), a[0])
				return o.report(cmd, m, err, "sent back to discovery")
			case "retry":
				m, err := cl.Retry(cmd.Context(), a[0])
				return o.report(cmd, m, err, "retrying")
			}
			if err := cl.DeleteMachine(cmd.Context(), a[0]); err != nil {
				return apiErr(err)
			}
			if o.json() {
				return writeJSON(cmd.OutOrStdout(), map[string]string{"deleted": a[0]})
			}
			textf(cmd.OutOrStdout(), "deleted %s\n", a[0])
			return nil
		},
	}
}

func (o *cliOptions) report(cmd *cobra.Command, m api.Machine, err error, what string) error {
	if err != nil {
		return apiErr(err)
	}
	if o.json() {
		return writeJSON(cmd.OutOrStdout(), m)
	}
	textf(cmd.OutOrStdout(), "%s %s: %s\n", what, m.MAC, m.State)
	return nil
}

func machineWatchCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "watch [MAC]",
		Short: "Print machine changes as they happen (until interrupted)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, a []string) error {
			mac := ""
			if len(a) == 1 {
				mac = a[0]
			}
			w := cmd.OutOrStdout()
			err := o.client().Watch(cmd.Context(), mac, func(ev client.Event) error {
				if o.json() {
					if ev.Resync != nil {
						return writeJSONLine(w, map[string]any{"type": "resync", "reason": ev.Resync.Reason})
					}
					return writeJSONLine(w, ev.Machine)
				}
				if ev.Resync != nil {
					_, err := textf(w, "%s resync: %s\n", time.Now().Format(time.TimeOnly), ev.Resync.Reason)
					return err
				}
				m := ev.Machine.Machine
				_, err := textf(w, "%s %-8s %s %-12s %s %s\n", time.Now().Format(time.TimeOnly), ev.Machine.Type, m.MAC, stateCell(m), m.Hostname, progress(m))
				return err
			})
			if cmd.Context().Err() != nil {
				return nil // interrupted: the normal end of a watch
			}
			return apiErr(err)
		},
	}
}
