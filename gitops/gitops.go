// Package gitops keeps a Git repository in step with the store, both ways
// (docs/gitops.md):
//
//   - Foundry → Git: every change to a machine that the audit log records
//     (registration, approval, rejection, rediscovery, release, deletion,
//     expiry, …) becomes a commit of that machine's Tinkerbell Hardware
//     file (package hardware), authored by whoever made the change, in a
//     clone Foundry keeps in its data directory. Commits are pushed from a
//     durable queue: the clone itself, plus a cursor in the store that
//     moves only once the remote has the commits, so a remote that is down
//     or has moved on delays them and nothing is lost across a restart.
//     DHCP and the API never wait for Git: they write the store, and the
//     exporter follows the audit log on its own goroutine.
//   - Git → Foundry: Hardware files people commit (fetched on an interval
//     and when a webhook says so) declare machines; a declared machine is
//     approved when it registers, through the same approval rules as an
//     administrator's (Approver), with the console token still required
//     unless ApproveWithoutToken is set.
//
// Git is spoken by go-git in process; no git program is run.
package gitops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/foundry-appliance/foundry/hardware"
	"github.com/foundry-appliance/foundry/store"
)

// Store is what the exporter needs of the database; *store.DB has it.
type Store interface {
	GetMachine(mac string) (store.Machine, error)
	ListMachines() ([]store.Machine, error)
	AuditAfter(after string, limit int) ([]store.AuditEntry, error)
	ListAudit(f store.AuditFilter) ([]store.AuditEntry, error)
	AppendAudit(mac string, a store.Audit) error
	Cursor(name string) (string, error)
	SetCursor(name, value string) error
	Subscribe(buffer int) (<-chan store.Event, func())
}

// Approver approves a declared machine with the approval rules an
// administrator's approval goes through (package api implements it). by
// is the audit actor. It fails when a rule refuses (the error says which)
// or when the machine is not waiting with exactly one registration.
type Approver interface {
	ApproveDeclared(ctx context.Context, mac string, d hardware.Declaration, by, why string) error
}

// Server keeps the repository in step with the store. The zero value of
// every field except Store, Repository and CloneDir means its default.
type Server struct {
	// Store is the database; required.
	Store Store
	// Repository is the remote: ssh://user@host/path.git (or scp-like
	// user@host:path.git), https:// or http://, git://, or a local path or
	// file:// URL of a bare repository; required.
	Repository string
	// Branch is the branch Foundry commits to; default "main".
	Branch string
	// Directory is the folder of the Hardware files in the repository;
	// default "hardware".
	Directory string
	// CloneDir is where the clone is kept (a bare repository; created when
	// missing); required. serve uses <data_dir>/gitops.
	CloneDir string
	// Auth authenticates to the remote (see SSHAuth and TokenAuth); nil
	// means none (git://, local paths, or anonymous HTTP).
	Auth transport.AuthMethod
	// AuthorName and AuthorEmail sign the commits the appliance makes on
	// its own (registrations, expiry) and every commit as its committer;
	// default "Foundry" and "foundry@localhost". An administrator's change
	// is authored by the token's name at AuthorEmail's domain.
	AuthorName, AuthorEmail string
	// Namespace is written into every Hardware's metadata.namespace;
	// default none (the consumer's kustomization sets it).
	Namespace string
	// Segments describe the configured segments by name, for the
	// addresses in the Hardware files; default none.
	Segments map[string]hardware.Segment
	// PullInterval is how often the remote is fetched for people's
	// changes; default 1 minute. A webhook (Webhook) fetches at once.
	PullInterval time.Duration
	// RetryMin and RetryMax bound the back-off between attempts while the
	// remote is down or refusing; defaults 1 s and 1 minute.
	RetryMin, RetryMax time.Duration
	// Timeout bounds one fetch or push; default 30 s.
	Timeout time.Duration
	// ApproveWithoutToken approves a machine declared in Git as soon as it
	// registers. Default false: the administrator still types the console
	// token, and the declaration supplies the rest of the approval.
	ApproveWithoutToken bool
	// WebhookSecret authenticates POST /api/v1/gitops/webhook (Webhook);
	// "" turns the webhook off.
	WebhookSecret string
	// Approver applies declarations; nil applies none (they are still
	// read, shown and used by the API's approval).
	Approver Approver
	// Logger receives what the exporter does; nil is silent.
	Logger *slog.Logger
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
	// Now is the clock; default time.Now.
	Now func() time.Time

	once    sync.Once
	initErr error
	log     *slog.Logger
	m       *metrics
	kick    chan struct{}

	mu     sync.Mutex // guards status, decl and people
	status Status
	decl   map[string]declared // by MAC (declare.go)
	people map[string]string   // email → name of the people who declared

	// Owned by the Serve goroutine.
	repo    *repo
	files   map[string]string // MAC → file path
	paths   map[string]string // file path → MAC
	cursor  string            // newest audit id whose effect is committed
	seen    map[string]bool   // ids handled within the re-read window
	refused map[string]string // MAC → declaration already refused (its content), not retried
	retry   backoff
	snaps   snapshots
	wake    chan struct{}      // an event arrived
	flush   chan chan struct{} // settle asks follow to take every queued event
	// sinceCompact counts commits since the clone was last packed.
	sinceCompact int
}

