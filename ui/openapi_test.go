package ui_test

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/foundry-appliance/foundry/ui/internal/openapidoc"
)

// openapiFile is the API description the dashboard's types are generated
// from (`npm run gen` → src/api/schema.d.ts). It is committed so that the
// frontend builds without a Go toolchain run first; this test keeps it
// equal to what the API serves; `go run ./ui/internal/genopenapi` rewrites it.
const openapiFile = "openapi.json"

func TestOpenAPIDocument(t *testing.T) {
	live, err := openapidoc.Generate()
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(openapiFile)
	if err != nil {
		t.Fatalf("read %s: %v (generate it with go run ./ui/internal/genopenapi)", openapiFile, err)
	}
	if !bytes.Equal(committed, live) {
		t.Errorf("ui/%s differs from the API's /openapi.json; regenerate it with\n\tgo run ./ui/internal/genopenapi\nthen rebuild the dashboard (npm run build) so that its types follow", openapiFile)
	}
	// The dashboard calls these operations; losing one breaks it.
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(live, &doc); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct{ method, path string }{
		{"get", "/api/v1/machines"},
		{"get", "/api/v1/machines/{mac}"},
		{"post", "/api/v1/machines/{mac}/approve"},
		{"post", "/api/v1/machines/{mac}/verify-token"},
		{"post", "/api/v1/machines/{mac}/reject"},
		{"post", "/api/v1/machines/{mac}/rediscover"},
		{"post", "/api/v1/machines/{mac}/retry"},
		{"post", "/api/v1/machines/{mac}/release"},
		{"post", "/api/v1/machines/{mac}/redeploy"},
		{"post", "/api/v1/machines/{mac}/bind"},
		{"delete", "/api/v1/machines/{mac}"},
		{"get", "/api/v1/events"},
		{"get", "/api/v1/audit"},
		{"get", "/api/v1/clusters"},
		{"post", "/api/v1/clusters"},
		{"put", "/api/v1/clusters/{name}"},
		{"delete", "/api/v1/clusters/{name}"},
		{"get", "/api/v1/profiles"},
		{"post", "/api/v1/profiles"},
		{"put", "/api/v1/profiles/{name}"},
		{"delete", "/api/v1/profiles/{name}"},
		{"get", "/api/v1/segments"},
		{"get", "/api/v1/segments/{name}/leases"},
		{"get", "/api/v1/whoami"},
		{"get", "/api/v1/machines/{mac}/boot-script"},
	} {
		if _, ok := doc.Paths[want.path][want.method]; !ok {
			t.Errorf("the API no longer has %s %s, which the dashboard calls", want.method, want.path)
		}
	}
}
