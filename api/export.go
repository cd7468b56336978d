package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/foundry-appliance/foundry/hardware"
	"github.com/foundry-appliance/foundry/store"
)

// YAMLContentType is the media type of the exports (RFC 9512).
const YAMLContentType = "application/yaml"

type exportIn struct {
	Namespace string `query:"namespace" maxLength:"63" pattern:"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" example:"tink-system" doc:"Kubernetes namespace written into metadata.namespace; default none"`
}

type exportMachineIn struct {
	MAC       string `path:"mac" example:"52:54:00:12:34:56" doc:"Boot MAC"`
	Namespace string `query:"namespace" maxLength:"63" pattern:"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" example:"tink-system" doc:"Kubernetes namespace written into metadata.namespace; default none"`
}

type yamlOut struct {
	ContentType string `header:"Content-Type" hidden:"true"`
	Body        []byte
}

// yamlResponse documents a 200 answer of YAML text.
func yamlResponse(desc, example string) map[string]*huma.Response {
	return map[string]*huma.Response{"200": {
		Description: desc,
		Content: map[string]*huma.MediaType{YAMLContentType: {
			Schema:  &huma.Schema{Type: "string", Description: "Tinkerbell Hardware (tinkerbell.org/v1alpha1) YAML"},
			Example: example,
		}},
	}}
}

const tinkExample = `apiVersion: tinkerbell.org/v1alpha1
kind: Hardware
metadata:
  annotations:
    foundry/approved-at: "2026-01-05T10:00:00Z"
    foundry/approved-by: token:alice
    foundry/mac: "52:54:00:12:34:56"
    foundry/network: static
    foundry/state: ready
  labels:
    foundry/cluster: rack1
    foundry/profile: debian
  name: node-01.lab
spec:
  disks:
    - device: /dev/disk/by-path/pci-0000:00:1f.2-ata-1
  interfaces:
    - dhcp:
        arch: x86_64
        hostname: node-01.lab
        ip:
          address: 10.77.0.50
          family: 4
          gateway: 10.77.0.1
          netmask: 255.255.255.0
        mac: "52:54:00:12:34:56"
        uefi: true
      netboot:
        allowPXE: false
        allowWorkflow: false
`

func (s *Server) registerExport() {
	register(s, accessRead, huma.Operation{
		OperationID: "export-machine-tinkerbell", Method: http.MethodGet, Path: Prefix + "/machines/{mac}/export/tinkerbell",
		Summary: "Export an approved machine as Tinkerbell Hardware", Tags: []string{"export"},
		Description: "One Hardware object (tinkerbell.org/v1alpha1) as YAML: hostname, MAC, address (static, or the DHCP lease) with netmask and gateway, " +
			"firmware arch, the approved disk and SSH keys. netboot.allowPXE and allowWorkflow are false: Foundry keeps serving the machine's boots until Tinkerbell is allowed to explicitly. " +
			"Only approved, provisioning, ready and failed machines can be exported (409 otherwise).",
		Responses: yamlResponse("The Hardware object", tinkExample),
		Errors:    []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity},
	}, func(_ context.Context, in *exportMachineIn) (*yamlOut, error) {
		m, err := s.getMachine(in.MAC)
		if err != nil {
			return nil, err
		}
		if !m.State.Accepted() || m.Approval == nil {
			return nil, huma.Error409Conflict(fmt.Sprintf("machine %s is %s: only approved machines can be exported", m.MAC, m.State))
		}
		leases, err := s.Store.ListLeases(m.Segment)
		if err != nil {
			return nil, s.storeErr(err, "leases", "")
		}
		return s.exportYAML([]store.Machine{m}, leases, in.Namespace)
	})
	register(s, accessRead, huma.Operation{
		OperationID: "export-tinkerbell", Method: http.MethodGet, Path: Prefix + "/export/tinkerbell",
		Summary: "Export every approved machine as Tinkerbell Hardware", Tags: []string{"export"},
		Description: "A YAML stream of Hardware objects, one document per approved, provisioning, ready or failed machine, sorted by MAC " +
			"(kubectl apply -f takes it as it is). Empty when no machine is approved.",
		Responses: yamlResponse("The Hardware objects, separated by ---", tinkExample),
		Errors:    []int{http.StatusUnprocessableEntity},
	}, func(_ context.Context, in *exportIn) (*yamlOut, error) {
		all, err := s.Store.ListMachines()
		if err != nil {
			return nil, s.storeErr(err, "machines", "")
		}
		var ms []store.Machine
		for _, m := range all {
			if m.State.Accepted() && m.Approval != nil {
				// A list leaves inventories out; the disks and NICs are there.
				full, err := s.Store.GetMachine(m.MAC)
				if errors.Is(err, store.ErrNotFound) {
					continue // deleted meanwhile
				}
				if err != nil {
					return nil, s.storeErr(err, "machine "+m.MAC, "")
				}
				ms = append(ms, full)
			}
		}
		leases, err := s.Store.ListLeases("")
		if err != nil {
			return nil, s.storeErr(err, "leases", "")
		}
		return s.exportYAML(ms, leases, in.Namespace)
	})
}

// exportYAML renders machines as a YAML stream of Hardware objects.
func (s *Server) exportYAML(ms []store.Machine, leases []store.Lease, namespace string) (*yamlOut, error) {
	var buf bytes.Buffer
	for i, m := range ms {
		h, err := tinkerbellHardware(m, s.segment(m.Segment), leaseOf(leases, m.Segment, m.MAC), namespace)
		if err != nil {
			return nil, huma.Error409Conflict(err.Error())
		}
		doc, err := hardware.Marshal(h)
		if err != nil {
			return nil, s.storeErr(fmt.Errorf("encode hardware of %s: %w", m.MAC, err), "export", "")
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(doc)
	}
	// An empty stream when no machine is approved.
	return &yamlOut{ContentType: YAMLContentType, Body: buf.Bytes()}, nil
}

// segment returns the configured segment called name, or nil.
func (s *Server) segment(name string) *SegmentInfo {
	for i := range s.Segments {
		if s.Segments[i].Name == name {
			return &s.Segments[i]
		}
	}
	return nil
}

func leaseOf(leases []store.Lease, segment, mac string) *store.Lease {
	for i := range leases {
		if leases[i].MAC == mac && leases[i].Segment == segment {
			return &leases[i]
		}
	}
	return nil
}
