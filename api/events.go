package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/sse"
)

type eventsIn struct {
	MAC string `query:"mac" pattern:"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$" example:"52:54:00:12:34:56" doc:"Only this machine's changes"`
}

func (s *Server) keepAlive() time.Duration {
	if s.KeepAlive > 0 {
		return s.KeepAlive
	}
	return 15 * time.Second
}

// tokenRecheck is how often an open stream asks the store whether the
// token that opened it still exists, between events: it bounds how long a
// revoked token's stream stays open when nothing happens. Every event is
// checked as well before it is sent, so a revoked token never receives an
// event committed after its revocation. One key lookup per stream every
// two seconds costs nothing next to the stream itself.
const tokenRecheck = 2 * time.Second

func (s *Server) registerEvents() {
	op := huma.Operation{
		OperationID: "watch-events", Method: http.MethodGet, Path: Prefix + "/events",
		Summary: "Stream machine changes (server-sent events)", Tags: []string{"events"},
		Description: "Event `machine` carries each committed change ({type: created|updated|deleted, machine}); " +
			"`ping` keeps the stream open; `resync` means events were missed and the client must reload the machine list. " +
			"The stream opens with a ping.",
		Errors: []int{http.StatusUnprocessableEntity},
	}
	s.prepare(accessRead, &op)
	sse.Register(s.api, op, map[string]any{
		"machine": MachineEvent{},
		"ping":    Ping{},
		"resync":  Resync{},
	}, s.streamEvents)
}

func (s *Server) streamEvents(ctx context.Context, in *eventsIn, send sse.Sender) {
	filter := ""
	if in.MAC != "" {
		// The pattern on the parameter has already refused anything else.
		filter, _ = canonicalMAC(in.MAC)
	}
	who := caller(ctx)
	events, cancel := s.Store.Subscribe(256)
	defer func() { cancel() }()
	if send.Data(Ping{Time: s.now().UTC()}) != nil {
		return
	}
	tick := time.NewTicker(s.keepAlive())
	defer tick.Stop()
	recheck := time.NewTicker(tokenRecheck)
	defer recheck.Stop()
	revoked := func() bool {
		if s.stillAdmitted(who) {
			return false
		}
		s.log.Info("event stream closed: its api token was revoked", "actor", who.Actor)
		return true
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.stop:
			return
		case <-recheck.C:
			if revoked() {
				return
			}
		case <-tick.C:
			if revoked() || send.Data(Ping{Time: s.now().UTC()}) != nil {
				return
			}
		case ev, ok := <-events:
			if !ok {
				// The store dropped us for falling behind: tell the client
				// to reload, and listen again.
				cancel()
				events, cancel = s.Store.Subscribe(256)
				if revoked() || send.Data(Resync{Reason: "events were missed; reload the machine list"}) != nil {
					return
				}
				continue
			}
			if filter != "" && ev.Machine.MAC != filter {
				continue
			}
			if revoked() {
				return
			}
			msg := MachineEvent{Type: ev.Type, Machine: s.machineView(ev.Machine, false)}
			if send.Data(msg) != nil {
				return
			}
		}
	}
}
