// Package netplan is the appliance's network plan: which interface is the
// provisioning segment (the only one Foundry answers DHCP on), with which
// address and range, and whether the other links take management
// addresses by DHCP. It holds the plan's rules, reads and writes the plan
// kept on the data disk (appliance.yaml), and turns it into the segment
// that `foundry serve` is configured with. Where a plan comes from (the
// data disk, the kernel line, the console setup) is the init's business.
package netplan

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/foundry-appliance/foundry/dhcp"
)

// SegmentName names the provisioning segment in leases, machine records
// and the API.
const SegmentName = "provisioning"

// Provisioning is the segment the appliance serves.
type Provisioning struct {
	// Interface is the network interface: its MAC address (what the
	// console setup records, stable across kernels and slot changes) or
	// its kernel name ("eth0").
	Interface string
	// Address is the appliance's address on it, with the subnet's prefix
	// length.
	Address netip.Prefix
	// RangeStart and RangeEnd bound the addresses handed out.
	RangeStart, RangeEnd netip.Addr
	// Router is offered to clients (option 3); zero means none.
	Router netip.Addr
	// DNS servers offered to clients (option 6); empty means none.
	DNS []netip.Addr
}

// Segment is the DHCP segment that p configures on the interface named
// ifname: discovery on, the appliance's address as server identifier and
// next-server.
func (p Provisioning) Segment(ifname string) dhcp.Segment {
	return dhcp.Segment{
		Name: SegmentName, Interface: ifname, Subnet: p.Address.Masked(),
		RangeStart: p.RangeStart, RangeEnd: p.RangeEnd, Router: p.Router, DNS: p.DNS,
		Mode: dhcp.ModeDHCP, Discovery: true, ServerIP: p.Address.Addr(),
	}
}

// Check applies every rule: the segment's own (dhcp.Segment.Validate, the
// ones `foundry serve` applies) and the appliance's (its address is a host
// address outside the range; the router is neither).
func (p Provisioning) Check() error {
	if p.Interface == "" {
		return errors.New("interface: required (a MAC address or an interface name)")
	}
	if !p.Address.IsValid() {
		return errors.New("address: required (like 10.77.0.1/24)")
	}
	if err := HostAddr(p.Address, p.Address.Addr()); err != nil {
		return fmt.Errorf("address: %w", err)
	}
	if !p.RangeStart.IsValid() || !p.RangeEnd.IsValid() {
		return errors.New("range: required (like 10.77.0.100-10.77.0.200)")
	}
	if err := CheckRange(p.Address, p.RangeStart, p.RangeEnd); err != nil {
		return fmt.Errorf("range: %w", err)
	}
	if p.Router.IsValid() {
		if err := checkRouter(p, p.Router); err != nil {
			return err
		}
	}
	seg := p.Segment("provisioning0") // the name is checked when the link is found
	if err := seg.Validate(); err != nil {
		return err
	}
	return nil
}

// Plan is the appliance's network.
type Plan struct {
	// Provisioning is the segment served; nil means none yet (the
	// appliance answers no DHCP and waits to be set up).
	Provisioning *Provisioning
	// NoManagement keeps the links other than the provisioning one down;
	// default false: each one with carrier takes an address by DHCP (a
	// client only: Foundry never answers DHCP there).
	NoManagement bool
}

// File is appliance.yaml exactly as written on the data disk.
type File struct {
	Provisioning *FileSegment `yaml:"provisioning,omitempty"`
	// Management is "dhcp" (default) or "none".
	Management string `yaml:"management,omitempty"`
}

// FileSegment is the provisioning segment in appliance.yaml.
type FileSegment struct {
	Interface string   `yaml:"interface"`
	Address   string   `yaml:"address"`
	Range     string   `yaml:"range"`
	Router    string   `yaml:"router,omitempty"`
	DNS       []string `yaml:"dns,omitempty"`
}

// maxFile bounds appliance.yaml: a plan is a few hundred bytes, and a
// corrupted or hostile file must not exhaust the init's memory.
const maxFile = 64 << 10

// Parse reads appliance.yaml. Unknown keys are errors, so that a misspelt
// key never silently leaves a default in place.
func Parse(raw []byte) (Plan, error) {
	if len(raw) > maxFile {
		return Plan{}, fmt.Errorf("appliance.yaml is %d bytes, more than %d", len(raw), maxFile)
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return Plan{}, fmt.Errorf("parse appliance.yaml: %w", err)
	}
	var plan Plan
	switch f.Management {
	case "", "dhcp":
	case "none":
		plan.NoManagement = true
	default:
		return Plan{}, fmt.Errorf("appliance.yaml: management: %q is not dhcp or none", f.Management)
	}
	if f.Provisioning == nil {
		return plan, nil
	}
	p, err := f.Provisioning.parse()
	if err != nil {
		return Plan{}, fmt.Errorf("appliance.yaml: provisioning: %w", err)
	}
	plan.Provisioning = &p
	return plan, nil
}

func (s FileSegment) parse() (Provisioning, error) {
	return ParseFields(s.Interface, s.Address, s.Range, s.Router, strings.Join(s.DNS, ","))
}

// ParseFields builds and checks a Provisioning from its text fields (the
// file's and the kernel line's): iface, address in CIDR notation, range
// "first-last" (empty: DefaultRange), router (empty: none), dns
// comma-separated (empty: none).
func ParseFields(iface, address, rng, router, dns string) (Provisioning, error) {
	p := Provisioning{Interface: strings.TrimSpace(iface)}
	var err error
	if p.Address, err = ParseAddress(strings.TrimSpace(address)); err != nil {
		return Provisioning{}, fmt.Errorf("address: %w", err)
	}
	if rng = strings.TrimSpace(rng); rng == "" {
		p.RangeStart, p.RangeEnd = DefaultRange(p.Address)
	} else if p.RangeStart, p.RangeEnd, err = ParseRange(p.Address, rng); err != nil {
		return Provisioning{}, fmt.Errorf("range: %w", err)
	}
	if p.Router, err = ParseRouter(p, strings.TrimSpace(router)); err != nil {
		return Provisioning{}, err
	}
	for _, d := range strings.Split(dns, ",") {
		if d = strings.TrimSpace(d); d == "" {
			continue
		}
		a, err := netip.ParseAddr(d)
		if err != nil || !a.Is4() {
			return Provisioning{}, fmt.Errorf("dns: %q is not an IPv4 address", d)
		}
		p.DNS = append(p.DNS, a)
	}
	if err := p.Check(); err != nil {
		return Provisioning{}, err
	}
	return p, nil
}

// Marshal writes plan as appliance.yaml, with a comment saying who wrote it.
func Marshal(plan Plan, comment string) ([]byte, error) {
	f := File{Management: "dhcp"}
	if plan.NoManagement {
		f.Management = "none"
	}
	if p := plan.Provisioning; p != nil {
		fs := &FileSegment{Interface: p.Interface, Address: p.Address.String(), Range: RangeText(p.RangeStart, p.RangeEnd)}
		if p.Router.IsValid() {
			fs.Router = p.Router.String()
		}
		for _, d := range p.DNS {
			fs.DNS = append(fs.DNS, d.String())
		}
		f.Provisioning = fs
	}
	body, err := yaml.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("encode appliance.yaml: %w", err)
	}
	var b bytes.Buffer
	for line := range strings.Lines(comment) {
		b.WriteString("# " + strings.TrimRight(line, "\n") + "\n")
	}
	b.Write(body)
	return b.Bytes(), nil
}
