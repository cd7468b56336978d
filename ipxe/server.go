package ipxe

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/foundry-appliance/foundry/lifecycle"
	"github.com/foundry-appliance/foundry/store"
)

// Store is what the script server needs from the database; *store.DB
// satisfies it. The server only reads machines and profiles (it never
// creates a machine: only DHCP does, and only on discovery segments) and
// issues boot nonces.
type Store interface {
	GetMachine(mac string) (store.Machine, error)
	GetProfile(name string) (store.Profile, error)
	// IssueNonce returns a new nonce for mac and revokes its previous one.
	IssueNonce(mac string, ttl time.Duration) (string, error)
}

// Server serves iPXE scripts at GET /boot/{mac}. Mount it at "/boot/" (or
// with any pattern that passes /boot/… through unchanged). Zero values of
// the optional fields mean the documented defaults.
type Server struct {
	// Store holds machines, profiles and nonces. Required.
	Store Store
	// BaseURL is the appliance URL booting machines use (http.advertise),
	// e.g. "http://10.77.0.1:8080". Required.
	BaseURL string
	// DiscoveryKernel and DiscoveryInitrd are the discovery OS files, as
	// paths on the appliance or absolute URLs. Defaults
	// "/images/discovery/vmlinuz" and "/images/discovery/initrd".
	DiscoveryKernel string
	DiscoveryInitrd string
	// ExtraDiscoveryArgs is appended to the discovery kernel command line.
	// Default "console=tty0 console=ttyS0,115200".
	ExtraDiscoveryArgs string
	// NonceTTL is how long a discovery boot nonce stays valid. Default 24h.
	NonceTTL time.Duration
	// MenuTimeout is how long a boot menu waits before booting production.
	// Default 5s.
	MenuTimeout time.Duration
	// Segments are the configured segments by name. A machine whose record
	// names a segment missing here is treated as on a segment without
	// discovery: a machine waiting for approval is then held, not booted
	// into discovery. Default none.
	Segments map[string]lifecycle.Segment
	// Grants decides whether a request may receive a boot nonce: only
	// from the address the DHCP server has just answered that MAC at, once
	// (bootgrant.Table). Nil: no request does, and every discovery script
	// is the one that asks the machine to repeat its DHCP exchange.
	Grants Granter
	// FullDiskRetry is how often a machine whose discovery boot a full
	// data disk holds back asks again (the Retry-After of that 503
	// answer, which iPXE follows). Default DefaultFullDiskRetry.
	FullDiskRetry time.Duration
	// Logger gets one record per script served (Info), held back by a
	// full disk (Warn) or failed (Error). Nil means silent.
	Logger *slog.Logger

	once sync.Once
	mux  *http.ServeMux
}

// writable is the part of *store.DB that says whether it accepts writes
// (nil, else an error wrapping store.ErrNoSpace); a Store without it is
// not asked.
type writable interface {
	Writable() error
}

// DefaultFullDiskRetry is Server.FullDiskRetry's default.
const DefaultFullDiskRetry = 30 * time.Second

// fullDiskScript is the body of the answer to a discovery boot that a
// full data disk holds back; retry is its Retry-After in seconds. mac is
// canonical.
func fullDiskScript(mac, retry string) string {
	return "#!ipxe\n# Foundry error: data disk full\n" +
		"echo Foundry: the data disk of the appliance is full, so discovery of " + mac + " waits until space is freed there (retrying every " + retry + " s).\n" +
		"exit 1\n"
}

// Granter hands out the right to one boot nonce (bootgrant.Table).
type Granter interface {
	Take(mac string, remote netip.Addr) bool
}

// ErrNoGrant: the request did not come from the machine's own fresh DHCP
// exchange, so it gets no nonce.
var ErrNoGrant = errors.New("no DHCP exchange from this address for this machine just now")

// DefaultNonceTTL is the lifetime of a discovery boot nonce.
const DefaultNonceTTL = 24 * time.Hour

// ScriptURL is the URL DHCP hands to iPXE for this machine.
func (s *Server) ScriptURL(mac net.HardwareAddr) string {
	return strings.TrimRight(s.BaseURL, "/") + "/boot/" + mac.String()
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.once.Do(func() {
		s.mux = http.NewServeMux()
		s.mux.HandleFunc("GET /boot/{mac}", s.serveBoot)
	})
	s.mux.ServeHTTP(w, r)
}