// Status is what the dashboard and GET /api/v1/gitops show.
type Status struct {
	// Remote is the repository without credentials.
	Remote    string `json:"remote"`
	Branch    string `json:"branch"`
	Directory string `json:"directory"`
	// Head is the last commit of the branch in Foundry's clone.
	Head string `json:"head,omitempty"`
	// Pending counts the commits the remote does not have yet.
	Pending int `json:"pending"`
	// LastPush and LastFetch are when each last succeeded.
	LastPush  time.Time `json:"last_push,omitzero"`
	LastFetch time.Time `json:"last_fetch,omitzero"`
	// LastError is why the last fetch or push failed ("" when it did not),
	// and FailingSince when the failures began.
	LastError    string    `json:"last_error,omitempty"`
	FailingSince time.Time `json:"failing_since,omitzero"`
	// Declarations counts the machines declared in the repository and not
	// yet approved.
	Declarations int `json:"declarations"`
	// Problems are files that could not be used (invalid Hardware, a MAC
	// declared twice) and conflicts settled, newest last (at most 20).
	Problems []string `json:"problems,omitempty"`
	// ApproveWithoutToken is the setting of the same name.
	ApproveWithoutToken bool `json:"approve_without_token"`
	// Following is true once the clone is open and the repository has
	// caught up with the store; from then on every change is committed.
	Following bool `json:"following"`
}

// Defaults.
const (
	DefaultBranch       = "main"
	DefaultDirectory    = "hardware"
	DefaultPullInterval = time.Minute
	defaultAuthorName   = "Foundry"
	defaultAuthorEmail  = "foundry@localhost"
	// cursorName is the store cursor of the last delivered audit entry.
	cursorName = "gitops"
	// window is how far behind its cursor the exporter reads the audit log
	// again: an entry's id is drawn before its transaction commits, so it
	// can appear after an entry with a later id.
	window = 10 * time.Second
	// maxProblems bounds Status.Problems.
	maxProblems = 20
)

func (s *Server) init() error {
	s.once.Do(func() {
		switch {
		case s.Store == nil:
			s.initErr = errors.New("gitops needs a store")
		case s.Repository == "":
			s.initErr = errors.New("gitops needs a repository")
		case s.CloneDir == "":
			s.initErr = errors.New("gitops needs a clone directory")
		}
		s.log = s.Logger
		if s.log == nil {
			s.log = slog.New(slog.DiscardHandler)
		}
		s.kick = make(chan struct{}, 1)
		s.decl, s.people = map[string]declared{}, map[string]string{}
		s.status = Status{Remote: Redact(s.Repository), Branch: s.branch(), Directory: s.dir(), ApproveWithoutToken: s.ApproveWithoutToken}
		if s.initErr == nil {
			s.m, s.initErr = newMetrics(s.Registerer)
		}
	})
	return s.initErr
}

func (s *Server) branch() string { return or(s.Branch, DefaultBranch) }
func (s *Server) dir() string    { return or(s.Directory, DefaultDirectory) }

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Server) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return 30 * time.Second
}

