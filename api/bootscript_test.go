package api_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/api/client"
	"github.com/foundry-appliance/foundry/ipxe"
	"github.com/foundry-appliance/foundry/lifecycle"
	"github.com/foundry-appliance/foundry/store"
)

// TestBootScriptPreview previews scripts through a real ipxe.Server on
// the same store and checks that a preview leaves the agent's boot nonce
// valid (GET /boot/{mac} would have revoked it).
func TestBootScriptPreview(t *testing.T) {
	e := newEnv(t, func(s *api.Server) {
		s.Boot = &ipxe.Server{Store: s.Store.(*store.DB), BaseURL: "http://10.77.0.1:8080",
			Segments: map[string]lifecycle.Segment{"lab": {Discovery: true}}}
	})
	e.setup()
	ctx := context.Background()
	disc := e.discover(macA)
	rej := e.inventoried("52:54:00:00:00:0d")
	if _, err := e.admin.Reject(ctx, rej.mac, "not ours"); err != nil {
		t.Fatal(err)
	}
	prod := e.inventoried(macB)
	if _, err := e.admin.Approve(ctx, macB, api.ApproveRequest{Token: prod.tok.Value, Cluster: "rack2", Hostname: "node-02"}); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, mac, kind string
		has             []string
	}{
		{"discovered", macA, "discovery", []string{
			"kernel http://10.77.0.1:8080/images/discovery/vmlinuz initrd=initrd foundry.url=http://10.77.0.1:8080 foundry.mac=" + macA,
			"foundry.nonce=" + ipxe.PreviewNonce,
		}},
		{"rejected", rej.mac, "rejected", []string{"was rejected", "exit 1"}},
		{"approved netboot", macB, "production", []string{"kernel http://10.77.0.1:8080/images/prod/vmlinuz initrd=initrd console=ttyS0 marker=prod"}},
		{"any MAC notation", "52-54-00-AB-CD-EF", "production", []string{"marker=prod"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// A viewer may read it.
			bs, err := e.viewer.BootScript(ctx, tc.mac)
			if err != nil {
				t.Fatal(err)
			}
			if bs.Kind != tc.kind || !strings.HasPrefix(bs.Text, "#!ipxe\n") || bs.Error != "" {
				t.Fatalf("kind %q error %q text:\n%s", bs.Kind, bs.Error, bs.Text)
			}
			for _, want := range tc.has {
				if !strings.Contains(bs.Text, want) {
					t.Errorf("script lacks %q:\n%s", want, bs.Text)
				}
			}
		})
	}
	if mac, err := e.db.CheckNonce(disc.nonce); err != nil || mac != macA {
		t.Fatalf("after previews the agent's nonce is %q, %v; a preview must not revoke it", mac, err)
	}
	if code, body := disc.register(testInventory(macA)); code != http.StatusOK {
		t.Fatalf("agent register after preview: %d %s", code, body)
	}

	for _, tc := range []struct {
		name, mac string
		status    int
	}{
		{"unknown machine", "52:54:00:00:00:99", 404},
		{"not a MAC", "nope", 422},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.viewer.BootScript(ctx, tc.mac); client.StatusOf(err) != tc.status {
				t.Fatalf("got %v, want status %d", err, tc.status)
			}
		})
	}
	if code, _ := e.raw("GET", "/machines/"+macA+"/boot-script", nil, nil); code != 401 {
		t.Errorf("without a token: %d", code)
	}
}

func TestBootScriptPreviewSources(t *testing.T) {
	plain := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})
	cases := []struct {
		name   string
		cfg    func(*api.Server)
		status int
		kind   string
		has    string
	}{
		{"no boot handler", func(*api.Server) {}, 404, "", "serves no boot scripts"},
		{"boot handler that cannot preview", func(s *api.Server) { s.Boot = plain }, 404, "", "serves no boot scripts"},
		{"explicit preview wins", func(s *api.Server) {
			s.Boot = plain
			s.BootPreview = func(mac string) (string, string, error) { return "menu", "#!ipxe\n# menu for " + mac + "\n", nil }
		}, 200, "menu", "# menu for " + macA},
		{"render failure", func(s *api.Server) {
			s.BootPreview = func(string) (string, string, error) { return "", "", errors.New("profile kernel is unsafe") }
		}, 200, "error", "no boot script for " + macA},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.cfg)
			e.discover(macA)
			bs, err := e.viewer.BootScript(context.Background(), macA)
			if tc.status != 200 {
				var ce *client.Error
				if !errors.As(err, &ce) || ce.StatusCode != tc.status || !strings.Contains(ce.Problem.Detail, tc.has) {
					t.Fatalf("got %v, want %d mentioning %q", err, tc.status, tc.has)
				}
				return
			}
			if err != nil || bs.Kind != tc.kind || !strings.Contains(bs.Text, tc.has) {
				t.Fatalf("%+v %v", bs, err)
			}
			if tc.kind == "error" && bs.Error != "profile kernel is unsafe" {
				t.Errorf("error %q", bs.Error)
			}
		})
	}
}

