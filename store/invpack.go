package store

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Inventories (mi/, si/) are kept compressed with zstd. They are JSON of
// 5–20 KiB that compresses several times over, and most of a large
// database's bytes: every Badger compaction rewrites them and the mapped
// tables hold them (at 100,000 machines, 1.2 GiB of reports). A value that
// starts with zstd's magic number is compressed; any other is JSON as
// received (what databases written before kept), so neither form needs a
// migration.

var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// inventoryCodec is one encoder and decoder for every database: both are
// safe for concurrent EncodeAll and DecodeAll and hold only their buffers.
var inventoryCodec = sync.OnceValues(func() (*zstd.Encoder, *zstd.Decoder) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(2),
		zstd.WithLowerEncoderMem(true))
	if err != nil {
		panic(err) // only for invalid options
	}
	// A damaged value must not make the decoder allocate more than an
	// inventory may be.
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(2), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxMemory(2*maxRecord))
	if err != nil {
		panic(err)
	}
	return enc, dec
})

// packInventory compresses an inventory for its key; nil stays nil.
func packInventory(raw []byte) []byte {
	if len(raw) == 0 {
		return raw
	}
	enc, _ := inventoryCodec()
	return enc.EncodeAll(raw, make([]byte, 0, len(raw)/4))
}

// unpackInventory returns the inventory a key holds.
func unpackInventory(v []byte) ([]byte, error) {
	if !bytes.HasPrefix(v, zstdMagic) {
		return v, nil
	}
	_, dec := inventoryCodec()
	raw, err := dec.DecodeAll(v, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: inventory: %v", ErrCorrupt, err)
	}
	return raw, nil
}
