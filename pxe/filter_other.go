//go:build !linux

package pxe

import (
	"errors"
	"net"
)

// guard has no socket filter to attach outside Linux: TFTP is served
// unfiltered, and ServeConn says so.
func guard(net.PacketConn) (func() (uint32, error), error) {
	return nil, errors.New("socket filters are only attached on Linux")
}
