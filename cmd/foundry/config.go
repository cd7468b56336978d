package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/foundry-appliance/foundry/dhcp"
	"github.com/foundry-appliance/foundry/ipxe"
	"github.com/foundry-appliance/foundry/names"
	"github.com/foundry-appliance/foundry/store"
	"github.com/foundry-appliance/foundry/store/kv"
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
		RelaySources    []string `yaml:"relay_sources"`
		// MaxDiscovered is every segment's max_discovered unless it has
		// its own.
		MaxDiscovered int `yaml:"max_discovered"`
		RateLimit     struct {
			PerMAC    fileRate `yaml:"per_mac"`
			PerSource fileRate `yaml:"per_source"`
			MACTable  int      `yaml:"mac_table"`
		} `yaml:"rate_limit"`
		// HA is absent (nil) unless this appliance is one of a DHCP
		// pair (config_ha.go).
		HA *fileHA `yaml:"ha"`
	} `yaml:"dhcp"`
	Audit struct {
		// Nil: the default; 0 (or "0s") turns the bound off.
		MaxEntries     *int   `yaml:"max_entries"`
		MaxAge         string `yaml:"max_age"`
		HardMaxEntries *int   `yaml:"hard_max_entries"`
	} `yaml:"audit"`
	Store struct {
		// SpaceReserve is a byte count as image_max_size, or "0" or
		// "off" (no reserve); unset: the store's default.
		SpaceReserve string `yaml:"space_reserve"`
		// Backend is "badger" (the default: a database under data_dir)
		// or "etcd" (config_store.go).
		Backend string    `yaml:"backend"`
		Etcd    *fileEtcd `yaml:"etcd"`
	} `yaml:"store"`
	Segments []fileSegment `yaml:"segments"`
	// GitOps is absent (nil) unless the file has a gitops section.
	GitOps *fileGitOps `yaml:"gitops"`

	// ImageMaxSize is a byte count, optionally with KiB, MiB, GiB or TiB.
	ImageMaxSize string `yaml:"image_max_size"`
}

// fileRate is a rate limit as written: rate nil means the default, 0
// turns the limit off.
type fileRate struct {
	Rate  *float64 `yaml:"rate"`
	Burst int      `yaml:"burst"`
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
	// MaxDiscovered and MaxPendingOffers: 0 (unset) is the default.
	MaxDiscovered    int `yaml:"max_discovered"`
	MaxPendingOffers int `yaml:"max_pending_offers"`
}

// config is the validated configuration that `serve` wires together.
type config struct {
	DataDir       string
	ImageDir      string
	ImageMaxSize  int64
	LogLevel      string
	HTTPListen    string
	Advertise     string
	TLSCert       string
	TLSKey        string
	TLSSelfSigned bool
	TFTPListen    string
	DiscoveryTTL  time.Duration
	AllowNoToken  bool
	Relays        dhcp.Relays
	Limits        dhcp.Limits
	Segments      []dhcp.Segment
	Audit         store.AuditRetention
	// SpaceReserve is store.Options.SpaceReserve: 0 the store's default,
	// negative no reserve (no full-disk guard).
	SpaceReserve int64
	// Etcd is nil for the Badger backend, else the cluster to keep every
	// record in.
	Etcd *kv.EtcdOptions
	// Pair is nil unless this appliance is one of a DHCP pair (dhcp.ha);
	// serve sets its Heartbeats.
	Pair *dhcp.Pair
	// GitOps is nil when the repository is not configured.
	GitOps *gitopsConfig
}

// Defaults for keys the file leaves out.
const (
	defaultDataDir = "/var/lib/foundry"
	defaultHTTP    = ":8080"
	defaultTFTP    = ":69"
	defaultTTL     = 24 * time.Hour
)

// loadConfig reads and validates a configuration file.
func loadConfig(path string, lookup dhcp.Interfaces) (config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return config{}, fmt.Errorf("read config: %w", err)
	}
	return parseConfig(raw, lookup)
}

