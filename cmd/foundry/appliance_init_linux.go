package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/foundry-appliance/foundry/appliance"
	"github.com/foundry-appliance/foundry/appliance/console"
	"github.com/foundry-appliance/foundry/pid1"
)

// applianceInit is foundry started as PID 1: /init of the appliance ISO,
// whose initramfs holds the whole appliance. It mounts the kernel file
// systems, then hands over to appliance.Init, which finds the data disk,
// decides the network, runs `foundry serve` (this same binary) and the
// console status page, and shuts down cleanly on the power button. PID 1
// must never exit (the kernel would panic), so every end is a power-off or
// a reboot.
func applianceInit() {
	// The kernel starts init with no PATH; serve runs qemu-img, the init
	// mke2fs and e2fsck.
	os.Setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
	reboot, err := runApplianceInit()
	if err != nil {
		fmt.Fprintf(os.Stderr, "\nfoundry init: %v\nrebooting in 60 s\n", err)
		time.Sleep(time.Minute)
		reboot = true
	}
	if reboot {
		err = pid1.Reboot()
	} else {
		err = pid1.PowerOff()
	}
	fmt.Fprintf(os.Stderr, "foundry init: power-off/reboot failed: %v\n", err)
	select {} // exiting would panic the kernel
}

func runApplianceInit() (reboot bool, err error) {
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
	if tty, err := os.OpenFile("/dev/tty1", os.O_RDWR|unix.O_NOCTTY, 0); err == nil {
		defer tty.Close()
		screen = tty
		readers = append(readers, tty)
	}
	if ser, err := os.OpenFile("/dev/ttyS0", os.O_RDWR|unix.O_NOCTTY, 0); err == nil {
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
	exe, err := os.Executable()
	if err != nil {
		exe = "/usr/bin/foundry"
	}
	in := &appliance.Init{
		Version: version, Cmdline: cl, CmdlineErr: clErr,
		Console: con, Out: out, In: console.NewInput(ctx, readers...),
		Log: log, Reaper: &reaper, Foundry: exe,
	}
	return in.Run(ctx)
}
