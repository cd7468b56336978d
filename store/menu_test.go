package store

import (
	"encoding/json"
	"testing"
)

// Schema-1 records stored the menu as a boolean; reading them must keep the
// machine's menu after an upgrade.
func TestBootMenuDecode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want BootMenu
	}{
		{`{"mac":"52:54:00:00:00:01","menu":true}`, BootMenu{Enabled: true}},
		{`{"mac":"52:54:00:00:00:01","menu":false}`, BootMenu{}},
		{`{"mac":"52:54:00:00:00:01"}`, BootMenu{}},
		{`{"mac":"52:54:00:00:00:01","menu":{"enabled":true,"timeout_seconds":9,"default":"local"}}`,
			BootMenu{Enabled: true, TimeoutSeconds: 9, Default: MenuLocal}},
	} {
		var m Machine
		if err := json.Unmarshal([]byte(tc.in), &m); err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if m.Menu != tc.want {
			t.Errorf("%s: menu %+v, want %+v", tc.in, m.Menu, tc.want)
		}
	}
	var m Machine
	if err := json.Unmarshal([]byte(`{"menu":"yes"}`), &m); err == nil {
		t.Error("a string menu was accepted")
	}
	b, _ := json.Marshal(Machine{MAC: "52:54:00:00:00:01"})
	var back map[string]any
	_ = json.Unmarshal(b, &back)
	if _, ok := back["menu"]; ok {
		t.Errorf("a machine without a menu encodes one: %s", b)
	}
}
