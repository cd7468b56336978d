package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/api/client"
)

func auditCmd(o *cliOptions) *cobra.Command {
	var ao client.AuditOptions
	var since, until string
	var all bool
	c := &cobra.Command{
		Use:   "audit",
		Short: "Show the audit log (newest first)",
		Long:  "Who did what: every machine change, approval, rejection and token change, filtered by machine, actor, action and time.",
		Args:  args(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if ao.Since, err = parseWhen("since", since); err != nil {
				return err
			}
			if ao.Until, err = parseWhen("until", until); err != nil {
				return err
			}
			cl := o.client()
			var items []api.AuditEntry
			var page api.AuditList
			for {
				if page, err = cl.ListAudit(cmd.Context(), ao); err != nil {
					return apiErr(err)
				}
				items = append(items, page.Items...)
				if !all || page.NextCursor == "" {
					break
				}
				ao.Cursor = page.NextCursor
			}
			if o.json() {
				page.Items = items
				if all {
					page.NextCursor = ""
				}
				return writeJSON(cmd.OutOrStdout(), page)
			}
			rows := make([][]string, 0, len(items))
			for _, e := range items {
				rows = append(rows, []string{e.Time.Local().Format(time.DateTime), e.MAC, e.Actor, e.Action, e.Detail})
			}
			if err := table(cmd.OutOrStdout(), []string{"TIME", "MAC", "ACTOR", "ACTION", "DETAIL"}, rows); err != nil {
				return err
			}
			if page.NextCursor != "" {
				textf(cmd.ErrOrStderr(), "(more entries: --all, or --cursor %s)\n", page.NextCursor)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&ao.MAC, "mac", "", "only this machine")
	f.StringVar(&ao.Actor, "actor", "", "only this actor (token:<name>, agent:<mac>, dhcp, system)")
	f.StringVar(&ao.Action, "action", "", "only this action (approve, reject, register, …)")
	f.StringVar(&since, "since", "", "entries at or after (RFC 3339, or a duration like 2h meaning that long ago)")
	f.StringVar(&until, "until", "", "entries before (RFC 3339 or duration)")
	f.StringVar(&ao.Cursor, "cursor", "", "continue after this entry id")
	f.IntVar(&ao.Limit, "limit", 100, "entries per page")
	f.BoolVar(&all, "all", false, "fetch every page")
	return c
}

func tokensCmd(o *cliOptions) *cobra.Command {
	c := &cobra.Command{Use: "tokens", Short: "Manage admin API tokens (admin only)",
		Long: "API tokens authenticate the CLI, the dashboard and automation. Role admin may change everything; role viewer may read everything and change nothing. Only a hash of each token is stored: the secret is shown once, at creation."}
	var role string
	create := &cobra.Command{Use: "create NAME --role admin|viewer", Short: "Create a token and print its secret once", Args: args(1, "NAME"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if role != "admin" && role != "viewer" {
				return usageErr("--role must be admin or viewer")
			}
			t, err := o.client().CreateToken(cmd.Context(), a[0], role)
			if err != nil {
				return apiErr(err)
			}
			if o.json() {
				return writeJSON(cmd.OutOrStdout(), t)
			}
			textf(cmd.OutOrStdout(), "%s\n", t.Secret)
			textf(cmd.ErrOrStderr(), "token %s (id %s, role %s): store the secret above now, it is not shown again\n", t.Name, t.ID, t.Role)
			return nil
		}}
	create.Flags().StringVar(&role, "role", "viewer", "admin or viewer")
	c.AddCommand(
		listCmd(o, "List tokens", (*client.Client).ListTokens, []string{"ID", "NAME", "ROLE", "CREATED"},
			func(t api.APIToken) []string {
				return []string{t.ID, t.Name, t.Role, t.CreatedAt.Local().Format(time.DateTime)}
			}),
		create,
		&cobra.Command{Use: "revoke ID", Short: "Revoke a token", Args: args(1, "ID"), RunE: func(cmd *cobra.Command, a []string) error {
			if err := o.client().RevokeToken(cmd.Context(), a[0]); err != nil {
				return apiErr(err)
			}
			if o.json() {
				return writeJSON(cmd.OutOrStdout(), map[string]string{"revoked": a[0]})
			}
			_, err := textf(cmd.OutOrStdout(), "revoked token %s\n", a[0])
			return err
		}},
	)
	return c
}
