package api

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/foundry-appliance/foundry/store"
)

// TestMachineListTypes holds MachineList's types to what its encoder
// (jsonformat.go) writes as encoding/json does: no omitzero or string
// option, no interface or embedded field, string map keys, and no
// marshaler but time.Time's and json.RawMessage's.
func TestMachineListTypes(t *testing.T) {
	known := map[reflect.Type]bool{reflect.TypeFor[time.Time](): true, reflect.TypeFor[json.RawMessage](): true}
	seen := map[reflect.Type]bool{}
	var walk func(typ reflect.Type, path string)
	walk = func(typ reflect.Type, path string) {
		if seen[typ] {
			return
		}
		seen[typ] = true
		for _, m := range []reflect.Type{reflect.TypeFor[json.Marshaler](), reflect.TypeFor[encoding.TextMarshaler]()} {
			if typ.Kind() != reflect.Pointer && (typ.Implements(m) || reflect.PointerTo(typ).Implements(m)) && !known[typ] {
				t.Errorf("%s: %s implements %s", path, typ, m)
			}
		}
		if known[typ] {
			return
		}
		switch typ.Kind() {
		case reflect.Interface:
			t.Errorf("%s: an interface (%s) could hold anything", path, typ)
		case reflect.Pointer, reflect.Slice, reflect.Array:
			walk(typ.Elem(), path+"[]")
		case reflect.Map:
			if typ.Key().Kind() != reflect.String {
				t.Errorf("%s: map key %s", path, typ.Key())
			}
			walk(typ.Elem(), path+"{}")
		case reflect.Struct:
			for f := range typ.Fields() {
				if !f.IsExported() {
					continue
				}
				if f.Anonymous {
					t.Errorf("%s.%s: an embedded field", path, f.Name)
				}
				_, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
				for o := range strings.SplitSeq(opts, ",") {
					if o == "omitzero" || o == "string" {
						t.Errorf("%s.%s: json option %s", path, f.Name, o)
					}
				}
				walk(f.Type, path+"."+f.Name)
			}
		}
	}
	walk(reflect.TypeFor[MachineList](), "MachineList")
	if len(seen) < 10 {
		t.Fatalf("walked %d types only", len(seen))
	}
}

// fill sets every string in v to s, every number to n (floats to x),
// every bool to true and every time to at; it makes two elements of
// every slice (an inventory stays nil) and one entry of every map, and
// fills what pointers point to.
func fill(v reflect.Value, s string, n int64, x float64, at time.Time) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(n)
	case reflect.Uint, reflect.Uint64, reflect.Uint32:
		v.SetUint(uint64(n))
	case reflect.Float64, reflect.Float32:
		v.SetFloat(x)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), s, n, x, at)
	case reflect.Slice:
		if v.Type() == reflect.TypeFor[json.RawMessage]() {
			return // an inventory: not in a list answer
		}
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(v.Index(i), s, n, x, at)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		e := reflect.New(v.Type().Elem()).Elem()
		fill(e, s, n, x, at)
		v.SetMapIndex(reflect.ValueOf(s).Convert(v.Type().Key()), e)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(at))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), s, n, x, at)
			}
		}
	}
}

// sameEncoding fails unless the API's JSON format writes l as huma's
// default (encoding/json) does, or both refuse it; fast says whether l
// must take the list's own encoder.
func sameEncoding(t *testing.T, l MachineList, fast bool) {
	t.Helper()
	if plainList(&l) != fast {
		t.Fatalf("the list's encoder taken: %v, want %v", !fast, fast)
	}
	var want, got bytes.Buffer
	errWant := huma.DefaultJSONFormat.Marshal(&want, l)
	errGot := jsonFormats(huma.DefaultFormats)["application/json"].Marshal(&got, l)
	if (errWant == nil) != (errGot == nil) {
		t.Fatalf("encoding/json: %v; the list's encoder: %v", errWant, errGot)
	}
	if a, b := want.Bytes(), got.Bytes(); errWant == nil && !bytes.Equal(a, b) {
		i := 0
		for i < min(len(a), len(b)) && a[i] == b[i] {
			i++
		}
		t.Fatalf("from byte %d, encoding/json wrote\n%.200q\nthe list's encoder\n%.200q", i, a[i:], b[i:])
	}
}