func parseConfig(raw []byte, lookup dhcp.Interfaces) (config, error) {
	var f fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true) // a misspelt key is an error, not a silent default
	// An empty file (io.EOF) means "all defaults".
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return config{}, fmt.Errorf("parse config: %w", err)
	}
	return f.validate(lookup)
}

// configErrors collects every problem so that one run names them all.
type configErrors []string

func (e *configErrors) add(key, format string, args ...any) {
	*e = append(*e, key+": "+fmt.Sprintf(format, args...))
}

func (e configErrors) Error() string {
	return "invalid configuration:\n  " + strings.Join(e, "\n  ")
}

func (f fileConfig) validate(lookup dhcp.Interfaces) (config, error) {
	var errs configErrors
	c := config{
		DataDir:       or(f.DataDir, defaultDataDir),
		ImageDir:      f.ImageDir,
		LogLevel:      or(f.LogLevel, "info"),
		HTTPListen:    or(f.HTTP.Listen, defaultHTTP),
		Advertise:     strings.TrimRight(f.HTTP.Advertise, "/"),
		TLSCert:       f.HTTP.TLS.Cert,
		TLSKey:        f.HTTP.TLS.Key,
		TLSSelfSigned: f.HTTP.TLS.SelfSigned,
		TFTPListen:    or(f.TFTP.Listen, defaultTFTP),
		AllowNoToken:  f.Discovery.AllowApprovalWithoutToken,
		Relays:        dhcp.Relays{Interfaces: f.DHCP.RelayInterfaces},
	}
	if c.ImageDir == "" {
		c.ImageDir = c.DataDir + "/images"
	}
	checkDirs(&errs, c)
	c.ImageMaxSize = byteCount(&errs, "image_max_size", f.ImageMaxSize)
	c.SpaceReserve = spaceReserve(&errs, f.Store.SpaceReserve)
	c.Etcd = storeBackend(&errs, f.Store.Backend, f.Store.Etcd)
	c.Pair = dhcpPair(&errs, f.DHCP.HA, f.Store.Backend == "etcd")
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
	c.Audit = f.auditRetention(&errs)
	rl := f.DHCP.RateLimit
	c.Limits = dhcp.Limits{PerMAC: rl.PerMAC.limit(), PerSource: rl.PerSource.limit(), MACTable: rl.MACTable}
	if f.DHCP.MaxDiscovered < 0 {
		errs.add("dhcp.max_discovered", "%d is negative", f.DHCP.MaxDiscovered)
	}
	c.GitOps = f.GitOps.validate(&errs)
	// Segments are parsed here and checked by dhcp.CheckConfig, the code
	// `serve` runs again before it opens a socket: one rule for both.
	var at []int // the file position of each parsed segment
	for i, s := range f.Segments {
		if seg, ok := s.parse(&errs, i); ok {
			if seg.MaxDiscovered == 0 && f.DHCP.MaxDiscovered > 0 {
				seg.MaxDiscovered = f.DHCP.MaxDiscovered
			}
			c.Segments = append(c.Segments, seg)
			at = append(at, i)
		}
	}
	sourcesOK := true
	for i, v := range f.DHCP.RelaySources {
		p, ok := relaySource(v)
		if !ok {
			errs.add(fmt.Sprintf("dhcp.relay_sources[%d]", i), "%s is not an IP address or network such as 10.99.0.2 or 10.99.0.0/30", names.Label(v))
			sourcesOK = false
		}
		c.Relays.Sources = append(c.Relays.Sources, p)
	}
	var err error
	if len(at) == len(f.Segments) && sourcesOK {
		err = dhcp.CheckConfig(c.Segments, c.Relays, lookup)
	} else {
		// Without the unreadable segments the interfaces cannot be
		// planned, but the readable ones can still be checked.
		err = dhcp.ValidateSegments(c.Segments)
	}
	// The limits' rules are dhcp's too, run again by Serve.
	err = errors.Join(err, c.Limits.Validate())
	for _, err := range unjoin(err) {
		var problems dhcp.ConfigErrors
		switch {
		case errors.As(err, &problems):
			for _, p := range problems {
				if p.Index >= 0 {
					p.Index = at[p.Index]
				}
				errs = append(errs, p.Error())
			}
		case err != nil:
			errs = append(errs, err.Error())
		}
	}
	if c.Advertise == "" {
		c.Advertise = defaultAdvertise(c, lookup)
	}
	if u, err := url.Parse(c.Advertise); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		errs.add("http.advertise", "%q is not an absolute http(s) URL (machines must be able to reach it)", c.Advertise)
	} else if err := ipxe.CheckBaseURL(c.Advertise); err != nil {
		errs.add("http.advertise", "boot scripts cannot carry it: %v", err)
	}
	if len(errs) > 0 {
		return config{}, errs
	}
	return c, nil
}

