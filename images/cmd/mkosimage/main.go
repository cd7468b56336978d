// Command mkosimage builds the Debian 12 disk image Foundry installs by
// default (see package images/osimage), unless the one in -dir is current.
//
//	mkosimage -dir build/os     # build/os/debian-12-amd64.raw, .raw.zst, .sha256
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"

	"github.com/foundry-appliance/foundry/images/osimage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mkosimage:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("mkosimage", flag.ContinueOnError)
	var b osimage.Builder
	fs.StringVar(&b.Dir, "dir", "build/os", "output directory")
	fs.StringVar(&b.Name, "name", "debian-12-amd64", "base name of the outputs")
	fs.BoolVar(&b.Force, "force", false, "rebuild even if the image is current")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("parse flags: %w", err)
	}
	b.Log = slog.New(slog.NewTextHandler(stdout, nil))
	m, cached, err := b.Build(ctx)
	if err != nil {
		return fmt.Errorf("build OS image in %s: %w", b.Dir, err)
	}
	p := b.Paths()
	how := fmt.Sprintf("built in %.0f s", m.BuildSeconds)
	if cached {
		how = "current, not rebuilt"
	}
	fmt.Fprintf(stdout, "%s (%s): kernel %s, %d packages\n", m.Name, how, m.KernelRelease, len(m.Packages))
	fmt.Fprintf(stdout, "  %-40s %6.0f MB  sha256 %s\n", p.Raw, float64(m.RawBytes)/1e6, m.RawSHA256)
	fmt.Fprintf(stdout, "  %-40s %6.0f MB  sha256 %s\n", p.Zst, float64(m.ZstBytes)/1e6, m.ZstSHA256)
	return nil
}
