package api

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/foundry-appliance/foundry/store"
)

func TestImportRoom(t *testing.T) {
	const r = 128 << 20
	tests := []struct {
		name string
		sp   store.Space
		ok   bool
	}{
		{"plenty", store.Space{Free: 10 << 30, Reserve: r}, true},
		{"at the floor", store.Space{Free: r + r/2, Reserve: r}, true},
		{"under the floor, the store still writing", store.Space{Free: r + r/2 - 1, Reserve: r}, false},
		{"under the reserve", store.Space{Free: r - 1, Reserve: r, Full: true}, false},
		{"refusing writes with room again, before the ballast is back", store.Space{Free: 10 << 30, Reserve: r, Full: true}, false},
		{"no guard", store.Space{Free: 0, Reserve: 0}, true},
		{"free space unknown", store.Space{Free: -1, Reserve: r}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := importRoom(tt.sp)
			if (err == nil) != tt.ok || err != nil && !errors.Is(err, store.ErrNoSpace) {
				t.Errorf("importRoom(%+v) = %v, want ok %t (else ErrNoSpace)", tt.sp, err, tt.ok)
			}
		})
	}
}

// The kernel's own "no space left on device" (here /dev/full's) ends an
// import with errImageDiskFull as its cause, which answers 507.
func TestSpaceWriterENOSPC(t *testing.T) {
	f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer f.Close()
	ctx, cancel := context.WithCancelCause(context.Background())
	w := &spaceWriter{w: f, check: func() error { return nil }, cancel: cancel}
	if _, err := w.Write(make([]byte, 4096)); !errors.Is(err, errImageDiskFull) {
		t.Errorf("write to a full disk: %v; want errImageDiskFull", err)
	}
	if cause := context.Cause(ctx); !errors.Is(cause, errImageDiskFull) || !strings.Contains(cause.Error(), "no space left on device") {
		t.Errorf("the import's cause: %v", cause)
	}
	s := &Server{}
	if se := s.ingestErr(context.Cause(ctx), "img"); !strings.Contains(se.Error(), "disk is full") {
		t.Errorf("answer: %v", se)
	}

	refused := errors.New("refused")
	ctx, cancel = context.WithCancelCause(context.Background())
	w = &spaceWriter{w: f, check: func() error { return refused }, cancel: cancel}
	if n, err := w.Write(make([]byte, 10)); n != 0 || !errors.Is(err, refused) || !errors.Is(context.Cause(ctx), refused) {
		t.Errorf("write the check refuses: %d, %v, cause %v", n, err, context.Cause(ctx))
	}
}
