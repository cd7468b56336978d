package vm

import (
	"encoding/binary"
	"fmt"
)

// BootCodeSize is the room for boot code in an MBR, before its partition
// table.
const BootCodeSize = 446

// BootSector returns a 512-byte MBR (no partitions, signature 0x55AA) whose
// code writes text to COM1 and halts: on the serial console, proof that the
// machine booted this disk. An error when text does not fit.
func BootSector(text string) ([]byte, error) {
	code, err := BootCode(text)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 512)
	copy(b, code)
	b[510], b[511] = 0x55, 0xAA
	return b, nil
}

// BootCode returns the BootCodeSize bytes of x86 real-mode code (and their
// message) that BootSector starts with, for an image that adds its own
// partition table. The BIOS (or iPXE's sanboot) loads the MBR at 0000:7C00.
func BootCode(text string) ([]byte, error) {
	code := []byte{
		0x31, 0xC0, // xor ax,ax
		0x8E, 0xD8, // mov ds,ax          ; address the message from segment 0
		0xFC,             // cld               ; lodsb counts upwards
		0xBA, 0xF8, 0x03, // mov dx,0x3F8     ; COM1 data register
		0xBE, 0x00, 0x00, // mov si,msg        ; patched below
		0xAC,       // next: lodsb       ; al = [ds:si++]
		0x84, 0xC0, // test al,al
		0x74, 0x03, // jz halt           ; the message ends with a NUL
		0xEE,       // out dx,al         ; the UART sends it (QEMU ignores the baud rate)
		0xEB, 0xF8, // jmp next
		0xFA,       // halt: cli
		0xF4,       // hlt
		0xEB, 0xFC, // jmp halt          ; an NMI would wake hlt
	}
	const siImm = 9 // offset of mov si's 16-bit operand
	binary.LittleEndian.PutUint16(code[siImm:], uint16(0x7C00+len(code)))
	msg := append([]byte(text), 0)
	if len(code)+len(msg) > BootCodeSize {
		return nil, fmt.Errorf("boot message of %d bytes does not fit the boot code area", len(text))
	}
	b := make([]byte, BootCodeSize)
	copy(b, code)
	copy(b[len(code):], msg)
	return b, nil
}
