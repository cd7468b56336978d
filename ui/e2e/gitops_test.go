package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/go-git/go-git/v5"

	"github.com/foundry-appliance/foundry/ui"
)

// The header shows whether the GitOps repository is in step, and a banner
// says why and since when while it cannot be updated; both follow the
// appliance without a reload. The remote is a local bare repository that
// goes away and comes back.
func TestGitOpsBanner(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test; skipped with -short")
	}
	if !ui.Built() {
		t.Fatal("the dashboard is not built: run `npm ci && npm run build` in ui/ (the Makefile does) before go test")
	}
	dir := t.TempDir()
	bare, secret := filepath.Join(dir, "fleet.git"), "a-shared-webhook-secret"
	if _, err := git.PlainInit(bare, true); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startApplianceWith(t, buildFoundry(t, repoRoot(t)),
		"gitops:\n  repository: "+bare+"\n  webhook_secret_file: "+filepath.Join(dir, "secret")+"\n")
	webhook := func(t *testing.T) {
		t.Helper()
		req, _ := http.NewRequest("POST", a.URL+"/api/v1/gitops/webhook", strings.NewReader("{}"))
		req.Header.Set("X-Gitlab-Token", secret)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNoContent {
			t.Fatalf("webhook: %s", res.Status)
		}
	}

	b := newBrowser(t)
	b.do(t, "sign in", chromedp.Navigate(a.URL+"/"), visible(`input[name="token"]`),
		typeIn(`input[name="token"]`, a.Admin+kb.Enter), visible(`[data-gitops="ok"]`))
	if got := b.text(t, `[data-gitops]`); got != "git: in step" {
		t.Errorf("badge %q", got)
	}

	if err := os.Rename(bare, bare+".away"); err != nil {
		t.Fatal(err)
	}
	webhook(t) // fetch now: it fails
	b.do(t, "the banner while the remote is gone", visible(`.gitops-banner`), visible(`[data-gitops="error"]`))
	banner := b.text(t, `.gitops-banner`)
	for _, want := range []string{bare, "cannot be updated", "nothing is lost"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q: %s", want, banner)
		}
	}
	b.screenshot(t, repoRoot(t), "gitops-banner", false)

	if err := os.Rename(bare+".away", bare); err != nil {
		t.Fatal(err)
	}
	webhook(t)
	b.do(t, "the banner gone with the remote back", gone(`.gitops-banner`), visible(`[data-gitops="ok"]`))
	b.checkConsole(t)
}
