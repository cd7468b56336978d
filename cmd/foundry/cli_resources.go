package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/api/client"
)

func clustersCmd(o *cliOptions) *cobra.Command {
	c := &cobra.Command{Use: "clusters", Short: "Manage clusters (groups of machines with defaults)",
		Long: "A cluster groups machines and names their default profile. A cluster in use cannot be deleted."}
	var fields api.ClusterFields
	flags := func(cmd *cobra.Command) *cobra.Command {
		cmd.Flags().StringVar(&fields.Description, "description", "", "description")
		cmd.Flags().StringVar(&fields.DefaultProfile, "default-profile", "", "profile used when an approval names none")
		cmd.Flags().BoolVar(&fields.BMCUser, "bmc-user", false, "every approval into the cluster has the discovery OS create a BMC user for the appliance")
		return cmd
	}
	print := func(cmd *cobra.Command, cl api.Cluster) error {
		if o.json() {
			return writeJSON(cmd.OutOrStdout(), cl)
		}
		return fields2(cmd, [][2]string{{"Name", cl.Name}, {"Description", cl.Description}, {"Default profile", cl.DefaultProfile}, {"BMC user at approval", yesNo(cl.BMCUser)},
			{"Created", cl.CreatedAt.Format(time.RFC3339)}, {"Updated", cl.UpdatedAt.Format(time.RFC3339)}})
	}
	c.AddCommand(
		listCmd(o, "List clusters", (*client.Client).ListClusters, []string{"NAME", "DEFAULT PROFILE", "DESCRIPTION"},
			func(cl api.Cluster) []string { return []string{cl.Name, cl.DefaultProfile, cl.Description} }),
		showCmd(o, "Show a cluster", (*client.Client).GetCluster, print),
		flags(&cobra.Command{Use: "create NAME", Short: "Create a cluster", Args: args(1, "NAME"), RunE: func(cmd *cobra.Command, a []string) error {
			cl, err := o.client().CreateCluster(cmd.Context(), api.ClusterCreate{Name: a[0], ClusterFields: fields})
			if err != nil {
				return apiErr(err)
			}
			return print(cmd, cl)
		}}),
		flags(&cobra.Command{Use: "update NAME", Short: "Change a cluster (only the flags given)", Args: args(1, "NAME"), RunE: func(cmd *cobra.Command, a []string) error {
			cur, err := o.client().GetCluster(cmd.Context(), a[0])
			if err != nil {
				return apiErr(err)
			}
			next := api.ClusterFields{Description: cur.Description, DefaultProfile: cur.DefaultProfile, BMCUser: cur.BMCUser}
			if cmd.Flags().Changed("description") {
				next.Description = fields.Description
			}
			if cmd.Flags().Changed("default-profile") {
				next.DefaultProfile = fields.DefaultProfile
			}
			if cmd.Flags().Changed("bmc-user") {
				next.BMCUser = fields.BMCUser
			}
			cl, err := o.client().UpdateCluster(cmd.Context(), a[0], next)
			if err != nil {
				return apiErr(err)
			}
			return print(cmd, cl)
		}}),
		deleteCmd(o, "cluster", (*client.Client).DeleteCluster),
	)
	return c
}

func fields2(cmd *cobra.Command, kv [][2]string) error { return fields(cmd.OutOrStdout(), kv) }

