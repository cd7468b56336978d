package main

import (
	"fmt"
	"io"
	"strings"
)

// printCoverage writes the coverage summary `make images` shows.
func printCoverage(w io.Writer, m Manifest) {
	c := m.Coverage
	fmt.Fprintf(w, "coverage: %d modules (%.1f MB compressed), %d firmware files (%.1f MB); docs/discovery-coverage.md lists them\n",
		m.ModuleCount, mb(c.ModuleBytes), len(c.Firmware), mb(c.FirmwareRawBytes))
	for _, cl := range c.Classes {
		fmt.Fprintf(w, "  %-46s %4d drivers  %5.2f MB\n", cl.Class, cl.Drivers, mb(cl.Bytes))
	}
	fmt.Fprintf(w, "  %-46s %4d modules  %5.2f MB\n", "their dependencies", c.Dependencies, mb(c.DependencyBytes))
	for _, p := range c.FirmwarePackages {
		fmt.Fprintf(w, "  firmware from %-32s %4d files    %5.2f MB\n", p.Package, p.Files, mb(p.Raw))
	}
	fmt.Fprintf(w, "  left out: %d modules under the rule's trees, %d named firmware files\n", len(c.Excluded), len(c.FirmwareSkipped))
}

func mb(n int64) float64 { return float64(n) / 1e6 }

// coverageDoc renders docs/discovery-coverage.md from a manifest.
func coverageDoc(m Manifest) string {
	c := m.Coverage
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# What the discovery image covers")
	p("")
	p("<!-- Generated from images/discovery/manifest.json by")
	p("     `go test ./discovery-os/cmd/mkdiscovery -run TestCoverageDoc -update`; do not edit. -->")
	p("")
	p("Built from `%s` %s with the rule of [`discovery-os/drivers`](../discovery-os/drivers/drivers.go):", m.KernelPackage, m.KernelVersion)
	p("every module under the kernel package's Ethernet, USB Ethernet, ATA, SCSI, NVMe, MMC, USB storage")
	p("and paravirtual trees, with its dependencies, and the firmware those modules name from Debian's")
	p("firmware packages. Modules load by modalias, only for the hardware present.")
	p("")
	p("Packing — %s (the modules' dictionary, trained on them at build time, is in the archive).", m.Compression)
	p("")
	// Only what the kernel package, the firmware packages and the rules
	// decide: the agent's size changes with every commit, and `make
	// images` prints the whole image's.
	p("| in the initrd | |")
	p("| --- | ---: |")
	p("| %d kernel modules, each compressed on its own | %.2f MB |", m.ModuleCount, mb(c.ModuleBytes))
	p("| %d firmware files, as packaged | %.2f MB |", len(c.Firmware), mb(c.FirmwareRawBytes))
	p("")
	p("The kernel, the agent, `pci.ids` and the module index make up the rest of the image;")
	p("`make images` prints every part's size.")
	p("")
	p("## Drivers by class")
	p("")
	p("| class | drivers | in the image |")
	p("| --- | ---: | ---: |")
	for _, cl := range c.Classes {
		p("| %s | %d | %.2f MB |", cl.Class, cl.Drivers, mb(cl.Bytes))
	}
	p("| their dependencies | %d | %.2f MB |", c.Dependencies, mb(c.DependencyBytes))
	p("")
	p("## Firmware by package")
	p("")
	p("| package | files | size |")
	p("| --- | ---: | ---: |")
	for _, pk := range c.FirmwarePackages {
		p("| %s | %d | %.2f MB |", pk.Package, pk.Files, mb(pk.Raw))
	}
	p("")
	p("<details><summary>The %d firmware files</summary>", len(c.Firmware))
	p("")
	p("| file | package | for | bytes |")
	p("| --- | --- | --- | ---: |")
	for _, f := range c.Firmware {
		p("| `%s` | %s | %s | %d |", f.Name, f.Package, strings.Join(f.Modules, ", "), f.Raw)
	}
	p("")
	p("</details>")
	p("")
	p("## Left out")
	p("")
	p("Modules under the rule's trees that the image does not carry:")
	p("")
	p("| module | why |")
	p("| --- | --- |")
	for _, e := range c.Excluded {
		p("| `%s` | %s |", e.Name, e.Reason)
	}
	p("")
	p("Firmware files the modules name that the image does not carry:")
	p("")
	p("| file | named by | why |")
	p("| --- | --- | --- |")
	for _, s := range c.FirmwareSkipped {
		p("| `%s` | %s | %s |", s.Name, strings.Join(s.Modules, ", "), s.Reason)
	}
	return b.String()
}
