// Command foundry-init is /init of the Foundry appliance ISO: PID 1 of the
// initramfs that holds the whole appliance. It mounts the kernel file
// systems, then hands over to appliance.Init, which finds the data disk,
// decides the network, runs `foundry serve` and the console status page,
// and shuts down cleanly on the power button. PID 1 must never exit (the
// kernel would panic), so every end is a power-off or a reboot.
//
// Build it static: CGO_ENABLED=0 go build.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/foundry-appliance/foundry/appliance"
	"github.com/foundry-appliance/foundry/appliance/console"
	"github.com/foundry-appliance/foundry/pid1"
)

// version is the build, set by the linker (make iso).
var version = "dev"

func main() {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "foundry-init: not PID 1; this program is the appliance ISO's init and only runs there")
		os.Exit(2)
	}
	reboot, err := run()
	if err != nil {
		fmt.Fprintf(os.Stderr, "\nfoundry-init: %v\nrebooting in 60 s\n", err)
		time.Sleep(time.Minute)
		reboot = true
	}
	if reboot {
		err = pid1.Reboot()
	} else {
		err = pid1.PowerOff()
	}
	fmt.Fprintf(os.Stderr, "foundry-init: power-off/reboot failed: %v\n", err)
	select {} // exiting would panic the kernel
}

func run() (reboot bool, err error) {
	if err := pid1.MountAll(); err != nil {
		fmt.Fprintln(os.Stderr, "mount:", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // before wg.Wait: ends the reaper
	var reaper pid1.Reaper
	wg.Go(func() { reaper.Run(ctx) })
	// Before anything reads crypto/rand: under an emulated CPU without
	// RDRAND the kernel's pool can take minutes to fill by itself.
	if err := pid1.SeedEntropy(); err != nil {
		fmt.Fprintln(os.Stderr, "entropy:", err)
	}
	_ = appliance.Sethostname("foundry")

	// The serial console is /dev/console (the last console= on the kernel
	// line); the screen is tty1. Both show the page and take commands.
	serial := os.Stdout
	var screen io.Writer
	readers := []io.Reader{}
	if tty, err := os.OpenFile("/dev/tty1", os.O_RDWR|unixNoCTTY, 0); err == nil {
		defer tty.Close()
		screen = tty
		readers = append(readers, tty)
	}
	if ser, err := os.OpenFile("/dev/ttyS0", os.O_RDWR|unixNoCTTY, 0); err == nil {
		defer ser.Close()
		readers = append(readers, ser)
	} else {
		readers = append(readers, os.Stdin)
	}
	con := &console.Console{Screen: screen, Serial: serial}
	out := io.Writer(serial)
	if screen != nil {
		out = io.MultiWriter(serial, screen)
	}
	log := slog.New(slog.NewTextHandler(serial, &slog.HandlerOptions{Level: slog.LevelWarn}))

	raw, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return false, fmt.Errorf("read the kernel command line: %w", err)
	}
	cl, clErr := appliance.ParseCmdline(string(raw))
	in := &appliance.Init{
		Version: version, Cmdline: cl, CmdlineErr: clErr,
		Console: con, Out: out, In: console.NewInput(ctx, readers...),
		Log: log, Reaper: &reaper,
	}
	return in.Run(ctx)
}
