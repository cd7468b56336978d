package datadisk

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// corpusDir holds FuzzProbe's seed corpus: the heads of real images
// made by the Debian tools, so that fuzzing starts from real superblocks.
// DATADISK_WRITE_CORPUS=1 go test -run TestFuzzCorpus rewrites it; each
// file's name says what Probe must find in it, and the test checks that.
const corpusDir = "testdata/fuzz/FuzzProbe"

// corpusSeeds are cut to what Probe reads (the Go corpus format spells a
// zero byte in four characters, so whole 64 KiB heads would be 1 MiB).
var corpusSeeds = []struct {
	name        string // "<fstype>-<what>"; the fstype before the first "-"
	label       string
	size        int64
	keep        int
	cmd         []string
	makeFromISO bool
}{
	{name: "ext4-format-args", label: Label, size: 64 * mib, keep: 4096, cmd: append(append([]string{"mke2fs"}, MkfsArgs()...), "@")},
	{name: "ext3-labelled", label: "old-data", size: 16 * mib, keep: 4096, cmd: []string{"mke2fs", "-q", "-F", "-t", "ext3", "-L", "old-data", "@"}},
	{name: "ext2-unlabelled", size: 8 * mib, keep: 4096, cmd: []string{"mke2fs", "-q", "-F", "-t", "ext2", "@"}},
	{name: "vfat-fat16", label: "EFI-BOOT", size: 32 * mib, keep: 1024, cmd: []string{"mkfs.vfat", "-F", "16", "-n", "EFI-BOOT", "@"}},
	{name: "vfat-fat32", label: "STICK", size: 64 * mib, keep: 1024, cmd: []string{"mkfs.vfat", "-F", "32", "-n", "STICK", "@"}},
	{name: "gpt-sfdisk", size: 16 * mib, keep: 2048, cmd: []string{"sh", "-c", `printf 'label: gpt\n,8M,L\n' | sfdisk -q "$1"`, "sh", "@"}},
	{name: "mbr-sfdisk", size: 16 * mib, keep: 512, cmd: []string{"sh", "-c", `printf 'label: dos\n,8M,83\n' | sfdisk -q "$1"`, "sh", "@"}},
	{name: "iso9660-xorriso", label: "FOUNDRY_1_0", keep: isoFirstDesc + 2*isoDescSize, makeFromISO: true},
}

func TestFuzzCorpus(t *testing.T) {
	if os.Getenv("DATADISK_WRITE_CORPUS") != "" {
		writeCorpus(t)
	}
	for _, s := range corpusSeeds {
		t.Run(s.name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(corpusDir, s.name))
			if err != nil {
				t.Fatal(err)
			}
			data := parseCorpusFile(t, b)
			fstype, label, err := Probe(bytes.NewReader(data), int64(len(data)))
			want, _, _ := strings.Cut(s.name, "-")
			if err != nil || fstype != want || label != s.label {
				t.Errorf("Probe = %q, %q, %v; want %q, %q", fstype, label, err, want, s.label)
			}
		})
	}
}

func writeCorpus(t *testing.T) {
	if err := os.MkdirAll(corpusDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range corpusSeeds {
		var path string
		if s.makeFromISO {
			path = isoImage(t, s.label)
		} else {
			path = image(t, s.size, s.cmd...)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b = b[:s.keep]
		text := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
		if err := os.WriteFile(filepath.Join(corpusDir, s.name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func parseCorpusFile(t *testing.T, b []byte) []byte {
	t.Helper()
	s, ok := strings.CutPrefix(string(b), "go test fuzz v1\n[]byte(")
	s, ok2 := strings.CutSuffix(strings.TrimSpace(s), ")")
	if !ok || !ok2 {
		t.Fatalf("not a one-[]byte corpus file: %.40q", b)
	}
	data, err := strconv.Unquote(s)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(data)
}
