package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/foundry-appliance/foundry/dhcp"
)

// fileConfig is the YAML configuration file exactly as written; README.md
// documents every key. Durations and addresses stay strings here so that
// validation can name the key when one is wrong.
type fileConfig struct {
	DataDir  string `yaml:"data_dir"`
	ImageDir string `yaml:"image_dir"`
	LogLevel string `yaml:"log_level"`
	HTTP     struct {
		Listen    string `yaml:"listen"`
		Advertise string `yaml:"advertise"`
		TLS       struct {
			Cert       string `yaml:"cert"`
			Key        string `yaml:"key"`
			SelfSigned bool   `yaml:"self_signed"`
		} `yaml:"tls"`
	} `yaml:"http"`
	TFTP struct {
		Listen string `yaml:"listen"`
	} `yaml:"tftp"`
	Discovery struct {
		TTL                       string `yaml:"ttl"`
		AllowApprovalWithoutToken bool   `yaml:"allow_approval_without_token"`
	} `yaml:"discovery"`
	DHCP struct {
		RelayInterfaces []string `yaml:"relay_interfaces"`
	} `yaml:"dhcp"`
	Segments []fileSegment `yaml:"segments"`
}

type fileSegment struct {
	Name         string   `yaml:"name"`
	Interface    string   `yaml:"interface"`
	Relayed      bool     `yaml:"relayed"`
	Subnet       string   `yaml:"subnet"`
	Range        []string `yaml:"range"`
	Router       string   `yaml:"router"`
	DNS          []string `yaml:"dns"`
	Domain       string   `yaml:"domain"`
	LeaseTime    string   `yaml:"lease_time"`
	Mode         string   `yaml:"mode"`
	Discovery    bool     `yaml:"discovery"`
	AllowUnknown bool     `yaml:"allow_unknown"`
	UEFIBinary   string   `yaml:"uefi_binary"`
	ServerIP     string   `yaml:"server_ip"`
}

// config is the validated configuration that `serve` wires together.
type config struct {
	DataDir         string
	ImageDir        string
	LogLevel        string
	HTTPListen      string
	Advertise       string
	TLSCert         string
	TLSKey          string
	TLSSelfSigned   bool
	TFTPListen      string
	DiscoveryTTL    time.Duration
	AllowNoToken    bool
	RelayInterfaces []string
	Segments        []dhcp.Segment
}

// Defaults for keys the file leaves out.
const (
	defaultDataDir   = "/var/lib/foundry"
	defaultHTTP      = ":8080"
	defaultTFTP      = ":69"
	defaultTTL       = 24 * time.Hour
	defaultLeaseTime = time.Hour
)

// loadConfig reads and validates a configuration file.
func loadConfig(path string, lookup interfaceLookup) (config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return config{}, fmt.Errorf("read config: %w", err)
	}
	return parseConfig(raw, lookup)
}

func parseConfig(raw []byte, lookup interfaceLookup) (config, error) {
	var f fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true) // a misspelt key is an error, not a silent default
	// An empty file (io.EOF) means "all defaults".
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return config{}, fmt.Errorf("parse config: %w", err)
	}
	return f.validate(lookup)
}

// interfaceLookup tells validation whether an interface exists on this host
// and which IPv4 addresses it has.
type interfaceLookup func(name string) (addrs []netip.Addr, exists bool)

// hostInterfaces looks interfaces up on this host.
func hostInterfaces(name string) ([]netip.Addr, bool) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, false
	}
	var out []netip.Addr
	addrs, _ := ifi.Addrs()
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
			out = append(out, p.Addr())
		}
	}
	return out, true
}

// configErrors collects every problem so that one run names them all.
type configErrors []string

func (e *configErrors) add(key, format string, args ...any) {
	*e = append(*e, key+": "+fmt.Sprintf(format, args...))
}

func (e configErrors) Error() string {
	return "invalid configuration:\n  " + strings.Join(e, "\n  ")
}

