package api_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	tink "github.com/tinkerbell/tinkerbell/api/v1alpha1/tinkerbell"
	"gopkg.in/yaml.v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/api/client"
	"github.com/foundry-appliance/foundry/hardware"
	"github.com/foundry-appliance/foundry/store"
)

// path walks decoded YAML: string keys for maps, ints for sequences.
func path(v any, keys ...any) (any, bool) {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil, false
			}
			if v, ok = m[k]; !ok {
				return nil, false
			}
		case int:
			s, ok := v.([]any)
			if !ok || k >= len(s) {
				return nil, false
			}
			v = s[k]
		}
	}
	return v, true
}

// decodeAll decodes a YAML stream strictly into Tinkerbell's Hardware
// type (an unknown field fails; hardware.Parse) and loosely into maps (to
// check the field names as written).
func decodeAll(t *testing.T, b []byte) ([]tink.Hardware, []map[string]any) {
	t.Helper()
	var hs []tink.Hardware
	for _, doc := range bytes.Split(b, []byte("\n---\n")) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		h, err := hardware.Parse(doc)
		if err != nil {
			t.Fatalf("decode hardware: %v\n%s", err, b)
		}
		hs = append(hs, *h)
	}
	var ms []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	return hs, ms
}

func TestExportTinkerbell(t *testing.T) {
	e := newEnv(t, func(s *api.Server) { s.Segments[0].LeaseTime = time.Hour })
	e.setup()
	ctx := context.Background()
	// An all-digit MAC must be quoted: YAML 1.1 readers (kubectl's)
	// would take it for a base-60 number.
	static, dhcp, waiting := "52:54:00:00:00:a1", "52:54:00:00:01:23", "52:54:00:00:00:a3"
	for _, tc := range []struct {
		mac string
		req api.ApproveRequest
	}{
		{static, api.ApproveRequest{Cluster: "rack1", Hostname: "node-01.lab", SSHKeys: []string{goodKey},
			Network: &api.Network{Mode: "static", Address: "10.77.0.50/24", DNS: []string{"10.77.0.53"}}}},
		{dhcp, api.ApproveRequest{Cluster: "rack2", Hostname: "node-02"}},
	} {
		a := e.inventoried(tc.mac)
		tc.req.Token = a.tok.Value
		if _, err := e.admin.Approve(ctx, tc.mac, tc.req); err != nil {
			t.Fatalf("approve %s: %v", tc.mac, err)
		}
	}
	e.inventoried(waiting)
	if _, err := e.db.UpdateMachine(dhcp, store.Audit{Actor: "dhcp"}, func(m *store.Machine) error { m.Arch = "uefi-x64"; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := e.db.PutLease(store.Lease{Segment: "lab", MAC: dhcp, IP: netip.MustParseAddr("10.77.0.123"), Expires: e.clock.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}

	t.Run("one machine, static address", func(t *testing.T) {
		b, err := e.viewer.ExportTinkerbell(ctx, static, "")
		if err != nil {
			t.Fatal(err)
		}
		hs, ms := decodeAll(t, b)
		if len(hs) != 1 {
			t.Fatalf("%d documents:\n%s", len(hs), b)
		}
		no := false
		want := tink.Hardware{
			TypeMeta: metav1.TypeMeta{APIVersion: "tinkerbell.org/v1alpha1", Kind: "Hardware"},
			Spec: tink.HardwareSpec{
				Interfaces: []tink.Interface{{
					DHCP: &tink.DHCP{MAC: static, Hostname: "node-01.lab", LeaseTime: 3600, NameServers: []string{"10.77.0.53"}, IfaceName: "ens3",
						IP: &tink.IP{Address: "10.77.0.50", Netmask: "255.255.255.0", Gateway: "10.77.0.1", Family: 4}},
					Netboot: &tink.Netboot{AllowPXE: &no, AllowWorkflow: &no},
				}},
				Metadata: &tink.HardwareMetadata{
					Manufacturer: &tink.MetadataManufacturer{Slug: "qemu"},
					Instance: &tink.MetadataInstance{ID: static, Hostname: "node-01.lab", SSHKeys: []string{goodKey},
						Ips: []*tink.MetadataInstanceIP{{Address: "10.77.0.50", Netmask: "255.255.255.0", Gateway: "10.77.0.1", Family: 4}}},
				},
				Disks: []tink.Disk{{Device: "/dev/disk/by-path/pci-0000:00:04.0-nvme-1"}},
			},
		}
		got := hs[0]
		if got.Name != "node-01.lab" || got.Labels["foundry/cluster"] != "rack1" || got.Labels["foundry/profile"] != "disk-image" ||
			got.Annotations["foundry/mac"] != static || got.Annotations["foundry/approved-by"] != "token:admin" ||
			got.Annotations["foundry/state"] != "approved" || got.Annotations["foundry/network"] != "static" {
			t.Errorf("metadata %+v", got.ObjectMeta)
		}
		got.ObjectMeta = metav1.ObjectMeta{}
		if !reflect.DeepEqual(got, want) {
			gb, _ := yaml.Marshal(got)
			wb, _ := yaml.Marshal(want)
			t.Errorf("hardware\n%s\nwant\n%s", gb, wb)
		}
		// The CRD's field names, as written.
		for _, p := range [][]any{
			{"apiVersion"}, {"kind"}, {"metadata", "name"},
			{"spec", "interfaces", 0, "dhcp", "mac"}, {"spec", "interfaces", 0, "dhcp", "hostname"},
			{"spec", "interfaces", 0, "dhcp", "lease_time"}, {"spec", "interfaces", 0, "dhcp", "name_servers", 0},
			{"spec", "interfaces", 0, "dhcp", "iface_name"},
			{"spec", "interfaces", 0, "dhcp", "ip", "address"}, {"spec", "interfaces", 0, "dhcp", "ip", "netmask"},
			{"spec", "interfaces", 0, "dhcp", "ip", "gateway"},
			{"spec", "interfaces", 0, "netboot", "allowPXE"}, {"spec", "interfaces", 0, "netboot", "allowWorkflow"},
			{"spec", "disks", 0, "device"},
			{"spec", "metadata", "instance", "id"}, {"spec", "metadata", "instance", "hostname"},
			{"spec", "metadata", "instance", "ssh_keys", 0}, {"spec", "metadata", "instance", "ips", 0, "address"},
			{"spec", "metadata", "manufacturer", "slug"},
		} {
			if _, ok := path(ms[0], p...); !ok {
				t.Errorf("no field %v in\n%s", p, b)
			}
		}
		// Round trip: what we decoded encodes to the same document.
		again, err := hardware.Marshal(&hs[0])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, b) {
			t.Errorf("round trip changed the document:\n%s\nwant\n%s", again, b)
		}
	})

	t.Run("every approved machine", func(t *testing.T) {
		b, err := e.admin.ExportTinkerbell(ctx, "", "tink-system")
		if err != nil {
			t.Fatal(err)
		}
		hs, _ := decodeAll(t, b)
		if len(hs) != 2 || hs[0].Name != "node-01.lab" || hs[1].Name != "node-02" {
			t.Fatalf("documents %+v", hs)
		}
		// From the inventories, which the machine list leaves out.
		if len(hs[0].Spec.Disks) == 0 || hs[0].Spec.Interfaces[0].DHCP.IfaceName != "ens3" {
			t.Errorf("every machine's export lacks its inventory: %+v", hs[0].Spec)
		}
		for _, h := range hs {
			if h.Namespace != "tink-system" {
				t.Errorf("%s: namespace %q", h.Name, h.Namespace)
			}
		}
		d := hs[1].Spec.Interfaces[0].DHCP
		wantIP := &tink.IP{Address: "10.77.0.123", Netmask: "255.255.255.0", Gateway: "10.77.0.1", Family: 4}
		if d.MAC != dhcp || d.Arch != "x86_64" || !d.UEFI || !reflect.DeepEqual(d.IP, wantIP) || !reflect.DeepEqual(d.NameServers, []string{"10.77.0.1"}) {
			t.Errorf("DHCP machine from its lease: %+v ip %+v", d, d.IP)
		}
	})

	t.Run("answer", func(t *testing.T) {
		req, _ := http.NewRequest("GET", e.ts.URL+api.Prefix+"/export/tinkerbell", nil)
		req.Header.Set("Authorization", "Bearer "+e.viewer.Token)
		resp, err := e.ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/yaml" || !bytes.HasPrefix(body, []byte("apiVersion: tinkerbell.org/v1alpha1\n")) ||
			bytes.Count(body, []byte("\n---\n")) != 1 || !bytes.Contains(body, []byte(`mac: "52:54:00:00:01:23"`)) {
			t.Fatalf("%d %q:\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	})

	for _, tc := range []struct {
		name, mac, ns string
		status        int
		detail        string
	}{
		{"not approved", waiting, "", 409, "is inventoried"},
		{"unknown", "52:54:00:00:00:99", "", 404, "not found"},
		{"bad namespace", static, "Tink_System", 422, "query.namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.admin.ExportTinkerbell(ctx, tc.mac, tc.ns)
			var ce *client.Error
			if !errors.As(err, &ce) || ce.StatusCode != tc.status || !strings.Contains(ce.Error(), tc.detail) {
				t.Fatalf("got %v, want %d mentioning %q", err, tc.status, tc.detail)
			}
		})
	}
}

func TestExportTinkerbellEmpty(t *testing.T) {
	e := newEnv(t)
	e.inventoried(macA)
	b, err := e.viewer.ExportTinkerbell(context.Background(), "", "")
	if err != nil || len(b) != 0 {
		t.Fatalf("%q %v", b, err)
	}
}
