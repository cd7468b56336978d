package pxe

import (
	"golang.org/x/net/bpf"

	"github.com/foundry-appliance/foundry/internal/bpfdrop"
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
	const drop = bpfdrop.Drop
	return bpfdrop.Resolve([]bpf.Instruction{
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
	})
}