func TestMachineListEncoding(t *testing.T) {
	at := time.Date(2026, 11, 30, 9, 45, 0, 123456789, time.FixedZone("", 3600))
	for _, c := range []struct {
		s string
		n int64
		x float64
	}{
		{"node-1", 7, 12.5},
		{`<a href="x">&amp;</a>`, -1, 1e21},
		{"\u2028\u2029\x00\x1f\x7f\t\n\r\b\f\"\\/", math.MaxInt64, 1e-7},
		{"\xff\xfe not utf-8 \xc3", 0, 0.1},
		{"日本語 😀", 1 << 40, 123456789.123456789},
		{`{"vendor": [1, 2],  "x" : null}`, 3, -0.0},
		{`not json`, 3, 1},
		{"", 0, math.SmallestNonzeroFloat64},
	} {
		var l MachineList
		fill(reflect.ValueOf(&l).Elem(), c.s, c.n, c.x, at)
		sameEncoding(t, l, true)
	}
	// With an inventory (never in a list answer) the list goes to
	// encoding/json, which compacts it.
	var l MachineList
	fill(reflect.ValueOf(&l).Elem(), "node-1", 1, 1, at)
	l.Items[1].Inventory = json.RawMessage(`{"vendor": [1, 2],  "x" : null}`)
	sameEncoding(t, l, false)
	// The zero list, and one as a list handler makes it.
	sameEncoding(t, MachineList{}, true)
	sameEncoding(t, MachineList{Items: []Machine{{MAC: "52:54:00:12:34:56", FirstSeen: at}}, Counts: map[string]int{"ready": 1}}, true)
}

// FuzzMachineListEncoding compares the list's encoder with encoding/json
// for any text in every string field (and raw inventory), any number and
// any time.
func FuzzMachineListEncoding(f *testing.F) {
	f.Add("node-1", int64(7), 12.5, int64(1e9), int64(0))
	f.Add("<&>\u2028\xff", int64(-1), 1e21, int64(-62135596800), int64(999999999))
	f.Add(`{"a": 1}`, int64(0), math.Inf(1), int64(253402300800), int64(1))
	f.Fuzz(func(t *testing.T, s string, n int64, x float64, sec, nsec int64) {
		var l MachineList
		fill(reflect.ValueOf(&l).Elem(), s, n, x, time.Unix(sec, nsec).In(time.FixedZone("", int(n%86400))))
		sameEncoding(t, l, true)
	})
}

// TestListAnswerTakesTheListEncoder runs the list operation's own handler
// behind huma, as the server registers it, and records what huma hands the
// JSON format: jsonFormats takes the list's encoder only for a MachineList
// passed by value, so a huma that passed the body by pointer (or a handler
// that answered another type) would quietly send every list through
// encoding/json, correct and four times slower.
func TestListAnswerTakesTheListEncoder(t *testing.T) {
	db, err := store.Open("", store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.CreateMachine(store.Machine{MAC: "52:54:00:12:34:56", State: store.StateDiscovered}, store.Audit{Actor: "test", Action: "create"}); err != nil {
		t.Fatal(err)
	}
	s := &Server{Store: db}
	// The server's own configuration (apiConfig: its formats, hooks and
	// transformers), with each format noting what it is handed.
	cfg := apiConfig()
	var handed []string
	formats := map[string]huma.Format{}
	for ct, f := range cfg.Formats {
		formats[ct] = huma.Format{Unmarshal: f.Unmarshal, Marshal: func(w io.Writer, v any) error {
			handed = append(handed, fmt.Sprintf("%T", v))
			return f.Marshal(w, v)
		}}
	}
	cfg.Formats = formats
	mux := http.NewServeMux()
	huma.Register(humago.New(mux, cfg), huma.Operation{OperationID: "list-machines", Method: http.MethodGet, Path: "/machines"}, s.listMachines)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/machines?limit=10", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"52:54:00:12:34:56"`) {
		t.Fatalf("list: %d %s", rec.Code, rec.Body)
	}
	if want := fmt.Sprintf("%T", MachineList{}); len(handed) != 1 || handed[0] != want {
		t.Fatalf("huma handed the JSON format %v, want one %s (by value, as jsonFormats takes it)", handed, want)
	}
}