func profilesCmd(o *cliOptions) *cobra.Command {
	c := &cobra.Command{Use: "profiles", Short: "Manage profiles (how machines go into production)",
		Long: "A netboot profile gives every PXE boot a production kernel (or iPXE script); an image profile has the agent write an image to disk. A profile in use cannot be deleted."}
	var f api.ProfileFields
	var scriptFile string
	flags := func(cmd *cobra.Command) *cobra.Command {
		fl := cmd.Flags()
		fl.StringVar(&f.Kind, "kind", "", "netboot or image")
		fl.StringVar(&f.Description, "description", "", "description")
		fl.StringVar(&f.Kernel, "kernel", "", "netboot: kernel URL or /path on the appliance")
		fl.StringVar(&f.Initrd, "initrd", "", "netboot: initrd URL or /path")
		fl.StringVar(&f.Cmdline, "cmdline", "", "netboot: kernel command line")
		fl.StringVar(&scriptFile, "script-file", "", "netboot: file with a whole iPXE script (instead of kernel/initrd)")
		fl.StringVar(&f.ImageURL, "image-url", "", "image: URL of the raw/.gz/.zst/.xz image")
		fl.StringVar(&f.ImageSHA256, "image-sha256", "", "image: SHA-256 of the image file")
		fl.StringVar(&f.Image, "image", "", "image: name of a library image (instead of --image-url; see foundry images)")
		return cmd
	}
	readScript := func() error {
		if scriptFile == "" {
			return nil
		}
		b, err := os.ReadFile(scriptFile)
		if err != nil {
			return usageErr("--script-file: %v", err)
		}
		f.Script = string(b)
		return nil
	}
	print := func(cmd *cobra.Command, p api.Profile) error {
		if o.json() {
			return writeJSON(cmd.OutOrStdout(), p)
		}
		script := ""
		if p.Script != "" {
			script = fmt.Sprintf("(%d bytes)", len(p.Script))
		}
		return fields2(cmd, [][2]string{{"Name", p.Name}, {"Kind", p.Kind}, {"Description", p.Description},
			{"Kernel", p.Kernel}, {"Initrd", p.Initrd}, {"Cmdline", p.Cmdline}, {"Script", script},
			{"Library image", p.Image}, {"Image URL", p.ImageURL}, {"Image SHA-256", p.ImageSHA256},
			{"Created", p.CreatedAt.Format(time.RFC3339)}, {"Updated", p.UpdatedAt.Format(time.RFC3339)}})
	}
	c.AddCommand(
		listCmd(o, "List profiles", (*client.Client).ListProfiles, []string{"NAME", "KIND", "BOOTS", "DESCRIPTION"},
			func(p api.Profile) []string {
				what := p.Kernel
				if p.Kind == "image" {
					what = p.ImageURL
					if p.Image != "" {
						what = "image " + p.Image
					}
				} else if p.Script != "" {
					what = "(iPXE script)"
				}
				return []string{p.Name, p.Kind, what, p.Description}
			}),
		showCmd(o, "Show a profile", (*client.Client).GetProfile, print),
		flags(&cobra.Command{Use: "create NAME --kind netboot|image", Short: "Create a profile", Args: args(1, "NAME"), RunE: func(cmd *cobra.Command, a []string) error {
			if err := readScript(); err != nil {
				return err
			}
			p, err := o.client().CreateProfile(cmd.Context(), api.ProfileCreate{Name: a[0], ProfileFields: f})
			if err != nil {
				return apiErr(err)
			}
			return print(cmd, p)
		}}),
		flags(&cobra.Command{Use: "update NAME", Short: "Change a profile (only the flags given)", Args: args(1, "NAME"), RunE: func(cmd *cobra.Command, a []string) error {
			cur, err := o.client().GetProfile(cmd.Context(), a[0])
			if err != nil {
				return apiErr(err)
			}
			if err := readScript(); err != nil {
				return err
			}
			next := api.ProfileFields{Kind: cur.Kind, Description: cur.Description, Kernel: cur.Kernel, Initrd: cur.Initrd,
				Cmdline: cur.Cmdline, Script: cur.Script, ImageURL: cur.ImageURL, ImageSHA256: cur.ImageSHA256, Image: cur.Image}
			for flag, dst := range map[string]*string{"kind": &next.Kind, "description": &next.Description, "kernel": &next.Kernel,
				"initrd": &next.Initrd, "cmdline": &next.Cmdline, "image-url": &next.ImageURL, "image-sha256": &next.ImageSHA256, "image": &next.Image} {
				if cmd.Flags().Changed(flag) {
					v, _ := cmd.Flags().GetString(flag)
					*dst = v
				}
			}
			if cmd.Flags().Changed("script-file") {
				next.Script = f.Script
			}
			// A library image and an image URL replace each other.
			if cmd.Flags().Changed("image") && next.Image != "" && !cmd.Flags().Changed("image-url") {
				next.ImageURL, next.ImageSHA256 = "", ""
			}
			if cmd.Flags().Changed("image-url") && next.ImageURL != "" && !cmd.Flags().Changed("image") {
				next.Image = ""
			}
			p, err := o.client().UpdateProfile(cmd.Context(), a[0], next)
			if err != nil {
				return apiErr(err)
			}
			return print(cmd, p)
		}}),
		deleteCmd(o, "profile", (*client.Client).DeleteProfile),
	)
	return c
}

// The subcommands that clusters, profiles and tokens share. Each takes a
// client method (a method expression), since the client exists only once
// the flags are parsed.

// listCmd is "ls": the records as JSON with -o json, else a table.
func listCmd[T any](o *cliOptions, short string, list func(*client.Client, context.Context) ([]T, error),
	header []string, row func(T) []string) *cobra.Command {
	return &cobra.Command{Use: "ls", Short: short, Args: args(0), RunE: func(cmd *cobra.Command, _ []string) error {
		items, err := list(o.client(), cmd.Context())
		if err != nil {
			return apiErr(err)
		}
		if o.json() {
			return writeJSON(cmd.OutOrStdout(), items)
		}
		rows := [][]string{}
		for _, it := range items {
			rows = append(rows, row(it))
		}
		return table(cmd.OutOrStdout(), header, rows)
	}}
}

// showCmd is "show NAME": one record, printed by print.
func showCmd[T any](o *cliOptions, short string, get func(*client.Client, context.Context, string) (T, error),
	print func(*cobra.Command, T) error) *cobra.Command {
	return &cobra.Command{Use: "show NAME", Short: short, Args: args(1, "NAME"), RunE: func(cmd *cobra.Command, a []string) error {
		v, err := get(o.client(), cmd.Context(), a[0])
		if err != nil {
			return apiErr(err)
		}
		return print(cmd, v)
	}}
}

// deleteCmd is "delete NAME" of a record that the API refuses to delete
// while it is in use.
func deleteCmd(o *cliOptions, kind string, del func(*client.Client, context.Context, string) error) *cobra.Command {
	return &cobra.Command{Use: "delete NAME", Short: "Delete an unused " + kind, Args: args(1, "NAME"), RunE: func(cmd *cobra.Command, a []string) error {
		if err := del(o.client(), cmd.Context(), a[0]); err != nil {
			return apiErr(err)
		}
		if o.json() {
			return writeJSON(cmd.OutOrStdout(), map[string]string{"deleted": a[0]})
		}
		_, err := textf(cmd.OutOrStdout(), "deleted %s %s\n", kind, a[0])
		return err
	}}
}
