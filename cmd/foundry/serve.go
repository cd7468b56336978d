package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	coredhcplog "github.com/coredhcp/coredhcp/logger"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/bootgrant"
	"github.com/foundry-appliance/foundry/dhcp"
	"github.com/foundry-appliance/foundry/gitops"
	"github.com/foundry-appliance/foundry/hardware"
	"github.com/foundry-appliance/foundry/internal/gcpace"
	"github.com/foundry-appliance/foundry/internal/seal"
	"github.com/foundry-appliance/foundry/ipxe"
	"github.com/foundry-appliance/foundry/lifecycle"
	"github.com/foundry-appliance/foundry/pxe"
	"github.com/foundry-appliance/foundry/store"
	"github.com/foundry-appliance/foundry/store/kv"
	"github.com/foundry-appliance/foundry/ui"
)

const defaultConfigPath = "/etc/foundry/foundry.yaml"

// foundry serve's garbage collector settings unless the environment sets
// GOMEMLIMIT or GOGC (tuneCollector).
const (
	defaultMemoryLimit = 256 << 20
	defaultGCPercent   = 50
	// defaultGCFloor is the least allocation between two collections
	// (gcpace): on a small heap GOGC 50 collects every few megabytes,
	// and each cycle scans ~7 MB of globals besides the heap.
	defaultGCFloor = 32 << 20
)

// tuneCollector applies serve's collector defaults where lookup (the
// environment) sets none. Badger's compactions allocate in bursts on the
// Go heap: the soft memory limit makes the collector return that memory
// instead of letting the heap double first (100,000 machines: peak 477 MiB
// without, 329 MiB with 256 MiB). The lower GOGC keeps the heap at 1.5
// times what is live instead of twice: at 100,000 machines in a 300 MiB
// cgroup (one run) that left 187 instead of 143 MiB to the page cache
// that Badger's mapped tables read through (110 instead of 154 MiB
// anonymous, 30 % fewer faults on gets, peak 224 instead of 254 MiB;
// latencies within noise), and under perfdhcp at 8,000 DORA/s it cost no
// measurable CPU (105 against 104 ms per 1,000 DORA; docs/robustness.md,
// bench/README.md). The percentage is kept by the pacer returned (nil
// when the environment sets GOGC), which serve runs: GOGC 50, but never
// a cycle after less than defaultGCFloor of allocation.
func tuneCollector(lookup func(string) (string, bool)) *gcpace.Pacer {
	if _, set := lookup("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	if _, set := lookup("GOGC"); set {
		return nil
	}
	debug.SetGCPercent(defaultGCPercent)
	return &gcpace.Pacer{Percent: defaultGCPercent, Floor: defaultGCFloor}
}

func newServeCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the appliance: DHCP, TFTP, HTTP (scripts, images, API, dashboard)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(path, dhcp.HostInterfaces)
			if err != nil {
				return err
			}
			ctx, stop := context.WithCancel(cmd.Context())
			defer stop()
			if pacer := tuneCollector(os.LookupEnv); pacer != nil {
				paced := make(chan struct{})
				go func() { defer close(paced); pacer.Run(ctx) }()
				defer func() { stop(); <-paced }()
			}
			return serve(ctx, cfg, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&path, "config", defaultConfigPath, "configuration file (YAML; see README)")
	return cmd
}

func newCheckConfigCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "check-config",
		Short: "Validate a configuration file and print what serve would run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(path, dhcp.HostInterfaces)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "configuration %s is valid\nadvertise %s, data in %s, images in %s\n", path, cfg.Advertise, cfg.DataDir, cfg.ImageDir)
			for _, s := range cfg.Segments {
				fmt.Fprintf(w, "segment %s: %s on %s, mode %s, discovery %t\n", s.Name, s.Subnet, ifaceOrRelay(s), s.Mode, s.Discovery)
			}
			if cfg.GitOps != nil {
				fmt.Fprintf(w, "gitops: %s\n", cfg.GitOps)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "config", defaultConfigPath, "configuration file (YAML; see README)")
	return cmd
}

func ifaceOrRelay(s dhcp.Segment) string {
	if s.Relayed {
		return "relay (giaddr)"
	}
	return s.Interface
}

