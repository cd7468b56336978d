package gitops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	tink "github.com/tinkerbell/tinkerbell/api/v1alpha1/tinkerbell"

	"github.com/foundry-appliance/foundry/hardware"
	"github.com/foundry-appliance/foundry/lifecycle"
	"github.com/foundry-appliance/foundry/store"
)

// The durable queue, Foundry → Git. The audit log is written in the same
// synced transaction as every machine change, so it already is a durable,
// ordered queue of what happened; the exporter follows it:
//
//  1. export reads the entries after its cursor and, for each that names
//     a machine, renders the machine's Hardware as the store has it now
//     and commits the file when it changed, authored by the entry's actor
//     (an entry that changes no file, a failed approval say, makes no
//     commit). The commit is in the clone on disk at once.
//  2. sync pushes. Only when the remote has the commits does the cursor in
//     the store move (meta/cursor/gitops).
//
// After a crash or restart the exporter reads again from the stored
// cursor: entries whose commits the clone already has render to the same
// bytes and commit nothing; entries whose commits were lost are committed
// again. The file is always the machine's current Hardware, so entries
// missed for any reason are folded into the next commit of that machine;
// catchUp at start-up commits whatever still differs.

// fileChange is one file to write; nil data deletes it.
type fileChange struct {
	path string
	data []byte
	mac  string
}

// pageSize is how many audit entries one read takes.
const pageSize = 500

// export commits what the audit entries after the cursor changed.
func (s *Server) export(ctx context.Context) error {
	from := s.cursor
	if from != "" {
		from = store.AuditIDBefore(s.cursor, window)
	}
	for {
		es, err := s.Store.AuditAfter(from, pageSize)
		if err != nil {
			return fmt.Errorf("gitops: %w", err)
		}
		for _, e := range es {
			if s.seen[e.ID] {
				continue
			}
			if err := s.handle(ctx, e); err != nil {
				// Retried on the next pass: neither seen nor past the cursor.
				s.log.Error("gitops: export audit entry", "id", e.ID, "mac", e.MAC, "action", e.Action, "err", err)
				s.problem("could not commit %s of %s: %v", e.Action, e.MAC, err)
				return nil
			}
			s.seen[e.ID] = true
			if e.ID > s.cursor {
				s.cursor = e.ID
			}
		}
		if len(es) < pageSize {
			break
		}
		from = es[len(es)-1].ID
	}
	low := store.AuditIDBefore(s.cursor, window)
	for id := range s.seen {
		if id < low {
			delete(s.seen, id)
		}
	}
	return nil
}

// handle commits what entry e changed, then applies a declaration to a
// machine that has just registered (declare.go).
func (s *Server) handle(ctx context.Context, e store.AuditEntry) error {
	if e.MAC == "" {
		return nil
	}
	if e.Revision == 0 && e.Action != actionConflict {
		// A note that changed no machine (a refused approval, a
		// declaration read): nothing to commit. A conflict restores the
		// file people changed.
		return s.applyDeclaration(ctx, e.MAC)
	}
	var then *snapshot
	if e.Revision > 0 {
		sn, ok := s.snaps.take(e.MAC, e.Revision)
		if !ok {
			// Its event may wait in follow's queue: the exporter wakes on
			// the first of a burst of changes (an approval, then a delete)
			// and reads the entries of them all.
			s.settle(ctx)
			sn, ok = s.snaps.take(e.MAC, e.Revision)
		}
		if ok {
			then = &sn
		}
	}
	ch, err := s.plan(e.MAC, e.Action, then)
	if err != nil {
		return err
	}
	if ch != nil {
		name := s.hostOf(e.MAC, ch)
		if err := s.commitChanges([]fileChange{*ch}, s.author(e.Actor, e.Time), message(e, name, ch.data == nil)); err != nil {
			return err
		}
	}
	return s.applyDeclaration(ctx, e.MAC)
}

