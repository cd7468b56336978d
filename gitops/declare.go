package gitops

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/foundry-appliance/foundry/hardware"
	"github.com/foundry-appliance/foundry/lifecycle"
	"github.com/foundry-appliance/foundry/store"
)

// Git → Foundry. A Hardware file a person commits declares a machine
// (hardware.Declared: the foundry/cluster and foundry/profile labels and a
// host name). Declarations are read from the repository whenever the
// remote has moved on; the clone is where they are kept, so they survive
// a restart with it.
//
// The rule that settles Git against the appliance (docs/gitops.md):
//
//   - A declaration applies to a machine Foundry has not decided about:
//     unknown to it, discovered or inventoried. When that machine has
//     registered, the declaration is its approval, checked by the same
//     rules as an administrator's (Approver) — with the console token
//     typed by an administrator unless ApproveWithoutToken, in which case
//     it is approved at once, audited as the declaring person's.
//   - For a machine Foundry has decided about (approved and later states,
//     rejected), Foundry's record wins: a change to the fields Foundry owns
//     in its file is not applied but audited (gitops-conflict, naming the
//     commit and its author) and the file restored by a commit. What a
//     person adds beside those fields (a BMC reference, user data, other
//     labels) is kept. Re-declaring a decided machine takes an
//     administrator's release or rediscovery first.
//   - Files both sides changed before a rebase are settled the same way
//     (merge).

// declared is a declaration and where it came from.
type declared struct {
	hardware.Declaration
	// Path is the file, Commit the last commit a person made to it, and
	// Name and Email that person.
	Path, Commit, Name, Email string
	// sum identifies the declaration's content, so that one refused is
	// not tried again until it or the machine changes.
	sum string
}

// Origin says where a declaration came from, for the audit log.
func (d declared) origin() string {
	c := d.Commit
	if len(c) > 12 {
		c = c[:12]
	}
	return fmt.Sprintf("declared in %s by %s <%s> (commit %s)", d.Path, d.Name, d.Email, c)
}

