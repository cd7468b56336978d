package agentwire

import (
	"encoding/json"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/discovery-os/token"
)

// TestWireNames pins the JSON of every body: a renamed field is a protocol
// change that old agents in the field (or old appliances) would not read.
func TestWireNames(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"token", AgentToken{Salt: []byte{1, 2}, Hash: []byte{3}, Iterations: 10000, ExpiresAt: at},
			`{"salt":"AQI=","hash":"Aw==","iterations":10000,"expires_at":"2025-01-02T03:04:05Z"}`},
		{"token without a count (agents before it was sent)", AgentToken{Salt: []byte{1, 2}, Hash: []byte{3}, ExpiresAt: at},
			`{"salt":"AQI=","hash":"Aw==","expires_at":"2025-01-02T03:04:05Z"}`},
		{"register", AgentRegister{MAC: "52:54:00:12:34:56", PublicKey: []byte{7}, Inventory: RawInventory(`{"schema_version":1}`), Token: AgentToken{ExpiresAt: at}},
			`{"mac":"52:54:00:12:34:56","public_key":"Bw==","inventory":{"schema_version":1},"token":{"salt":null,"hash":null,"expires_at":"2025-01-02T03:04:05Z"}}`},
		{"register without inventory", AgentRegister{MAC: "m"},
			`{"mac":"m","public_key":null,"inventory":null,"token":{"salt":null,"hash":null,"expires_at":"0001-01-01T00:00:00Z"}}`},
		{"wait with a message", Decision{Decision: KindWait, State: "approved", Message: "m"}, `{"decision":"wait","state":"approved","message":"m"}`},
		{"state", AgentState{State: "inventoried"}, `{"state":"inventoried"}`},
		{"wait", Decision{Decision: KindWait, State: "inventoried"}, `{"decision":"wait","state":"inventoried"}`},
		{"image", Decision{Decision: KindImage, State: "approved", Hostname: "node-01",
			Image:   &DecisionImage{URL: "http://a/i.raw", SHA256: "ab", Disk: "/dev/sda", DiskByPath: "/dev/disk/by-path/p"},
			SSHKeys: []string{"ssh-ed25519 AAAA"}, Network: &Network{Mode: "static", Address: "10.0.0.5/24", Gateway: "10.0.0.1", DNS: []string{"10.0.0.1"}}, FirstBootURL: "http://a/fb"},
			`{"decision":"image","state":"approved","hostname":"node-01","image":{"url":"http://a/i.raw","sha256":"ab","disk":"/dev/sda","disk_by_path":"/dev/disk/by-path/p"},"ssh_keys":["ssh-ed25519 AAAA"],"network":{"mode":"static","address":"10.0.0.5/24","gateway":"10.0.0.1","dns":["10.0.0.1"]},"first_boot_url":"http://a/fb"}`},
		{"network dhcp", Network{Mode: "dhcp"}, `{"mode":"dhcp"}`},
		{"progress", AgentProgress{Percent: 42, Message: "writing"}, `{"percent":42,"message":"writing"}`},
		{"progress zero", AgentProgress{}, `{"percent":0}`},
		{"result", AgentResult{Success: true, Message: "done"}, `{"success":true,"message":"done"}`},
		{"failed result", AgentResult{}, `{"success":false}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("got  %s\nwant %s", b, tt.want)
			}
		})
	}
}

func TestRawInventoryKeepsBytes(t *testing.T) {
	in := `{"mac":"m","inventory":{"b": 1,  "a":[true]},"token":{"salt":"AQ==","hash":"AQ==","expires_at":"2025-01-02T03:04:05Z"}}`
	var r AgentRegister
	if err := json.Unmarshal([]byte(in), &r); err != nil {
		t.Fatal(err)
	}
	if got := string(r.Inventory); got != `{"b": 1,  "a":[true]}` {
		t.Errorf("inventory %q: not kept as received", got)
	}
	// Decoding into a reused value must not keep the old bytes' tail.
	if err := json.Unmarshal([]byte(`{"inventory":{}}`), &r); err != nil || string(r.Inventory) != `{}` {
		t.Errorf("reused: %q, %v", r.Inventory, err)
	}
	if _, err := json.Marshal(AgentRegister{Inventory: RawInventory("{not json")}); err == nil {
		t.Error("invalid inventory bytes were sent")
	}
}

// TestTokenCountSchema: the schema's bounds on a token's PBKDF2 count (struct
// tags cannot name constants) are the ones discovery-os/token enforces, and
// NewAgentToken's hash verifies with the count it names.
func TestTokenCountSchema(t *testing.T) {
	f, ok := reflect.TypeFor[AgentToken]().FieldByName("Iterations")
	if !ok {
		t.Fatal("AgentToken has no Iterations")
	}
	if lo, hi := f.Tag.Get("minimum"), f.Tag.Get("maximum"); lo != strconv.Itoa(token.MinIterations) || hi != strconv.Itoa(token.MaxIterations) {
		t.Errorf("schema bounds %s..%s, token package %d..%d", lo, hi, token.MinIterations, token.MaxIterations)
	}
	tok := token.Token{Value: "FOUNDRY-AAAA-BBBB-CCCC", ExpiresAt: time.Unix(1, 0)}
	w := NewAgentToken(tok, []byte("0123456789abcdef"))
	if w.Iterations != token.Iterations || !w.ExpiresAt.Equal(tok.ExpiresAt) || !token.Verify(tok.Value, w.Salt, w.Hash, w.Iterations) {
		t.Errorf("NewAgentToken: %+v does not verify with its own count", w)
	}
}
