package pxe

import (
	"errors"
	"fmt"
	"net"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// TFTP opcodes that may open a transfer on the server's port (RFC 1350):
// everything else (DATA, ACK, ERROR, OACK) belongs to a transfer's own
// port and is junk here.
const (
	opRRQ = 1
	opWRQ = 2
	// udpHeader is where a UDP socket's filter finds the payload: the
	// kernel runs it on the datagram from its UDP header on.
	udpHeader = 8
	// minRequest is the shortest request: an opcode, a one-byte name, a
	// one-byte mode, each string NUL-terminated.
	minRequest = 2 + 2 + 2
)

// requestFilter is the classic BPF program of the TFTP port's socket. It
// keeps a datagram only when it can be a request: an RRQ or WRQ opcode,
// long enough, and ending in NUL as every request's last string does
// (RFC 1350, RFC 2347). The rest is dropped in the kernel before it is
// queued: pin/tftp reads one datagram at a time and spends a netlink
// interface lookup on each, so a flood of junk at a few thousand
// datagrams a second filled the socket's buffer and real clients' requests
// were dropped with it (a known machine's first two RRQs lost, 10 s until
// tftp-hpa's third; test/flood_test.go). Requests with bad names still
// reach the handler, which refuses and counts them.
func requestFilter() []bpf.Instruction {
	const drop = 0xff // a jump to the last instruction, fixed up below
	p := []bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtLen},
		bpf.JumpIf{Cond: bpf.JumpLessThan, Val: udpHeader + minRequest, SkipTrue: drop},
		bpf.LoadAbsolute{Off: udpHeader, Size: 2}, // opcode
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: opRRQ, SkipTrue: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: opWRQ, SkipTrue: drop},
		bpf.LoadExtension{Num: bpf.ExtLen},
		bpf.ALUOpConstant{Op: bpf.ALUOpSub, Val: 1},
		bpf.TAX{},
		bpf.LoadIndirect{Off: 0, Size: 1}, // the last byte
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0, SkipTrue: drop},
		bpf.RetConstant{Val: 0xffff}, // keep the whole datagram
		bpf.RetConstant{Val: 0},      // drop
	}
	for i, ins := range p {
		if j, ok := ins.(bpf.JumpIf); ok && j.SkipTrue == drop {
			j.SkipTrue = uint8(len(p) - 2 - i)
			p[i] = j
		}
	}
	return p
}

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