// openStore opens the store on the configured backend: Badger under
// data_dir, or the etcd cluster a group of appliances shares.
func openStore(ctx context.Context, cfg config, log *slog.Logger) (*store.DB, error) {
	opt := store.Options{Logger: log, SpaceReserve: cfg.SpaceReserve}
	if cfg.Etcd == nil {
		db, err := store.Open(filepath.Join(cfg.DataDir, "db"), opt)
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		return db, nil
	}
	eo := *cfg.Etcd
	eo.Logger = log.With("backend", "etcd")
	e, err := kv.OpenEtcd(ctx, eo)
	if err != nil {
		return nil, fmt.Errorf("open store on etcd %s: %w", strings.Join(eo.Endpoints, ","), err)
	}
	db, err := store.OpenEngine(e, opt)
	if err != nil {
		return nil, fmt.Errorf("open store on etcd %s: %w", strings.Join(eo.Endpoints, ","), err)
	}
	return db, nil
}

// serve wires the services together and runs them until ctx ends or one
// of them fails; every service stops cleanly before it returns.
func serve(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	log := newLogger(stderr, cfg.LogLevel)
	// coredhcp logs through its own process-wide logrus logger, at info for
	// every request it does not answer; our plugin logs what matters.
	coredhcplog.GetLogger("main").Logger.SetLevel(logrus.WarnLevel)
	db, err := openStore(ctx, cfg, log.With("service", "store"))
	if err != nil {
		return err
	}
	defer db.Close()

	envToken := os.Getenv("FOUNDRY_ADMIN_TOKEN")
	printed, err := api.Bootstrap(db, cfg.DataDir, envToken)
	if err != nil {
		return fmt.Errorf("bootstrap admin token: %w", err)
	}
	if printed != "" {
		fmt.Fprintf(stdout, "Admin API token (printed once; also in %s): %s\n", filepath.Join(cfg.DataDir, "admin-token"), printed)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerStoreMetrics(reg, db)
	ipxeDir := filepath.Join(cfg.ImageDir, "ipxe")
	bootSegs := make(map[string]lifecycle.Segment, len(cfg.Segments))
	for i := range cfg.Segments {
		bootSegs[cfg.Segments[i].Name] = cfg.Segments[i].Lifecycle()
	}
	// DHCP tells grants which address it has just booted which MAC at; the
	// script server gives a nonce only to that address, once.
	grants := &bootgrant.Table{Neighbor: bootgrant.KernelNeighbor}
	boot := &ipxe.Server{Store: db, BaseURL: cfg.Advertise, Segments: bootSegs, Grants: grants, Logger: log.With("service", "ipxe")}
	dhcpSrv := &dhcp.Server{
		Segments:     cfg.Segments,
		Leases:       db,
		Machines:     db,
		ScriptURL:    boot.ScriptURL,
		Grants:       grants,
		HTTPBase:     cfg.Advertise,
		HaveFile:     func(name string) bool { return fileExists(filepath.Join(ipxeDir, name)) },
		DiscoveryTTL: cfg.DiscoveryTTL,
		Relays:       cfg.Relays,
		Limits:       cfg.Limits,
		Logger:       log.With("service", "dhcp"),
		Registerer:   reg,
		RemoteStore:  cfg.Etcd != nil,
	}
	dhcpSrv.Pair = cfg.dhcpPair(db)
	tftpSrv := &pxe.Server{Addr: cfg.TFTPListen, Root: ipxeDir, Logger: log.With("service", "tftp"), Registerer: reg}
	httpSrv := &api.Server{
		Store:                     db,
		Listen:                    cfg.HTTPListen,
		DataDir:                   cfg.DataDir,
		TLSCert:                   cfg.TLSCert,
		TLSKey:                    cfg.TLSKey,
		SelfSigned:                cfg.TLSSelfSigned,
		TLSHosts:                  tlsHosts(cfg.Advertise),
		Boot:                      boot,
		UI:                        ui.Handler(),
		ImageDir:                  cfg.ImageDir,
		Version:                   version,
		ImageMaxSize:              cfg.ImageMaxSize,
		Segments:                  segmentInfo(cfg.Segments),
		AllowApprovalWithoutToken: cfg.AllowNoToken,
		AdminToken:                envToken,
		Logger:                    log.With("service", "http"),
		Registry:                  reg,
	}
	// BMC passwords are sealed under a key kept beside the database, not
	// in it (0600, made on first start).
	secrets, err := seal.LoadOrCreate(filepath.Join(cfg.DataDir, "bmc.key"))
	if err != nil {
		return fmt.Errorf("bmc credential key: %w", err)
	}
	httpSrv.Secrets = secrets
	var repo *gitops.Server
	if gc := cfg.GitOps; gc != nil {
		auth, err := gc.auth()
		if err != nil {
			return fmt.Errorf("gitops: %w", err)
		}
		repo = &gitops.Server{
			Store: db, Repository: gc.Repository, Branch: gc.Branch, Directory: gc.Directory,
			CloneDir: filepath.Join(cfg.DataDir, "gitops"), Auth: auth,
			AuthorName: gc.AuthorName, AuthorEmail: gc.AuthorEmail, Namespace: gc.Namespace,
			Segments: hardwareSegments(cfg.Segments), PullInterval: gc.PullInterval, RetryMax: gc.RetryMax,
			ApproveWithoutToken: gc.ApproveWithoutToken, WebhookSecret: gc.WebhookSecret,
			Approver: httpSrv, Logger: log.With("service", "gitops"), Registerer: reg,
		}
		httpSrv.GitOps = repo
	}
	// /readyz says when the data disk is full (writes refused, known
	// machines still answered) and when the GitOps repository is behind.
	httpSrv.Ready = func() error {
		if err := db.Writable(); err != nil {
			return err
		}
		if err := db.Healthy(ctx); err != nil {
			return err
		}
		if repo != nil {
			return repo.Ready()
		}
		return nil
	}
	if !fileExists(filepath.Join(ipxeDir, "undionly.kpxe")) {
		log.Warn("no iPXE binaries in the image directory; run `make images`", "dir", ipxeDir)
	}

	g, ctx := errgroup.WithContext(ctx)
	if len(cfg.Segments) > 0 {
		g.Go(func() error { return dhcpSrv.Serve(ctx) })
	} else {
		log.Warn("no segments configured: not answering DHCP")
	}
	g.Go(func() error { return tftpSrv.Serve(ctx) })
	g.Go(func() error { return httpSrv.Serve(ctx) })
	g.Go(func() error { return httpSrv.PollPower(ctx) })
	// Library images are served from this appliance's own image_dir:
	// fetched from a peer or their source when another appliance sharing
	// the store imported them (api/images_sync.go).
	imageSync := api.ImageSync{URL: cfg.Advertise, Watch: db.WatchImages}
	if cfg.Pair != nil {
		imageSync.Name = cfg.Pair.Name // its name in the fleet, when it has one
	}
	g.Go(func() error { return httpSrv.SyncImages(ctx, imageSync) })
	g.Go(func() error { return db.RunExpiry(ctx, time.Minute) })
	retention := cfg.Audit
	if repo != nil {
		// Entries the repository has not taken in are kept, even before
		// its first push sets the cursor.
		retention.Exporters = append(retention.Exporters, "gitops") // gitops.cursorName
	}
	g.Go(func() error { return db.RunRetention(ctx, retention, 0, reg) })
	if repo != nil {
		g.Go(func() error { return repo.Serve(ctx) })
	}
	log.Info("foundry serving", "version", version, "advertise", cfg.Advertise, "segments", len(cfg.Segments), "data_dir", cfg.DataDir)
	err = g.Wait()
	log.Info("foundry stopped", "err", err)
	return err
}

// registerStoreMetrics exports the data disk's state and the records the
// store skipped because they do not decode.
func registerStoreMetrics(reg prometheus.Registerer, db *store.DB) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "foundry_store_free_bytes",
			Help: "Space available on the file system holding the database (-1: unknown)."},
			func() float64 { return float64(db.Space().Free) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "foundry_store_disk_full",
			Help: "1 while the data disk is too full for writes (they are refused), else 0."},
			func() float64 {
				if db.Space().Full {
					return 1
				}
				return 0
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "foundry_store_corrupt_records",
			Help: "Stored records met since start that do not decode (skipped by lists; logged with their key)."},
			func() float64 { n, _ := db.CorruptRecords(); return float64(n) }),
	)
}

func segmentInfo(segs []dhcp.Segment) []api.SegmentInfo {
	out := make([]api.SegmentInfo, 0, len(segs))
	for _, s := range segs {
		out = append(out, api.SegmentInfo{
			Name: s.Name, Interface: s.Interface, Relayed: s.Relayed, Subnet: s.Subnet,
			RangeStart: s.RangeStart, RangeEnd: s.RangeEnd, Router: s.Router, DNS: s.DNS,
			Mode: s.Mode.String(), Discovery: s.Discovery, LeaseTime: s.LeaseTime,
		})
	}
	return out
}

// hardwareSegments is what the GitOps Hardware files need of each segment.
func hardwareSegments(segs []dhcp.Segment) map[string]hardware.Segment {
	out := make(map[string]hardware.Segment, len(segs))
	for _, s := range segs {
		out[s.Name] = hardware.Segment{Subnet: s.Subnet, Router: s.Router, DNS: s.DNS, LeaseTime: s.LeaseTime}
	}
	return out
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // validated with the configuration
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}
