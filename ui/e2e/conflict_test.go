package e2e

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/foundry-appliance/foundry/agentsig"
	"github.com/foundry-appliance/foundry/store"
	"github.com/foundry-appliance/foundry/test/nstest"
	"github.com/foundry-appliance/foundry/ui"
)

const macSpoofed = "0c:c4:7a:00:00:04" // two hosts register with it

// TestMACConflict registers one MAC twice against the real appliance, as
// a genuine machine and a host that spoofs its MAC from another address
// would, and checks that the dashboard shows the conflict in the list and
// on the machine's page, that the wizard names the registration the
// console token matched, and that ending the spoofer's registration ends
// the conflict and the spoofer's session.
func TestMACConflict(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test; skipped with -short")
	}
	if !ui.Built() {
		t.Fatal("the dashboard is not built: run `npm ci && npm run build` in ui/ (the Makefile does) before go test")
	}
	if nstest.Reexec(t) {
		return
	}
	root := repoRoot(t)
	a := startAppliance(t, buildFoundry(t, root), macSpoofed)
	sum := sha256.Sum256([]byte("image"))
	a.must(t, http.StatusCreated, "POST", "/api/v1/profiles", a.Admin, map[string]any{
		"name": "debian-12", "kind": "image",
		"image_url": a.URL + "/images/debian-12.raw.zst", "image_sha256": hex.EncodeToString(sum[:]),
	}, nil)
	a.must(t, http.StatusCreated, "POST", "/api/v1/clusters", a.Admin, map[string]any{"name": "rack4", "default_profile": "debian-12"}, nil)

	// The genuine machine boots into discovery and registers.
	genuine := register(t, a, macSpoofed)
	// A second boot nonce for the MAC: the appliance hands one out only
	// after a DHCP exchange with the MAC, which a spoofer can have too.
	// The store keeps one unused nonce per MAC and Badger one process per
	// database, so it is issued with serve stopped.
	var nonce string
	a.offline(t, func(db *store.DB) {
		var err error
		if nonce, err = db.IssueNonce(macSpoofed, time.Hour); err != nil {
			t.Fatalf("issue the second nonce: %v", err)
		}
	})
	inv := sampleInventory(macSpoofed)
	inv.System.Vendor, inv.System.Product, inv.System.Serial = "QEMU", "Standard PC (Q35 + ICH9, 2009)", "SPOOF-0001"
	spoofer := registerBoot(t, a, &agent{mac: macSpoofed, nonce: nonce, client: from("127.0.0.66")}, inv)
	idOf := func(ag *agent) string { return agentsig.KeyID(ag.key.Public().(ed25519.PublicKey)) }
	gid, sid := idOf(genuine), idOf(spoofer)

	var m struct {
		MACConflict   bool `json:"mac_conflict"`
		Registrations []struct {
			ID, IP string
			Active bool
		}
	}
	a.must(t, http.StatusOK, "GET", "/api/v1/machines/"+macSpoofed, a.Admin, nil, &m)
	if !m.MACConflict || len(m.Registrations) != 2 || m.Registrations[0].ID != gid || m.Registrations[1].ID != sid ||
		m.Registrations[1].IP != "127.0.0.66" {
		t.Fatalf("the API does not show the conflict: %+v", m)
	}

	b := newBrowser(t)
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}
	regRow := func(id string) string { return fmt.Sprintf(`tr[data-registration=%q]`, id) }

	step("the list marks the conflict", func(t *testing.T) {
		b.do(t, "sign in", chromedp.Navigate(a.URL+"/"), visible(`input[name="token"]`),
			typeIn(`input[name="token"]`, a.Admin+kb.Enter), visible(row(macSpoofed)+`[data-conflict="true"] .badge-conflict`),
			visible(`.conflict-summary`))
		if got := b.text(t, row(macSpoofed)+` .badge-conflict`); !strings.Contains(got, "MAC conflict") {
			t.Errorf("conflict badge %q", got)
		}
		if got := b.text(t, `.conflict-summary`); !strings.Contains(got, "1 machine has a MAC conflict") {
			t.Errorf("conflict summary %q", got)
		}
		b.screenshot(t, root, "mac-conflict-list", false)
		b.checkConsole(t)
	})

	step("the machine page explains it and lists both registrations", func(t *testing.T) {
		b.do(t, "open machine", click(row(macSpoofed)+` a.host`), visible(`.conflict-banner`), visible(regRow(gid)), visible(regRow(sid)))
		banner := b.text(t, `.conflict-banner`)
		for _, want := range []string{"possible MAC spoofing", "2 hosts answer for " + macSpoofed, "127.0.0.66",
			"token shown on the console of the machine you can see", "End the registrations you do not recognise"} {
			if !strings.Contains(banner, want) {
				t.Errorf("banner lacks %q: %q", want, banner)
			}
		}
		if got := b.text(t, regRow(gid)); !strings.Contains(got, gid[:8]) || !strings.Contains(got, "127.0.0.1") ||
			!strings.Contains(got, "Supermicro SYS-1029P-WTR · serial S314159") || !strings.Contains(got, "active") {
			t.Errorf("genuine registration row %q", got)
		}
		if got := b.text(t, regRow(sid)); !strings.Contains(got, sid[:8]) || !strings.Contains(got, "127.0.0.66") ||
			!strings.Contains(got, "serial SPOOF-0001") {
			t.Errorf("spoofer's registration row %q", got)
		}
		b.do(t, "tall viewport", chromedp.EmulateViewport(1280, 1200))
		b.screenshot(t, root, "mac-conflict-machine", false)
		b.do(t, "laptop viewport", chromedp.EmulateViewport(1280, 860))
		b.checkConsole(t)
	})

	step("the wizard says the token decides, then which registration matched", func(t *testing.T) {
		b.do(t, "open wizard", click(`a[data-action="approve"]`), visible(`.wizard[data-step="token"] [data-registrations="2"]`))
		if got := b.text(t, `[data-registrations]`); !strings.Contains(got, "The token decides which registration is approved") {
			t.Errorf("token step hint %q", got)
		}
		b.do(t, "genuine token", typeIn(`input[name="token"]`, genuine.token), click(`button[data-action="next"]`),
			visible(`.wizard[data-step="review"] .matched-registration`))
		if got := b.text(t, `.matched-registration`); !strings.Contains(got, "The token matches registration "+gid[:8]+" from 127.0.0.1") {
			t.Errorf("matched registration %q", got)
		}
		// The record shows the latest report (the spoofer's): the page must say it is not the matched one's.
		if got := b.text(t, `.matched-registration`); !strings.Contains(got, "another registration's report") {
			t.Errorf("no warning that the hardware shown is another registration's: %q", got)
		}
		b.checkConsole(t)
	})

	step("ending the spoofer's registration ends the conflict", func(t *testing.T) {
		b.do(t, "back to the machine", click(`.crumbs a[href="/machines/`+macSpoofed+`"]`), visible(regRow(sid)),
			click(regRow(sid)+` button[data-action="end-registration"]`), visible(`dialog[open]`))
		if got := b.text(t, `dialog[open] p`); !strings.Contains(got, "End registration "+sid[:8]+" from 127.0.0.66?") {
			t.Errorf("confirmation %q", got)
		}
		b.do(t, "confirm", click(`dialog[open] button.danger`), gone(regRow(sid)), gone(`.conflict-banner`), gone(`dialog[open]`),
			visible(regRow(gid)))
		a.must(t, http.StatusOK, "GET", "/api/v1/machines/"+macSpoofed, a.Admin, nil, &m)
		if m.MACConflict || len(m.Registrations) != 1 || m.Registrations[0].ID != gid {
			t.Errorf("after ending the spoofer's registration: %+v", m)
		}
		// Its session is over: the spoofer can make no further call,
		// while the genuine machine's still works.
		if code := spoofer.call(t, a, "GET", "/api/v1/agent/decision?wait=0", nil, nil); code != http.StatusUnauthorized {
			t.Errorf("the ended registration's agent got %d, want 401", code)
		}
		genuine.must(t, a, http.StatusOK, "GET", "/api/v1/agent/decision?wait=0", nil, nil)
		b.do(t, "list", click(`nav a[href="/"]`), visible(rowIn(macSpoofed, "inventoried")), gone(`.badge-conflict`), gone(`.conflict-summary`))
		b.checkConsole(t)
	})

	// Nothing the browser asked for failed.
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, n := range b.network {
		t.Errorf("failed request in the browser: %s", n)
	}
}
