package kv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/namespace"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Defaults of EtcdOptions.
const (
	DefaultEtcdPrefix         = "foundry/"
	DefaultEtcdDialTimeout    = 5 * time.Second
	DefaultEtcdRequestTimeout = 5 * time.Second
	// DefaultEtcdMaxTxnOps is etcd's own --max-txn-ops default.
	DefaultEtcdMaxTxnOps = 128
)

// ErrCompacted: a watch asked for revisions the cluster has compacted
// away. The watcher reloads what it follows and watches again from the
// revision of that load.
var ErrCompacted = errors.New("revision compacted")

// EtcdOptions configure OpenEtcd. The zero value of every field but
// Endpoints means its default.
type EtcdOptions struct {
	// Endpoints are the members' client URLs (http://10.0.0.1:2379, or
	// https:// with TLS). Required.
	Endpoints []string
	// CertFile and KeyFile are the client certificate and its key, CAFile
	// the CA that signed the members' certificates (PEM files). All empty:
	// plain connections.
	CertFile, KeyFile, CAFile string
	// Prefix is put before every key, so that several engines share one
	// cluster (default DefaultEtcdPrefix, "foundry/"). Two engines'
	// prefixes must not be prefixes of one another. The key equal to
	// Prefix itself is the engine's own (see guardKey).
	Prefix string
	// DialTimeout bounds the first connection (default 5s).
	DialTimeout time.Duration
	// RequestTimeout bounds each request to the cluster (default 5s): an
	// unreachable cluster, or one without quorum, makes a call fail with
	// ErrUnavailable once it has passed.
	RequestTimeout time.Duration
	// MaxTxnOps is the cluster's --max-txn-ops (default 128, etcd's
	// default). A transaction writes at most this many keys (one fewer
	// when it deletes); a larger read set is checked at commit with a
	// coarser compare, which is correct but conflicts more often.
	MaxTxnOps int
	// Logger receives conflicts and coarse commits at debug level (nil:
	// silent).
	Logger *slog.Logger
}

// Etcd is an Engine on an etcd cluster (v3 API, etcd 3.4 or later).
//
// A transaction reads at one revision, fixed by its first read (a
// linearizable read), and buffers its writes. Update commits them in one
// etcd transaction whose compares are the transaction's read set: the mod
// revision of every key it read, and "nothing newer than the read
// revision" over every range it iterated. A failed compare is ErrConflict.
//
// Deletes leave no trace a range compare can see, so every commit that
// deletes also writes the guard key (Prefix itself, outside every range
// the engine reads); the coarse compare used when a read set is too large
// for one etcd transaction includes it.
type Etcd struct {
	cli     *clientv3.Client
	kv      clientv3.KV
	watcher clientv3.Watcher
	timeout time.Duration
	maxOps  int
	log     *slog.Logger

	closed atomic.Bool
	ctx    context.Context // parent of every request; ended by Close
	cancel context.CancelFunc
}

// guardKey is, in the engine's namespace, the key equal to Prefix: no key
// the store can use (keys are not empty), bumped by every deleting commit.
// The namespaced KV maps "" to Prefix in transactions (its Get and Delete
// refuse an empty key, its Txn does not check).
const guardKey = ""

