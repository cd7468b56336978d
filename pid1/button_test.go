package pid1

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func event(typ, code uint16, value int32) []byte {
	b := make([]byte, eventSize)
	binary.LittleEndian.PutUint16(b[16:], typ)
	binary.LittleEndian.PutUint16(b[18:], code)
	binary.LittleEndian.PutUint32(b[20:], uint32(value))
	return b
}

func TestReadPresses(t *testing.T) {
	const evSyn = 0
	cases := []struct {
		name   string
		events [][]byte
		want   int
	}{
		{"press and release", [][]byte{event(evKey, keyPower, 1), event(evSyn, 0, 0), event(evKey, keyPower, 0)}, 1},
		{"release only", [][]byte{event(evKey, keyPower, 0)}, 0},
		{"autorepeat is not a press", [][]byte{event(evKey, keyPower, 2)}, 0},
		{"another key", [][]byte{event(evKey, 115, 1)}, 0},
		{"power code on another event type", [][]byte{event(0x04, keyPower, 1)}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			presses := make(chan struct{}, 1)
			if err := readPresses(bytes.NewReader(bytes.Join(c.events, nil)), presses); err != nil {
				t.Fatal(err)
			}
			if got := len(presses); got != c.want {
				t.Errorf("%d presses seen, want %d", got, c.want)
			}
		})
	}
	// A torn last record is an error, not a press.
	presses := make(chan struct{}, 1)
	if err := readPresses(bytes.NewReader(event(evKey, keyPower, 1)[:10]), presses); err == nil || len(presses) != 0 {
		t.Errorf("torn record: err %v, %d presses", err, len(presses))
	}
}

func TestKeyBit(t *testing.T) {
	bits := make([]byte, keyMax/8+1)
	if keyBit(bits, keyPower) {
		t.Fatal("empty capability set has the power key")
	}
	bits[keyPower/8] |= 1 << (keyPower % 8)
	if !keyBit(bits, keyPower) || keyBit(bits, keyPower+1) || keyBit(bits[:1], keyPower) {
		t.Error("bit arithmetic wrong")
	}
}
