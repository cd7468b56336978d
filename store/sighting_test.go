package store

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSighted(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := Machine{Segment: "lab", IP: "10.77.0.100", Arch: "bios", Client: "pxe", LastSeen: t0}
	for _, tc := range []struct {
		name string
		s    Sighting
		due  bool
	}{
		{"same facts, fresh", Sighting{Segment: "lab", IP: "10.77.0.100", Client: "pxe", At: t0.Add(time.Second)}, false},
		{"empty facts keep the old ones", Sighting{At: t0.Add(time.Second)}, false},
		{"same facts, stale", Sighting{Segment: "lab", At: t0.Add(SightingRefresh)}, true},
		{"new client kind", Sighting{Client: "ipxe", At: t0.Add(time.Second)}, true},
		{"new address", Sighting{IP: "10.77.0.101", At: t0.Add(time.Second)}, true},
		{"another segment", Sighting{Segment: "office", At: t0.Add(time.Second)}, true},
	} {
		next, due := m.Sighted(tc.s)
		if due != tc.due {
			t.Errorf("%s: due %v, want %v", tc.name, due, tc.due)
		}
		if due && next.LastSeen != tc.s.At {
			t.Errorf("%s: last seen %v", tc.name, next.LastSeen)
		}
	}
}

// Sightings come from packets: an unknown MAC or a hostile value writes
// nothing.
func TestRecordSightingRefuses(t *testing.T) {
	db, _, _ := openTest(t)
	mustCreate(t, db, Machine{MAC: mac(1), Hostname: "a"})
	if _, err := db.RecordSighting(mac(2), Sighting{IP: "10.0.0.1"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown MAC: %v", err)
	}
	for _, s := range []Sighting{{Segment: "a/b"}, {IP: strings.Repeat("9", 200)}, {Arch: "bios\x1b[2J"}} {
		if _, err := db.RecordSighting(mac(1), s); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v", s, err)
		}
	}
	if m, _ := db.GetMachine(mac(1)); m.Revision != 1 {
		t.Errorf("refused sightings wrote the record (revision %d)", m.Revision)
	}
}
