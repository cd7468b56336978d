package appliance

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/foundry-appliance/foundry/api/client"
	"github.com/foundry-appliance/foundry/appliance/console"
	"github.com/foundry-appliance/foundry/lifecycle"
)

// fleet is the part of the status page that comes from `foundry serve`'s
// own API: machines by state and the latest audit entries. The init asks
// like any client, with the admin token from data_dir, so that the page
// shows what the dashboard shows.
type fleet struct {
	// BaseURL is serve's API on loopback.
	BaseURL string
	// TokenFile is data_dir/admin-token, written by serve at its first
	// start.
	TokenFile string
}

func (f fleet) client() (*client.Client, error) {
	tok, err := os.ReadFile(f.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("admin token not written yet: %w", err)
	}
	return &client.Client{BaseURL: f.BaseURL, Token: strings.TrimSpace(string(tok))}, nil
}

// token returns the admin token, for the operator who asked at the console.
func (f fleet) token() (string, error) {
	tok, err := os.ReadFile(f.TokenFile)
	if err != nil {
		return "", fmt.Errorf("read the admin token: %w", err)
	}
	return strings.TrimSpace(string(tok)), nil
}

// fetch fills s.Machines and s.Events.
func (f fleet) fetch(ctx context.Context, s *console.Status) error {
	c, err := f.client()
	if err != nil {
		return err
	}
	list, err := c.ListMachines(ctx, client.ListOptions{Limit: 1})
	if err != nil {
		return fmt.Errorf("API not answering: %w", err)
	}
	s.Machines = nil
	for _, st := range lifecycle.States() {
		if n := list.Counts[st.String()]; n > 0 {
			s.Machines = append(s.Machines, console.StateCount{State: st.String(), Count: n})
		}
	}
	audit, err := c.ListAudit(ctx, client.AuditOptions{Limit: console.MaxEvents})
	if err != nil {
		return fmt.Errorf("API not answering: %w", err)
	}
	s.Events = nil
	for _, e := range audit.Items {
		text := e.Action
		if e.MAC != "" {
			text += " " + e.MAC
		}
		if e.Detail != "" {
			text += ": " + e.Detail
		}
		text += " (" + e.Actor + ")"
		s.Events = append(s.Events, console.Event{Time: e.Time, Text: text})
	}
	return nil
}
