package api

import (
	"io"
	"maps"

	"github.com/danielgtaylor/huma/v2"
	segjson "github.com/segmentio/encoding/json"
)

// The machine list's encoder.
//
// A page of the machine list is the appliance's largest frequent answer
// (100 machines, about 95 KB), and encoding it with encoding/json was 18 %
// of a first page's time (perf, 100,000 machines). segmentio/encoding's
// encoder writes it about 4× faster, byte for byte as encoding/json does
// for MachineList's types: no field of them is `omitzero` (which segmentio
// does not know), and their only marshalers are time.Time's and
// json.RawMessage's (a machine's inventory, which a list leaves out; a
// list that has one goes to encoding/json, which compacts it).
// TestMachineListTypes holds the types to that, and
// FuzzMachineListEncoding compares the bytes for any text in every string
// field, any number and any time; TestListAnswerTakesTheListEncoder that
// the list operation's answer reaches the format as a MachineList. Every
// other answer, and every request body, stays with encoding/json (huma's
// default).

// jsonFormats returns huma's formats with the JSON one taking the machine
// list to encodeList. formats is not changed (huma's default map is shared
// by every API of the process).
func jsonFormats(formats map[string]huma.Format) map[string]huma.Format {
	out := maps.Clone(formats)
	for _, ct := range []string{"application/json", "json"} {
		std := formats[ct]
		out[ct] = huma.Format{
			Marshal: func(w io.Writer, v any) error {
				// huma passes a response's Body by value.
				if l, ok := v.(MachineList); ok && plainList(&l) {
					return encodeList(w, &l)
				}
				return std.Marshal(w, v)
			},
			Unmarshal: std.Unmarshal,
		}
	}
	return out
}

// plainList reports whether l has no inventory: a list answer never has
// one, and segmentio writes a raw message as it is where encoding/json
// compacts it.
func plainList(l *MachineList) bool {
	for i := range l.Items {
		if l.Items[i].Inventory != nil {
			return false
		}
	}
	return true
}

// encodeList writes l as huma's JSON format does (encoding/json's Encoder,
// HTML left unescaped, a newline after the value).
func encodeList(w io.Writer, l *MachineList) error {
	enc := segjson.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(l)
}
