package gitops

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// maxRebase bounds how many local commits a rebase replays one by one;
// more are folded into one commit of the machines' current Hardware.
const maxRebase = 10000

// sync brings the clone and the remote together: fetch, then put the
// local commits on top of what the remote has (rebase), read what people
// changed, and push. A failure is recorded (Status, metrics, /readyz) and
// retried with back-off; the local commits stay meanwhile.
func (s *Server) sync(ctx context.Context) {
	if err := s.syncOnce(ctx); err != nil {
		if errors.Is(err, errRejected) {
			// The remote moved on between our fetch and our push: once more.
			err = s.syncOnce(ctx)
		}
		if err != nil {
			if ctx.Err() != nil {
				return // shutting down, not a remote failure
			}
			s.fail(err)
			return
		}
	}
	s.ok()
	if s.sinceCompact >= compactEvery && s.repo.head() == s.repo.origin() {
		start := s.now()
		if err := s.repo.compact(); err != nil {
			s.log.Warn("gitops: compact the clone", "err", err)
		} else {
			s.log.Info("gitops: clone compacted", "commits_since_last", s.sinceCompact, "took", s.now().Sub(start).Round(time.Millisecond))
		}
		s.sinceCompact = 0
	}
}

func (s *Server) syncOnce(ctx context.Context) error {
	before := s.repo.origin()
	fctx, cancel := context.WithTimeout(ctx, s.timeout())
	err := s.repo.fetch(fctx)
	cancel()
	if err != nil {
		s.m.fetches.WithLabelValues("error").Inc()
		return err
	}
	s.m.fetches.WithLabelValues("ok").Inc()
	now := s.now()
	s.update(func(st *Status) { st.LastFetch = now })
	if origin := s.repo.origin(); origin != before || s.repo.head().IsZero() && !origin.IsZero() {
		if err := s.integrate(ctx, origin, before.IsZero()); err != nil {
			return err
		}
	}
	s.setPending()
	if s.repo.head() == s.repo.origin() || s.repo.head().IsZero() {
		return s.delivered()
	}
	pctx, cancel := context.WithTimeout(ctx, s.timeout())
	err = s.repo.push(pctx)
	cancel()
	switch {
	case errors.Is(err, errRejected):
		s.m.pushes.WithLabelValues("rejected").Inc()
		return err
	case err != nil:
		s.m.pushes.WithLabelValues("error").Inc()
		return err
	}
	s.m.pushes.WithLabelValues("ok").Inc()
	now = s.now()
	s.update(func(st *Status) { st.LastPush = now })
	s.m.lastPush.Set(float64(now.Unix()))
	s.setPending()
	s.log.Info("gitops: pushed", "branch", s.branch(), "head", s.repo.head().String()[:12])
	return s.delivered()
}

// delivered moves the store's cursor to what the remote now has: every
// audit entry handled so far is in a commit the remote holds.
func (s *Server) delivered() error {
	if s.cursor == "" {
		return nil
	}
	if err := s.Store.SetCursor(cursorName, s.cursor); err != nil {
		return fmt.Errorf("record delivered audit entry: %w", err)
	}
	return nil
}

// integrate takes in what the remote has now (origin): a fresh clone
// starts from it; local commits are replayed on top of it (rebase); then
// the files people changed are read (declarations, and conflicts unless
// this is the first time the remote is seen: a repository Foundry is
// attached to may hold anything, which catchUp brings up to date).
func (s *Server) integrate(ctx context.Context, origin plumbing.Hash, first bool) error {
	if origin.IsZero() {
		// The remote has no branch (new, or deleted): the push makes it
		// from ours.
		return nil
	}
	locals, base, err := s.repo.ahead(maxRebase)
	tooFar := errors.Is(err, errTooFar)
	if err != nil && !tooFar {
		return err
	}
	theirs, err := s.repo.treeOf(origin)
	if err != nil {
		return err
	}
	baseTree, err := s.repo.treeOf(base)
	if err != nil {
		return err
	}
	remoteChanged, err := changed(baseTree, theirs, s.dir())
	if err != nil {
		return err
	}
	if tooFar || base.IsZero() && !s.repo.head().IsZero() {
		// No shared history (the remote was replaced) or too much to
		// replay: start from the remote and let catchUp write every
		// machine's current Hardware in one commit.
		s.log.Warn("gitops: local history cannot be replayed on the remote's; rewriting from the store", "local", len(locals), "shared_history", !base.IsZero())
		if err := s.repo.setHead(origin); err != nil {
			return err
		}
		if err := s.reindex(); err != nil {
			return err
		}
		if err := s.catchUp(); err != nil {
			return err
		}
		return s.remoteChanges(ctx, remoteChanged, origin, first)
	}
	cur := origin
	merged := map[string]bool{}
	for _, c := range locals {
		next, err := s.replay(c, cur, remoteChanged, merged)
		if err != nil {
			return fmt.Errorf("rebase %s: %w", c.Hash.String()[:12], err)
		}
		cur = next
	}
	if err := s.repo.setHead(cur); err != nil {
		return err
	}
	if len(locals) > 0 {
		s.log.Info("gitops: rebased local commits on the remote", "commits", len(locals), "remote", origin.String()[:12], "files_both_changed", len(merged))
	}
	if err := s.reindex(); err != nil {
		return err
	}
	for name := range merged {
		mac := s.paths[name]
		if err := s.Store.AppendAudit(mac, auditMerge(name, origin)); err != nil {
			return fmt.Errorf("audit merge: %w", err)
		}
	}
	return s.remoteChanges(ctx, remoteChanged, origin, first)
}

