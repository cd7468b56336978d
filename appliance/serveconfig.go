package appliance

import (
	"fmt"
	"net/netip"

	"gopkg.in/yaml.v3"

	"github.com/foundry-appliance/foundry/appliance/netplan"
)

// HTTPPort is where `foundry serve` listens on every address of the
// appliance: the provisioning segment (iPXE scripts, images, the agent)
// and the management links (dashboard and API).
const HTTPPort = 8080

// Dirs are where the appliance keeps its state: on the data disk, or in
// RAM when there is none.
type Dirs struct {
	// Data is `foundry serve`'s data_dir (database, admin token, TLS key).
	Data string
	// Images is its image_dir (discovery image, iPXE binaries, library).
	Images string
}

// serveFile is the part of `foundry serve`'s configuration file (README,
// "Configuration") that the appliance writes.
type serveFile struct {
	DataDir  string `yaml:"data_dir"`
	ImageDir string `yaml:"image_dir"`
	HTTP     struct {
		Listen    string `yaml:"listen"`
		Advertise string `yaml:"advertise"`
	} `yaml:"http"`
	Segments []serveSegment `yaml:"segments"`
}

type serveSegment struct {
	Name      string   `yaml:"name"`
	Interface string   `yaml:"interface"`
	Subnet    string   `yaml:"subnet"`
	Range     []string `yaml:"range"`
	Router    string   `yaml:"router,omitempty"`
	DNS       []string `yaml:"dns,omitempty"`
	Discovery bool     `yaml:"discovery"`
	ServerIP  string   `yaml:"server_ip"`
}

// ServeConfig is `foundry serve`'s configuration for plan, with the
// provisioning segment on the interface named ifname. It lists that one
// segment and no relay interfaces, so Foundry answers DHCP nowhere else:
// the management links are DHCP clients only. Without a provisioning
// segment it lists none, and Foundry answers no DHCP at all.
func ServeConfig(plan netplan.Plan, ifname string, dirs Dirs) ([]byte, error) {
	var f serveFile
	f.DataDir, f.ImageDir = dirs.Data, dirs.Images
	f.HTTP.Listen = fmt.Sprintf(":%d", HTTPPort)
	f.Segments = []serveSegment{}
	// Machines reach the appliance at the advertised URL, and only
	// machines on the provisioning segment boot from it; with no segment
	// there is nobody to reach it, but serve still needs a URL.
	f.HTTP.Advertise = fmt.Sprintf("http://localhost:%d", HTTPPort)
	if p := plan.Provisioning; p != nil {
		if ifname == "" {
			return nil, fmt.Errorf("provisioning interface %s: not found", p.Interface)
		}
		seg := p.Segment(ifname)
		if err := seg.Validate(); err != nil {
			return nil, fmt.Errorf("provisioning segment: %w", err)
		}
		f.HTTP.Advertise = "http://" + netip.AddrPortFrom(seg.ServerIP, HTTPPort).String()
		s := serveSegment{Name: seg.Name, Interface: ifname, Subnet: seg.Subnet.String(),
			Range: []string{seg.RangeStart.String(), seg.RangeEnd.String()}, Discovery: true, ServerIP: seg.ServerIP.String()}
		if seg.Router.IsValid() {
			s.Router = seg.Router.String()
		}
		for _, d := range seg.DNS {
			s.DNS = append(s.DNS, d.String())
		}
		f.Segments = append(f.Segments, s)
	}
	out, err := yaml.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("encode foundry serve configuration: %w", err)
	}
	return append([]byte("# written by the appliance init at every boot; change appliance.yaml instead\n"), out...), nil
}
