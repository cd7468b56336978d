package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// version is the build, set by the linker (make iso: -X main.version=…).
// A variable because the linker can only set variables; nothing assigns it.
var version = "dev"

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "foundry",
		Version:       version,
		Short:         "Bare-metal discovery and provisioning appliance",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCmd(), newCheckConfigCmd())
	root.AddCommand(cliCommands()...)
	return root
}

// exitCode maps an error to the process exit status that scripts rely on
// (documented in `foundry --help` of each command): commands return errors
// that carry their own code; anything else is 1.
func exitCode(err error) int {
	var c interface{ ExitCode() int }
	if errors.As(err, &c) {
		return c.ExitCode()
	}
	return 1
}
