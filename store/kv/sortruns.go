package kv

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/binary"
	"io"
	"os"
	"slices"
)

// The sorted pairs a BulkWriter reads back in finish: its in-memory arena,
// or a merge of the runs it spilled to disk. A run is a sequence of
// (uvarint length, key, uvarint length, value), in key order.

// pairAt decodes the pair at off of a buffer that Add wrote.
func pairAt(b []byte, off int) (key, value []byte) {
	n, k := binary.Uvarint(b[off:])
	off += k
	key = b[off : off+int(n)]
	off += int(n)
	n, k = binary.Uvarint(b[off:])
	off += k
	return key, b[off : off+int(n)]
}

type pairSource interface {
	next() (key, value []byte, err error)
	close()
}

type arenaSource struct {
	w *BulkWriter
	i int
}

func (s *arenaSource) next() ([]byte, []byte, error) {
	if s.i == len(s.w.offs) {
		return nil, nil, io.EOF
	}
	k, v := pairAt(s.w.arena, s.w.offs[s.i])
	s.i++
	return k, v, nil
}

func (s *arenaSource) close() {}

// runReader reads one sorted run; key and value are its current pair.
type runReader struct {
	f          *os.File
	r          *bufio.Reader
	key, value []byte
}

func (r *runReader) advance() error {
	read := func(dst []byte) ([]byte, error) {
		n, err := binary.ReadUvarint(r.r)
		if err != nil {
			return nil, err
		}
		dst = slices.Grow(dst[:0], int(n))[:n]
		_, err = io.ReadFull(r.r, dst)
		return dst, err
	}
	var err error
	if r.key, err = read(r.key); err != nil {
		return err
	}
	if r.value, err = read(r.value); err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

type runHeap []*runReader

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return bytes.Compare(h[i].key, h[j].key) < 0 }
func (h runHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)        { *h = append(*h, x.(*runReader)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// mergeSource merges sorted runs.
type mergeSource struct {
	h     runHeap
	files []*os.File
	// key and value hold the pair last returned: the run it came from
	// reads its next pair into its own buffers.
	key, value []byte
}

func (m *mergeSource) next() ([]byte, []byte, error) {
	if len(m.h) == 0 {
		return nil, nil, io.EOF
	}
	top := m.h[0]
	m.key = append(m.key[:0], top.key...)
	m.value = append(m.value[:0], top.value...)
	switch err := top.advance(); err {
	case nil:
		heap.Fix(&m.h, 0)
	case io.EOF:
		heap.Pop(&m.h)
	default:
		return nil, nil, err
	}
	return m.key, m.value, nil
}

func (m *mergeSource) close() {
	for _, f := range m.files {
		f.Close()
	}
}