// plan returns the change that makes mac's file the machine's Hardware:
// as then shows it, or as the store has it now when then is nil; nil when
// the file is already so. action is the audit action behind it: an
// expiry removes Foundry's record of a machine but not a person's
// declaration of it.
func (s *Server) plan(mac, action string, then *snapshot) (*fileChange, error) {
	tree, err := s.repo.treeOf(s.repo.head())
	if err != nil {
		return nil, err
	}
	name := s.files[mac]
	var old []byte
	var prev *tink.Hardware
	if name != "" {
		if old, err = s.repo.read(tree, name); err != nil {
			return nil, err
		}
		prev, _ = hardware.Parse(old) // indexed, so it parsed when read
	}
	var m store.Machine
	switch {
	case then == nil:
		m, err = s.Store.GetMachine(mac)
	case then.gone:
		err = store.ErrNotFound
	default:
		m = then.m
	}
	var data []byte
	switch {
	case errors.Is(err, store.ErrNotFound):
		if name == "" {
			return nil, nil
		}
		_, declared := hardware.Declared(prev)
		recorded := false
		if prev != nil {
			_, recorded = prev.Annotations[hardware.AnnotationState]
		}
		switch {
		case declared && action != string(lifecycle.ActDelete):
			// A person's declaration of a machine not (or no longer) here,
			// an expired one say: it waits for the machine's next boot.
			h := prev.DeepCopy()
			delete(h.Annotations, hardware.AnnotationState)
			if data, err = hardware.Marshal(h); err != nil {
				return nil, err
			}
		case !declared && !recorded && action != string(lifecycle.ActDelete):
			// A person's file that declares nothing complete: theirs.
			return nil, nil
		}
		// Otherwise Foundry's record of a machine it no longer has, or a
		// deletion by an administrator: the file goes.
	case err != nil:
		return nil, fmt.Errorf("read machine %s: %w", mac, err)
	default:
		seg := s.segment(m.Segment)
		h, err := hardware.Render(m, hardware.Input{Segment: seg, Namespace: s.Namespace, Prev: prev})
		if err != nil {
			return nil, err
		}
		if data, err = hardware.Marshal(h); err != nil {
			return nil, err
		}
		if name == "" {
			name = s.defaultPath(mac)
		}
	}
	if bytes.Equal(old, data) && (old == nil) == (data == nil) {
		return nil, nil
	}
	return &fileChange{path: name, data: data, mac: mac}, nil
}

func (s *Server) segment(name string) *hardware.Segment {
	if seg, ok := s.Segments[name]; ok {
		return &seg
	}
	return nil
}

// defaultPath is where a machine's file goes when the repository has none:
// named by MAC, which never changes (a host name does).
func (s *Server) defaultPath(mac string) string {
	return path.Join(s.dir(), strings.ReplaceAll(mac, ":", "-")+".yaml")
}

// commitChanges writes changes as one commit on the branch.
func (s *Server) commitChanges(changes []fileChange, author object.Signature, msg string) error {
	head := s.repo.head()
	tree, err := s.repo.treeOf(head)
	if err != nil {
		return err
	}
	for _, c := range changes {
		h, err := s.repo.put(tree, c.path, c.data)
		if err != nil {
			return err
		}
		if tree, err = object.GetTree(s.repo.r.Storer, h); err != nil {
			return fmt.Errorf("read new tree: %w", err)
		}
	}
	committer := signature(s.authorName(), s.authorEmail(), s.now())
	c, err := s.repo.newCommit(tree.Hash, head, author, committer, msg)
	if err != nil {
		return err
	}
	if err := s.repo.setHead(c); err != nil {
		return err
	}
	for _, ch := range changes {
		if ch.data == nil {
			delete(s.paths, ch.path)
			if s.files[ch.mac] == ch.path {
				delete(s.files, ch.mac)
			}
			continue
		}
		s.files[ch.mac], s.paths[ch.path] = ch.path, ch.mac
	}
	s.m.commits.Inc()
	s.sinceCompact++
	s.log.Debug("gitops: committed", "commit", c.String()[:12], "author", author.Name, "subject", strings.SplitN(msg, "\n", 2)[0])
	// One more commit waits; sync counts them exactly.
	n := 0
	s.update(func(st *Status) { st.Pending++; st.Head = c.String(); n = st.Pending })
	s.m.pending.Set(float64(n))
	return nil
}