// Status returns the exporter's state now.
func (s *Server) Status() Status {
	if err := s.init(); err != nil {
		return Status{LastError: err.Error()}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.Problems = append([]string(nil), st.Problems...)
	st.Declarations = len(s.decl)
	return st
}

// Ready reports, for /readyz, whether the repository is in step: an error
// while the remote cannot be reached or refuses the push (the commits wait
// in the clone meanwhile).
func (s *Server) Ready() error {
	st := s.Status()
	if st.LastError == "" {
		return nil
	}
	return fmt.Errorf("gitops: %s since %s (%d commits waiting)", st.LastError, st.FailingSince.UTC().Format(time.RFC3339), st.Pending)
}

// Pull asks for a fetch of the remote now (the webhook's effect); it never
// waits.
func (s *Server) Pull() {
	if s.init() != nil {
		return
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Server) update(fn func(*Status)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(&s.status)
}

// problem records a file that could not be used or a conflict settled.
func (s *Server) problem(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	s.log.Warn("gitops: " + msg)
	s.update(func(st *Status) {
		for _, p := range st.Problems {
			if p == msg {
				return
			}
		}
		st.Problems = append(st.Problems, msg)
		if len(st.Problems) > maxProblems {
			st.Problems = st.Problems[len(st.Problems)-maxProblems:]
		}
	})
}

// Redact returns a repository URL without its password or token.
func Redact(repo string) string {
	u, err := url.Parse(repo)
	if err != nil || u.User == nil {
		return repo
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// Serve keeps the repository in step until ctx ends. A remote that cannot
// be reached is not an error: commits wait in the clone and are pushed
// when it answers. Errors are those of the clone or the store.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.init(); err != nil {
		return err
	}
	var err error
	if s.repo, err = openRepo(s.CloneDir, s.Repository, s.branch(), s.Auth); err != nil {
		return err
	}
	if err := s.reindex(); err != nil {
		return err
	}
	if err := s.loadDeclarations(); err != nil {
		return err
	}
	if s.cursor, err = s.Store.Cursor(cursorName); err != nil {
		return fmt.Errorf("gitops: %w", err)
	}
	s.seen, s.refused = map[string]bool{}, map[string]string{}
	s.wake, s.flush = make(chan struct{}, 1), make(chan chan struct{})
	fctx, stopFollow := context.WithCancel(ctx)
	followed := make(chan struct{})
	go func() { defer close(followed); s.follow(fctx) }()
	defer func() { stopFollow(); <-followed }()

	if s.repo.head().IsZero() {
		// A new clone starts from what the remote has, if it answers.
		s.sync(ctx)
	}
	// Whatever the store did while the exporter was not running is
	// committed first (in the clone, without the remote), then pushed with
	// what the clone already had.
	if err := s.catchUp(); err != nil {
		return err
	}
	if err := s.export(ctx); err != nil {
		return err
	}
	s.update(func(st *Status) { st.Following = true })
	s.sync(ctx)

	pull := time.NewTicker(or2(s.PullInterval, DefaultPullInterval))
	defer pull.Stop()
	// The audit log is also read every few seconds: entries that change
	// no machine publish no event.
	poll := time.NewTicker(2 * time.Second)
	defer poll.Stop()
	for {
		want := false
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-poll.C:
		case <-pull.C:
			want = true
		case <-s.kick:
			want = true
		case <-s.retryC():
			want = true
		}
		if err := s.export(ctx); err != nil {
			return err
		}
		if want || s.dirty() && !s.failing() {
			s.sync(ctx)
			// What the remote brought (a conflict to restore, a
			// declaration applied) is committed and pushed at once.
			if err := s.export(ctx); err != nil {
				return err
			}
			if s.dirty() && !s.failing() {
				s.sync(ctx)
			}
		}
	}
}

// follow keeps snapshots of the store's events and wakes the exporter,
// until ctx ends.
func (s *Server) follow(ctx context.Context) {
	for ctx.Err() == nil {
		events, cancel := s.Store.Subscribe(1024)
		for open := true; open; {
			select {
			case <-ctx.Done():
				cancel()
				return
			case ev, ok := <-events:
				if !ok {
					// Fell behind: the store dropped us. Snapshots missed
					// are replaced by the machines' current state.
					open = false
					break
				}
				s.snaps.add(ev)
				select {
				case s.wake <- struct{}{}:
				default:
				}
			case done := <-s.flush:
				open = s.takeQueued(events)
				close(done)
			}
		}
		cancel()
	}
}

// takeQueued moves the events already queued into the snapshots; false
// when the store has dropped the subscription.
func (s *Server) takeQueued(events <-chan store.Event) bool {
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return false
			}
			s.snaps.add(ev)
		default:
			return true
		}
	}
}

// settle returns once follow has taken every event queued when it was
// called. handle calls it when an audit entry's snapshot is missing:
// without it, an entry whose event follow had not yet taken was committed
// as the machine is now (an approval's commit saying the machine was
// removed, when a delete came a millisecond later).
func (s *Server) settle(ctx context.Context) {
	done := make(chan struct{})
	select {
	case s.flush <- done:
	case <-ctx.Done():
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func or2(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
