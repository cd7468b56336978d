package pxe

import (
	"errors"
	"fmt"
	"net"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// guard attaches requestFilter to conn, the TFTP port's socket, and
// returns a func reading how many datagrams the kernel has dropped on it
// since it was opened (filtered, or the receive buffer full).
func guard(conn net.PacketConn) (func() (uint32, error), error) {
	c, ok := conn.(*net.UDPConn)
	if !ok {
		return nil, fmt.Errorf("a %T is not a UDP socket", conn)
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("attach request filter: %w", err)
	}
	prog, err := bpf.Assemble(requestFilter())
	if err != nil {
		return nil, fmt.Errorf("assemble request filter: %w", err)
	}
	filter := make([]unix.SockFilter, len(prog))
	for i, ins := range prog {
		filter[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
			&unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]})
	}); err != nil {
		return nil, fmt.Errorf("attach request filter: %w", err)
	}
	if serr != nil {
		return nil, fmt.Errorf("attach request filter: %w", serr)
	}
	drops := func() (uint32, error) {
		var n uint32
		var gerr error
		if err := raw.Control(func(fd uintptr) { n, gerr = socketDrops(fd) }); err != nil {
			return 0, err
		}
		return n, gerr
	}
	return drops, nil
}

// socketDrops reads the kernel's drop count of a socket (SO_MEMINFO,
// sock_diag(7)); x/sys/unix has the constants but no getter for the array.
func socketDrops(fd uintptr) (uint32, error) {
	var mem [unix.SK_MEMINFO_VARS]uint32
	size := uint32(unsafe.Sizeof(mem))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
		uintptr(unsafe.Pointer(&mem)), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 {
		return 0, fmt.Errorf("read socket drops: %w", errno)
	}
	if size < (unix.SK_MEMINFO_DROPS+1)*4 {
		return 0, errors.New("read socket drops: the kernel has no drop count")
	}
	return mem[unix.SK_MEMINFO_DROPS], nil
}
