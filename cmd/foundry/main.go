// Command foundry is the Foundry appliance (`foundry serve`) and its
// administration CLI (`foundry machines …`).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if os.Getpid() == 1 {
		applianceInit() // the appliance ISO's /init; never returns
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		// An error may quote what the appliance answered: made printable.
		fmt.Fprintln(os.Stderr, "foundry:", printableLines(err.Error()))
		os.Exit(exitCode(err))
	}
}
