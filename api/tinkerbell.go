package api

import (
	"fmt"

	tink "github.com/tinkerbell/tinkerbell/api/v1alpha1/tinkerbell"

	"github.com/foundry-appliance/foundry/hardware"
	"github.com/foundry-appliance/foundry/store"
)

// Tinkerbell Hardware (tinkerbell.org/v1alpha1). The object is Tinkerbell's
// own Go type; package hardware is the one place that fills it in, for this
// export and for the GitOps repository alike.
const (
	TinkAPIVersion = hardware.APIVersion
	TinkKind       = hardware.Kind
)

// tinkerbellHardware converts an accepted machine. seg is its segment
// (nil when not configured) and lease its DHCP lease (nil when none); a
// static address wins over both.
func tinkerbellHardware(m store.Machine, seg *SegmentInfo, lease *store.Lease, namespace string) (*tink.Hardware, error) {
	if !m.State.Accepted() || m.Approval == nil {
		return nil, fmt.Errorf("machine %s is %s: only approved machines are exported", m.MAC, m.State)
	}
	return hardware.Render(m, hardware.Input{Segment: seg.Hardware(), Lease: lease, Namespace: namespace})
}

// Hardware is what rendering a machine as Tinkerbell Hardware needs of
// its segment; nil for a nil segment.
func (seg *SegmentInfo) Hardware() *hardware.Segment {
	if seg == nil {
		return nil
	}
	return &hardware.Segment{Subnet: seg.Subnet, Router: seg.Router, DNS: seg.DNS, LeaseTime: seg.LeaseTime}
}
