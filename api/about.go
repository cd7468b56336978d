package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
)

// About says which build answers: after an upgrade (a newer appliance ISO
// booted on the same data disk) it is how an operator or a test sees the
// new version running over the old data.
type About struct {
	Version       string      `json:"version" example:"v0.4.0" doc:"The appliance build (foundry version)"`
	APIVersion    string      `json:"api_version" example:"1.0.0"`
	SchemaVersion int         `json:"schema_version,omitempty" example:"2" doc:"The database layout version, after any migration at start (absent while the store's backend is unavailable)"`
	Store         StoreStatus `json:"store"`
}

// StoreStatus is the health of the store's backend, for the dashboard's
// banner: an etcd cluster without quorum refuses every write.
type StoreStatus struct {
	Backend string `json:"backend" enum:"badger,etcd" doc:"Where the records are kept: badger (this appliance's disk) or etcd (shared by a fleet)"`
	Healthy bool   `json:"healthy" doc:"Whether the backend answers now (a quorum read on etcd)"`
	Error   string `json:"error,omitempty" doc:"Why it does not"`
}

// schemaVersioner is the part of a store that knows its layout version.
type schemaVersioner interface {
	SchemaVersion() (int, error)
}

// backendReporter is the part of a store that says where it keeps its
// records and whether that answers.
type backendReporter interface {
	Backend() string
	Healthy(context.Context) error
}

func (s *Server) registerAbout() {
	register(s, accessRead, huma.Operation{
		OperationID: "get-about", Method: http.MethodGet, Path: Prefix + "/about",
		Summary: "Show the appliance's version and database schema", Tags: []string{"appliance"},
	}, func(ctx context.Context, _ *struct{}) (*struct{ Body About }, error) {
		out := About{Version: s.Version, APIVersion: Version, Store: StoreStatus{Backend: "badger", Healthy: true}}
		if out.Version == "" {
			out.Version = "dev"
		}
		if br, ok := s.Store.(backendReporter); ok {
			out.Store.Backend = br.Backend()
			if err := br.Healthy(ctx); err != nil {
				// The rest cannot be read either; the answer says why.
				out.Store.Healthy, out.Store.Error = false, err.Error()
				return &struct{ Body About }{Body: out}, nil
			}
		}
		if sv, ok := s.Store.(schemaVersioner); ok {
			v, err := sv.SchemaVersion()
			if err != nil {
				return nil, s.storeErr(err, "schema version", "")
			}
			out.SchemaVersion = v
		}
		return &struct{ Body About }{Body: out}, nil
	})
}
