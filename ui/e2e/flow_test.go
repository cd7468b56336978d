package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/foundry-appliance/foundry/test/nstest"
	"github.com/foundry-appliance/foundry/ui"
)

const (
	mac1 = "0c:c4:7a:00:00:01" // approved through the wizard, then provisioned
	mac2 = "0c:c4:7a:00:00:02" // stays inventoried: the viewer must not approve it
	mac3 = "0c:c4:7a:00:00:03" // rejected with the bulk action
)

func TestDashboard(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test; skipped with -short")
	}
	if !ui.Built() {
		t.Fatal("the dashboard is not built: run `npm ci && npm run build` in ui/ (the Makefile does) before go test")
	}
	// The seeded machines are on segment lab, which the appliance must
	// serve for them to get discovery scripts: it does so on a veth
	// pair inside a private network namespace.
	if nstest.Reexec(t) {
		return
	}
	root := repoRoot(t)
	a := startAppliance(t, buildFoundry(t, root), mac1, mac2, mac3)

	// A cluster whose default profile writes an image, so that the machine
	// goes through provisioning after approval.
	sum := sha256.Sum256([]byte("image"))
	a.must(t, http.StatusCreated, "POST", "/api/v1/profiles", a.Admin, map[string]any{
		"name": "debian-12", "kind": "image", "description": "Debian 12 generic cloud image",
		"image_url": a.URL + "/images/debian-12.raw.zst", "image_sha256": hex.EncodeToString(sum[:]),
	}, nil)
	a.must(t, http.StatusCreated, "POST", "/api/v1/clusters", a.Admin, map[string]any{
		"name": "rack4", "description": "Rack 4, row B", "default_profile": "debian-12",
	}, nil)

	b := newBrowser(t)
	eval := func(t *testing.T, expr string) any {
		t.Helper()
		return get(t, b, "evaluate "+expr, chromedp.Evaluate[any](expr))
	}
	// The marker lives in the page's memory: a reload would lose it.
	setMarker := func(t *testing.T) { eval(t, `window.__noReload = 'still here'`) }
	checkMarker := func(t *testing.T) {
		t.Helper()
		if v := eval(t, `String(window.__noReload)`); v != "still here" {
			t.Fatalf("the page was reloaded (marker %v): changes must arrive live", v)
		}
	}

	b.do(t, "open dashboard", chromedp.Navigate(a.URL+"/"), visible(`input[name="token"]`))
	// Each step builds on the one before: stop at the first that fails.
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	step("sign in with the keyboard", func(t *testing.T) {
		// Enter in the field submits the form.
		b.do(t, "type admin token", typeIn(`input[name="token"]`, a.Admin+kb.Enter),
			visible(`[data-role="admin"]`), visible(`.live-open`), visible(rowIn(mac1, "discovered")))
		b.checkConsole(t)
	})

	agents := map[string]*agent{}
	step("registered machines appear without reload", func(t *testing.T) {
		b.do(t, "show only inventoried", click(`button.chip-inventoried`),
			xvisible(`//p[contains(., "No machine matches these filters.")]`))
		setMarker(t)
		for _, mac := range []string{mac1, mac2, mac3} {
			agents[mac] = register(t, a, mac)
		}
		b.do(t, "registered machines listed", visible(rowIn(mac1, "inventoried")), visible(rowIn(mac3, "inventoried")))
		checkMarker(t)
		if got := b.text(t, `[data-count="inventoried"]`); got != "3" {
			t.Errorf("inventoried count %q, want 3", got)
		}
		if got := b.text(t, row(mac1)); !strings.Contains(got, "Supermicro") || !strings.Contains(got, "192 GiB") || !strings.Contains(got, "expires in") {
			t.Errorf("row of %s lacks vendor, memory or expiry: %q", mac1, got)
		}
		b.do(t, "show all", click(`.state-filter button:first-child`))
		b.checkConsole(t)
	})

	step("machine page shows the whole inventory", func(t *testing.T) {
		b.do(t, "open machine", click(row(mac1)+` a.host`), visible(`#hardware`),
			xvisible(`//table[@aria-label="Audit history"]//td[text()="register"]`))
		page := b.text(t, "main")
		for _, want := range []string{
			"Intel(R) Xeon(R) Silver 4214", "192 GiB", "P1-DIMMA1", // CPU, memory, DIMMs
			"/dev/nvme0n1", "pci-0000:5e:00.0-nvme-1", "Cruzer Blade", // disks
			"tor-rack4", "Ethernet12", "VLAN 77", "10 Gbit/s", // NIC link and LLDP neighbour
			"TU104GL [Tesla T4]", "10.1.4.17", "/srv/scratch", "iqn.2001-05.com.example:storage.lun1", // GPU, BMC, NFS, iSCSI
			"temporary, expires", // a discovered record is temporary
		} {
			if !strings.Contains(page, want) {
				t.Errorf("machine page lacks %q", want)
			}
		}
		// The boot script, previewed: the discovery kernel line with the
		// placeholder in place of the one-time nonce...
		b.do(t, "boot script", visible(`.boot-script[data-kind="discovery"] pre.script`))
		kernel := fmt.Sprintf("kernel %s/images/discovery/vmlinuz initrd=initrd foundry.url=%s foundry.mac=%s foundry.nonce=NONCE-ISSUED-AT-BOOT",
			a.URL, a.URL, mac1)
		if got := b.text(t, `.boot-script pre.script`); !strings.HasPrefix(got, "#!ipxe") || !strings.Contains(got, kernel) {
			t.Errorf("boot script lacks %q:\n%s", kernel, got)
		}
		// ...and showing it left the agent's boot session valid.
		agents[mac1].must(t, a, http.StatusOK, "GET", "/api/v1/agent/decision?wait=0", nil, nil)
		b.do(t, "tall viewport", chromedp.EmulateViewport(1280, 1800))
		b.screenshot(t, root, "machine", true)
		b.do(t, "laptop viewport", chromedp.EmulateViewport(1280, 860))
		b.checkConsole(t)
	})

	step("the wizard refuses a wrong token, then approves", func(t *testing.T) {
		b.do(t, "open wizard", click(`a[data-action="approve"]`), visible(`.wizard[data-step="token"] input[name="token"]`))
		b.do(t, "wrong token", typeIn(`input[name="token"]`, wrongToken(t, agents[mac1].token)),
			click(`button[data-action="next"]`), visible(`[data-error-for="token"]`))
		if got := b.text(t, `[data-error-for="token"]`); !strings.Contains(got, "wrong registration token") {
			t.Errorf("token field error %q", got)
		}
		if v := eval(t, `document.querySelector('input[name="token"]').getAttribute('aria-invalid')`); v != "true" {
			t.Errorf("token field aria-invalid %v", v)
		}
		b.screenshot(t, root, "wizard-wrong-token", false)

		// Operators type what the console shows in any case.
		b.do(t, "right token", setInput(`input[name="token"]`, strings.ToLower(agents[mac1].token)),
			click(`button[data-action="next"]`), visible(`.wizard[data-step="review"]`))
		if got := b.text(t, "form.card"); !strings.Contains(got, "SYS-1029P-WTR") || !strings.Contains(got, "nvme0n1") {
			t.Errorf("review lacks the machine's resources: %q", got)
		}
		b.do(t, "settings", click(`button[data-action="next"]`), visible(`.wizard[data-step="settings"]`))
		if d := eval(t, `document.querySelector('input[name="disk"]:checked').value`); d != "/dev/disk/by-path/pci-0000:00:17.0-ata-1.0" {
			t.Errorf("default disk %v, want the first fixed disk by stable path", d)
		}
		b.do(t, "fill settings", setInput(`input[name="hostname"]`, "node-01"),
			click(`input[name="disk"][value="/dev/disk/by-path/pci-0000:5e:00.0-nvme-1"]`),
			typeIn(`textarea[name="ssh_keys"]`, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@example"))
		b.do(t, "tall viewport", chromedp.EmulateViewport(1280, 1000))
		b.screenshot(t, root, "wizard", true)
		b.do(t, "laptop viewport", chromedp.EmulateViewport(1280, 860))
		b.do(t, "confirm and approve", click(`button[data-action="next"]`), visible(`.wizard[data-step="confirm"]`),
			click(`button[data-action="approve"]`), visible(`.wizard[data-step="done"] [data-state="approved"]`))

		var m struct {
			State, Hostname, Cluster, Profile string
			Temporary                         bool
			Approval                          struct{ Disk string }
		}
		a.must(t, http.StatusOK, "GET", "/api/v1/machines/"+mac1, a.Admin, nil, &m)
		if m.State != "approved" || m.Hostname != "node-01" || m.Cluster != "rack4" || m.Profile != "debian-12" ||
			m.Temporary || m.Approval.Disk != "/dev/disk/by-path/pci-0000:5e:00.0-nvme-1" {
			t.Errorf("after approval: %+v", m)
		}
		b.checkConsole(t)
	})

	step("progress, bulk reject, failure and retry show live", func(t *testing.T) {
		b.do(t, "back to list", click(`nav a[href="/"]`), visible(rowIn(mac1, "approved")))
		setMarker(t)
		agents[mac1].progress(t, a, 40, "writing image")
		b.do(t, "progress bar", until(fmt.Sprintf(`document.querySelector('%s progress')?.value === 40`, rowIn(mac1, "provisioning"))))

		b.do(t, "bulk reject", click(row(mac3)+` td.sel input`), click(`.bulk button.danger`),
			visible(`dialog[open] textarea`), typeIn(`dialog[open] textarea`, "not ours: unknown hardware on the rack network"),
			click(`dialog[open] button[type="submit"]`), visible(rowIn(mac3, "rejected")), gone(`dialog[open]`))
		b.screenshot(t, root, "machines", true)
		var rejected struct {
			Temporary bool
			ExpiresAt *string `json:"expires_at"`
		}
		a.must(t, http.StatusOK, "GET", "/api/v1/machines/"+mac3, a.Admin, nil, &rejected)
		if rejected.Temporary || rejected.ExpiresAt != nil {
			t.Errorf("a rejected machine must be a permanent deny entry: %+v", rejected)
		}

		agents[mac1].result(t, a, false, "image checksum mismatch")
		b.do(t, "failure shown", visible(rowIn(mac1, "failed")+` .fail`))
		if got := b.text(t, rowIn(mac1, "failed")+` .fail`); got != "image checksum mismatch" {
			t.Errorf("failure reason %q", got)
		}
		b.do(t, "retry", click(rowIn(mac1, "failed")+` button`), visible(rowIn(mac1, "provisioning")))
		checkMarker(t)

		// Tablet width: nothing overflows the page sideways.
		b.do(t, "tablet", chromedp.EmulateViewport(768, 1024), until(`document.documentElement.scrollWidth <= window.innerWidth`))
		b.screenshot(t, root, "machines-tablet", false)
		b.do(t, "laptop", chromedp.EmulateViewport(1280, 860))
		b.checkConsole(t)
	})

	step("release from the machine page wipes every byte at the next discovery boot", func(t *testing.T) {
		b.do(t, "open machine", click(row(mac1)+` a.host`), visible(`.page-head [data-action="release"]`))
		b.do(t, "release dialog", click(`.page-head [data-action="release"]`), visible(`dialog[open] input[type="checkbox"]`),
			click(`dialog[open] input[type="checkbox"]`), click(`dialog[open] button.danger`),
			visible(`.wipe-pending[data-wipe="full"]`), gone(`dialog[open]`), gone(`.page-head [data-action="release"]`))
		var m struct {
			State string
			Wipe  *struct{ Full bool }
		}
		a.must(t, http.StatusOK, "GET", "/api/v1/machines/"+mac1, a.Admin, nil, &m)
		if m.State != "discovered" || m.Wipe == nil || !m.Wipe.Full {
			t.Errorf("released from the dashboard: %+v", m)
		}
		b.checkConsole(t)
	})

	step("audit log and the cluster rules", func(t *testing.T) {
		b.do(t, "audit", click(`nav a[href="/audit"]`), visible(`input[placeholder="approve"]`),
			typeIn(`input[placeholder="approve"]`, "approve"), click(`form.toolbar button[type="submit"]`),
			until(`[...document.querySelectorAll('table[aria-label="Audit entries"] tbody td:nth-child(4)')].every(td => td.textContent === 'approve')`),
			xvisible(`//table[@aria-label="Audit entries"]//td[text()="token:env"]`))
		b.screenshot(t, root, "audit", false)

		b.do(t, "delete a cluster in use", click(`nav a[href="/clusters"]`), click(`button[aria-label="Delete rack4"]`),
			click(`dialog[open] button.danger`), visible(`dialog[open] .notice-error`))
		if got := b.text(t, `dialog[open] .notice-error`); !strings.Contains(got, "Cannot delete") || !strings.Contains(got, "in use") {
			t.Errorf("409 shown as %q", got)
		}
		b.screenshot(t, root, "clusters", false)
		b.do(t, "close dialog", click(`dialog[open] button.secondary`), gone(`dialog[open]`))
		b.checkConsole(t)
	})

	step("a viewer sees everything and cannot approve", func(t *testing.T) {
		b.mu.Lock()
		seen := len(b.network)
		b.mu.Unlock()
		var tok struct{ Secret string }
		a.must(t, http.StatusCreated, "POST", "/api/v1/tokens", a.Admin, map[string]any{"name": "e2e-viewer", "role": "viewer"}, &tok)
		b.do(t, "sign in as viewer", click(`.who button`), visible(`input[name="token"]`),
			typeIn(`input[name="token"]`, tok.Secret+kb.Enter),
			visible(`[data-role="viewer"]`), visible(`tr[data-name="rack4"]`))
		// Signing in keeps the page: the clusters, now without any control.
		if n := eval(t, `document.querySelectorAll('main button').length`); n != float64(0) {
			t.Errorf("viewer clusters page shows %v buttons", n)
		}
		b.do(t, "viewer list", click(`nav a[href="/"]`), visible(rowIn(mac2, "inventoried")))
		if n := eval(t, `document.querySelectorAll('[data-action="approve"], td.sel input, .bulk').length`); n != float64(0) {
			t.Errorf("viewer list shows %v write controls", n)
		}
		b.do(t, "viewer machine page", click(row(mac2)+` a.host`), visible(`#hardware`), visible(`.boot-script[data-kind="discovery"] pre.script`))
		if n := eval(t, `document.querySelectorAll('.page-head .actions a, .page-head .actions button').length`); n != float64(0) {
			t.Errorf("viewer machine page shows %v action controls", n)
		}
		// Even the wizard's address (a full reload, which keeps the tab's
		// session) offers nothing.
		b.do(t, "viewer wizard", chromedp.Navigate(a.URL+"/machines/"+mac2+"/approve"),
			xvisible(`//div[contains(., "viewers can see everything but cannot approve")]`))
		if n := eval(t, `document.querySelectorAll('.wizard input, .wizard button').length`); n != float64(0) {
			t.Errorf("viewer wizard shows %v controls", n)
		}
		// And the API refuses the viewer even with the right console token.
		a.must(t, http.StatusForbidden, "POST", "/api/v1/machines/"+mac2+"/approve", tok.Secret,
			map[string]any{"token": agents[mac2].token, "cluster": "rack4"}, nil)
		var m struct{ State string }
		a.must(t, http.StatusOK, "GET", "/api/v1/machines/"+mac2, tok.Secret, nil, &m)
		if m.State != "inventoried" {
			t.Errorf("after the viewer's refused approval the machine is %s", m.State)
		}
		// The viewer's whole session is clean: no console error and not a
		// single failed request (the role comes from whoami, not from
		// provoking a 403).
		b.checkConsole(t)
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, n := range b.network[seen:] {
			t.Errorf("failed request in the viewer's session: %s", n)
		}
	})

	// Every request the browser saw fail is one the flows provoked on
	// purpose; anything else (a 404 for an asset, a 500) is a bug.
	expected := []*regexp.Regexp{
		regexp.MustCompile(`status of 422 .*/api/v1/machines/[^/]+/verify-token$`), // the wrong token
		regexp.MustCompile(`status of 409 .*/api/v1/clusters/rack4$`),              // deleting a cluster in use
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, n := range b.network {
		ok := false
		for _, re := range expected {
			ok = ok || re.MatchString(n)
		}
		if !ok {
			t.Errorf("unexpected failed request in the browser: %s", n)
		}
	}
}
