package main

import (
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/foundry-appliance/foundry/api"
)

// machineBootCmd shows or changes a machine's boot settings. The API
// replaces them whole, so the command reads them first and changes only
// what a flag names.
func machineBootCmd(o *cliOptions) *cobra.Command {
	var menu, def, uefi string
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "boot MAC [--menu on|off] [--menu-timeout 10s] [--menu-default local] [--uefi-binary snponly.efi]",
		Short: "Show or set a machine's iPXE boot menu and UEFI binary",
		Long: "Without flags, shows the machine's boot settings. --menu on makes its production (or local-disk) boot an iPXE menu " +
			"of production, rediscover, local disk and iPXE shell that boots --menu-default after --menu-timeout " +
			"(0: the appliance's default). --uefi-binary picks ipxe.efi or snponly.efi for UEFI firmware; 'segment' restores the segment's choice.",
		Args: args(1, "MAC"),
		RunE: func(cmd *cobra.Command, a []string) error {
			cl := o.client()
			m, err := cl.GetMachine(cmd.Context(), a[0])
			if err != nil {
				return apiErr(err)
			}
			set := api.BootSettings{Menu: m.Menu, UEFIBinary: m.UEFIBinary}
			f := cmd.Flags()
			if f.Changed("menu") {
				switch strings.ToLower(menu) {
				case "on", "true", "yes":
					set.Menu.Enabled = true
				case "off", "false", "no":
					set.Menu.Enabled = false
				default:
					return usageErr("--menu: want on or off, not %q", menu)
				}
			}
			if f.Changed("menu-timeout") {
				if timeout%time.Second != 0 {
					return usageErr("--menu-timeout: want whole seconds, not %s", timeout)
				}
				set.Menu.TimeoutSeconds = int(timeout / time.Second)
			}
			if f.Changed("menu-default") {
				set.Menu.Default = def
			}
			if f.Changed("uefi-binary") {
				set.UEFIBinary = uefi
				if uefi == "segment" {
					set.UEFIBinary = ""
				}
			}
			if changedAny(cmd, "menu", "menu-timeout", "menu-default", "uefi-binary") {
				if m, err = cl.SetBoot(cmd.Context(), m.MAC, set); err != nil {
					return apiErr(err)
				}
			}
			if o.json() {
				return writeJSON(cmd.OutOrStdout(), m)
			}
			return printBoot(cmd, m)
		},
	}
	f := c.Flags()
	f.StringVar(&menu, "menu", "", "on: the production boot shows the iPXE menu; off: it boots directly")
	f.DurationVar(&timeout, "menu-timeout", 0, "how long the menu waits before booting its default item, 0..10m (0: the appliance's default)")
	f.StringVar(&def, "menu-default", "", "item booted after the timeout: production, rediscover, local or shell")
	f.StringVar(&uefi, "uefi-binary", "", "UEFI iPXE binary: ipxe.efi, snponly.efi, or segment (the segment's choice)")
	return c
}

func changedAny(cmd *cobra.Command, names ...string) bool {
	for _, n := range names {
		if cmd.Flags().Changed(n) {
			return true
		}
	}
	return false
}

func printBoot(cmd *cobra.Command, m api.Machine) error {
	timeout := "appliance default"
	if m.Menu.TimeoutSeconds > 0 {
		timeout = (time.Duration(m.Menu.TimeoutSeconds) * time.Second).String()
	}
	menu := "off"
	if m.Menu.Enabled {
		menu = "on"
	}
	uefi := m.UEFIBinary
	if uefi == "" {
		uefi = "segment's choice"
	}
	return fields(cmd.OutOrStdout(), [][2]string{
		{"MAC", m.MAC}, {"Hostname", m.Hostname}, {"State", m.State},
		{"Menu", menu},
		{"Menu timeout", timeout}, {"Menu default", m.Menu.Default}, {"UEFI binary", uefi},
	})
}
