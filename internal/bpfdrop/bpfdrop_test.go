package bpfdrop

import (
	"testing"

	"golang.org/x/net/bpf"
)

// TestResolve: a program whose jumps to Drop are resolved drops what they
// match and keeps the rest, at every position of the jump, in the VM.
func TestResolve(t *testing.T) {
	p := Resolve([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 0, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 1, SkipTrue: Drop},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 2, SkipTrue: 1}, // an ordinary skip, untouched
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 3, SkipTrue: Drop},
		bpf.RetConstant{Val: 0xffff},
		bpf.RetConstant{Val: 0},
	})
	vm, err := bpf.NewVM(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		in   byte
		keep bool
	}{{0, true}, {1, false}, {2, true}, {3, false}, {4, true}} {
		n, err := vm.Run([]byte{c.in})
		if err != nil {
			t.Fatal(err)
		}
		if (n > 0) != c.keep {
			t.Errorf("byte %d: kept %d bytes, want keep %v", c.in, n, c.keep)
		}
	}
}
