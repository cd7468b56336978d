package api_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/foundry-appliance/foundry/lifecycle"
)

// TestStateEnumIsLifecycles keeps every machine-state enum of the OpenAPI
// document equal to lifecycle.States(), in life-cycle order: the
// dashboard's types are generated from that document, and its state list
// is checked against them by tsc (ui/src/lib/machines.ts), so this is the
// link that ties the dashboard's states to Go's package lifecycle.
func TestStateEnumIsLifecycles(t *testing.T) {
	e := newEnv(t)
	resp, err := e.ts.Client().Get(e.ts.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("openapi.json: %s", resp.Status)
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Enum []string `json:"enum"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, s := range lifecycle.States() {
		want = append(want, s.String())
	}
	for _, schema := range []string{"Machine", "AgentState"} {
		got := doc.Components.Schemas[schema].Properties["state"].Enum
		if !slices.Equal(got, want) {
			t.Errorf("%s.state enum is %v, lifecycle.States() is %v", schema, got, want)
		}
	}
}
