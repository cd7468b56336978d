// Package bpfdrop lets a classic BPF socket filter be written with jumps
// to its last instruction, the one that drops, without counting the
// distance of each: the filters of the DHCP decline socket and of the TFTP
// port both end in "keep" and "drop", and both grow by an instruction now
// and then.
package bpfdrop

import "golang.org/x/net/bpf"

// Drop is the SkipTrue of a JumpIf that means "to the last instruction".
// No real skip in these short programs is this long.
const Drop = 0xff

// Resolve replaces, in place, every JumpIf whose SkipTrue is Drop by the
// distance to p's last instruction, and returns p.
func Resolve(p []bpf.Instruction) []bpf.Instruction {
	for i, ins := range p {
		if j, ok := ins.(bpf.JumpIf); ok && j.SkipTrue == Drop {
			j.SkipTrue = uint8(len(p) - 2 - i)
			p[i] = j
		}
	}
	return p
}
