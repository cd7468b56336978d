package pxe

import (
	"bytes"
	"encoding/binary"
	"net"
	"strconv"
	"testing"
	"time"
)

// rawFetch speaks TFTP by hand so the test sees exactly what the server
// sends: the OACK and the length of every DATA block.
func rawFetch(t *testing.T, addr, name string, opts ...string) (oack map[string]string, blocks []int, data []byte) {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp4", addr)
	must(t, err)
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	must(t, err)
	defer conn.Close()
	req := []byte{0, 1}
	for _, s := range append([]string{name, "octet"}, opts...) {
		req = append(append(req, s...), 0)
	}
	_, err = conn.WriteToUDP(req, raddr)
	must(t, err)
	buf := make([]byte, 65536)
	ack := func(to *net.UDPAddr, block uint16) {
		_, err := conn.WriteToUDP([]byte{0, 4, byte(block >> 8), byte(block)}, to)
		must(t, err)
	}
	want := uint16(1)
	for {
		must(t, conn.SetReadDeadline(time.Now().Add(3*time.Second)))
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		p := buf[:n]
		switch op := binary.BigEndian.Uint16(p); op {
		case 6: // OACK
			oack = map[string]string{}
			fields := bytes.Split(bytes.TrimSuffix(p[2:], []byte{0}), []byte{0})
			for i := 0; i+1 < len(fields); i += 2 {
				oack[string(fields[i])] = string(fields[i+1])
			}
			ack(from, 0)
		case 3: // DATA
			if got := binary.BigEndian.Uint16(p[2:]); got != want {
				t.Fatalf("DATA block %d, want %d", got, want)
			}
			blocks = append(blocks, n-4)
			data = append(data, p[4:]...)
			ack(from, want)
			want++
			// The transfer ends with the first block shorter than blksize.
			if bs, _ := strconv.Atoi(oack["blksize"]); n-4 < max(bs, 512) {
				return oack, blocks, data
			}
		case 5:
			t.Fatalf("ERROR %q", p[4:])
		default:
			t.Fatalf("unexpected opcode %d", op)
		}
	}
}

func TestOptionsNegotiated(t *testing.T) {
	f := newFixture(t)
	srv := start(t, &Server{Root: f.root})
	size := strconv.Itoa(len(f.files["undionly.kpxe"]))
	tests := []struct {
		name        string
		opts        []string
		wantOACK    map[string]string
		wantBlksize int
	}{
		{"no options", nil, nil, 512},
		{"tsize only", []string{"tsize", "0"}, map[string]string{"tsize": size}, 512},
		{"iPXE", []string{"blksize", "1432", "tsize", "0"}, map[string]string{"blksize": "1432", "tsize": size}, 1432},
		{"UEFI PXE", []string{"blksize", "1468", "tsize", "0"}, map[string]string{"blksize": "1468", "tsize": size}, 1468},
		{"blksize only", []string{"blksize", "512"}, map[string]string{"blksize": "512"}, 512},
		{"unknown option dropped", []string{"windowsize", "4", "blksize", "1024"}, map[string]string{"blksize": "1024"}, 1024},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			oack, blocks, data := rawFetch(t, srv.addr, "undionly.kpxe", tt.opts...)
			if len(oack) != len(tt.wantOACK) {
				t.Errorf("OACK %v, want %v", oack, tt.wantOACK)
			}
			for k, v := range tt.wantOACK {
				if oack[k] != v {
					t.Errorf("OACK %s=%q, want %q", k, oack[k], v)
				}
			}
			for i, n := range blocks[:len(blocks)-1] {
				if n != tt.wantBlksize {
					t.Fatalf("block %d has %d bytes, want %d", i+1, n, tt.wantBlksize)
				}
			}
			if !bytes.Equal(data, f.files["undionly.kpxe"]) {
				t.Error("content differs")
			}
		})
	}
}
