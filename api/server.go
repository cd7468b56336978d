// Package api is Foundry's HTTP face: the REST API under /api/v1 (huma v2,
// OpenAPI 3.1 at /openapi.json and /openapi.yaml, reference at /docs), the
// agent endpoints the discovery OS calls, the server-sent event stream,
// /healthz, /readyz and /metrics, and the mounts for the iPXE scripts
// (/boot/), the image directory (/images/) and the dashboard (/).
//
// Administrators authenticate with bearer tokens (stored as SHA-256 hashes,
// roles admin and viewer); the discovery agent authenticates with the boot
// nonce bound to its MAC. The two credentials never open each other's doors.
package api

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/foundry-appliance/foundry/internal/seal"
	"github.com/foundry-appliance/foundry/store"
)

// Store is what the API needs of the database; *store.DB satisfies it. It
// is an interface so that tests can make the store fail and watch the API
// answer with a problem instead of a crash.
type Store interface {
	CreateMachine(store.Machine, store.Audit) (store.Machine, error)
	GetMachine(mac string) (store.Machine, error)
	ListMachines() ([]store.Machine, error)
	ListMachinePage(store.MachineQuery) (store.MachinePage, error)
	PowerManagedMachines() ([]string, error)
	UpdateMachine(mac string, a store.Audit, fn func(*store.Machine) error) (store.Machine, error)
	DeleteMachine(mac string, a store.Audit) error
	Subscribe(buffer int) (<-chan store.Event, func())

	CreateCluster(store.Cluster, store.Audit) (store.Cluster, error)
	GetCluster(name string) (store.Cluster, error)
	ListClusters() ([]store.Cluster, error)
	UpdateCluster(name string, a store.Audit, fn func(*store.Cluster) error) (store.Cluster, error)
	DeleteCluster(name string, a store.Audit) error
	CreateProfile(store.Profile, store.Audit) (store.Profile, error)
	GetProfile(name string) (store.Profile, error)
	ListProfiles() ([]store.Profile, error)
	UpdateProfile(name string, a store.Audit, fn func(*store.Profile) error) (store.Profile, error)
	DeleteProfile(name string, a store.Audit) error
	CreateImage(store.Image, store.Audit) (store.Image, error)
	GetImage(name string) (store.Image, error)
	ListImages() ([]store.Image, error)
	UpdateImage(name string, a store.Audit, fn func(*store.Image) error) (store.Image, error)
	ImageProgress(name string, done, total int64) error
	DeleteImage(name string, a store.Audit) (store.Image, error)
	FailImports(reason string, a store.Audit) ([]store.Image, error)

	AppendAudit(mac string, a store.Audit) error
	ListAudit(f store.AuditFilter) ([]store.AuditEntry, error)
	ListLeases(segment string) ([]store.Lease, error)
	CheckNonce(nonce string) (mac string, err error)
	UpdateMachineSessions(mac string, a store.Audit, fn func(*store.Machine, *store.Sessions) error) (store.Machine, error)
	UpdateMachineSteps(mac string, steps ...store.Step) (store.Machine, error)
	GetSession(id string) (store.Session, error)
	AdvanceSession(id string, seq uint64, ttl time.Duration) (store.Session, error)
	MachineSessions(mac string) ([]store.Session, error)
	ListSessions() ([]store.Session, error)
	SessionInventory(id string) (json.RawMessage, error)

	CreateAPIToken(store.APIToken) error
	FindAPIToken(hash []byte) (store.APIToken, error)
	ListAPITokens() ([]store.APIToken, error)
	DeleteAPIToken(id string) error
}