func (s *Server) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func (s *Server) serveBoot(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	// A discovery script carries a one-time nonce: never cache it.
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	mac, err := ParseMAC(r.PathValue("mac"))
	if err != nil {
		s.log().Warn("ipxe bad request", "err", err, "client", r.RemoteAddr)
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, ErrorScript(""))
		return
	}
	mode, err := ParseMode(r.URL.Query().Get("mode"))
	if err != nil {
		s.log().Warn("ipxe bad request", "mac", mac, "err", err, "client", r.RemoteAddr)
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, ErrorScript(mac))
		return
	}
	// HEAD must not have the side effect of issuing a nonce.
	var remote netip.Addr
	if r.Method != http.MethodHead {
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			remote = ap.Addr()
		}
	}
	sc, state, err := s.script(mac, mode, remote)
	if errors.Is(err, ErrNoGrant) {
		// Not an error of the appliance: whoever asked was not the
		// machine in its boot. The machine itself, if it lost its grant
		// (a slow or repeated fetch), gets a fresh one by asking DHCP again.
		s.log().Warn("ipxe discovery script without a DHCP grant: no nonce", "mac", mac, "client", r.RemoteAddr)
		base, berr := checkBaseURL(s.BaseURL)
		if berr != nil {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, ErrorScript(mac))
			return
		}
		fmt.Fprint(w, regrantScript(mac, base+"/boot/"+mac))
		return
	}
	if errors.Is(err, store.ErrNoSpace) {
		// The discovery script needs a boot nonce, a write the full data
		// disk refuses. iPXE runs no script that comes with an error
		// status, but it repeats a request whose answer has Retry-After
		// (for as long as it gets one): the machine waits, and boots once
		// space is freed. The script is for whoever reads the answer.
		s.log().Warn("ipxe discovery script refused: the data disk is full", "mac", mac, "err", err, "client", r.RemoteAddr)
		retry := s.FullDiskRetry
		if retry <= 0 {
			retry = DefaultFullDiskRetry
		}
		secs := strconv.Itoa(max(1, int(retry/time.Second)))
		h.Set("Retry-After", secs)
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, fullDiskScript(mac, secs))
		return
	}
	if err != nil {
		s.log().Error("ipxe script failed", "mac", mac, "mode", string(mode), "err", err, "client", r.RemoteAddr)
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, ErrorScript(mac))
		return
	}
	s.log().Info("ipxe script", "mac", mac, "state", state, "kind", sc.Kind.String(), "mode", string(mode), "client", r.RemoteAddr)
	fmt.Fprint(w, sc.Text)
}

// Preview renders the script mac would get now, with PreviewNonce in place
// of a boot nonce so that nothing is issued or revoked. The API uses it to
// show a machine's boot script.
func (s *Server) Preview(mac string, mode Mode) (Script, error) {
	sc, _, err := s.script(mac, mode, netip.Addr{})
	return sc, err
}

// script loads what Render needs and renders. A discovery script gets a
// real nonce when remote is valid and holds the machine's DHCP grant
// (ErrNoGrant when it does not); with remote invalid it shows PreviewNonce.
// state is for the log ("unknown" when there is no record).
func (s *Server) script(mac string, mode Mode, remote netip.Addr) (Script, string, error) {
	if s.Store == nil {
		return Script{}, "", errors.New("ipxe server has no store")
	}
	in := Input{
		MAC:                mac,
		Mode:               mode,
		BaseURL:            s.BaseURL,
		DiscoveryKernel:    s.DiscoveryKernel,
		DiscoveryInitrd:    s.DiscoveryInitrd,
		ExtraDiscoveryArgs: s.ExtraDiscoveryArgs,
		MenuTimeout:        s.MenuTimeout,
	}
	state := "unknown"
	m, err := s.Store.GetMachine(mac)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return Script{}, "", fmt.Errorf("get machine: %w", err)
	default:
		in.Machine = &m
		in.Segment = s.Segments[m.Segment]
		state = m.State.String()
	}
	if in.Machine != nil && m.Profile != "" {
		p, err := s.Store.GetProfile(m.Profile)
		switch {
		case errors.Is(err, store.ErrNotFound):
			// Render says why this matters (or not) for the state.
		case err != nil:
			return Script{}, state, fmt.Errorf("get profile: %w", err)
		default:
			in.Profile = &p
		}
	}
	if remote.IsValid() {
		ttl := s.NonceTTL
		if ttl <= 0 {
			ttl = DefaultNonceTTL
		}
		in.Nonce = func() (string, error) {
			// Asked first, so that a full disk does not use up the grant:
			// the machine's retry gets its nonce once there is space.
			if w, ok := s.Store.(writable); ok {
				if err := w.Writable(); err != nil {
					return "", err
				}
			}
			if s.Grants == nil || !s.Grants.Take(mac, remote) {
				return "", ErrNoGrant
			}
			return s.Store.IssueNonce(mac, ttl)
		}
	}
	sc, err := Render(in)
	return sc, state, err
}