func (f fileConfig) validate(lookup interfaceLookup) (config, error) {
	var errs configErrors
	c := config{
		DataDir:         or(f.DataDir, defaultDataDir),
		ImageDir:        f.ImageDir,
		LogLevel:        or(f.LogLevel, "info"),
		HTTPListen:      or(f.HTTP.Listen, defaultHTTP),
		Advertise:       strings.TrimRight(f.HTTP.Advertise, "/"),
		TLSCert:         f.HTTP.TLS.Cert,
		TLSKey:          f.HTTP.TLS.Key,
		TLSSelfSigned:   f.HTTP.TLS.SelfSigned,
		TFTPListen:      or(f.TFTP.Listen, defaultTFTP),
		AllowNoToken:    f.Discovery.AllowApprovalWithoutToken,
		RelayInterfaces: f.DHCP.RelayInterfaces,
	}
	if c.ImageDir == "" {
		c.ImageDir = c.DataDir + "/images"
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs.add("log_level", "%q is not one of debug, info, warn, error", c.LogLevel)
	}
	if _, _, err := net.SplitHostPort(c.HTTPListen); err != nil {
		errs.add("http.listen", "%q is not host:port: %v", c.HTTPListen, err)
	}
	if _, _, err := net.SplitHostPort(c.TFTPListen); err != nil {
		errs.add("tftp.listen", "%q is not host:port: %v", c.TFTPListen, err)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs.add("http.tls", "cert and key must be given together")
	}
	if c.TLSCert != "" && c.TLSSelfSigned {
		errs.add("http.tls.self_signed", "cannot be combined with cert and key")
	}
	c.DiscoveryTTL = duration(&errs, "discovery.ttl", f.Discovery.TTL, defaultTTL)
	for i, name := range c.RelayInterfaces {
		if _, ok := lookup(name); !ok {
			errs.add(fmt.Sprintf("dhcp.relay_interfaces[%d]", i), "interface %q does not exist on this host", name)
		}
	}
	names := map[string]bool{}
	for i, s := range f.Segments {
		key := fmt.Sprintf("segments[%d]", i)
		if s.Name != "" {
			key = fmt.Sprintf("segments[%d] (%s)", i, s.Name)
		}
		seg, ok := s.validate(&errs, key, lookup)
		if !ok {
			continue
		}
		if names[seg.Name] {
			errs.add(key+".name", "duplicate segment name %q", seg.Name)
		}
		names[seg.Name] = true
		c.Segments = append(c.Segments, seg)
	}
	checkOverlaps(&errs, c.Segments)
	if c.Advertise == "" {
		c.Advertise = defaultAdvertise(c)
	}
	if u, err := url.Parse(c.Advertise); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		errs.add("http.advertise", "%q is not an absolute http(s) URL (machines must be able to reach it)", c.Advertise)
	}
	if len(errs) > 0 {
		return config{}, errs
	}
	return c, nil
}

