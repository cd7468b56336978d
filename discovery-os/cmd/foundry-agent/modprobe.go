package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/foundry-appliance/foundry/pid1"
)

// modprobe is the agent run as /sbin/modprobe. The kernel runs it for
// request_module: a NIC driver asking for its PHY's driver by
// "mdio:<id>", mlx4_core for mlx4_en, libcrc32c for "crypto-crc32c". It
// accepts modprobe's common options (only -q, -b and -s change nothing
// here) and loads each named module or alias with its dependencies. What
// it did goes to the kernel log, where the rest of the boot's story is.
func modprobe(args []string) int {
	names := modprobeNames(args)
	if len(names) == 0 {
		fmt.Fprintln(os.Stderr, "usage: modprobe [-q] [--] MODULE|ALIAS...")
		return 1
	}
	l, err := pid1.ModuleLoader(nil)
	if err != nil {
		kmsg(kernInfo, "modprobe %s: %v", strings.Join(names, " "), err)
		return 1
	}
	status := 0
	for _, n := range names {
		start := time.Now()
		mods, err := l.Probe(n)
		switch {
		case len(mods) == 0:
			// The kernel asks for what is built in or absent all the time
			// (crypto algorithms, "cryptomgr"): not news for the console.
			kmsg(kernDebug, "%v", err)
			status = 1
		case err != nil:
			kmsg(kernInfo, "%v", err)
			status = 1
		default:
			kmsg(kernInfo, "modprobe %s: %s (%v)", n, strings.Join(mods, " "), time.Since(start).Round(time.Millisecond))
		}
	}
	return status
}

// Kernel log levels: info reaches the console at the default log level,
// debug only dmesg.
const (
	kernInfo  = 6
	kernDebug = 7
)

// kmsg writes one line to the kernel log.
func kmsg(level int, format string, args ...any) {
	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "<%d>foundry: "+format+"\n", append([]any{level}, args...)...)
}

// modprobeNames returns the modules and aliases a modprobe command line
// names: the words that are not options, and everything after "--".
func modprobeNames(args []string) []string {
	var names []string
	for i, a := range args {
		if a == "--" {
			return append(names, args[i+1:]...)
		}
		if strings.HasPrefix(a, "-") {
			continue // -q, -b, -s: quiet, blacklist, syslog
		}
		names = append(names, a)
	}
	return names
}
