// Package e2e tests the dashboard in a real browser: headless Chromium
// (Debian's chromium), driven by chromedp, against a real `foundry serve`
// with its Badger database on disk. The tests are skipped with -short.
//
// The appliance binary is built by the test from ./cmd/foundry and embeds
// whatever ui/dist holds, so `npm ci && npm run build` in ui/ must have run
// first (the Makefile does it). Screenshots go to test/artifacts/; with
// FOUNDRY_UPDATE_SCREENSHOTS=1 they are also written to docs/screenshots/
// for the README.
package e2e
