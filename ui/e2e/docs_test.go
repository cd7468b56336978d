package e2e

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// The API reference at /docs must render in a browser on an isolated
// network: every script, style and font comes from the appliance itself.
func TestAPIDocsRenderOffline(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test; skipped with -short")
	}
	a := startAppliance(t, buildFoundry(t, repoRoot(t)))
	b := newBrowser(t)
	b.do(t, "open /docs", chromedp.Navigate(a.URL+"/docs"),
		until(`document.body.innerText.includes("Approve an inventoried machine")`))
	resources := get(t, b, "list loaded resources",
		chromedp.Evaluate[[]string](`performance.getEntriesByType("resource").map(e => e.name)`))
	if len(resources) == 0 {
		t.Fatal("the docs page loaded no resources at all")
	}
	for _, r := range append(resources, a.URL+"/docs") {
		if !strings.HasPrefix(r, a.URL+"/") && !strings.HasPrefix(r, "data:") && !strings.HasPrefix(r, "blob:") {
			t.Errorf("/docs loaded %s from outside the appliance", r)
		}
	}
	b.checkConsole(t)
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, n := range b.network {
		t.Errorf("failed request on /docs: %s", n)
	}
}