// replay applies local commit c on top of commit onto and returns the new
// commit (onto itself when nothing is left to change). A file that the
// remote changed too is not taken from c: the machine's Hardware is
// rendered again over the remote's version (hardware.Render keeps what a
// person added and, for a machine still pending, their declaration), so
// that neither side is lost.
func (s *Server) replay(c *object.Commit, onto plumbing.Hash, remoteChanged, merged map[string]bool) (plumbing.Hash, error) {
	var parentTree *object.Tree
	if len(c.ParentHashes) > 0 {
		var err error
		if parentTree, err = s.repo.treeOf(c.ParentHashes[0]); err != nil {
			return onto, err
		}
	} else {
		parentTree = &object.Tree{}
	}
	ours, err := c.Tree()
	if err != nil {
		return onto, err
	}
	files, err := changed(parentTree, ours, s.dir())
	if err != nil {
		return onto, err
	}
	tree, err := s.repo.treeOf(onto)
	if err != nil {
		return onto, err
	}
	startHash := tree.Hash
	for name := range files {
		var data []byte
		if remoteChanged[name] {
			theirs, err := s.repo.read(tree, name)
			if err != nil {
				return onto, err
			}
			mine, err := s.repo.read(ours, name)
			if err != nil {
				return onto, err
			}
			if data, err = s.merge(theirs, mine); err != nil {
				return onto, err
			}
			merged[name] = true
		} else if data, err = s.repo.read(ours, name); err != nil {
			return onto, err
		}
		h, err := s.repo.put(tree, name, data)
		if err != nil {
			return onto, err
		}
		if tree, err = object.GetTree(s.repo.r.Storer, h); err != nil {
			return onto, err
		}
	}
	if tree.Hash == startHash {
		return onto, nil
	}
	committer := signature(s.authorName(), s.authorEmail(), s.now())
	return s.repo.newCommit(tree.Hash, onto, c.Author, committer, c.Message)
}

// setPending counts the commits the remote does not have.
func (s *Server) setPending() {
	locals, _, err := s.repo.ahead(maxRebase)
	n := len(locals)
	if errors.Is(err, errTooFar) {
		n = maxRebase
	}
	head := ""
	if h := s.repo.head(); !h.IsZero() {
		head = h.String()
	}
	s.m.pending.Set(float64(n))
	s.update(func(st *Status) { st.Pending, st.Head = n, head })
}

// dirty reports local commits waiting for a push.
func (s *Server) dirty() bool {
	return !s.repo.head().IsZero() && s.repo.head() != s.repo.origin()
}

// Back-off state, owned by the Serve goroutine.
type backoff struct {
	delay time.Duration
	timer *time.Timer
}

func (s *Server) failing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status.LastError != ""
}

func (s *Server) fail(err error) {
	now := s.now()
	s.m.up.Set(0)
	first := false
	s.update(func(st *Status) {
		if st.LastError == "" {
			st.FailingSince, first = now, true
		}
		st.LastError = err.Error()
	})
	s.setPending()
	b := &s.retry
	switch {
	case b.delay == 0:
		b.delay = or2(s.RetryMin, time.Second)
	default:
		b.delay = min(2*b.delay, or2(s.RetryMax, time.Minute))
	}
	if b.timer != nil {
		b.timer.Stop()
	}
	b.timer = time.NewTimer(b.delay)
	if first {
		s.log.Warn("gitops: remote unavailable; commits wait in the clone", "err", err, "retry_in", b.delay)
	} else {
		s.log.Debug("gitops: remote still unavailable", "err", err, "retry_in", b.delay)
	}
}

func (s *Server) ok() {
	s.m.up.Set(1)
	was := ""
	s.update(func(st *Status) {
		was = st.LastError
		st.LastError, st.FailingSince = "", time.Time{}
	})
	if was != "" {
		s.log.Info("gitops: remote available again", "pending", s.Status().Pending)
	}
	if s.retry.timer != nil {
		s.retry.timer.Stop()
	}
	s.retry = backoff{}
}

// retryC fires when a failed sync should be tried again; nil otherwise.
func (s *Server) retryC() <-chan time.Time {
	if s.retry.timer == nil {
		return nil
	}
	return s.retry.timer.C
}
