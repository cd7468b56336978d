package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

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
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var name, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data != "" {
				if err := dispatch(name, data, fn); err != nil {
					return err
				}
			}
			name, data = "", ""
		case strings.HasPrefix(line, "event:"):
			name = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			data += strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read event stream: %w", err)
	}
	return nil
}

func dispatch(name, data string, fn func(Event) error) error {
	ev := Event{Name: name}
	switch name {
	case "machine":
		ev.Machine = &api.MachineEvent{}
		if err := json.Unmarshal([]byte(data), ev.Machine); err != nil {
			return fmt.Errorf("decode machine event: %w", err)
		}
	case "resync":
		ev.Resync = &api.Resync{}
		if err := json.Unmarshal([]byte(data), ev.Resync); err != nil {
			return fmt.Errorf("decode resync event: %w", err)
		}
	default:
		return nil
	}
	return fn(ev)
}
