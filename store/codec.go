package store

import (
	"encoding/json"
	"reflect"

	segjson "github.com/segmentio/encoding/json"
)

// Reading a stored record.
//
// Lists decode a page's machine records and sessions on every request, and
// encoding/json spent a third of a first-page list doing it (perf, 100,000
// machines). segmentio/encoding's decoder reads them 2.8× (a ready
// machine's record) to 4× (a session) faster (BenchmarkDecodeRecord), so
// records are read with it — but a record is only ever worth what
// encoding/json would make of it: that is what wrote it and what every
// earlier build read. Where the two could disagree, encoding/json decides:
//   - when segmentio refuses a value, encoding/json decodes it again (it is
//     more lenient about some time formats, and its error is the one
//     reported);
//   - a value holding a run of digits worth 2^64 or more goes to
//     encoding/json straight away: segmentio's integer parser checks for
//     overflow with "next < value", which misses some products past 2^64
//     (it reads 20700000000000000000 into an int as 2253255926290448384),
//     and a flipped digit in a record could make one. Below 2^64 it is
//     right: a uint64 up to 2^64-1 is parsed exactly, and an int64's
//     overflow below 2^64 turns the value negative, which it catches.
//     (An inventory's Sum is a uint64 of 20 digits in about half the
//     records: the limit is the value, not the length.)
// FuzzDecodeRecord holds decodeJSON to encoding/json's result for any
// input.

// decodeJSON decodes b into v, which points to a zero value, exactly as
// encoding/json.Unmarshal would.
func decodeJSON(b []byte, v any) error {
	if !hugeNumber(b) {
		if segjson.Unmarshal(b, v) == nil {
			return nil
		}
		// What segmentio filled in before it stopped must not survive into
		// encoding/json's answer. (v that is no pointer, or nil, filled in
		// nothing: encoding/json reports it.)
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && !rv.IsNil() {
			rv.Elem().SetZero()
		}
	}
	return json.Unmarshal(b, v)
}

// hugeNumber reports whether b holds a run of ASCII digits worth 2^64 or
// more (read as a number; a JSON number has no leading zeros). Such a run
// is at least 20 digits long, so it covers one of every 20 positions: only
// a digit there is looked at around.
func hugeNumber(b []byte) bool {
	const pow64 = "18446744073709551616"
	isDigit := func(i int) bool { return '0' <= b[i] && b[i] <= '9' }
	for i := len(pow64) - 1; i < len(b); i += len(pow64) {
		if !isDigit(i) {
			continue
		}
		start, end := i, i+1
		for start > 0 && isDigit(start-1) {
			start--
		}
		for end < len(b) && isDigit(end) {
			end++
		}
		if run := b[start:end]; len(run) > len(pow64) || len(run) == len(pow64) && string(run) >= pow64 {
			return true
		}
	}
	return false
}
