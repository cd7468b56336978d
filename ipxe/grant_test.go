package ipxe

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/foundry-appliance/foundry/bootgrant"
)

// A boot nonce goes only to the address DHCP has just answered, once: any
// other request (another host, a repeat, a cross-site <img>) gets the
// script that sends the machine back to DHCP, and the nonce the machine
// holds stays valid.
func TestServeNonceNeedsGrant(t *testing.T) {
	f := newFixture(t)
	grants := &bootgrant.Table{}
	f.srv.Grants = grants
	loopback := netip.MustParseAddr("127.0.0.1")
	path := "/boot/" + macDiscovered
	get := func(method string) (int, string) {
		t.Helper()
		code, _, body := f.do(t, method, path)
		return code, body
	}
	isRegrant := func(body string) bool {
		return strings.Contains(body, "dhcp && chain --replace "+f.srv.BaseURL+path+" ") && !strings.Contains(body, "foundry.nonce")
	}

	if code, body := get("GET"); code != http.StatusOK || !isRegrant(body) {
		t.Fatalf("no grant: status %d, want the regrant script:\n%s", code, body)
	}
	grants.Grant(macDiscovered, netip.MustParseAddr("10.77.0.50"))
	if _, body := get("GET"); !isRegrant(body) {
		t.Fatalf("a grant for another address gave this one a nonce:\n%s", body)
	}

	grants.Grant(macDiscovered, loopback)
	if _, body := get("HEAD"); strings.Contains(body, "foundry.nonce") {
		t.Fatal("HEAD got a nonce")
	}
	_, body := get("GET")
	nonce := nonceOf(t, body)
	if mac, err := f.db.CheckNonce(nonce); err != nil || mac != macDiscovered {
		t.Fatalf("the granted request's nonce: %q, %v", mac, err)
	}
	// The grant is used up: a repeat (or anyone) gets no nonce, and the
	// machine's nonce is not revoked by trying.
	for i := 0; i < 3; i++ {
		if _, body := get("GET"); !isRegrant(body) {
			t.Fatalf("repeat %d got a nonce:\n%s", i, body)
		}
	}
	if _, err := f.db.CheckNonce(nonce); err != nil {
		t.Fatalf("the machine's nonce was revoked by requests without a grant: %v", err)
	}
}