// parse reads a segment as written into a dhcp.Segment. It reports only
// what cannot be represented (text that is not an address, a duration or a
// mode); every rule about the values themselves is dhcp.CheckConfig's.
func (s fileSegment) parse(errs *configErrors, i int) (dhcp.Segment, bool) {
	n := len(*errs)
	bad := func(key, format string, a ...any) {
		e := dhcp.ConfigError{Index: i, Segment: s.Name, Key: key, Problem: fmt.Sprintf(format, a...)}
		*errs = append(*errs, e.Error())
	}
	seg := dhcp.Segment{
		Name:         s.Name,
		Interface:    s.Interface,
		Relayed:      s.Relayed,
		DomainName:   s.Domain,
		Discovery:    s.Discovery,
		AllowUnknown: s.AllowUnknown,
		UEFIBinary:   or(s.UEFIBinary, dhcp.DefaultUEFIBinary),

		MaxDiscovered:    s.MaxDiscovered,
		MaxPendingOffers: s.MaxPendingOffers,
	}
	mode, err := dhcp.ParseMode(or(s.Mode, dhcp.ModeDHCP.String()))
	if err != nil {
		bad("mode", "%s is not dhcp or proxy", names.Label(s.Mode))
	}
	seg.Mode = mode
	if s.Subnet != "" {
		// An address with its prefix length (10.77.0.1/24) names its
		// network: it is read as that network.
		prefix, err := netip.ParsePrefix(s.Subnet)
		if err != nil {
			bad("subnet", "%s is not a CIDR subnet such as 10.77.0.0/24", names.Label(s.Subnet))
		}
		seg.Subnet = prefix.Masked()
	}
	addr := func(key, v string) netip.Addr {
		a, err := netip.ParseAddr(v)
		if err != nil {
			bad(key, "%s is not an IP address", names.Label(v))
		}
		return a
	}
	switch len(s.Range) {
	case 0:
	case 2:
		seg.RangeStart, seg.RangeEnd = addr("range[0]", s.Range[0]), addr("range[1]", s.Range[1])
	default:
		bad("range", "must be [first, last] address, not %d addresses", len(s.Range))
	}
	if s.Router != "" {
		seg.Router = addr("router", s.Router)
	}
	if s.ServerIP != "" {
		seg.ServerIP = addr("server_ip", s.ServerIP)
	}
	for j, d := range s.DNS {
		seg.DNS = append(seg.DNS, addr(fmt.Sprintf("dns[%d]", j), d))
	}
	key := dhcp.ConfigError{Index: i, Segment: s.Name, Key: "lease_time"}
	seg.LeaseTime = duration(errs, key.Path(), s.LeaseTime, dhcp.DefaultLeaseTime)
	return seg, len(*errs) == n
}

// limit is r as dhcp.RateLimit: rate 0 (off) is negative there, unset
// zero (the default).
func (r fileRate) limit() dhcp.RateLimit {
	l := dhcp.RateLimit{Burst: r.Burst}
	switch {
	case r.Rate == nil:
	case *r.Rate == 0:
		l.Rate = -1
	default:
		l.Rate = *r.Rate
	}
	return l
}