// catchUp commits, in one commit, every machine whose file is not its
// current Hardware and removes the files of machines Foundry no longer
// has (people's declarations stay). It runs at start-up, so that what
// happened while the exporter was not running — or on a new repository,
// everything — is in the repository.
func (s *Server) catchUp() error {
	if s.cursor == "" {
		// A first export: every machine is written now, so the log before
		// this moment need not be replayed.
		newest, err := s.Store.ListAudit(store.AuditFilter{Limit: 1})
		if err != nil {
			return fmt.Errorf("gitops: %w", err)
		}
		if len(newest) > 0 {
			s.cursor = newest[0].ID
		}
	}
	ms, err := s.Store.ListMachines()
	if err != nil {
		return fmt.Errorf("gitops: %w", err)
	}
	var changes []fileChange
	have := map[string]bool{}
	for _, m := range ms {
		have[m.MAC] = true
		ch, err := s.plan(m.MAC, "sync", nil)
		if err != nil {
			return fmt.Errorf("gitops: %w", err)
		}
		if ch != nil {
			changes = append(changes, *ch)
		}
	}
	tree, err := s.repo.treeOf(s.repo.head())
	if err != nil {
		return err
	}
	for mac, name := range s.files {
		if have[mac] {
			continue
		}
		data, err := s.repo.read(tree, name)
		if err != nil {
			return err
		}
		h, err := hardware.Parse(data)
		if err != nil {
			continue
		}
		if _, ok := h.Annotations[hardware.AnnotationState]; !ok {
			continue // a person's file, not Foundry's record
		}
		if _, ok := hardware.Declared(h); ok {
			continue
		}
		changes = append(changes, fileChange{path: name, mac: mac})
	}
	if len(changes) == 0 {
		return nil
	}
	msg := fmt.Sprintf("sync: %d machines brought up to date\n\nThe files now show the machines as Foundry has them (changes made while the\nrepository was not being followed, or a first export).\n\nFoundry-Actor: system\n", len(changes))
	if err := s.commitChanges(changes, signature(s.authorName(), s.authorEmail(), s.now()), msg); err != nil {
		return fmt.Errorf("gitops: %w", err)
	}
	s.log.Info("gitops: caught up", "files", len(changes))
	return nil
}

// reindex reads which file holds which machine from the branch's tree.
// Invalid files and a second file for one MAC are reported and ignored.
func (s *Server) reindex() error {
	tree, err := s.repo.treeOf(s.repo.head())
	if err != nil {
		return err
	}
	names, err := s.repo.list(tree, s.dir())
	if err != nil {
		return err
	}
	s.files, s.paths = map[string]string{}, map[string]string{}
	for _, name := range names {
		if !isYAML(name) {
			continue
		}
		data, err := s.repo.read(tree, name)
		if err != nil {
			return err
		}
		h, err := hardware.Parse(data)
		if err != nil {
			s.problem("%s is not a valid Tinkerbell Hardware and is ignored: %v", name, err)
			continue
		}
		mac := hardware.MACOf(h)
		if mac == "" {
			s.problem("%s names no MAC (foundry/mac or an interface's dhcp.mac) and is ignored", name)
			continue
		}
		if other, ok := s.files[mac]; ok {
			// Foundry's own file name wins; otherwise the first by name.
			if name == s.defaultPath(mac) {
				other, name = name, other
				s.files[mac] = other
				s.paths[other] = mac
				delete(s.paths, name)
			}
			s.problem("%s and %s both describe %s; %s is used", other, name, mac, other)
			continue
		}
		s.files[mac], s.paths[name] = name, mac
	}
	return nil
}

func isYAML(name string) bool {
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")
}

