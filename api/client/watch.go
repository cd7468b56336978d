package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/foundry-appliance/foundry/api"
)

// Event is one message of the event stream.
type Event struct {
	// Name is "machine", "ping" or "resync".
	Name string
	// Machine is set for "machine" events.
	Machine *api.MachineEvent
	// Resync is set for "resync" events: the client missed changes and
	// should reload what it shows.
	Resync *api.Resync
	// ID is the stream's last event ID (its "id" field), empty while the
	// server has sent none.
	ID string
}

// Watch streams machine changes (only mac's when mac is not empty) and
// calls fn for each event until ctx ends, the server closes the stream, or
// fn returns an error, which Watch then returns. Ping events are not
// passed to fn.
func (c *Client) Watch(ctx context.Context, mac string, fn func(Event) error) error {
	q := url.Values{}
	set(q, "mac", mac)
	req, err := c.newRequest(ctx, http.MethodGet, "/events", q, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.httpClient(true).Do(req)
	if err != nil {
		return fmt.Errorf("open event stream: %w", err)
	}
	defer resp.Body.Close()
	if err := checkStatus(resp); err != nil {
		return err
	}
	events := NewEventReader(resp.Body)
	for {
		ev, err := events.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read event stream: %w", err)
		}
		if err := dispatch(ev, fn); err != nil {
			return err
		}
	}
}

func dispatch(e RawEvent, fn func(Event) error) error {
	ev := Event{Name: e.Type, ID: e.ID}
	switch e.Type {
	case "machine":
		ev.Machine = &api.MachineEvent{}
		if err := json.Unmarshal([]byte(e.Data), ev.Machine); err != nil {
			return fmt.Errorf("decode machine event: %w", err)
		}
	case "resync":
		ev.Resync = &api.Resync{}
		if err := json.Unmarshal([]byte(e.Data), ev.Resync); err != nil {
			return fmt.Errorf("decode resync event: %w", err)
		}
	default:
		return nil
	}
	return fn(ev)
}
