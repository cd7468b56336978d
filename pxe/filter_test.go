package pxe

import (
	"bytes"
	"testing"

	"golang.org/x/net/bpf"
)

// TestRequestFilter runs the socket filter in x/net/bpf's VM on what the
// kernel gives it: a UDP header, then the datagram. TestJunkFloodLogsOnce
// proves the same program on a real socket.
func TestRequestFilter(t *testing.T) {
	vm, err := bpf.NewVM(requestFilter())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		payload string
		keep    bool
	}{
		{"read request", "\x00\x01undionly.kpxe\x00octet\x00", true},
		{"read request with options", "\x00\x01ipxe.efi\x00octet\x00blksize\x001468\x00tsize\x000\x00", true},
		{"write request (refused later, with a reason)", "\x00\x02x\x00octet\x00", true},
		{"shortest request", "\x00\x01a\x00o\x00", true},
		{"read request with no name (refused later)", "\x00\x01\x00octet\x00", true},
		{"data", "\x00\x03\x00\x01hello\x00", false},
		{"ack", "\x00\x04\x00\x01", false},
		{"error", "\x00\x05\x00\x01oops\x00", false},
		{"option ack", "\x00\x06blksize\x001468\x00", false},
		{"unknown opcode", "\x00\x09junk\x00", false},
		{"opcode 0x0101", "\x01\x01a\x00o\x00", false},
		{"request not ending in NUL", "\x00\x01undionly.kpxe\x00octet", false},
		{"too short", "\x00\x01\x00\x00", false},
		{"one byte", "\x00", false},
		{"empty", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := append(make([]byte, udpHeader), c.payload...)
			n, err := vm.Run(in)
			if err != nil {
				t.Fatal(err)
			}
			if got := n > 0; got != c.keep {
				t.Errorf("kept %d bytes of %q, want keep %v", n, c.payload, c.keep)
			}
			if c.keep && n < len(in) {
				t.Errorf("kept %d of %d bytes: a request must reach pin/tftp whole", n, len(in))
			}
		})
	}
}

// FuzzRequestFilter: the socket filter keeps a datagram exactly when it
// has a request's opcode, a request's least length and a NUL at its end,
// keeps it whole, and what it keeps always splits into a name and a mode
// (the split pin/tftp's unpackRQ makes), so junk that passes is refused
// by the handler with a reason of its own.
func FuzzRequestFilter(f *testing.F) {
	f.Add([]byte("\x00\x01undionly.kpxe\x00octet\x00"))
	f.Add([]byte("\x00\x02x\x00octet\x00"))
	f.Add([]byte("\x00\x04\x00\x01"))
	f.Add([]byte("\x00\x01a\x00o"))
	f.Add([]byte("\x00\x01\x00\x00\x00\x00"))
	f.Add([]byte{})
	vm, err := bpf.NewVM(requestFilter())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		in := append(make([]byte, udpHeader), payload...)
		n, err := vm.Run(in)
		if err != nil {
			t.Fatal(err)
		}
		want := len(payload) >= minRequest && payload[0] == 0 && (payload[1] == opRRQ || payload[1] == opWRQ) &&
			payload[len(payload)-1] == 0
		if (n > 0) != want {
			t.Fatalf("%q: kept %d bytes, want keep %v", payload, n, want)
		}
		if n > 0 && n < len(in) {
			t.Fatalf("%q: kept %d of %d bytes", payload, n, len(in))
		}
		if want && len(bytes.Split(payload[2:], []byte{0})) < 2 {
			t.Fatalf("%q kept but has no name and mode", payload)
		}
	})
}
