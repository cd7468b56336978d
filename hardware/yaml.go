package hardware

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	tink "github.com/tinkerbell/tinkerbell/api/v1alpha1/tinkerbell"
	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/util/validation"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/foundry-appliance/foundry/names"
)

// MaxFile bounds one Hardware document; Kubernetes refuses objects far
// smaller than this anyway (annotations are limited to 256 KiB).
const MaxFile = 1 << 20

// ErrInvalid marks a document that is not a valid Hardware object; the
// message says which field.
var ErrInvalid = errors.New("invalid hardware")

// The patterns of Tinkerbell's CRD (kubebuilder markers on the types).
var (
	macPattern  = regexp.MustCompile(`^([0-9a-f]{2}:){5}[0-9a-f]{2}$`)
	cidrPattern = regexp.MustCompile(`^((25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)/(3[0-2]|[12]?[0-9])$`)
	ipv4Pattern = regexp.MustCompile(`^((25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)$`)
	vlanPattern = regexp.MustCompile(`^(([0-9][0-9]{0,2}|[1-3][0-9][0-9][0-9]|40([0-8][0-9]|9[0-6]))(,[1-9][0-9]{0,2}|[1-3][0-9][0-9][0-9]|40([0-8][0-9]|9[0-6]))*)$`)
)

// Parse reads one Hardware document. It is read as Kubernetes reads
// objects (sigs.k8s.io/yaml: YAML to JSON, duplicate keys refused) into
// Tinkerbell's own types with unknown fields refused, then checked by
// Validate. Errors wrap ErrInvalid.
func Parse(data []byte) (*tink.Hardware, error) {
	if len(data) > MaxFile {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrInvalid, len(data), MaxFile)
	}
	if n, err := documents(data); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	} else if n != 1 {
		return nil, fmt.Errorf("%w: %d YAML documents; a file holds one Hardware", ErrInvalid, n)
	}
	js, err := sigsyaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	var h tink.Hardware
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := Validate(&h); err != nil {
		return nil, err
	}
	return &h, nil
}

// documents counts the non-empty YAML documents in data.
func documents(data []byte) (int, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	n := 0
	for {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if len(node.Content) > 0 {
			n++
		}
	}
}

// Validate checks what the API server would check of h before storing it:
// type, object name, namespace, label and annotation keys and values, and
// the patterns and rules Tinkerbell's CRD puts on interfaces. Errors wrap
// ErrInvalid and name the field.
func Validate(h *tink.Hardware) error {
	var errs []string
	bad := func(field string, problems ...string) {
		errs = append(errs, field+": "+strings.Join(problems, "; "))
	}
	if h.APIVersion != APIVersion {
		bad("apiVersion", fmt.Sprintf("%s, want %s", names.Label(h.APIVersion), APIVersion))
	}
	if h.Kind != Kind {
		bad("kind", fmt.Sprintf("%s, want %s", names.Label(h.Kind), Kind))
	}
	if p := validation.IsDNS1123Subdomain(h.Name); len(p) > 0 {
		bad("metadata.name", p...)
	}
	if h.Namespace != "" {
		if p := validation.IsDNS1123Label(h.Namespace); len(p) > 0 {
			bad("metadata.namespace", p...)
		}
	}
	for k, v := range h.Labels {
		if p := validation.IsQualifiedName(k); len(p) > 0 {
			bad("metadata.labels["+k+"]", p...)
		}
		if p := validation.IsValidLabelValue(v); len(p) > 0 {
			bad("metadata.labels["+k+"]", p...)
		}
	}
	for k := range h.Annotations {
		if p := validation.IsQualifiedName(strings.ToLower(k)); len(p) > 0 {
			bad("metadata.annotations["+k+"]", p...)
		}
	}
	if mac, ok := h.Annotations[AnnotationMAC]; ok && names.CheckMAC(mac) != nil {
		bad("metadata.annotations["+AnnotationMAC+"]", "not a MAC in the form 52:54:00:12:34:56")
	}
	for i, in := range h.Spec.Interfaces {
		d := in.DHCP
		if d == nil {
			continue
		}
		f := fmt.Sprintf("spec.interfaces[%d].dhcp", i)
		if d.MAC != "" && !macPattern.MatchString(d.MAC) {
			bad(f+".mac", names.Label(d.MAC)+" is not a lower-case MAC such as 52:54:00:12:34:56")
		}
		if d.VLANID != "" && !vlanPattern.MatchString(d.VLANID) {
			bad(f+".vlan_id", names.Label(d.VLANID)+" is not a VLAN ID list of 0-4096")
		}
		for j, r := range d.ClasslessStaticRoutes {
			if !cidrPattern.MatchString(r.DestinationDescriptor) {
				bad(fmt.Sprintf("%s.classless_static_routes[%d].destination_descriptor", f, j), names.Label(r.DestinationDescriptor)+" is not an IPv4 network such as 10.0.0.0/8")
			}
			if !ipv4Pattern.MatchString(r.Router) {
				bad(fmt.Sprintf("%s.classless_static_routes[%d].router", f, j), names.Label(r.Router)+" is not an IPv4 address")
			}
		}
		if (d.TFTPServerName == "") != (d.BootFileName == "") {
			bad(f, "tftp_server_name and boot_file_name must both be specified or both be empty")
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(errs, "; "))
	}
	return nil
}

// Marshal writes h as YAML with its keys in a stable (sorted) order and
// 2-space indentation, leaving out what the API server fills in (an empty
// status, a null creation time), so that one change to a machine is a
// small diff. Strings a YAML 1.1 reader would take for something else
// (a MAC such as 52:54:00:00:01:23 for a base-60 number) are quoted.
func Marshal(h *tink.Hardware) ([]byte, error) {
	js, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode hardware: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("encode hardware: %w", err)
	}
	integers(obj)
	if st, ok := obj["status"].(map[string]any); ok && len(st) == 0 {
		delete(obj, "status")
	}
	if md, ok := obj["metadata"].(map[string]any); ok {
		if md["creationTimestamp"] == nil {
			delete(md, "creationTimestamp")
		}
	}
	if sp, ok := obj["spec"].(map[string]any); ok {
		// HardwareSpec.Auto has no omitempty of its own.
		if a, ok := sp["auto"].(map[string]any); ok && len(a) == 0 {
			delete(sp, "auto")
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(obj); err != nil {
		return nil, fmt.Errorf("encode hardware: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode hardware: %w", err)
	}
	return buf.Bytes(), nil
}

// integers turns the JSON numbers in v into int64 (every number of the
// Hardware types is an integer), so that they are written as YAML
// integers, never as 1e+06.
func integers(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if n, ok := x.(json.Number); ok {
				v[k] = number(n)
				continue
			}
			integers(x)
		}
	case []any:
		for i, x := range v {
			if n, ok := x.(json.Number); ok {
				v[i] = number(n)
				continue
			}
			integers(x)
		}
	}
}

func number(n json.Number) any {
	if i, err := n.Int64(); err == nil {
		return i
	}
	f, _ := n.Float64()
	return f
}