// merge settles a file both the remote and a local commit changed: the
// machine's Hardware rendered over the remote's version. For a machine
// Foundry no longer has, a person's declaration is kept and anything
// else removed.
func (s *Server) merge(theirs, mine []byte) ([]byte, error) {
	ht, _ := hardware.Parse(theirs)
	hm, _ := hardware.Parse(mine)
	mac := hardware.MACOf(hm)
	if mac == "" {
		mac = hardware.MACOf(ht)
	}
	if mac == "" {
		return theirs, nil
	}
	m, err := s.Store.GetMachine(mac)
	if errors.Is(err, store.ErrNotFound) {
		if _, ok := hardware.Declared(ht); ok {
			return theirs, nil
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read machine %s: %w", mac, err)
	}
	h, err := hardware.Render(m, hardware.Input{Segment: s.segment(m.Segment), Namespace: s.Namespace, Prev: ht})
	if err != nil {
		return nil, err
	}
	return hardware.Marshal(h)
}

// Audit actions of the exporter's own entries.
const (
	actionConflict = "gitops-conflict"
	actionMerge    = "gitops-merge"
	actionDeclare  = "gitops-declare"
	actionRefused  = "gitops-refused"
)

func auditMerge(name string, origin plumbing.Hash) store.Audit {
	return store.Audit{Actor: "gitops", Action: actionMerge, Detail: fmt.Sprintf(
		"%s was changed both in the repository (up to %s) and by Foundry; rebased: Foundry's fields from its record, "+
			"everything else of the repository's version (and a pending machine's declaration) kept", name, origin.String()[:12])}
}

// hostOf names the machine of a change for a commit subject.
func (s *Server) hostOf(mac string, ch *fileChange) string {
	data := ch.data
	if data == nil {
		tree, err := s.repo.treeOf(s.repo.head())
		if err != nil {
			return ""
		}
		data, _ = s.repo.read(tree, ch.path)
	}
	h, err := hardware.Parse(data)
	if err != nil || h.Name == "" {
		return ""
	}
	return h.Name
}

// message is a commit message for audit entry e: what was done to which
// machine, and why.
func message(e store.AuditEntry, name string, deleted bool) string {
	var b strings.Builder
	who := name
	if who == "" {
		who = e.MAC
	} else {
		who = fmt.Sprintf("%s (%s)", name, e.MAC)
	}
	fmt.Fprintf(&b, "%s %s", e.Action, who)
	if deleted {
		b.WriteString(": removed")
	}
	b.WriteString("\n\n")
	fmt.Fprintf(&b, "%s by %s at %s.\n", strings.ToUpper(e.Action[:1])+e.Action[1:], e.Actor, e.Time.UTC().Format(time.RFC3339))
	if why := lifecycle.Why(lifecycle.Action(e.Action)); why != "" {
		fmt.Fprintf(&b, "Why: %s.\n", why)
	}
	if e.Detail != "" {
		fmt.Fprintf(&b, "%s\n", e.Detail)
	}
	fmt.Fprintf(&b, "\nFoundry-Audit-Id: %s\nFoundry-Actor: %s\n", e.ID, e.Actor)
	return b.String()
}

// author is who made a change: an administrator's token name, the person
// whose declaration was applied, or the appliance.
func (s *Server) author(actor string, at time.Time) object.Signature {
	switch {
	case strings.HasPrefix(actor, "token:"):
		name := strings.TrimPrefix(actor, "token:")
		return signature(name, name+"@"+s.domain(), at)
	case strings.HasPrefix(actor, "git:"):
		email := strings.TrimPrefix(actor, "git:")
		return signature(s.personName(email), email, at)
	}
	return signature(s.authorName(), s.authorEmail(), at)
}

func (s *Server) authorName() string  { return or(s.AuthorName, defaultAuthorName) }
func (s *Server) authorEmail() string { return or(s.AuthorEmail, defaultAuthorEmail) }

func (s *Server) domain() string {
	e := s.authorEmail()
	if i := strings.LastIndexByte(e, '@'); i >= 0 && i < len(e)-1 {
		return e[i+1:]
	}
	return "localhost"
}
