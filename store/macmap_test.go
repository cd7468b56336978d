package store

import (
	"reflect"
	"testing"
)

// TestMACMap: canonical MACs are found by their number, anything else by
// its text, and the two never meet: an upper-case spelling is another key
// (the store's keys are canonical; a garbled record's key is kept as it
// is).
func TestMACMap(t *testing.T) {
	var m macMap[int]
	steps := []struct {
		op   string // set, delete
		mac  string
		v    int
		want map[string]int // every key asked for afterwards; absent = -1
	}{
		{"set", "52:54:00:12:34:56", 1, map[string]int{"52:54:00:12:34:56": 1, "52:54:00:12:34:57": -1, "52:54:00:12:34:5": -1}},
		{"set", "52:54:00:AB:CD:EF", 2, map[string]int{"52:54:00:AB:CD:EF": 2, "52:54:00:ab:cd:ef": -1}},
		{"set", "52:54:00:ab:cd:ef", 3, map[string]int{"52:54:00:AB:CD:EF": 2, "52:54:00:ab:cd:ef": 3}},
		{"set", "", 4, map[string]int{"": 4, "52:54:00:12:34:56": 1}},
		{"set", "52:54:00:12:34:56", 5, map[string]int{"52:54:00:12:34:56": 5}},
		{"delete", "52:54:00:ab:cd:ef", 0, map[string]int{"52:54:00:AB:CD:EF": 2, "52:54:00:ab:cd:ef": -1}},
		{"delete", "52:54:00:AB:CD:EF", 0, map[string]int{"52:54:00:AB:CD:EF": -1, "": 4}},
		{"delete", "52:54:00:99:99:99", 0, map[string]int{"52:54:00:12:34:56": 5}},
	}
	lens := []int{1, 2, 3, 4, 4, 3, 2, 2}
	for i, st := range steps {
		if st.op == "set" {
			m.set(st.mac, st.v)
		} else {
			m.delete(st.mac)
		}
		for k, want := range st.want {
			got, ok := m.get(k)
			if !ok {
				got = -1
			}
			if got != want {
				t.Errorf("step %d (%s %q): get(%q) = %d, want %d", i, st.op, st.mac, k, got, want)
			}
		}
		if m.len() != lens[i] {
			t.Errorf("step %d: len %d, want %d", i, m.len(), lens[i])
		}
	}
}

// TestMirrorHoldsNoPointers: what the mirror and the known-MAC set keep
// per machine has nothing the garbage collector follows (rowMirror's
// comment gives the cost measured when it had). A field added with a
// slice or a string would bring that back.
func TestMirrorHoldsNoPointers(t *testing.T) {
	for _, typ := range []reflect.Type{
		reflect.TypeFor[mirrorRow](),
		reflect.TypeFor[pairSet](),
		reflect.TypeFor[rowLines](),
		reflect.TypeOf(macMap[int]{}.num),
		reflect.TypeOf(macMap[struct{}]{}.num),
	} {
		if typ.Kind() == reflect.Map {
			if pointers(typ.Key()) || pointers(typ.Elem()) {
				t.Errorf("%v has pointers", typ)
			}
			continue
		}
		if pointers(typ) {
			t.Errorf("%v has pointers", typ)
		}
	}
}

func pointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Array:
		return t.Len() > 0 && pointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if pointers(t.Field(i).Type) {
				return true
			}
		}
		return false
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.String, reflect.Interface, reflect.Chan, reflect.Func, reflect.UnsafePointer:
		return true
	}
	return false
}
