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
	Version       string `json:"version" example:"v0.4.0" doc:"The appliance build (foundry version)"`
	APIVersion    string `json:"api_version" example:"1.0.0"`
	SchemaVersion int    `json:"schema_version,omitempty" example:"2" doc:"The database layout version, after any migration at start"`
}

// schemaVersioner is the part of a store that knows its layout version.
type schemaVersioner interface {
	SchemaVersion() (int, error)
}

func (s *Server) registerAbout() {
	register(s, accessRead, huma.Operation{
		OperationID: "get-about", Method: http.MethodGet, Path: Prefix + "/about",
		Summary: "Show the appliance's version and database schema", Tags: []string{"appliance"},
	}, func(context.Context, *struct{}) (*struct{ Body About }, error) {
		out := About{Version: s.Version, APIVersion: Version}
		if out.Version == "" {
			out.Version = "dev"
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