// OpenEtcd connects to the cluster and checks that it answers a
// linearizable read within DialTimeout (ErrUnavailable when not, with
// what a plain dial of the first endpoint says: no listener, a refused
// certificate). ctx bounds only that check.
func OpenEtcd(ctx context.Context, opt EtcdOptions) (*Etcd, error) {
	if len(opt.Endpoints) == 0 {
		return nil, errors.New("open etcd: no endpoints")
	}
	if opt.Prefix == "" {
		opt.Prefix = DefaultEtcdPrefix
	}
	if opt.DialTimeout <= 0 {
		opt.DialTimeout = DefaultEtcdDialTimeout
	}
	if opt.RequestTimeout <= 0 {
		opt.RequestTimeout = DefaultEtcdRequestTimeout
	}
	if opt.MaxTxnOps <= 0 {
		opt.MaxTxnOps = DefaultEtcdMaxTxnOps
	}
	if opt.MaxTxnOps < 3 {
		// One write, its guard and a compare need room.
		return nil, fmt.Errorf("open etcd: MaxTxnOps %d is below 3", opt.MaxTxnOps)
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := clientv3.Config{
		Endpoints:   opt.Endpoints,
		DialTimeout: opt.DialTimeout,
		// The client's own zap logs repeat what our errors say.
		Logger: zap.NewNop(),
	}
	if opt.CertFile != "" || opt.KeyFile != "" || opt.CAFile != "" {
		tc, err := clientTLS(opt.CertFile, opt.KeyFile, opt.CAFile)
		if err != nil {
			return nil, fmt.Errorf("open etcd: %w", err)
		}
		cfg.TLS = tc
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("open etcd %v: %w", opt.Endpoints, err)
	}
	e := &Etcd{
		cli:     cli,
		kv:      namespace.NewKV(cli.KV, opt.Prefix),
		watcher: namespace.NewWatcher(cli.Watcher, opt.Prefix),
		timeout: opt.RequestTimeout,
		maxOps:  opt.MaxTxnOps,
		log:     log.With("engine", "etcd", "prefix", opt.Prefix),
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	pctx, cancel := context.WithTimeout(ctx, opt.DialTimeout)
	defer cancel()
	if _, err := cli.Get(pctx, opt.Prefix, clientv3.WithCountOnly()); err != nil {
		err = e.wrap(fmt.Sprintf("open %v", opt.Endpoints), err)
		e.Close()
		if why := diagnose(opt.Endpoints, cfg.TLS, opt.DialTimeout); why != nil {
			err = fmt.Errorf("%w (%w)", err, why)
		}
		return nil, err
	}
	return e, nil
}

// Close ends every request in flight and releases the connections.
func (e *Etcd) Close() error {
	if e.closed.Swap(true) {
		return nil
	}
	e.cancel()
	return e.cli.Close()
}

// MaxTxnOps is how many operations one transaction may hold
// (EtcdOptions.MaxTxnOps): callers that delete in bulk size their batches
// by it.
func (e *Etcd) MaxTxnOps() int { return e.maxOps }

// Ping does a linearizable read: nil when the cluster has quorum and
// answers within RequestTimeout (for /readyz).
func (e *Etcd) Ping(ctx context.Context) error {
	if e.closed.Load() {
		return ErrClosed
	}
	err := e.callIn(ctx, func(ctx context.Context) error {
		_, err := e.kv.Get(ctx, "\x00", clientv3.WithCountOnly())
		return err
	})
	return e.wrap("ping", err)
}

// call runs one request bounded by RequestTimeout and by Close.
func (e *Etcd) call(fn func(ctx context.Context) error) error {
	return e.callIn(e.ctx, fn)
}

func (e *Etcd) callIn(parent context.Context, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(parent, e.timeout)
	defer cancel()
	err := fn(ctx)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) {
		// The server may report our deadline as its own error (code
		// Unknown, "context deadline exceeded"): it is a timeout all the
		// same.
		err = fmt.Errorf("no answer within %v (%w): %w", e.timeout, context.DeadlineExceeded, err)
	}
	return err
}

// wrap gives an etcd error the engine's meaning: ErrClosed, ErrNoSpace,
// ErrUnavailable (no quorum, no connection, timeout) or ErrConflict (the
// transaction's revision was compacted: running it again reads anew).
func (e *Etcd) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if e.closed.Load() {
		return fmt.Errorf("etcd %s: %w", op, ErrClosed)
	}
	code, desc := etcdStatus(err)
	switch {
	case desc == rpctypes.ErrorDesc(rpctypes.ErrGRPCNoSpace):
		return fmt.Errorf("etcd %s: %w: %w", op, ErrNoSpace, err)
	case desc == rpctypes.ErrorDesc(rpctypes.ErrGRPCTooManyOps):
		return fmt.Errorf("etcd %s: %w (the cluster's --max-txn-ops is below EtcdOptions.MaxTxnOps, %d): %w", op, ErrTxnTooBig, e.maxOps, err)
	case desc == rpctypes.ErrorDesc(rpctypes.ErrGRPCRequestTooLarge),
		code == codes.ResourceExhausted && strings.Contains(desc, "larger than max"):
		// The member's --max-request-bytes, or the client's own limit.
		return fmt.Errorf("etcd %s: %w: %w", op, ErrTxnTooBig, err)
	case desc == rpctypes.ErrorDesc(rpctypes.ErrGRPCCompacted):
		return fmt.Errorf("etcd %s: %w: %w", op, ErrConflict, err)
	case errors.Is(err, context.DeadlineExceeded),
		code == codes.Unavailable, code == codes.DeadlineExceeded,
		// The member's own deadline (ours, sent along) may pass a moment
		// before ours: it answers code Unknown with the context's text.
		desc == context.DeadlineExceeded.Error(),
		desc == rpctypes.ErrorDesc(rpctypes.ErrGRPCRequestTooManyRequests):
		return fmt.Errorf("etcd %s: %w: %w", op, ErrUnavailable, err)
	}
	return fmt.Errorf("etcd %s: %w", op, err)
}

func etcdStatus(err error) (codes.Code, string) {
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code(), ee.Error()
	}
	if s, ok := status.FromError(err); ok {
		return s.Code(), s.Message()
	}
	return codes.Unknown, ""
}

func isFutureRev(err error) bool {
	_, desc := etcdStatus(err)
	return desc == rpctypes.ErrorDesc(rpctypes.ErrGRPCFutureRev)
}

// View runs fn at one revision of the cluster, fixed by fn's first read
// (a linearizable one). A View that outlives the cluster's compaction of
// that revision fails with ErrConflict: run it again.
func (e *Etcd) View(fn func(Txn) error) error {
	_, err := e.view(fn)
	return err
}

// ViewRev is View that also returns the revision fn read at: a watch
// started at rev+1 sees every change after what fn read.
func (e *Etcd) ViewRev(fn func(Txn) error) (rev int64, err error) {
	t, err := e.view(fn)
	if err != nil {
		return 0, err
	}
	if t.rev == 0 {
		// fn read nothing: any current revision is the one it read at.
		if err := t.pin(); err != nil {
			return 0, err
		}
	}
	return t.rev, nil
}

func (e *Etcd) view(fn func(Txn) error) (*etcdTxn, error) {
	if e.closed.Load() {
		return nil, ErrClosed
	}
	t := e.newTxn(false)
	err := fn(t)
	t.end()
	if t.err != nil {
		// A failed read may have misled fn: its failure is the cause.
		return nil, t.err
	}
	return t, err
}

// Update runs fn in a read-write transaction and commits it.
func (e *Etcd) Update(fn func(Txn) error) error {
	_, err := e.UpdateRev(fn)
	return err
}

// UpdateRev is Update that also returns the revision of its commit (a
// watch reports the commit's keys at that revision); an fn that wrote
// nothing commits nothing, and rev is the revision it read at (0 if it
// read nothing).
func (e *Etcd) UpdateRev(fn func(Txn) error) (rev int64, err error) {
	if e.closed.Load() {
		return 0, ErrClosed
	}
	t := e.newTxn(true)
	err = fn(t)
	t.end()
	if t.err != nil {
		return 0, t.err
	}
	if err != nil {
		return 0, err
	}
	return t.commit()
}
