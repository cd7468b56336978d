package hardware

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	tink "github.com/tinkerbell/tinkerbell/api/v1alpha1/tinkerbell"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/foundry-appliance/foundry/store"
)

var (
	approvedAt = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	seg        = &Segment{Subnet: netip.MustParsePrefix("10.77.0.0/24"), Router: netip.MustParseAddr("10.77.0.1"),
		DNS: []netip.Addr{netip.MustParseAddr("10.77.0.1")}, LeaseTime: time.Hour}
)

func machine(state store.State) store.Machine {
	m := store.Machine{MAC: "52:54:00:00:01:23", State: state, Hostname: "discovered-000123", Temporary: true,
		ExpiresAt: approvedAt.Add(24 * time.Hour), Arch: "uefi-x64", IP: "10.77.0.123",
		Inventory: json.RawMessage(`{"system":{"vendor":"Super Micro Computer, Inc."},"nics":[{"name":"eno1","mac":"52:54:00:00:01:23"}]}`)}
	if state.Accepted() {
		m.Temporary, m.ExpiresAt, m.Hostname, m.Cluster, m.Profile = false, time.Time{}, "node-01", "rack1", "debian"
		m.Approval = &store.Approval{Disk: "/dev/disk/by-path/pci-0000:00:1f.2-ata-1", ApprovedBy: "token:alice", ApprovedAt: approvedAt,
			SSHKeys: []string{"ssh-ed25519 AAAA alice"}, Network: store.Network{Mode: "static", Address: netip.MustParsePrefix("10.77.0.50/24")}}
	}
	if state == store.StateRejected {
		m.Temporary, m.ExpiresAt = false, time.Time{}
	}
	return m
}

// Each state renders to the golden document in testdata/<name>.yaml
// (HARDWARE_UPDATE=1 rewrites them); every one is valid against
// Tinkerbell's CRD and parses back to the same object.
func TestRenderStates(t *testing.T) {
	declaration := mustParse(t, "declared.yaml")
	for _, tc := range []struct {
		name string
		m    store.Machine
		prev *tink.Hardware
	}{
		{"inventoried", machine(store.StateInventoried), nil},
		{"ready", machine(store.StateReady), nil},
		{"rejected", machine(store.StateRejected), nil},
		// A person's declaration waits, untouched but for Foundry's state.
		{"declared-inventoried", machine(store.StateInventoried), declaration},
		// Approved from it: Foundry's fields replace the declaration's,
		// what the person added (BMC, user data) stays.
		{"declared-ready", machine(store.StateReady), declaration},
		// Sent back to discovery: a temporary Hardware again, no labels.
		{"rediscovered", machine(store.StateDiscovered), mustRender(t, machine(store.StateReady), nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := Render(tc.m, Input{Segment: seg, Prev: tc.prev})
			if err != nil {
				t.Fatal(err)
			}
			b, err := Marshal(h)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name+".golden.yaml", b)
			checkCRD(t, b)
			back, err := Parse(b)
			if err != nil {
				t.Fatalf("parse what was rendered: %v\n%s", err, b)
			}
			if again, _ := Marshal(back); !bytes.Equal(again, b) {
				t.Errorf("round trip changed the document:\n%s", again)
			}
			d, declared := Declared(h)
			wantDeclared := tc.name == "declared-inventoried"
			if declared != wantDeclared {
				t.Errorf("Declared = %v, want %v (%+v)", declared, wantDeclared, d)
			}
		})
	}
}

func TestRenderIsStable(t *testing.T) {
	m := machine(store.StateReady)
	first, _ := Render(m, Input{Segment: seg})
	a, _ := Marshal(first)
	// Rendering onto its own output changes nothing: no diff, no commit.
	again, _ := Render(m, Input{Segment: seg, Prev: first})
	b, _ := Marshal(again)
	if !bytes.Equal(a, b) {
		t.Fatalf("re-render differs:\n%s\nwant\n%s", b, a)
	}
}

func TestDeclared(t *testing.T) {
	h := mustParse(t, "declared.yaml")
	d, ok := Declared(h)
	want := Declaration{MAC: "52:54:00:00:01:23", Cluster: "rack1", Profile: "debian", Hostname: "node-01",
		Disk: "/dev/disk/by-path/pci-0000:00:1f.2-ata-1", SSHKeys: []string{"ssh-ed25519 AAAA alice"},
		Network: "static", Address: "10.77.0.50/24", Gateway: "10.77.0.1", DNS: []string{"10.77.0.53"}}
	if !ok || !reflect.DeepEqual(d, want) {
		t.Fatalf("Declared = %v %+v\nwant %+v", ok, d, want)
	}
	for _, tc := range []struct {
		name string
		edit func(*tink.Hardware)
		ok   bool
	}{
		{"no cluster", func(h *tink.Hardware) { delete(h.Labels, LabelCluster) }, false},
		{"no profile", func(h *tink.Hardware) { delete(h.Labels, LabelProfile) }, false},
		{"no host name", func(h *tink.Hardware) {
			h.Spec.Metadata.Instance.Hostname = ""
			h.Spec.Interfaces[0].DHCP.Hostname = ""
		}, false},
		{"host name from dhcp", func(h *tink.Hardware) { h.Spec.Metadata.Instance.Hostname = "" }, true},
		{"decided: approved", func(h *tink.Hardware) { h.Annotations = map[string]string{AnnotationState: "approved"} }, false},
		{"decided: rejected", func(h *tink.Hardware) { h.Annotations = map[string]string{AnnotationState: "rejected"} }, false},
		{"pending", func(h *tink.Hardware) { h.Annotations = map[string]string{AnnotationState: "inventoried"} }, true},
		{"unknown state", func(h *tink.Hardware) { h.Annotations = map[string]string{AnnotationState: "lost"} }, false},
		{"no MAC", func(h *tink.Hardware) { h.Spec.Interfaces = nil }, false},
		{"MAC from annotation", func(h *tink.Hardware) {
			h.Spec.Interfaces = nil
			h.Annotations = map[string]string{AnnotationMAC: "52:54:00:00:01:23"}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := h.DeepCopy()
			tc.edit(c)
			if _, ok := Declared(c); ok != tc.ok {
				t.Errorf("Declared = %v, want %v", ok, tc.ok)
			}
		})
	}
	// Foundry's own DHCP-mode Hardware carries the lease's address; the
	// annotation says that it is not a static one.
	c := h.DeepCopy()
	c.Annotations = map[string]string{AnnotationNetwork: "dhcp"}
	if d, _ := Declared(c); d.Network != "dhcp" || d.Address != "" {
		t.Errorf("dhcp annotation: %+v", d)
	}
}