func TestWhoAmI(t *testing.T) {
	e := newEnv(t, func(s *api.Server) { s.AdminToken = "env-secret-for-automation" })
	a := e.discover(macA)
	ctx := context.Background()
	cases := []struct {
		name   string
		c      *client.Client
		status int
		want   api.WhoAmI
	}{
		{"admin", e.admin, 200, api.WhoAmI{Name: "admin", Role: "admin"}},
		{"viewer", e.viewer, 200, api.WhoAmI{Name: "viewer", Role: "viewer"}},
		{"environment token", &client.Client{BaseURL: e.ts.URL, Token: "env-secret-for-automation"}, 200, api.WhoAmI{Name: "env", Role: "admin"}},
		{"no token", &client.Client{BaseURL: e.ts.URL}, 401, api.WhoAmI{}},
		{"unknown token", &client.Client{BaseURL: e.ts.URL, Token: "fdy_nope"}, 401, api.WhoAmI{}},
		{"boot nonce as bearer", &client.Client{BaseURL: e.ts.URL, Token: a.nonce}, 401, api.WhoAmI{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.c.WhoAmI(ctx)
			if tc.status != 200 {
				if client.StatusOf(err) != tc.status {
					t.Fatalf("got %+v %v, want status %d", got, err, tc.status)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v %v, want %+v", got, err, tc.want)
			}
		})
	}
	if code, _ := a.call("GET", "/whoami", nil); code != 401 {
		t.Errorf("agent nonce on whoami: %d", code)
	}
}

// TestRejectedIsDenyEntry: a rejected machine loses its expiry, so the
// expiry run that deletes stale discoveries keeps it.
func TestRejectedIsDenyEntry(t *testing.T) {
	e := newEnv(t)
	e.inventoried(macA)
	e.inventoried(macB)
	m, err := e.admin.Reject(context.Background(), macA, "unknown hardware")
	if err != nil {
		t.Fatal(err)
	}
	if m.State != "rejected" || m.Temporary || m.ExpiresAt != nil {
		t.Fatalf("after reject: state %s, temporary %t, expires %v", m.State, m.Temporary, m.ExpiresAt)
	}
	if st := e.machine(macA); st.Temporary || !st.ExpiresAt.IsZero() {
		t.Fatalf("stored after reject: temporary %t, expires %v", st.Temporary, st.ExpiresAt)
	}
	e.clock.Add(48 * time.Hour)
	expired, err := e.db.ExpireMachines()
	if err != nil {
		t.Fatal(err)
	}
	// The other, still temporary, machine shows that expiry did run.
	if len(expired) != 1 || expired[0].MAC != macB {
		t.Fatalf("expired %+v, want only %s", expired, macB)
	}
	if st := e.machine(macA); st.State != store.StateRejected || st.Message != "unknown hardware" {
		t.Fatalf("rejected record after expiry: state %s, message %q", st.State, st.Message)
	}
}

// TestAbout: the build and the database layout are visible to any token
// holder (an upgrade check), and to nobody without one.
func TestAbout(t *testing.T) {
	e := newEnv(t, func(s *api.Server) { s.Version = "v9.8.7-test" })
	ctx := context.Background()
	got, err := e.viewer.About(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := api.About{Version: "v9.8.7-test", APIVersion: api.Version, SchemaVersion: store.SchemaVersion,
		Store: api.StoreStatus{Backend: "badger", Healthy: true}}
	if got != want {
		t.Errorf("about = %+v, want %+v", got, want)
	}
	if _, err := (&client.Client{BaseURL: e.ts.URL}).About(ctx); client.StatusOf(err) != 401 {
		t.Errorf("about without a token: %v, want 401", err)
	}
}

// TestSummaryCountsFixedDisks: the summary's disk space is what the
// machine can install onto — the removable USB stick of the test inventory
// (like a CD-ROM drive's medium) is listed but not counted.
func TestSummaryCountsFixedDisks(t *testing.T) {
	e := newEnv(t)
	e.inventoried(macA)
	m, err := e.admin.GetMachine(context.Background(), macA)
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(8<<30 + 64<<30); m.Summary.DiskBytes != want || m.Summary.Disks != 3 {
		t.Errorf("summary: %d disks, %d bytes; want 3 disks listed and %d bytes (sda + nvme0n1, not the USB stick)",
			m.Summary.Disks, m.Summary.DiskBytes, want)
	}
}