// Server serves the appliance's HTTP endpoints. The zero value of every
// field except Store means its documented default.
type Server struct {
	// Store is the database; required.
	Store Store
	// Listen is the TCP address; default ":8080".
	Listen string
	// TLSCert and TLSKey are PEM files of the HTTPS certificate; both or
	// neither. Default: plain HTTP unless SelfSigned.
	TLSCert string
	TLSKey  string
	// SelfSigned serves HTTPS with a self-signed ECDSA certificate,
	// generated into DataDir/tls/ on first start and reused afterwards.
	// Default false.
	SelfSigned bool
	// TLSHosts are extra DNS names or IP addresses for the self-signed
	// certificate, which always names localhost, 127.0.0.1, ::1 and the
	// host name.
	TLSHosts []string
	// DataDir is where a self-signed certificate is kept (DataDir/tls/);
	// default the current directory.
	DataDir string
	// Boot serves the iPXE scripts under /boot/; nil answers 404 there.
	Boot http.Handler
	// BootPreview renders the script a machine would get now, without
	// issuing or revoking a boot nonce, for GET
	// /api/v1/machines/{mac}/boot-script. kind is ipxe.Kind's name. Nil
	// means Boot's own Preview method when Boot has one (an *ipxe.Server
	// does); with neither, that call answers 404.
	BootPreview func(mac string) (kind, text string, err error)
	// Version is the build shown by GET /api/v1/about; default "dev".
	Version string
	// ImageDir is served read-only under /images/; "" serves nothing. The
	// image library keeps its files in ImageDir/library/ (images*.go).
	ImageDir string
	// ImageMaxSize bounds a library image, enforced while it streams in
	// (and, for qcow2, the size of its disk); default DefaultImageMaxSize.
	ImageMaxSize int64
	// QemuImg is the qemu-img program that converts qcow2 imports; default
	// "qemu-img" from PATH.
	QemuImg string
	// UI serves the dashboard at /; nil serves a small placeholder page.
	UI http.Handler
	// Segments are the configured network segments, shown by the API and
	// used to check static addresses at approval; default none.
	Segments []SegmentInfo
	// SessionTTL is how long an agent's boot session lives after its last
	// call; default DefaultSessionTTL.
	SessionTTL time.Duration
	// GitOps is the GitOps repository exporter (package gitops): its state
	// is shown at GET /api/v1/gitops, its webhook served, and a machine's
	// declaration fills in what an approval leaves out. Nil: not configured.
	GitOps GitOps
	// AllowApprovalWithoutToken lets approval proceed without the console
	// token (a lab switch; every use is audited). Default false.
	AllowApprovalWithoutToken bool
	// AdminToken is an extra admin bearer token (FOUNDRY_ADMIN_TOKEN). Only
	// its SHA-256 is kept in memory; audit actor "token:env". Default none.
	AdminToken string
	// Logger receives request errors and security events; nil is silent.
	Logger *slog.Logger
	// Registry receives the HTTP metrics and is served at /metrics; nil
	// creates a private registry.
	Registry *prometheus.Registry
	// Ready reports readiness for /readyz; nil means ready once serving.
	Ready func() error
	// Now is the clock for token expiry; default time.Now.
	Now func() time.Time
	// KeepAlive is the interval of keep-alive events on the event stream;
	// default 15 s.
	KeepAlive time.Duration
	// BMC drives machines' BMCs (power, next boot PXE, password
	// rotation); nil means a *bmc.Client with its defaults.
	BMC BMCDriver
	// Secrets seals BMC passwords at rest (package internal/seal; serve
	// keeps its key in data_dir/bmc.key). Nil: BMC credentials can be
	// neither stored nor used (those calls answer 503).
	Secrets *seal.Box
	// PowerPollInterval is how often PollPower reads each machine's power
	// state; default DefaultPowerPollInterval. PowerPollGap is the least
	// time between two of its BMC calls; default DefaultPowerPollGap.
	PowerPollInterval time.Duration
	PowerPollGap      time.Duration
	// ShutdownGrace is how long Serve lets in-flight requests (a slow
	// kernel download) finish after ctx ends before closing them; default 10 s.
	ShutdownGrace time.Duration

	once    sync.Once
	handler http.Handler
	initErr error
	api     huma.API
	log     *slog.Logger
	envHash []byte
	stop    chan struct{} // closed when Serve begins shutting down
	stopped sync.Once
	images  *library  // image imports (images_ingest.go)
	bmcs    *bmcState // power readings and background BMC calls (power.go)
}

// DefaultSessionTTL is how long a boot session lives after its agent's
// last call. An agent long-polls at least every maxWait seconds, so only a
// session whose agent is gone runs out.
const DefaultSessionTTL = 24 * time.Hour

func (s *Server) tlsEnabled() bool { return s.SelfSigned || s.TLSCert != "" || s.TLSKey != "" }

// SegmentInfo describes a configured segment: what the API shows and
// what static addresses are checked against at approval.
type SegmentInfo struct {
	Name string
	// Interface the segment is served on; empty for relayed segments.
	Interface string
	// Relayed segments are reached through a DHCP relay (giaddr).
	Relayed bool
	Subnet  netip.Prefix
	// RangeStart and RangeEnd bound the addresses handed out (dhcp mode).
	RangeStart, RangeEnd netip.Addr
	Router               netip.Addr
	DNS                  []netip.Addr
	LeaseTime            time.Duration
	// Mode is "dhcp" or "proxy".
	Mode      string
	Discovery bool
}