func (s fileSegment) validate(errs *configErrors, key string, lookup interfaceLookup) (dhcp.Segment, bool) {
	n := len(*errs)
	seg := dhcp.Segment{
		Name:         s.Name,
		Interface:    s.Interface,
		Relayed:      s.Relayed,
		DomainName:   s.Domain,
		Discovery:    s.Discovery,
		AllowUnknown: s.AllowUnknown,
		UEFIBinary:   or(s.UEFIBinary, "ipxe.efi"),
	}
	if !validName(s.Name) {
		errs.add(key+".name", "%q must be 1-63 characters of a-z, 0-9 and '-'", s.Name)
	}
	switch {
	case s.Relayed && s.Interface != "":
		errs.add(key+".interface", "a relayed segment is chosen by giaddr and has no interface of its own")
	case !s.Relayed && s.Interface == "":
		errs.add(key+".interface", "required (or set relayed: true)")
	case !s.Relayed:
		addrs, ok := lookup(s.Interface)
		if !ok {
			errs.add(key+".interface", "interface %q does not exist on this host", s.Interface)
		} else if s.ServerIP == "" && len(addrs) > 0 {
			seg.ServerIP = addrs[0]
		}
	}
	switch s.Mode {
	case "", "dhcp":
		seg.Mode = dhcp.ModeDHCP
	case "proxy":
		seg.Mode = dhcp.ModeProxy
	default:
		errs.add(key+".mode", "%q is not dhcp or proxy", s.Mode)
	}
	switch seg.UEFIBinary {
	case "ipxe.efi", "snponly.efi":
	default:
		errs.add(key+".uefi_binary", "%q is not ipxe.efi or snponly.efi", s.UEFIBinary)
	}
	prefix, err := netip.ParsePrefix(s.Subnet)
	if err != nil || !prefix.Addr().Is4() {
		errs.add(key+".subnet", "%q is not an IPv4 CIDR subnet", s.Subnet)
	} else {
		seg.Subnet = prefix.Masked()
	}
	inSubnet := func(k, v string) netip.Addr {
		a, err := netip.ParseAddr(v)
		switch {
		case err != nil || !a.Is4():
			errs.add(k, "%q is not an IPv4 address", v)
		case seg.Subnet.IsValid() && !seg.Subnet.Contains(a):
			errs.add(k, "%s is outside subnet %s", a, seg.Subnet)
		}
		return a
	}
	switch {
	case len(s.Range) == 2:
		seg.RangeStart = inSubnet(key+".range[0]", s.Range[0])
		seg.RangeEnd = inSubnet(key+".range[1]", s.Range[1])
		if seg.RangeStart.IsValid() && seg.RangeEnd.IsValid() && seg.RangeEnd.Less(seg.RangeStart) {
			errs.add(key+".range", "start %s is after end %s", seg.RangeStart, seg.RangeEnd)
		}
	case len(s.Range) == 0 && seg.Mode == dhcp.ModeProxy:
		// proxyDHCP hands out no addresses.
	default:
		errs.add(key+".range", "must be [first, last] address (dhcp mode needs a range)")
	}
	if s.Router != "" {
		seg.Router = inSubnet(key+".router", s.Router)
	}
	if s.ServerIP != "" {
		seg.ServerIP = inSubnet(key+".server_ip", s.ServerIP)
	}
	for i, d := range s.DNS {
		a, err := netip.ParseAddr(d)
		if err != nil || !a.Is4() {
			errs.add(fmt.Sprintf("%s.dns[%d]", key, i), "%q is not an IPv4 address", d)
		}
		seg.DNS = append(seg.DNS, a)
	}
	seg.LeaseTime = duration(errs, key+".lease_time", s.LeaseTime, defaultLeaseTime)
	return seg, len(*errs) == n
}

// checkOverlaps rejects two segments that would hand out the same address.
func checkOverlaps(errs *configErrors, segs []dhcp.Segment) {
	for i, a := range segs {
		for _, b := range segs[i+1:] {
			if a.Interface != "" && a.Interface == b.Interface {
				errs.add("segments", "%s and %s are both served on interface %s", a.Name, b.Name, a.Interface)
			}
			if a.Subnet.Overlaps(b.Subnet) && (a.Relayed || b.Relayed) {
				errs.add("segments", "%s (%s) and %s (%s) overlap: a relayed segment's subnet must identify it", a.Name, a.Subnet, b.Name, b.Subnet)
			}
			if !a.RangeStart.IsValid() || !b.RangeStart.IsValid() {
				continue
			}
			if !(a.RangeEnd.Less(b.RangeStart) || b.RangeEnd.Less(a.RangeStart)) {
				errs.add("segments", "ranges of %s (%s-%s) and %s (%s-%s) overlap", a.Name, a.RangeStart, a.RangeEnd, b.Name, b.RangeStart, b.RangeEnd)
			}
		}
	}
}

// defaultAdvertise points machines at our address on the first directly
// served segment, or leaves a value that validation rejects with a hint.
func defaultAdvertise(c config) string {
	_, port, _ := net.SplitHostPort(c.HTTPListen)
	for _, s := range c.Segments {
		if s.ServerIP.IsValid() {
			return "http://" + net.JoinHostPort(s.ServerIP.String(), port)
		}
	}
	return "(unset: set http.advertise)"
}

func duration(errs *configErrors, key, v string, def time.Duration) time.Duration {
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		errs.add(key, "%q is not a positive duration such as 30m or 24h", v)
		return def
	}
	return d
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