func TestParseRefuses(t *testing.T) {
	good, err := os.ReadFile("testdata/declared.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"unknown field", strings.Replace(string(good), "  disks:", "  diskz: []\n  disks:", 1), "unknown field"},
		{"duplicate key", strings.Replace(string(good), "kind: Hardware", "kind: Hardware\nkind: Hardware", 1), "already set"},
		{"wrong kind", strings.Replace(string(good), "kind: Hardware", "kind: Workflow", 1), "kind"},
		{"wrong version", strings.Replace(string(good), "tinkerbell.org/v1alpha1", "tinkerbell.org/v1alpha2", 1), "apiVersion"},
		{"bad name", strings.Replace(string(good), "name: node-01", "name: Node_01", 1), "metadata.name"},
		{"upper-case MAC", strings.Replace(string(good), `mac: "52:54:00:00:01:23"`, `mac: "52:54:00:00:01:2A"`, 1), "spec.interfaces[0].dhcp.mac"},
		{"bad label", strings.Replace(string(good), "foundry/cluster: rack1", "foundry/cluster: rack 1", 1), "metadata.labels"},
		{"two documents", string(good) + "---\n" + string(good), "2 YAML documents"},
		{"not YAML", "{[", "invalid hardware"},
		{"empty", "", "0 YAML documents"},
		{"tftp without boot file", strings.Replace(string(good), "        hostname: node-01", "        hostname: node-01\n        tftp_server_name: 10.0.0.1", 1), "boot_file_name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInvalid mentioning %q", err, tc.want)
			}
		})
	}
	// The CRD agrees that these are refused where it can say so.
	for _, doc := range []string{
		strings.Replace(string(good), `mac: "52:54:00:00:01:23"`, `mac: "52-54-00-00-01-23"`, 1),
	} {
		if crdErr(t, []byte(doc)) == nil {
			t.Errorf("the CRD accepts\n%s", doc)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"declared.yaml", "ready.golden.yaml", "inventoried.golden.yaml"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		// Whatever parses is valid, and stays so through a write and a read.
		out, err := Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		h2, err := Parse(out)
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(h, h2) {
			t.Fatalf("round trip changed\n%s", out)
		}
		Declared(h)
		MACOf(h)
	})
}

func mustParse(t *testing.T, name string) *tink.Hardware {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	h, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mustRender(t *testing.T, m store.Machine, prev *tink.Hardware) *tink.Hardware {
	t.Helper()
	h, err := Render(m, Input{Segment: seg, Prev: prev})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := "testdata/" + name
	if os.Getenv("HARDWARE_UPDATE") != "" {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (HARDWARE_UPDATE=1 writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (HARDWARE_UPDATE=1 rewrites it):\n%s", name, got)
	}
}

// checkCRD validates a document against the openAPIV3Schema of
// Tinkerbell's own Hardware CRD (testdata/tinkerbell.org_hardware.yaml,
// from github.com/tinkerbell/tinkerbell v0.25.0, crd/bases/v1alpha1): what
// a Kubernetes API server, and so Flux, would accept.
func checkCRD(t *testing.T, doc []byte) {
	t.Helper()
	if err := crdErr(t, doc); err != nil {
		t.Errorf("not valid against Tinkerbell's CRD: %v\n%s", err, doc)
	}
}

func crdErr(t *testing.T, doc []byte) error {
	t.Helper()
	raw, err := os.ReadFile("testdata/tinkerbell.org_hardware.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Name   string `json:"name"`
				Schema struct {
					OpenAPIV3Schema json.RawMessage `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := sigsyaml.Unmarshal(raw, &crd); err != nil {
		t.Fatal(err)
	}
	var schema openapi3.Schema
	for _, v := range crd.Spec.Versions {
		if v.Name == "v1alpha1" {
			if err := json.Unmarshal(v.Schema.OpenAPIV3Schema, &schema); err != nil {
				t.Fatal(err)
			}
		}
	}
	js, err := sigsyaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	var v any
	if err := json.Unmarshal(js, &v); err != nil {
		return err
	}
	return schema.VisitJSON(v, openapi3.MultiErrors())
}
