package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// machineScriptCmd prints the boot script a machine would get now.
func machineScriptCmd(o *cliOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "script MAC",
		Short: "Show the iPXE script the machine gets on its next network boot (read-only)",
		Long: "Show the iPXE script the machine gets on its next network boot. This is a preview: it never issues " +
			"a boot nonce, so a discovery script shows NONCE-ISSUED-AT-BOOT and the nonce the machine holds stays valid. " +
			"The script goes to stdout; with a table output its kind goes to stderr first.",
		Args: args(1, "MAC"),
		RunE: func(cmd *cobra.Command, a []string) error {
			bs, err := o.client().BootScript(cmd.Context(), a[0])
			if err != nil {
				return apiErr(err)
			}
			if o.json() {
				return writeJSON(cmd.OutOrStdout(), bs)
			}
			if bs.Error != "" {
				textf(cmd.ErrOrStderr(), "# %s: no script can be rendered (%s); the machine gets:\n", bs.MAC, bs.Error)
			} else {
				textf(cmd.ErrOrStderr(), "# %s: %s script\n", bs.MAC, bs.Kind)
			}
			_, err = io.WriteString(cmd.OutOrStdout(), printableLines(bs.Text))
			return err
		},
	}
}

// machineExportCmd writes Tinkerbell Hardware YAML.
func machineExportCmd(o *cliOptions) *cobra.Command {
	var all bool
	var namespace string
	c := &cobra.Command{
		Use:   "export MAC | --all",
		Short: "Export approved machines as Tinkerbell Hardware YAML (tinkerbell.org/v1alpha1)",
		Long: "Write Tinkerbell Hardware objects as YAML to stdout: of one approved machine, or with --all of every " +
			"approved, provisioning, ready or failed machine (one document each, ready for kubectl apply -f -). " +
			"The output is always YAML; --output does not apply.",
		RunE: func(cmd *cobra.Command, a []string) error {
			mac := ""
			switch {
			case all && len(a) == 0:
			case !all && len(a) == 1:
				mac = a[0]
			default:
				return usageErr("want one MAC or --all")
			}
			b, err := o.client().ExportTinkerbell(cmd.Context(), mac, namespace)
			if err != nil {
				return apiErr(err)
			}
			if len(b) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "no approved machines to export")
				return nil
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	c.Flags().BoolVar(&all, "all", false, "every approved machine")
	c.Flags().StringVar(&namespace, "namespace", "", "Kubernetes namespace for metadata.namespace (default none)")
	return c
}
