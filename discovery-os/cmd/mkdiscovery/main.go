// Command mkdiscovery builds the discovery OS image from Debian's packaged
// kernel, Debian's firmware packages and the agent binary: it unpacks the
// linux-image .deb, selects the NIC, disk and BMC drivers by the rule of
// package drivers (with their dependencies) and the firmware they name,
// writes vmlinuz, initrd and manifest.json into the output directory, and
// prints the sizes and what the image covers.
//
//	mkdiscovery -kernel-deb linux-image-6.1.0-57-amd64_*.deb -firmware build/firmware \
//	    -agent build/foundry-agent -pciids /usr/share/misc/pci.ids -out images/discovery
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mkdiscovery:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("mkdiscovery", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.KernelDeb, "kernel-deb", "", "Debian linux-image package (.deb)")
	fs.StringVar(&o.Agent, "agent", "", "static foundry-agent binary, installed as /init")
	fs.StringVar(&o.PCIIDs, "pciids", "/usr/share/misc/pci.ids", "pci.ids database")
	fs.StringVar(&o.Out, "out", "images/discovery", "output directory")
	fs.StringVar(&o.FirmwareDir, "firmware", "", "directory of Debian firmware packages (.deb); none: no firmware")
	fs.StringVar(&o.Cache, "cache", "", "directory keeping compressed modules and firmware between builds")
	fs.StringVar(&o.Compression, "compression", "zstd", "the initrd archive's compression: zstd, xz or gzip")
	fs.StringVar(&o.ModuleCompression, "module-compression", "zstd", "each module's compression: zstd (with a dictionary) or xz")
	fs.StringVar(&o.FirmwareCompression, "firmware-compression", "none", "each firmware file's compression: none (in the archive) or xz")
	fs.Int64Var(&o.Budget, "budget", 30_000_000, "maximum bytes of kernel + initrd")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("parse flags: %w", err)
	}
	if o.KernelDeb == "" || o.Agent == "" {
		fs.Usage()
		return fmt.Errorf("-kernel-deb and -agent are required")
	}
	m, err := build(ctx, o)
	if err != nil {
		return fmt.Errorf("build discovery image in %s: %w", o.Out, err)
	}
	for _, name := range []string{"vmlinuz", "initrd"} {
		f := m.Files[name]
		fmt.Fprintf(stdout, "%-8s %10d bytes  %.1f MB  sha256 %s\n", name, f.Size, float64(f.Size)/1e6, f.SHA256)
	}
	fmt.Fprintf(stdout, "total    %10d bytes  %.1f MB (budget %.1f MB), kernel %s %s, %d modules\n",
		m.TotalBytes, float64(m.TotalBytes)/1e6, float64(o.Budget)/1e6, m.KernelPackage, m.KernelVersion, m.ModuleCount)
	printCoverage(stdout, m)
	return nil
}
