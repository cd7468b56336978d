package main

import (
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/discovery-coverage.md from images/discovery/manifest.json")

const (
	builtManifest = "../../../images/discovery/manifest.json"
	coverageFile  = "../../../docs/discovery-coverage.md"
)

// TestCoverageDoc holds docs/discovery-coverage.md to what the image that
// `make images` built covers. After a change of the rule, the firmware or
// the kernel package: go test ./discovery-os/cmd/mkdiscovery -run
// TestCoverageDoc -update.
func TestCoverageDoc(t *testing.T) {
	b, err := os.ReadFile(builtManifest)
	if err != nil {
		if testing.Short() {
			t.Skip("no built discovery image (make images)")
		}
		t.Fatalf("no built discovery image: run `make images`: %v", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Coverage.Classes) == 0 {
		t.Fatalf("%s has no coverage: built before the coverage was recorded? run `make images`", builtManifest)
	}
	want := coverageDoc(m)
	if *update {
		if err := os.WriteFile(coverageFile, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(coverageFile)
	// Debian publishes kernel updates on its own schedule and `make images`
	// takes the current one: a document of another kernel package is out of
	// date, not wrong, and must not fail a run on a fresh machine.
	if err == nil && !strings.Contains(string(got), "`"+m.KernelPackage+"` "+m.KernelVersion) {
		t.Skipf("%s describes another kernel package than the built image's %s %s: regenerate with -update",
			coverageFile, m.KernelPackage, m.KernelVersion)
	}
	// The document holds nothing that moves with the agent binary (see
	// coverageDoc), so any difference is a change of coverage.
	if err != nil || string(got) != want {
		t.Fatalf("%s is not what the built image covers (kernel %s %s): run\n"+
			"\tgo test ./discovery-os/cmd/mkdiscovery -run TestCoverageDoc -update\n(read error: %v)", coverageFile, m.KernelPackage, m.KernelVersion, err)
	}
	for _, s := range []string{"| Ethernet |", "## Firmware by package", "## Left out"} {
		if !strings.Contains(want, s) {
			t.Errorf("the document lacks %q", s)
		}
	}
}
