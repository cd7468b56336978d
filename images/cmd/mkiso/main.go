// Command mkiso builds the Foundry appliance ISO (see package images/iso)
// and prints its size against the budget, part by part.
//
//	mkiso -kernel-deb $(cat build/kernel/current) -foundry build/iso/foundry \
//	    -version 1.2.3 -out images/foundry-1.2.3.iso
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"

	"github.com/foundry-appliance/foundry/images/iso"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mkiso:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("mkiso", flag.ContinueOnError)
	var s iso.Spec
	fs.StringVar(&s.KernelDeb, "kernel-deb", "", "Debian linux-image package (.deb), the discovery image's (build/kernel/current)")
	fs.StringVar(&s.Foundry, "foundry", "", "static foundry binary, installed as "+iso.FoundryPath)
	fs.StringVar(&s.DiscoveryDir, "discovery", "images/discovery", "discovery image directory (vmlinuz, initrd, manifest.json)")
	fs.StringVar(&s.IPXEDir, "ipxe", "images/ipxe", "iPXE binaries directory")
	fs.StringVar(&s.PCIIDs, "pciids", "/usr/share/misc/pci.ids", "pci.ids database")
	fs.StringVar(&s.Version, "version", "dev", "version, in the volume ID and the boot menu")
	fs.StringVar(&s.Out, "out", "", "ISO file to write (default images/foundry-<version>.iso)")
	fs.Int64Var(&s.Budget, "budget", 0, "largest ISO in bytes (0: no limit)")
	fs.StringVar(&s.Cache, "cache", "", "directory that keeps xz-compressed modules between builds")
	fs.StringVar(&s.GrubMkrescue, "grub-mkrescue", "grub-mkrescue", "grub-mkrescue program")
	verbose := fs.Bool("v", false, "log progress")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("parse flags: %w", err)
	}
	if s.KernelDeb == "" || s.Foundry == "" {
		fs.Usage()
		return fmt.Errorf("-kernel-deb and -foundry are required")
	}
	if s.Out == "" {
		s.Out = "images/foundry-" + s.Version + ".iso"
	}
	if *verbose {
		s.Log = slog.New(slog.NewTextHandler(stdout, nil))
	}
	r, err := iso.Build(ctx, s)
	if err != nil {
		return fmt.Errorf("build ISO %s: %w", s.Out, err)
	}
	mb := func(n int64) string { return fmt.Sprintf("%6.1f MB", float64(n)/1e6) }
	fmt.Fprintf(stdout, "%s: kernel %s %s, %d modules, volume %s, built in %.0f s\n",
		r.ISO, r.KernelPackage, r.KernelVersion, len(r.Modules), r.VolumeID, r.BuildSeconds)
	fmt.Fprintf(stdout, "  %-28s %s\n", "kernel (/boot/vmlinuz)", mb(r.Kernel))
	fmt.Fprintf(stdout, "  %-28s %s\n", "initramfs (/boot/initrd.img)", mb(r.Initrd))
	for _, p := range r.Parts {
		fmt.Fprintf(stdout, "    %-26s %s  (%s uncompressed, %d files)\n", p.Name, mb(p.Compressed), mb(p.Bytes), p.Files)
	}
	fmt.Fprintf(stdout, "  %-28s %s\n", "GRUB and ISO structure", mb(r.GRUB))
	budget := "no budget"
	if r.Budget > 0 {
		budget = fmt.Sprintf("budget %s, %.0f%% used", mb(r.Budget), 100*float64(r.Bytes)/float64(r.Budget))
	}
	fmt.Fprintf(stdout, "  %-28s %s  (%d bytes; %s)  sha256 %s\n", "ISO", mb(r.Bytes), r.Bytes, budget, r.SHA256)
	return nil
}