// auditRetention reads the audit section: an unset key is the store's
// default, 0 turns the bound off.
func (f fileConfig) auditRetention(errs *configErrors) store.AuditRetention {
	var r store.AuditRetention
	count := func(key string, v *int) int {
		switch {
		case v == nil:
			return 0
		case *v < 0:
			errs.add(key, "%d is negative (0 turns the bound off)", *v)
			return 0
		case *v == 0:
			return -1
		}
		return *v
	}
	r.MaxEntries = count("audit.max_entries", f.Audit.MaxEntries)
	r.HardMaxEntries = count("audit.hard_max_entries", f.Audit.HardMaxEntries)
	if v := f.Audit.MaxAge; v != "" {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil || d < 0:
			errs.add("audit.max_age", "%q is not a duration such as 8784h (0 turns the bound off)", v)
		case d == 0:
			r.MaxAge = -1
		default:
			r.MaxAge = d
		}
	}
	if r.MaxEntries > 0 && r.HardMaxEntries > 0 && r.HardMaxEntries < r.MaxEntries {
		errs.add("audit.hard_max_entries", "%d is less than audit.max_entries (%d)", r.HardMaxEntries, r.MaxEntries)
	}
	return r
}

// unjoin is the errors joined in err (errors.Join), or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// relaySource reads an entry of dhcp.relay_sources: an address (one
// relay) or a network, read as its masked network as subnet is. Whether it
// is an IPv4 one is dhcp.CheckConfig's rule.
func relaySource(v string) (netip.Prefix, bool) {
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		return p.Masked(), err == nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, a.BitLen()), true
}

// defaultAdvertise points machines at our address on the first segment
// that has one, or leaves a value that validation rejects with a hint.
func defaultAdvertise(c config, lookup dhcp.Interfaces) string {
	_, port, _ := net.SplitHostPort(c.HTTPListen)
	for _, s := range c.Segments {
		if ip := dhcp.ServerAddr(s, lookup); ip.IsValid() {
			return "http://" + net.JoinHostPort(ip.String(), port)
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

// byteCount parses "68719476736" or "64GiB" (KiB, MiB, GiB, TiB; a space
// before the unit is allowed); "" is 0, the default.
func byteCount(errs *configErrors, key, v string) int64 {
	if v == "" {
		return 0
	}
	num, shift := strings.TrimSpace(v), 0
	for i, unit := range []string{"KiB", "MiB", "GiB", "TiB"} {
		if strings.HasSuffix(num, unit) {
			num, shift = strings.TrimSpace(strings.TrimSuffix(num, unit)), 10*(i+1)
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64>>shift {
		errs.add(key, "%s is not a positive size such as 64GiB or 68719476736", names.Label(v))
		return 0
	}
	return n << shift
}

// minSpaceReserve is the least store.space_reserve accepted: the flush of
// the store's two 16 MiB memtables, which Badger writes without a new
// transaction (store.DefaultSpaceReserve says what the default covers).
const minSpaceReserve = 32 << 20

// spaceReserve reads store.space_reserve: "" is the store's default (0
// here), "0" or "off" no reserve (negative), else a size of at least
// minSpaceReserve.
func spaceReserve(errs *configErrors, v string) int64 {
	const key = "store.space_reserve"
	switch strings.TrimSpace(v) {
	case "":
		return 0
	case "0", "off":
		return -1
	}
	var bad configErrors
	n := byteCount(&bad, key, v)
	switch {
	case len(bad) > 0:
		errs.add(key, "%s is not a size such as 128MiB, or 0 or off (no reserve)", names.Label(v))
	case n < minSpaceReserve:
		errs.add(key, "%s is less than %dMiB, the flush of the database's two 16 MiB memtables; use at least that, or off", names.Label(v), minSpaceReserve>>20)
	}
	return n
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
