package agent

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestPause(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := Pause(ctx, time.Hour); !errors.Is(err, context.Canceled) || time.Since(start) > time.Second {
		t.Fatalf("Pause on an ended context: %v after %v", err, time.Since(start))
	}
	if err := Pause(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("Pause: %v", err)
	}
}
