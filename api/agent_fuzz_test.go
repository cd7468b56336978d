package api_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/agentsig"
	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/discovery-os/inventory"
	"github.com/foundry-appliance/foundry/discovery-os/token"
	"github.com/foundry-appliance/foundry/store"
)

// fuzzAPI is a server on an in-memory store, called through its handler
// (no sockets), with an admin token.
type fuzzAPI struct {
	db    *store.DB
	h     http.Handler
	admin string
}

func newFuzzAPI(f *testing.F) *fuzzAPI {
	db, err := store.Open("", store.Options{InMemory: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	secret, hash, err := api.NewAPIToken()
	if err != nil {
		f.Fatal(err)
	}
	if err := db.CreateAPIToken(store.APIToken{ID: "id-admin", Name: "admin", Role: store.RoleAdmin, Hash: hash}); err != nil {
		f.Fatal(err)
	}
	srv := &api.Server{Store: db, Segments: []api.SegmentInfo{labSegment}, KeepAlive: time.Hour}
	return &fuzzAPI{db: db, h: srv.Handler(), admin: secret}
}

// get calls an admin GET and returns the status and body.
func (a *fuzzAPI) get(path string) (int, []byte) {
	req := httptest.NewRequest(http.MethodGet, api.Prefix+path, nil)
	req.Header.Set("Authorization", "Bearer "+a.admin)
	rec := httptest.NewRecorder()
	a.h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// machineSeq numbers the MACs of FuzzAgentRegister's machines.
var machineSeq atomic.Uint32

// discovered creates a new discovered machine (its MAC numbered under
// 52:54:<group>) with a boot nonce, and deletes it when the test ends.
func (a *fuzzAPI) discovered(t *testing.T, group byte) (mac, nonce string) {
	t.Helper()
	n := machineSeq.Add(1)
	mac = fmt.Sprintf("52:54:%02x:%02x:%02x:%02x", group, byte(n>>16), byte(n>>8), byte(n))
	if _, err := a.db.CreateMachine(store.Machine{MAC: mac, State: store.StateDiscovered, Temporary: true,
		ExpiresAt: time.Now().Add(time.Hour), Segment: "lab"}, store.Audit{Actor: "dhcp", Action: "discover"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.db.DeleteMachine(mac, store.Audit{Actor: "test", Action: "delete"}) })
	nonce, err := a.db.IssueNonce(mac, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return mac, nonce
}

// FuzzAgentRegister sends a signed registration with a live nonce whose
// MAC, inventory, token and trailing members are the fuzzer's. The server
// answers with a client error or accepts it, never a server error; an
// accepted registration keeps the inventory as sent, and the machine reads
// back, summarised from it, and lists.
func FuzzAgentRegister(f *testing.F) {
	inv, _ := json.Marshal(testInventory("52:54:00:12:34:56"))
	tok := []byte(`{"salt":"` + base64.StdEncoding.EncodeToString(make([]byte, 16)) + `","hash":"` +
		base64.StdEncoding.EncodeToString(make([]byte, token.HashLen)) + `","expires_at":"2025-01-01T00:00:00Z"}`)
	f.Add("", inv, tok, []byte(""))
	f.Add("-", []byte(`{}`), tok, []byte(`,"x":[1,2,{}]`))
	f.Add("", []byte(`{"disks":[{"size_bytes":18446744073709551615,"by_path":"\u0000"}],"system":{"vendor":"\ud800"}}`), tok, []byte(""))
	f.Add("", []byte(` {"cpu":{"cores":-1}}`), []byte(`{"salt":"","hash":null}`), []byte(`,"inventory":[]`))
	f.Add("", []byte(`[]`), tok, []byte(`,"mac":"00:00:00:00:00:00"`))
	f.Add("", []byte(`"x"`), []byte(`{"salt":"AAAAAAAAAAA=","hash":"AAAA"}`), []byte(`,"public_key":"AAAA"`))
	f.Add("", inv, bytes.Replace(tok, []byte(`"expires_at"`), []byte(`"iterations":10000,"expires_at"`), 1), []byte(""))
	f.Add("", inv, bytes.Replace(tok, []byte(`"expires_at"`), []byte(`"iterations":1e9,"expires_at"`), 1), []byte(""))
	a := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, macText string, inv, tok, extra []byte) {
		mac, nonce := a.discovered(t, 0x01)
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		switch macText {
		case "":
			macText = mac
		case "-": // the same MAC in another notation
			macText = strings.ToUpper(strings.ReplaceAll(mac, ":", "-"))
		}
		m, _ := json.Marshal(macText)
		pk, _ := json.Marshal(key.Public())
		body := slices.Concat([]byte(`{"mac":`), m, []byte(`,"public_key":`), pk, []byte(`,"inventory":`), inv, []byte(`,"token":`), tok, extra, []byte(`}`))
		req := httptest.NewRequest(http.MethodPost, api.Prefix+"/agent/register", bytes.NewReader(body))
		req.Header.Set(api.NonceHeader, nonce)
		req.Header.Set("Content-Type", "application/json")
		if err := agentsig.Sign(req, key, 1); err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		a.h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("registration %s: %d %s", body, rec.Code, rec.Body)
		}
		if rec.Code != http.StatusOK {
			return
		}
		code, got := a.get("/machines/" + mac)
		if code != http.StatusOK {
			t.Fatalf("registered machine reads %d %s", code, got)
		}
		var view struct {
			State     string          `json:"state"`
			Summary   api.Summary     `json:"summary"`
			Inventory json.RawMessage `json:"inventory"`
		}
		if err := json.Unmarshal(got, &view); err != nil {
			t.Fatalf("machine view %s: %v", got, err)
		}
		if view.State != "inventoried" {
			t.Fatalf("registered machine is %s", view.State)
		}
		var sent, kept any
		stored, err := a.db.GetMachine(mac)
		if err != nil {
			t.Fatal(err)
		}
		// Members sent twice count once, as the last: JSON decoders agree.
		var last struct {
			Inventory json.RawMessage `json:"inventory"`
		}
		json.Unmarshal(body, &last)
		if json.Unmarshal(last.Inventory, &sent) != nil || json.Unmarshal(stored.Inventory, &kept) != nil || !reflect.DeepEqual(sent, kept) {
			t.Fatalf("sent inventory %s, kept %s", last.Inventory, stored.Inventory)
		}
		var parsed inventory.Inventory
		if json.Unmarshal(stored.Inventory, &parsed) == nil {
			s := view.Summary
			if s.Disks != len(parsed.Disks) || s.Vendor != parsed.System.Vendor || s.Cores != parsed.CPU.Cores || s.NICs != len(parsed.NICs) {
				t.Fatalf("inventory %s summarised as %+v", stored.Inventory, s)
			}
		}
		code, got = a.get("/machines?q=" + url.QueryEscape(mac))
		var list api.MachineList
		if code != http.StatusOK || json.Unmarshal(got, &list) != nil || !slices.ContainsFunc(list.Items, func(m api.Machine) bool { return m.MAC == mac }) {
			t.Fatalf("list for %s: %d %s", mac, code, got)
		}
	})
}

// FuzzListMachines pages through a store of machines in every state with
// any cursor, sort, filter and search: a bad query is a client error, and
// a page holds only machines that pass its filters, in its order, after
// its cursor, and its next cursor continues after its last machine.
func FuzzListMachines(f *testing.F) {
	a := newFuzzAPI(f)
	if _, err := a.db.CreateCluster(store.Cluster{Name: "rack1"}, store.Audit{Actor: "test", Action: "create"}); err != nil {
		f.Fatal(err)
	}
	for i := range 40 {
		mac := fmt.Sprintf("52:54:02:00:00:%02x", i)
		_, err := a.db.CreateMachine(store.Machine{MAC: mac, State: store.State(i % 7), Hostname: fmt.Sprintf("h%02d", (i*7)%40),
			Cluster: []string{"", "rack1"}[i%2], Segment: "lab", FirstSeen: time.Unix(int64(1e9+i*3%40), 0)}, store.Audit{Actor: "test", Action: "create"})
		if err != nil {
			f.Fatal(err)
		}
	}
	cursor := func(sort, key, mac string) string {
		b, _ := json.Marshal(map[string]string{"s": sort, "k": key, "m": mac})
		return base64.RawURLEncoding.EncodeToString(b)
	}
	f.Add("mac", "", "", "", 5, "")
	f.Add("-hostname", "inventoried,ready", "rack1", "52", 3, cursor("-hostname", "h20", "52:54:02:00:00:05"))
	f.Add("state", "approved", "", "", 1000, cursor("state", "\xff\x00", "\x00"))
	f.Add("first_seen", "", "", "h1", 2, cursor("mac", "52:54:02:00:00:01", "52:54:02:00:00:01"))
	f.Add("x", "nope", "", "", 0, "e30")
	f.Fuzz(func(t *testing.T, sort, states, cluster, q string, limit int, cur string) {
		v := url.Values{"sort": {sort}, "state": {states}, "cluster": {cluster}, "q": {q}, "limit": {fmt.Sprint(limit)}, "cursor": {cur}}
		for k, x := range v {
			if x[0] == "" {
				delete(v, k)
			}
		}
		code, body := a.get("/machines?" + v.Encode())
		if code >= 500 {
			t.Fatalf("list %s: %d %s", v.Encode(), code, body)
		}
		if code != http.StatusOK {
			return
		}
		var page api.MachineList
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		field, desc := strings.CutPrefix(v.Get("sort"), "-")
		key := func(m api.Machine) string {
			switch field {
			case "hostname":
				return m.Hostname
			case "state":
				return fmt.Sprintf("%02d", stateIndex(m.State))
			case "first_seen":
				return m.FirstSeen.UTC().Format("2006-01-02T15:04:05.000000000")
			}
			return m.MAC
		}
		after := func(m api.Machine, k, mac string) bool { // m sorts after (k, mac)
			c := strings.Compare(key(m), k)
			if c == 0 {
				c = strings.Compare(m.MAC, mac)
			}
			if desc {
				return c < 0
			}
			return c > 0
		}
		var from *struct{ s, k, m string }
		if raw, err := base64.RawURLEncoding.DecodeString(cur); err == nil && cur != "" {
			var c struct{ S, K, M string }
			if json.Unmarshal(raw, &c) == nil {
				from = &struct{ s, k, m string }{c.S, c.K, c.M}
			}
		}
		wantStates := map[string]bool{}
		for _, s := range strings.Split(states, ",") {
			if s = strings.TrimSpace(s); s != "" {
				wantStates[s] = true
			}
		}
		for i, m := range page.Items {
			if len(wantStates) > 0 && !wantStates[m.State] || cluster != "" && m.Cluster != cluster {
				t.Fatalf("%s: %s (%s, %q) passes no filter", v.Encode(), m.MAC, m.State, m.Cluster)
			}
			if i > 0 && !after(m, key(page.Items[i-1]), page.Items[i-1].MAC) {
				t.Fatalf("%s: %s out of order after %s", v.Encode(), m.MAC, page.Items[i-1].MAC)
			}
			if from != nil && !after(m, from.k, from.m) {
				t.Fatalf("%s: %s (key %q) is not after the cursor %+v", v.Encode(), m.MAC, key(m), *from)
			}
		}
		if page.NextCursor == "" || len(page.Items) == 0 {
			return
		}
		v.Set("cursor", page.NextCursor)
		code, body = a.get("/machines?" + v.Encode())
		var next api.MachineList
		if code != http.StatusOK || json.Unmarshal(body, &next) != nil {
			t.Fatalf("next page %s: %d %s", v.Encode(), code, body)
		}
		last := page.Items[len(page.Items)-1]
		for _, m := range next.Items {
			if !after(m, key(last), last.MAC) {
				t.Fatalf("%s: next page repeats or goes back: %s after %s", v.Encode(), m.MAC, last.MAC)
			}
		}
	})
}

func stateIndex(name string) int {
	st, err := store.ParseState(name)
	if err != nil {
		return -1
	}
	return int(st)
}

// FuzzAgentCalls sends a registered boot's signed token, progress, result
// and BMC calls with bodies of the fuzzer's: each is answered with a
// client error or accepted, never a server error.
func FuzzAgentCalls(f *testing.F) {
	tok := `{"salt":"` + base64.StdEncoding.EncodeToString(make([]byte, 16)) + `","hash":"` +
		base64.StdEncoding.EncodeToString(make([]byte, token.HashLen)) + `","expires_at":"2025-01-01T00:00:00Z"}`
	f.Add(uint8(0), []byte(tok))
	f.Add(uint8(1), []byte(`{"percent":42,"message":"writing","bytes_done":5,"bytes_total":4,"eta_seconds":604801}`))
	f.Add(uint8(2), []byte(`{"success":true,"message":"\u0000"}`))
	f.Add(uint8(3), []byte(`{"protocol":"ipmi","address":"10.0.0.1","mac":"x","channel":16,"user_id":-1,"username":"foundry","password":"p"}`))
	f.Add(uint8(3), []byte(`{"error":"no /dev/ipmi0"}`))
	f.Add(uint8(1), []byte(`{"percent":1e400}`))
	f.Add(uint8(0), []byte(strings.Replace(tok, `"expires_at"`, `"iterations":-10000,"expires_at"`, 1)))
	paths := []string{"/agent/token", "/agent/progress", "/agent/result", "/agent/bmc"}
	inv, _ := json.Marshal(testInventory("52:54:00:12:34:56"))
	a := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		mac, nonce := a.discovered(t, 0x03)
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		pk, _ := json.Marshal(key.Public())
		call := func(path string, body []byte, seq uint64) *httptest.ResponseRecorder {
			req := httptest.NewRequest(http.MethodPost, api.Prefix+path, bytes.NewReader(body))
			if seq == 1 {
				req.Header.Set(api.NonceHeader, nonce)
			}
			req.Header.Set("Content-Type", "application/json")
			if err := agentsig.Sign(req, key, seq); err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			a.h.ServeHTTP(rec, req)
			return rec
		}
		reg := []byte(`{"mac":"` + mac + `","public_key":` + string(pk) + `,"inventory":` + string(inv) + `,"token":` + tok + `}`)
		if rec := call("/agent/register", reg, 1); rec.Code != http.StatusOK {
			t.Fatalf("register: %d %s", rec.Code, rec.Body)
		}
		path := paths[int(which)%len(paths)]
		if rec := call(path, body, 2); rec.Code >= 500 {
			t.Fatalf("%s %q: %d %s", path, body, rec.Code, rec.Body)
		}
	})
}