// Declaration returns the declaration of mac waiting in the repository,
// with a sentence saying where it came from; ok is false when there is
// none. The API's approval uses it to fill in what an administrator
// leaves out.
func (s *Server) Declaration(mac string) (d hardware.Declaration, origin string, ok bool) {
	if s.init() != nil {
		return d, "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	dd, ok := s.decl[mac]
	if !ok {
		return d, "", false
	}
	return dd.Declaration, dd.origin(), true
}

// remoteChanges reads the files that commits from the remote changed
// (names, in the branch as it is now): new and changed declarations are
// taken in, and a change to a decided machine's record is settled.
func (s *Server) remoteChanges(ctx context.Context, names map[string]bool, origin plumbing.Hash, first bool) error {
	tree, err := s.repo.treeOf(s.repo.head())
	if err != nil {
		return err
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	s.mu.Lock()
	for mac, d := range s.decl {
		if names[d.Path] {
			delete(s.decl, mac) // read again below, or gone with its file
		}
	}
	s.mu.Unlock()
	for _, name := range sorted {
		mac := s.paths[name]
		if mac == "" || s.files[mac] != name {
			continue // deleted, invalid or a duplicate (reindex reported it)
		}
		data, err := s.repo.read(tree, name)
		if err != nil {
			return err
		}
		if err := s.fileChanged(ctx, name, mac, data, origin, first); err != nil {
			return err
		}
	}
	s.setDeclarations()
	return nil
}

// fileChanged applies the rule to one file a person changed.
func (s *Server) fileChanged(ctx context.Context, name, mac string, data []byte, origin plumbing.Hash, first bool) error {
	h, err := hardware.Parse(data)
	if err != nil {
		return nil // reindex reported it
	}
	m, err := s.Store.GetMachine(mac)
	gone := errors.Is(err, store.ErrNotFound)
	if err != nil && !gone {
		return fmt.Errorf("read machine %s: %w", mac, err)
	}
	d, isDecl := hardware.Declared(h)
	if isDecl && (gone || m.State.Pending()) {
		who, err := s.lastPerson(name, origin)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		dd := declared{Declaration: d, Path: name, Commit: who.Hash.String(), Name: who.Author.Name, Email: who.Author.Email, sum: hex.EncodeToString(sum[:])}
		s.mu.Lock()
		s.decl[mac], s.people[dd.Email] = dd, dd.Name
		s.mu.Unlock()
		s.log.Info("gitops: machine declared", "mac", mac, "hostname", d.Hostname, "cluster", d.Cluster, "profile", d.Profile, "by", dd.Email)
		if err := s.Store.AppendAudit(mac, store.Audit{Actor: "git:" + dd.Email, Action: actionDeclare,
			Detail: fmt.Sprintf("%s: cluster=%s profile=%s hostname=%s network=%s", dd.origin(), d.Cluster, d.Profile, d.Hostname, d.Network)}); err != nil {
			return fmt.Errorf("audit declaration: %w", err)
		}
		return s.applyDeclaration(ctx, mac)
	}
	if gone || first {
		// A person's file for a machine Foundry has not seen; or a
		// repository seen for the first time, which catchUp brings up to
		// date without calling its differences conflicts.
		return nil
	}
	// A file of a machine Foundry has: does it still say what Foundry's
	// record says?
	ch, err := s.plan(mac, "sync", nil)
	if err != nil || ch == nil {
		return err
	}
	who, err := s.lastPerson(name, origin)
	if err != nil {
		return err
	}
	what := "its record"
	if isDecl {
		what = "a declaration"
	}
	detail := fmt.Sprintf("%s was changed by %s <%s> in commit %s into %s, but the machine is %s: Foundry's record wins, the file is restored "+
		"(release or rediscover the machine to declare it anew)", name, who.Author.Name, who.Author.Email, who.Hash.String()[:12], what, m.State)
	s.problem("conflict: %s", detail)
	s.m.conflicts.Inc()
	// The audit entry names the machine, so the exporter restores its
	// file with this as the commit's message.
	if err := s.Store.AppendAudit(mac, store.Audit{Actor: "gitops", Action: actionConflict, Detail: detail}); err != nil {
		return fmt.Errorf("audit conflict: %w", err)
	}
	return nil
}

// lastPerson finds the newest commit up to origin that changed name and
// was not made by Foundry (whose commits carry a Foundry-Actor trailer).
func (s *Server) lastPerson(name string, origin plumbing.Hash) (*object.Commit, error) {
	it, err := s.repo.r.Log(&git.LogOptions{From: origin, FileName: &name})
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", name, err)
	}
	defer it.Close()
	var found *object.Commit
	err = it.ForEach(func(c *object.Commit) error {
		if strings.Contains(c.Message, "\nFoundry-Actor: ") {
			return nil
		}
		found = c
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, fmt.Errorf("history of %s: %w", name, err)
	}
	if found == nil {
		// Only Foundry's commits: the change came in with its own history.
		if found, err = s.repo.commit(origin); err != nil {
			return nil, err
		}
	}
	return found, nil
}

var errStop = errors.New("stop")

// applyDeclaration approves mac from its declaration when it is waiting
// (inventoried) and the token is not required. A refusal (a rule, or a
// MAC conflict: more than one registration) is audited once per
// declaration and machine revision.
func (s *Server) applyDeclaration(ctx context.Context, mac string) error {
	if !s.ApproveWithoutToken || s.Approver == nil {
		return nil
	}
	s.mu.Lock()
	d, ok := s.decl[mac]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	m, err := s.Store.GetMachine(mac)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read machine %s: %w", mac, err)
	}
	if m.State != lifecycle.Inventoried {
		return nil
	}
	key := fmt.Sprintf("%s/%d", d.sum, m.Revision)
	if s.refused[mac] == key {
		return nil
	}
	why := d.origin() + "; approved on registration without the console token (gitops.approve_without_token)"
	err = s.Approver.ApproveDeclared(ctx, mac, d.Declaration, "git:"+d.Email, why)
	if err != nil {
		s.refused[mac] = key
		s.problem("declaration of %s not applied: %v", mac, err)
		if aerr := s.Store.AppendAudit(mac, store.Audit{Actor: "git:" + d.Email, Action: actionRefused,
			Detail: d.origin() + ": " + err.Error()}); aerr != nil {
			return fmt.Errorf("audit refusal: %w", aerr)
		}
		return nil
	}
	s.mu.Lock()
	delete(s.decl, mac)
	s.mu.Unlock()
	s.setDeclarations()
	s.log.Info("gitops: declared machine approved", "mac", mac, "hostname", d.Hostname, "by", d.Email)
	return nil
}

// loadDeclarations reads every declaration of a machine not yet decided
// from the branch (at start-up).
func (s *Server) loadDeclarations() error {
	head := s.repo.head()
	if head.IsZero() {
		return nil
	}
	tree, err := s.repo.treeOf(head)
	if err != nil {
		return err
	}
	for mac, name := range s.files {
		data, err := s.repo.read(tree, name)
		if err != nil {
			return err
		}
		h, err := hardware.Parse(data)
		if err != nil {
			continue
		}
		d, ok := hardware.Declared(h)
		if !ok {
			continue
		}
		m, err := s.Store.GetMachine(mac)
		if err == nil && !m.State.Pending() {
			continue
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("read machine %s: %w", mac, err)
		}
		who, err := s.lastPerson(name, head)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		s.mu.Lock()
		s.decl[mac] = declared{Declaration: d, Path: name, Commit: who.Hash.String(), Name: who.Author.Name, Email: who.Author.Email, sum: hex.EncodeToString(sum[:])}
		s.people[who.Author.Email] = who.Author.Name
		s.mu.Unlock()
	}
	s.setDeclarations()
	return nil
}

func (s *Server) setDeclarations() {
	s.mu.Lock()
	n := len(s.decl)
	s.mu.Unlock()
	s.m.declarations.Set(float64(n))
}

// personName is the name of the person with email, from the declarations
// seen; the email's local part otherwise.
func (s *Server) personName(email string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, ok := s.people[email]; ok {
		return n
	}
	if i := strings.IndexByte(email, '@'); i > 0 {
		return email[:i]
	}
	return email
}
