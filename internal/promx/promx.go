// Package promx holds what Foundry's services need from Prometheus beyond
// client_golang itself: registering a collector so that two servers on one
// registry share it.
//
// It exists because a registry refuses a second collector with the same
// descriptors (prometheus.AlreadyRegisteredError), and two dhcp, pxe or api
// servers in one process — tests, or an appliance that restarts a service
// without restarting the process — must count into the same series instead
// of failing to start. Each package used to handle that error itself, three
// times slightly differently.
package promx

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c with reg and returns the collector to count with:
// c itself, or the identical collector reg already holds (same name, help
// and labels; a second server on the same registry). A nil reg registers
// nothing and returns c, so that a server without a registry still counts.
// A collector that clashes with a different one of the same name, or whose
// twin is not of c's type, is an error.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if reg == nil {
		return c, nil
	}
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
		var zero C
		return zero, fmt.Errorf("register collector: already registered as a %T, not a %T", are.ExistingCollector, c)
	}
	var zero C
	return zero, fmt.Errorf("register collector: %w", err)
}
