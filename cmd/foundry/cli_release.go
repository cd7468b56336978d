package main

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/foundry-appliance/foundry/api"
)

// After approval a machine can be released (its disks wiped in discovery,
// then approved anew) or redeployed (installed again with its approval);
// bind hands an approved install to a new boot. Each command says what
// the operator does next, because each waits for the machine to boot.

func machineReleaseCmd(o *cliOptions) *cobra.Command {
	var full, secure bool
	c := &cobra.Command{
		Use:   "release MAC [--full | --secure-erase]",
		Short: "Release a machine: wipe its disks at its next discovery boot, then approve it again",
		Long: "Release a machine you are done with. Its boot sessions end and it is discovered again. " +
			"Next, boot it into discovery (power-cycle it; it PXE-boots the discovery OS): the agent of every registration " +
			"wipes the machine's fixed disks — partition tables, signatures and the first and last MiB of each and of each partition, " +
			"or every byte with --full (slow: a whole-disk overwrite), or with --secure-erase the drive's own erase (NVMe: Format NVM " +
			"with user-data erase; a disk that has none is overwritten in full) — and reports what it did. `foundry machines show MAC` shows the pending wipe " +
			"and which registration has wiped. Then approve it as a new machine, with the token its console shows: only a " +
			"registration that has wiped can be approved.",
		Args: args(1, "MAC"),
		RunE: func(cmd *cobra.Command, a []string) error {
			m, err := o.client().ReleaseWith(cmd.Context(), a[0], api.ReleaseRequest{Full: full, SecureErase: secure})
			if err != nil {
				return apiErr(err)
			}
			if o.json() {
				return writeJSON(cmd.OutOrStdout(), m)
			}
			_, err = textf(cmd.OutOrStdout(), "released %s: %s\nnext: boot it into discovery; its agent wipes %s, then approve it again with its console token\n",
				m.MAC, m.State, eraseScope(full, secure))
			return err
		},
	}
	c.Flags().BoolVar(&full, "full", false, "overwrite every byte of every fixed disk (slow), not only partition tables, signatures and the first and last MiB")
	c.Flags().BoolVar(&secure, "secure-erase", false, "have each fixed disk erase itself (NVMe Format with user-data erase); a disk that cannot is overwritten in full")
	return c
}

func machineRedeployCmd(o *cliOptions) *cobra.Command {
	var profile string
	c := &cobra.Command{
		Use:   "redeploy MAC [--profile NAME]",
		Short: "Install a ready machine again (same or another profile), keeping its approval",
		Long: "Install a ready machine again. The approval stays: host name, cluster, disk, SSH keys and network. " +
			"--profile changes what is installed (default: the machine's current profile). " +
			"With a netboot profile the machine is ready at once: its next PXE boot gets the production script. " +
			"With an image profile it waits for a new boot: boot the machine into discovery (power-cycle it), read the token " +
			"its console shows, and bind that boot with `foundry machines bind MAC --console-token TOKEN`; its agent then " +
			"writes the image, and the machine is ready when the installed system reports its first boot.",
		Args: args(1, "MAC"),
		RunE: func(cmd *cobra.Command, a []string) error {
			m, err := o.client().Redeploy(cmd.Context(), a[0], profile)
			if err != nil {
				return apiErr(err)
			}
			if o.json() {
				return writeJSON(cmd.OutOrStdout(), m)
			}
			w := cmd.OutOrStdout()
			if _, err := textf(w, "redeployed %s with profile %s: %s\n", m.MAC, m.Profile, m.State); err != nil {
				return err
			}
			if m.State == "ready" {
				_, err = textf(w, "next: its next PXE boot gets the production script\n")
				return err
			}
			_, err = textf(w, "next: boot it into discovery, then bind that boot: foundry machines bind %s --console-token TOKEN (the token its console shows)\n", m.MAC)
			return err
		},
	}
	c.Flags().StringVar(&profile, "profile", "", "profile to install (default: the machine's current profile)")
	return c
}

func machineBindCmd(o *cliOptions) *cobra.Command {
	var tok string
	c := &cobra.Command{
		Use:   "bind MAC --console-token FOUNDRY-XXXX-XXXX-XXXX",
		Short: "Hand an approved machine's install to a new boot, named by the token on its console",
		Long: "Bind a new boot of an approved machine. An approval is bound to one boot (registration); when that boot is gone — " +
			"the machine was redeployed, or it rebooted during the install — boot it into discovery and type the token its console " +
			"shows here. That registration takes over the install with the approval as it is, and the boot it replaces may not " +
			"install or report any more. Wrong tokens count against each registration as at approval (5 lock it).",
		Args: args(1, "MAC"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if tok == "" {
				return usageErr("--console-token is required")
			}
			m, err := o.client().Bind(cmd.Context(), a[0], tok)
			if err != nil {
				return apiErr(err)
			}
			if o.json() {
				return writeJSON(cmd.OutOrStdout(), m)
			}
			w := cmd.OutOrStdout()
			what := "its new boot"
			if r, ok := boundRegistration(m); ok {
				what = "registration " + registrationText(r)
			}
			if _, err := textf(w, "bound %s to %s: %s; its agent now installs profile %s\n", m.MAC, what, m.State, m.Profile); err != nil {
				return err
			}
			if m.MACConflict {
				_, err = textf(w, "%s\n", conflictWarning(m))
			}
			return err
		},
	}
	c.Flags().StringVar(&tok, "console-token", "", "the registration token the machine's console shows in this boot (required)")
	return c
}

