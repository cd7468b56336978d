package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browser is one headless Chromium tab that records every console error
// and uncaught exception of the page.
type browser struct {
	ctx    context.Context
	mu     sync.Mutex
	errors []string
	// network lists failed requests the browser logged; the flows provoke
	// some on purpose (a wrong token, a cluster in use) and check what the
	// page shows for them.
	network []string
}

// chromiumPath finds Debian's chromium; FOUNDRY_CHROMIUM overrides it.
func chromiumPath() string {
	if p := os.Getenv("FOUNDRY_CHROMIUM"); p != "" {
		return p
	}
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, _ := exec.LookPath("chromium")
	return p
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		t.Skip("chromium not installed (apt-get install chromium)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 860),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("lang", "en-US"),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelB()
		cancelA()
	})
	// Start the browser now so that a broken installation fails here,
	// clearly, and so that the console is watched from the first page on.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium (%s): %v", path, err)
	}
	b := &browser{ctx: ctx}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			switch {
			case m.Source == "network":
				b.network = append(b.network, m.Text+" "+m.URL)
			case m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException:
				b.errors = append(b.errors, m.String()+" at "+m.URL)
			}
			b.mu.Unlock()
		}
	}()
	return b
}

// do runs actions with a deadline; step names what failed.
func (b *browser) do(t *testing.T, step string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.failed(t, step)
		t.Fatalf("%s: %v\npage: %.3000s", step, err, b.mainHTML())
	}
}

// failed saves what the browser showed when a step failed.
func (b *browser) failed(t *testing.T, step string) {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		return
	}
	name := "failed-" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(step)) + ".png"
	dir := filepath.Join(repoRoot(t), "test", "artifacts")
	if os.MkdirAll(dir, 0o755) == nil && os.WriteFile(filepath.Join(dir, name), png, 0o644) == nil {
		t.Logf("screenshot of the failure: %s", filepath.Join(dir, name))
	}
}

// mainHTML is the page's <main> for failure messages.
func (b *browser) mainHTML() string {
	ctx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
	defer cancel()
	html, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('main')?.outerHTML ?? document.body.outerHTML`))
	return html
}

// get runs one action that returns a value.
func get[T any](t *testing.T, b *browser, step string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.failed(t, step)
		t.Fatalf("%s: %v\npage: %.3000s", step, err, b.mainHTML())
	}
	return v
}

// text returns the trimmed text of the first element matching a CSS selector.
func (b *browser) text(t *testing.T, sel string) string {
	t.Helper()
	return strings.TrimSpace(get(t, b, "read "+sel, chromedp.Text(chromedp.CSS(sel))))
}

// checkConsole fails the test for every console error or exception so far.
func (b *browser) checkConsole(t *testing.T) {
	t.Helper()
	// Let messages of the last actions arrive.
	time.Sleep(200 * time.Millisecond)
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.errors {
		t.Errorf("browser console: %s", e)
	}
	b.errors = nil
}

// screenshot saves the viewport as PNG under test/artifacts/ and, for the
// README's (forDocs) with FOUNDRY_UPDATE_SCREENSHOTS=1, as
// docs/screenshots/<name>.png (each must stay under 300 KB).
func (b *browser) screenshot(t *testing.T, root, name string, forDocs bool) {
	t.Helper()
	png := get(t, b, "screenshot "+name, chromedp.CaptureScreenshot())
	dirs := []string{filepath.Join(root, "test", "artifacts")}
	if forDocs && os.Getenv("FOUNDRY_UPDATE_SCREENSHOTS") != "" {
		dirs = append(dirs, filepath.Join(root, "docs", "screenshots"))
		if len(png) > 300<<10 {
			t.Errorf("screenshot %s is %d KB; the README's must stay under 300 KB", name, len(png)>>10)
		}
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(d, name+".png")
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s (%d KB)", p, len(png)>>10)
	}
}
