package main

import (
	"runtime/debug"
	"testing"
)

// TestTuneCollector: serve's collector defaults apply where the
// environment sets nothing, and GOGC / GOMEMLIMIT, when set, are left to
// the runtime (which has read them already).
func TestTuneCollector(t *testing.T) {
	limit, percent := debug.SetMemoryLimit(-1), debug.SetGCPercent(100)
	debug.SetGCPercent(percent)
	t.Cleanup(func() { debug.SetMemoryLimit(limit); debug.SetGCPercent(percent) })
	for _, tt := range []struct {
		name        string
		env         map[string]string
		wantLimit   int64
		wantPercent int
	}{
		{"defaults", nil, defaultMemoryLimit, defaultGCPercent},
		{"GOGC set", map[string]string{"GOGC": "200"}, defaultMemoryLimit, 77},
		{"GOMEMLIMIT set", map[string]string{"GOMEMLIMIT": "1GiB"}, 1 << 40, defaultGCPercent},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// What the runtime would have read from the environment.
			debug.SetMemoryLimit(1 << 40)
			debug.SetGCPercent(77)
			pacer := tuneCollector(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if _, set := tt.env["GOGC"]; set != (pacer == nil) {
				t.Errorf("pacer %+v with the environment's GOGC set %v: want one only when it is not", pacer, set)
			}
			if pacer != nil && (pacer.Percent != defaultGCPercent || pacer.Floor != defaultGCFloor) {
				t.Errorf("pacer %+v, want GOGC %d with a floor of %d bytes", pacer, defaultGCPercent, defaultGCFloor)
			}
			if got := debug.SetMemoryLimit(-1); got != tt.wantLimit {
				t.Errorf("memory limit %d, want %d", got, tt.wantLimit)
			}
			got := debug.SetGCPercent(77)
			if got != tt.wantPercent {
				t.Errorf("GC percent %d, want %d", got, tt.wantPercent)
			}
		})
	}
}
