package ipxe

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/store"
)

// Discovery is confined to discovery segments over HTTP too: a machine
// waiting for approval whose record is on a segment without discovery (or
// on one no longer configured) gets no discovery script and no nonce.
func TestServeHeldOffDiscoverySegments(t *testing.T) {
	f := newFixture(t)
	a := store.Audit{Actor: "test", Action: "setup"}
	for _, tc := range []struct{ mac, segment string }{
		{"52:54:00:00:02:01", "prod"},
		{"52:54:00:00:02:02", "removed-from-config"},
	} {
		if _, err := f.db.CreateMachine(store.Machine{MAC: tc.mac, State: store.StateDiscovered, Segment: tc.segment,
			Hostname: "held-" + tc.mac[15:17], Temporary: true, ExpiresAt: time.Now().Add(time.Hour)}, a); err != nil {
			t.Fatal(err)
		}
		code, _, body := f.do(t, "GET", "/boot/"+tc.mac)
		if code != http.StatusOK || !strings.Contains(body, "# Foundry held script") || strings.Contains(body, "foundry.nonce") {
			t.Errorf("segment %s: status %d, body\n%s", tc.segment, code, body)
		}
		// Once DHCP sees it on a discovery segment, it boots discovery.
		if _, err := f.db.UpdateMachine(tc.mac, a, func(m *store.Machine) error { m.Segment = "lab"; return nil }); err != nil {
			t.Fatal(err)
		}
		code, _, body = f.do(t, "GET", "/boot/"+tc.mac)
		if code != http.StatusOK || !strings.Contains(body, "foundry.mac="+tc.mac+" ") {
			t.Fatalf("moved to lab: status %d, body\n%s", code, body)
		}
		if mac, err := f.db.CheckNonce(nonceOf(t, body)); err != nil || mac != tc.mac {
			t.Errorf("nonce after moving to lab: %q, %v", mac, err)
		}
	}
}