// Handler returns the complete HTTP handler (also used by tests through
// httptest). It is built once; a configuration error makes every request
// answer 500 and is returned by Serve.
func (s *Server) Handler() http.Handler {
	s.once.Do(func() {
		s.handler, s.initErr = s.build()
		if s.initErr != nil {
			err := s.initErr
			s.handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "foundry api: "+err.Error(), http.StatusInternalServerError)
			})
		}
	})
	return s.handler
}

func (s *Server) build() (http.Handler, error) {
	if s.Store == nil {
		return nil, errors.New("api server needs a store")
	}
	s.log = s.Logger
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.AdminToken != "" {
		h := sha256.Sum256([]byte(s.AdminToken))
		s.envHash = h[:]
	}
	s.stop = make(chan struct{})
	s.bmcs = newBMCState(s)
	for _, seg := range s.Segments {
		if !seg.Subnet.IsValid() {
			return nil, fmt.Errorf("segment %q has no valid subnet", seg.Name)
		}
	}
	mux := http.NewServeMux()
	s.api = humago.New(mux, apiConfig())
	s.registerRoutes()
	s.mountOthers(mux)
	m, err := newMetrics(s.registry())
	if err != nil {
		return nil, err
	}
	return m.wrap(mux, s.log), nil
}

func (s *Server) registry() *prometheus.Registry {
	if s.Registry == nil {
		s.Registry = prometheus.NewRegistry()
	}
	return s.Registry
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Serve listens and serves until ctx ends, then shuts down gracefully:
// event streams and long polls are told to finish, in-flight requests get
// ShutdownGrace, then their connections are closed.
func (s *Server) Serve(ctx context.Context) error {
	h := s.Handler()
	if s.initErr != nil {
		return s.initErr
	}
	addr := s.Listen
	if addr == "" {
		addr = ":8080"
	}
	// Slow and oversized clients: a request's headers must arrive within
	// ReadHeaderTimeout (a slowloris connection is closed then) and fit
	// MaxHeaderBytes (431 past it); an idle keep-alive connection is closed
	// after IdleTimeout. There is no ReadTimeout for the whole request: an
	// image upload streams for minutes. Every JSON body is bounded by its
	// operation instead (huma: MaxBodyBytes, 64 KiB unless the operation
	// says otherwise, 413 past it; BodyReadTimeout 5 s, the connection
	// dropped past it; bad JSON is a 400/422 problem), and downloads, long
	// polls and the event stream have no body to wait for.
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    http.DefaultMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	if s.tlsEnabled() {
		cfg, err := s.tlsConfig()
		if err != nil {
			return err
		}
		srv.TLSConfig = cfg
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	s.log.Info("http api listening", "addr", ln.Addr().String(), "tls", s.tlsEnabled())
	errc := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	s.stopped.Do(func() { close(s.stop) })
	grace := s.ShutdownGrace
	if grace <= 0 {
		grace = 10 * time.Second
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		// A machine still downloading a kernel over a slow link must not
		// hold the appliance up, nor turn a requested stop into a failure:
		// it retries its boot against the next appliance that answers.
		s.log.Warn("http shutdown: closing connections still busy", "grace", grace, "err", err)
		srv.Close()
	}
	s.Close()
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", err)
	}
	return nil
}

// mountOthers adds the non-API routes to mux.
func (s *Server) mountOthers(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if s.Ready != nil {
			if err := s.Ready(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintln(w, "not ready:", err)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttpHandler(s.registry()))
	if s.Boot != nil {
		mux.Handle("/boot/", s.Boot)
	}
	if s.ImageDir != "" {
		mux.Handle("GET /images/", http.StripPrefix("/images/", imageServer(s.ImageDir)))
	}
	mux.HandleFunc("GET /docs", s.serveDocs)
	mux.HandleFunc("GET /docs/init.js", serveDocsInit)
	mux.Handle("GET /docs/assets/", http.StripPrefix("/docs/assets/", docsAssets()))
	ui := s.UI
	if ui == nil {
		ui = http.HandlerFunc(placeholderUI)
	}
	mux.Handle("/", ui)
}

func placeholderUI(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprint(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Foundry</title></head>
<body><h1>Foundry</h1><p>The dashboard is not built into this binary.</p>
<p>API reference: <a href="/docs">/docs</a> · OpenAPI: <a href="/openapi.json">/openapi.json</a></p></body></html>
`)
}
