// Package openapidoc produces the API's OpenAPI document exactly as a
// running appliance serves it at /openapi.json, without starting one: it
// builds the real api.Server handler over an in-memory store and asks it.
// The dashboard's TypeScript types are generated from this document.
package openapidoc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/store"
)

// Generate returns /openapi.json, indented with two spaces and ending in a
// newline so that the committed copy diffs line by line.
func Generate() ([]byte, error) {
	db, err := store.Open("", store.Options{InMemory: true})
	if err != nil {
		return nil, fmt.Errorf("open in-memory store: %w", err)
	}
	defer db.Close()
	srv := &api.Server{Store: db}
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if rec.Code != http.StatusOK {
		return nil, fmt.Errorf("get /openapi.json: status %d: %s", rec.Code, rec.Body.String())
	}
	var out bytes.Buffer
	if err := json.Indent(&out, rec.Body.Bytes(), "", "  "); err != nil {
		return nil, fmt.Errorf("openapi.json is not JSON: %w", err)
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}