// eraseScope is wipeScope, or the drives' own erase when secure.
func eraseScope(full, secure bool) string {
	if secure {
		return "every fixed disk with the drive's own secure erase (overwriting every byte of a disk that has none)"
	}
	return wipeScope(full)
}

func wipeScope(full bool) string {
	if full {
		return "every byte of every fixed disk"
	}
	return "the partition tables, signatures and first and last MiB of every fixed disk"
}

// wipeText describes a released machine's pending wipe and which of its
// registrations have wiped (only those can be approved).
func wipeText(m api.Machine) string {
	if m.Wipe == nil {
		return ""
	}
	s := "pending: " + eraseScope(m.Wipe.Full, m.Wipe.SecureErase) + " at the next discovery boot"
	var wiped []string
	for _, r := range m.Registrations {
		if r.WipedAt != nil {
			wiped = append(wiped, shortID(r.ID))
		}
	}
	if len(wiped) == 0 {
		return s + "; no registration has wiped yet"
	}
	return s + "; wiped by registration " + strings.Join(wiped, ", ") + ": approve it with its console token"
}

// installText says where an image install stands after the image is
// written: the machine boots its disk, and is ready only once the
// installed system reports.
func installText(m api.Machine) string {
	if m.Installed && m.State == "provisioning" {
		return "yes — waiting for the installed system's first-boot report"
	}
	return ""
}

// progressRow is show's Progress: the rows Installed and Wipe say more
// than ls's short column where they apply.
func progressRow(m api.Machine) string {
	if installText(m) != "" || m.Wipe != nil {
		return ""
	}
	return progress(m)
}

// currentFirstBoot is the first-boot report of the install the machine
// runs now: a ready machine's, reported after its approval. An older one
// (a netboot approval since, or a release) describes a system that is
// gone or being wiped.
func currentFirstBoot(m api.Machine) *api.FirstBoot {
	fb := m.FirstBoot
	if fb == nil || m.State != "ready" || m.Approval != nil && fb.At.Before(m.Approval.ApprovedAt) {
		return nil
	}
	return fb
}

// readyText is when the machine became ready and how long the deploy
// took from approval.
func readyText(m api.Machine) string {
	if m.ReadyAt == nil || m.State != "ready" {
		return ""
	}
	s := m.ReadyAt.Format(time.RFC3339)
	if d := deployDuration(m); d != "" {
		s += " (" + d + " after approval)"
	}
	return s
}

func deployDuration(m api.Machine) string {
	if m.DeploySeconds == nil || *m.DeploySeconds < 0 {
		return ""
	}
	return (time.Duration(*m.DeploySeconds * float64(time.Second))).Round(time.Second).String()
}

func firstBootText(m api.Machine) string {
	fb := currentFirstBoot(m)
	if fb == nil {
		return ""
	}
	s := fb.At.Format(time.RFC3339)
	if fb.Hostname != "" {
		s += " as " + fb.Hostname
	}
	return s
}

// knownHosts are the current first-boot report's host keys as known_hosts lines:
// the host name and the address the machine is reached at (its static
// address, else the last one seen), then the key.
func knownHosts(m api.Machine) []string {
	fb := currentFirstBoot(m)
	if fb == nil || len(fb.SSHHostKeys) == 0 {
		return nil
	}
	var names []string
	if h := fb.Hostname; h != "" {
		names = append(names, h)
	} else if m.Hostname != "" {
		names = append(names, m.Hostname)
	}
	ip := m.IP
	if a := m.Approval; a != nil && a.Network.Mode == "static" {
		if p, err := netip.ParsePrefix(a.Network.Address); err == nil {
			ip = p.Addr().String()
		}
	}
	if ip != "" {
		names = append(names, ip)
	}
	host := strings.Join(names, ",")
	out := make([]string, 0, len(fb.SSHHostKeys))
	for _, k := range fb.SSHHostKeys {
		out = append(out, strings.TrimSpace(host+" "+k))
	}
	return out
}

// printHostKeys writes the known_hosts lines under a heading; each line
// goes through printable (the keys come from the machine).
func printHostKeys(w io.Writer, m api.Machine) error {
	lines := knownHosts(m)
	if len(lines) == 0 {
		return nil
	}
	if _, err := fmt.Fprintf(w, "\nSSH host keys from the first boot (known_hosts lines):\n"); err != nil {
		return err
	}
	for _, l := range lines {
		if _, err := textf(w, "%s\n", l); err != nil {
			return err
		}
	}
	return nil
}
