package api_test

import (
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
	schemas := openAPIEnums(t, newEnv(t))
	var want []string
	for _, s := range lifecycle.States() {
		want = append(want, s.String())
	}
	for _, schema := range []string{"Machine", "AgentState"} {
		got := schemas[schema]["state"]
		if !slices.Equal(got, want) {
			t.Errorf("%s.state enum is %v, lifecycle.States() is %v", schema, got, want)
		}
	}
}
