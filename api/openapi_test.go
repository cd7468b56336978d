package api_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// TestOpenAPIDocument validates the served document with kin-openapi,
// which checks OpenAPI 3.1 documents (JSON Schema 2020-12) since v0.150,
// and checks that every operation is documented and secured.
func TestOpenAPIDocument(t *testing.T) {
	e := newEnv(t)
	resp, err := http.Get(e.ts.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/openapi.json: %d", resp.StatusCode)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(raw)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the served OpenAPI document is invalid: %v", err)
	}
	for _, name := range []string{"bearer", "agentNonce"} {
		if doc.Components.SecuritySchemes[name] == nil {
			t.Errorf("security scheme %s missing", name)
		}
	}
	ops := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops++
			where := method + " " + path
			if op.Summary == "" || len(op.Tags) == 0 || op.OperationID == "" {
				t.Errorf("%s: summary %q tags %v id %q", where, op.Summary, op.Tags, op.OperationID)
			}
			if op.Security == nil || len(*op.Security) == 0 {
				t.Errorf("%s: no security requirement", where)
				continue
			}
			_, agent := (*op.Security)[0]["agentNonce"]
			if strings.HasPrefix(path, "/api/v1/agent/") != agent {
				t.Errorf("%s: wrong security requirement %v", where, *op.Security)
			}
			if rb := op.RequestBody; rb != nil && rb.Value != nil {
				// A JSON schema, a file streamed as it is (an image upload),
				// or a form (cloud-init's first-boot report).
				bin := rb.Value.Content.Get("application/octet-stream")
				form := rb.Value.Content.Get("application/x-www-form-urlencoded")
				if mt := rb.Value.Content.Get("application/json"); (mt == nil || mt.Schema == nil) &&
					(bin == nil || bin.Schema == nil || bin.Schema.Value.Format != "binary") && form == nil {
					t.Errorf("%s: request body without a JSON schema", where)
				}
			}
		}
	}
	if ops < 30 {
		t.Errorf("only %d operations documented", ops)
	}
	// Request schemas carry examples (huma example: tags).
	if s := doc.Components.Schemas["ApproveRequest"]; s == nil || s.Value.Properties["token"].Value.Examples == nil && s.Value.Properties["token"].Value.Example == nil {
		t.Error("ApproveRequest.token has no example")
	}
	// The docs page and its start script (ui/e2e renders them in Chromium).
	served := map[string]string{}
	for _, p := range []string{"/openapi.yaml", "/docs", "/docs/init.js"} {
		resp, err := http.Get(e.ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(b) == 0 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
		served[p] = string(b)
	}
	page := served["/docs"] + served["/docs/init.js"]
	if strings.Contains(page, "https://") || !strings.Contains(page, "/openapi.json") {
		t.Errorf("/docs must load nothing from outside and point at /openapi.json:\n%s", page)
	}
}
