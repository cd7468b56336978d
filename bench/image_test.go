package bench

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/tabwriter"
)

// The peers' discovery images, as published; nothing here downloads them
// (this machine has no internet access), so the figures are constants.
const (
	// hookBytes: Tinkerbell Hook, the x86_64 kernel + initramfs that
	// Tinkerbell boots for discovery and provisioning, ≈180 MB compressed
	// (the hook_x86_64.tar.gz asset of github.com/tinkerbell/hook
	// releases; figure as recorded in docs/spec.md §7).
	hookBytes = 180e6
	// foremanMinBytes, foremanMaxBytes: Foreman Discovery Image (FDI),
	// 335–483 MB across its releases (the fdi-*.iso images under
	// downloads.theforeman.org/discovery/releases/, built by
	// github.com/theforeman/foreman-discovery-image; figures as recorded
	// in docs/spec.md §7).
	foremanMinBytes = 335e6
	foremanMaxBytes = 483e6
)

// discoveryDir is where `make images` puts the discovery OS.
const discoveryDir = "../images/discovery"

// manifest is the part of images/discovery/manifest.json read here.
type manifest struct {
	KernelPackage string `json:"kernel_package"`
	Files         map[string]struct {
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	} `json:"files"`
	ModuleCount int `json:"module_count"`
}

// BenchmarkImageSize sizes what a discovered machine downloads (kernel and
// initrd, as built) against the peers' images.
func BenchmarkImageSize(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join(discoveryDir, "manifest.json"))
	if errors.Is(err, fs.ErrNotExist) {
		b.Skip("images/discovery/manifest.json is absent: run `make images` first")
	}
	must(b, err)
	var m manifest
	must(b, json.Unmarshal(raw, &m))
	var total int64
	var parts []string
	for _, name := range []string{"vmlinuz", "initrd"} {
		f, ok := m.Files[name]
		if !ok {
			b.Fatalf("manifest.json lists no %s", name)
		}
		// The manifest must describe the files that are actually served.
		data, err := os.ReadFile(filepath.Join(discoveryDir, name))
		must(b, err)
		sum := sha256.Sum256(data)
		if int64(len(data)) != f.Size || hex.EncodeToString(sum[:]) != f.SHA256 {
			b.Fatalf("%s is %d bytes (sha256 %x) but manifest.json says %d (%s): rebuild with make images",
				name, len(data), sum, f.Size, f.SHA256)
		}
		total += f.Size
		parts = append(parts, fmt.Sprintf("%s %.1f MB", name, float64(f.Size)/1e6))
	}

	var sb strings.Builder
	fmt.Fprintf(&sb, "discovery image: %.1f MB (%s; %s, %d modules)\n",
		float64(total)/1e6, strings.Join(parts, " + "), m.KernelPackage, m.ModuleCount)
	w := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "peer\tsize MB\tfoundry/peer\tpeer/foundry")
	for _, p := range []struct {
		name  string
		bytes float64
	}{
		{"Tinkerbell Hook (compressed)", hookBytes},
		{"Foreman discovery (smallest)", foremanMinBytes},
		{"Foreman discovery (largest)", foremanMaxBytes},
	} {
		fmt.Fprintf(w, "%s\t%.0f\t%.3f\t%.1fx\n", p.name, p.bytes/1e6, float64(total)/p.bytes, p.bytes/float64(total))
	}
	w.Flush()
	report(b, sb.String())

	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(total)/1e6, "image-MB")
	b.ReportMetric(float64(total)/hookBytes, "foundry/hook")
	b.ReportMetric(float64(total)/foremanMinBytes, "foundry/foreman-min")
}
