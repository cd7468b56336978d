package store

import "github.com/foundry-appliance/foundry/names"

// macMap maps machines' MACs to values, keyed by a MAC's number
// (names.MACNumber) rather than its text. A map of 100,000 strings is
// 100,000 objects that every garbage collection marks, one cache miss
// each; a map of numbers to pointer-free values is not looked into at
// all. Keys are the stored machines' MACs, canonical unless a record is
// garbled: any other text is kept in odd, by its text. The zero value is
// empty and ready to use.
type macMap[V any] struct {
	num map[uint64]V
	odd map[string]V
}

func (m *macMap[V]) get(mac string) (V, bool) {
	if n, ok := names.MACNumber(mac); ok {
		v, found := m.num[n]
		return v, found
	}
	v, found := m.odd[mac]
	return v, found
}

func (m *macMap[V]) set(mac string, v V) {
	if n, ok := names.MACNumber(mac); ok {
		if m.num == nil {
			m.num = map[uint64]V{}
		}
		m.num[n] = v
		return
	}
	if m.odd == nil {
		m.odd = map[string]V{}
	}
	m.odd[mac] = v
}

func (m *macMap[V]) delete(mac string) {
	if n, ok := names.MACNumber(mac); ok {
		delete(m.num, n)
		return
	}
	delete(m.odd, mac)
}

func (m *macMap[V]) len() int { return len(m.num) + len(m.odd) }
