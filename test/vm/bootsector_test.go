package vm

import (
	"bytes"
	"strings"
	"testing"
)

func TestBootSector(t *testing.T) {
	b, err := BootSector("FOUNDRY-LOCAL-DISK\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 512 || b[510] != 0x55 || b[511] != 0xAA {
		t.Fatalf("not an MBR: %d bytes, signature %#x %#x", len(b), b[510], b[511])
	}
	// mov si points at the message, which ends with a NUL.
	si := int(b[9]) | int(b[10])<<8
	if si < 0x7C00 || !bytes.HasPrefix(b[si-0x7C00:], []byte("FOUNDRY-LOCAL-DISK\r\n\x00")) {
		t.Fatalf("mov si,%#x does not point at the message", si)
	}
	if !bytes.Equal(b[BootCodeSize:510], make([]byte, 510-BootCodeSize)) {
		t.Error("the partition table is not empty")
	}
	if _, err := BootCode(strings.Repeat("x", BootCodeSize)); err == nil {
		t.Error("a message larger than the code area was accepted")
	}
}
