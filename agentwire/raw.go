package agentwire

// RawInventory is the agent's hardware inventory as JSON bytes: the agent
// encodes a discovery-os/inventory.Inventory into it, and the appliance
// keeps it byte for byte as received (newer agents may add fields). The
// schema is documented in docs/inventory.md.
type RawInventory []byte

// UnmarshalJSON keeps the raw bytes.
func (r *RawInventory) UnmarshalJSON(b []byte) error {
	*r = append((*r)[:0], b...)
	return nil
}

// MarshalJSON writes the raw bytes; empty is null.
func (r RawInventory) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("null"), nil
	}
	return r, nil
}
