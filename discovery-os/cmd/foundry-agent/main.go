// Command foundry-agent is /init of the discovery OS: PID 1 of the
// initramfs that unknown machines boot. It mounts the kernel file systems,
// loads drivers, brings up the boot NIC with DHCP, collects the inventory,
// shows the registration token and hands over to agent.Agent.
//
// Run as an ordinary process (not PID 1) it skips mounts, modules and
// network setup, and only prints what it would do instead of rebooting,
// which makes it usable against a test appliance on a workstation:
//
//	foundry-agent -cmdline <(echo foundry.url=http://127.0.0.1:8080 foundry.mac=… foundry.nonce=…)
//
// The image links /sbin/modprobe to it: called by that name (by the
// kernel's request_module, as "modprobe -q -- NAME"), it loads the module
// or the modules of the alias NAME from the image and exits.
//
// Build it static: CGO_ENABLED=0 go build.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/foundry-appliance/foundry/discovery-os/agent"
	"github.com/foundry-appliance/foundry/pid1"
	"golang.org/x/sys/unix"
)

func main() {
	if filepath.Base(os.Args[0]) == "modprobe" {
		os.Exit(modprobe(os.Args[1:]))
	}
	isInit := os.Getpid() == 1
	ctx := context.Background()
	if !isInit {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, unix.SIGTERM)
		defer stop()
	}
	fs := flag.NewFlagSet("foundry-agent", flag.ExitOnError)
	cmdline := fs.String("cmdline", "/proc/cmdline", "file holding the kernel command line")
	fs.Parse(os.Args[1:])

	err := run(ctx, isInit, *cmdline)
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stdout, "foundry: fatal:", err)
	if !isInit {
		os.Exit(1)
	}
	// PID 1 must never exit (the kernel would panic): show the error, give
	// a person time to read it, then boot again, which retries discovery.
	fmt.Fprintln(os.Stdout, "foundry: rebooting in 60 seconds")
	agent.Pause(ctx, 60*time.Second)
	pid1.Reboot()
	select {} // a failed reboot leaves the error on the screen; exiting would panic the kernel
}
