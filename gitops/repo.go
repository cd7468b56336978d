package gitops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	"github.com/go-git/go-git/v5/plumbing/transport/server"
)

// repo is Foundry's clone: a bare repository (no working tree to keep in
// step; commits are built from tree objects directly, so a commit costs
// the same with ten files or ten thousand). The branch is
// refs/heads/<branch>; what the remote had at the last fetch is
// refs/remotes/origin/<branch>.
type repo struct {
	r      *git.Repository
	branch plumbing.ReferenceName
	remote plumbing.ReferenceName
	auth   transport.AuthMethod
}

const remoteName = "origin"

// localTransport makes file:// (and plain path) remotes use go-git's
// in-process Git server instead of go-git's default file transport, which
// runs the git-upload-pack and git-receive-pack programs: Foundry uses no
// git binary. go-git keeps its transports in a process-wide table, so this
// is done once per process, before any repository is used.
var localTransport sync.Once

func installLocalTransport() {
	localTransport.Do(func() { client.InstallProtocol("file", server.DefaultServer) })
}

// openRepo opens the clone at dir, creating an empty bare repository when
// there is none, with origin pointing at url.
func openRepo(dir, url, branch string, auth transport.AuthMethod) (*repo, error) {
	installLocalTransport()
	r, err := git.PlainOpen(dir)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create clone directory: %w", err)
		}
		r, err = git.PlainInit(dir, true)
		if err == nil {
			// An unborn HEAD on the configured branch.
			err = r.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, plumbing.NewBranchReferenceName(branch)))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open clone %s: %w", dir, err)
	}
	cfg, err := r.Config()
	if err != nil {
		return nil, fmt.Errorf("read clone config: %w", err)
	}
	want := &gitconfig.RemoteConfig{Name: remoteName, URLs: []string{url},
		Fetch: []gitconfig.RefSpec{gitconfig.RefSpec(fmt.Sprintf("+refs/heads/%s:refs/remotes/%s/%s", branch, remoteName, branch))}}
	if have, ok := cfg.Remotes[remoteName]; !ok || len(have.URLs) != 1 || have.URLs[0] != url || len(have.Fetch) != 1 || have.Fetch[0] != want.Fetch[0] {
		// The configuration names another repository or branch now.
		cfg.Remotes[remoteName] = want
		if err := r.SetConfig(cfg); err != nil {
			return nil, fmt.Errorf("set clone remote: %w", err)
		}
	}
	return &repo{
		r:      r,
		branch: plumbing.NewBranchReferenceName(branch),
		remote: plumbing.NewRemoteReferenceName(remoteName, branch),
		auth:   auth,
	}, nil
}

// ref returns the commit a reference points at; zero when it has none.
func (p *repo) ref(name plumbing.ReferenceName) plumbing.Hash {
	r, err := p.r.Storer.Reference(name)
	if err != nil {
		return plumbing.ZeroHash
	}
	return r.Hash()
}

func (p *repo) head() plumbing.Hash   { return p.ref(p.branch) }
func (p *repo) origin() plumbing.Hash { return p.ref(p.remote) }

func (p *repo) setHead(h plumbing.Hash) error {
	if err := p.r.Storer.SetReference(plumbing.NewHashReference(p.branch, h)); err != nil {
		return fmt.Errorf("move %s: %w", p.branch.Short(), err)
	}
	return nil
}

// fetch updates the remote-tracking ref. A remote that is empty, or has no
// such branch yet, is not an error: the remote ref is then zero.
func (p *repo) fetch(ctx context.Context) error {
	err := p.r.FetchContext(ctx, &git.FetchOptions{RemoteName: remoteName, Auth: p.auth, Force: true, Tags: git.NoTags})
	switch {
	case err == nil, errors.Is(err, git.NoErrAlreadyUpToDate):
		return nil
	case errors.Is(err, transport.ErrEmptyRemoteRepository), errors.Is(err, git.NoMatchingRefSpecError{}):
		if err := p.r.Storer.RemoveReference(p.remote); err != nil {
			return fmt.Errorf("forget remote branch: %w", err)
		}
		return nil
	}
	return fmt.Errorf("fetch %s: %w", p.branch.Short(), err)
}

// errRejected marks a push the remote refused (it moved on: not a fast
// forward), as opposed to one that could not reach it.
var errRejected = errors.New("push rejected")

// push sends the branch. The remote-tracking ref follows on success.
func (p *repo) push(ctx context.Context) error {
	spec := gitconfig.RefSpec(fmt.Sprintf("%s:%s", p.branch, p.branch))
	err := p.r.PushContext(ctx, &git.PushOptions{RemoteName: remoteName, Auth: p.auth, RefSpecs: []gitconfig.RefSpec{spec}})
	switch {
	case err == nil, errors.Is(err, git.NoErrAlreadyUpToDate):
	case strings.Contains(err.Error(), "non-fast-forward"), strings.Contains(err.Error(), "rejected"), strings.Contains(err.Error(), "fetch first"):
		return fmt.Errorf("%w: %v", errRejected, err)
	default:
		return fmt.Errorf("push %s: %w", p.branch.Short(), err)
	}
	if err := p.r.Storer.SetReference(plumbing.NewHashReference(p.remote, p.head())); err != nil {
		return fmt.Errorf("record pushed branch: %w", err)
	}
	return nil
}

// commit returns the commit h; nil for the zero hash.
func (p *repo) commit(h plumbing.Hash) (*object.Commit, error) {
	if h.IsZero() {
		return nil, nil
	}
	c, err := object.GetCommit(p.r.Storer, h)
	if err != nil {
		return nil, fmt.Errorf("read commit %s: %w", h, err)
	}
	return c, nil
}

// treeOf is the tree of commit h; an empty tree for the zero hash.
func (p *repo) treeOf(h plumbing.Hash) (*object.Tree, error) {
	c, err := p.commit(h)
	if err != nil || c == nil {
		return &object.Tree{}, err
	}
	t, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("read tree of %s: %w", h, err)
	}
	return t, nil
}

// read returns the file at path in tree t; nil, nil when there is none.
func (p *repo) read(t *object.Tree, name string) ([]byte, error) {
	if t == nil || len(t.Entries) == 0 {
		return nil, nil
	}
	f, err := t.File(name)
	if errors.Is(err, object.ErrFileNotFound) || errors.Is(err, object.ErrDirectoryNotFound) || errors.Is(err, object.ErrEntryNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	rd, err := f.Reader()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	defer rd.Close()
	b, err := io.ReadAll(io.LimitReader(rd, maxFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return b, nil
}

// maxFile bounds what is read of one file (hardware.MaxFile, and a byte
// more to see that a file is over it).
const maxFile = 1 << 20

// list returns the regular files directly in directory dir of tree t.
func (p *repo) list(t *object.Tree, dir string) ([]string, error) {
	if t == nil || len(t.Entries) == 0 {
		return nil, nil
	}
	sub := t
	if dir != "" {
		var err error
		sub, err = t.Tree(dir)
		if errors.Is(err, object.ErrDirectoryNotFound) || errors.Is(err, object.ErrEntryNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", dir, err)
		}
	}
	var out []string
	for _, e := range sub.Entries {
		if e.Mode.IsFile() {
			out = append(out, path.Join(dir, e.Name))
		}
	}
	return out, nil
}

// blob stores data and returns its hash.
func (p *repo) blob(data []byte) (plumbing.Hash, error) {
	o := p.r.Storer.NewEncodedObject()
	o.SetType(plumbing.BlobObject)
	w, err := o.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write(data); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return p.r.Storer.SetEncodedObject(o)
}

// put returns the hash of tree root with the file at name set to data
// (nil deletes it), writing the trees it changes. Directories that become
// empty are removed, as Git has no empty directories.
func (p *repo) put(root *object.Tree, name string, data []byte) (plumbing.Hash, error) {
	var blob plumbing.Hash
	if data != nil {
		var err error
		if blob, err = p.blob(data); err != nil {
			return plumbing.ZeroHash, fmt.Errorf("store %s: %w", name, err)
		}
	}
	h, _, err := p.putIn(root, strings.Split(name, "/"), blob)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("write %s: %w", name, err)
	}
	return h, nil
}

// putIn sets (or, for a zero blob, removes) parts under t and returns the
// new tree's hash and whether it is empty.
func (p *repo) putIn(t *object.Tree, parts []string, blob plumbing.Hash) (plumbing.Hash, bool, error) {
	var entries []object.TreeEntry
	if t != nil {
		entries = append(entries, t.Entries...)
	}
	i := -1
	for j, e := range entries {
		if e.Name == parts[0] {
			i = j
		}
	}
	var entry object.TreeEntry
	remove := false
	if len(parts) == 1 {
		entry = object.TreeEntry{Name: parts[0], Mode: filemode.Regular, Hash: blob}
		remove = blob.IsZero()
	} else {
		var sub *object.Tree
		if i >= 0 && entries[i].Mode == filemode.Dir {
			var err error
			if sub, err = object.GetTree(p.r.Storer, entries[i].Hash); err != nil {
				return plumbing.ZeroHash, false, err
			}
		}
		h, empty, err := p.putIn(sub, parts[1:], blob)
		if err != nil {
			return plumbing.ZeroHash, false, err
		}
		entry = object.TreeEntry{Name: parts[0], Mode: filemode.Dir, Hash: h}
		remove = empty
	}
	switch {
	case remove && i >= 0:
		entries = append(entries[:i], entries[i+1:]...)
	case remove:
	case i >= 0:
		entries[i] = entry
	default:
		entries = append(entries, entry)
	}
	sort.Sort(object.TreeEntrySorter(entries))
	nt := &object.Tree{Entries: entries}
	o := p.r.Storer.NewEncodedObject()
	if err := nt.Encode(o); err != nil {
		return plumbing.ZeroHash, false, err
	}
	h, err := p.r.Storer.SetEncodedObject(o)
	return h, len(entries) == 0, err
}

// newCommit writes a commit of tree on parent (zero: a root commit) and
// returns its hash; the branch is not moved.
func (p *repo) newCommit(tree, parent plumbing.Hash, author, committer object.Signature, msg string) (plumbing.Hash, error) {
	c := &object.Commit{Author: author, Committer: committer, Message: msg, TreeHash: tree}
	if !parent.IsZero() {
		c.ParentHashes = []plumbing.Hash{parent}
	}
	o := p.r.Storer.NewEncodedObject()
	if err := c.Encode(o); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("encode commit: %w", err)
	}
	h, err := p.r.Storer.SetEncodedObject(o)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("store commit: %w", err)
	}
	return h, nil
}

// ahead returns the commits on the branch that the remote-tracking ref
// does not have, oldest first, and their merge base with it (zero when
// the two share no history). More than limit commits is reported as
// errTooFar.
func (p *repo) ahead(limit int) ([]*object.Commit, plumbing.Hash, error) {
	head, err := p.commit(p.head())
	if err != nil || head == nil {
		return nil, plumbing.ZeroHash, err
	}
	base := plumbing.ZeroHash
	if o, err := p.commit(p.origin()); err != nil {
		return nil, base, err
	} else if o != nil {
		bases, err := head.MergeBase(o)
		if err != nil {
			return nil, base, fmt.Errorf("merge base: %w", err)
		}
		if len(bases) > 0 {
			base = bases[0].Hash
		}
	}
	var out []*object.Commit
	for c := head; c != nil && c.Hash != base; {
		if len(out) == limit {
			return nil, base, errTooFar
		}
		out = append(out, c)
		if len(c.ParentHashes) == 0 {
			break
		}
		if c, err = p.commit(c.ParentHashes[0]); err != nil {
			return nil, base, err
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, base, nil
}

var errTooFar = errors.New("too many commits apart")

// changed returns the files under dir that differ between trees a and b.
func changed(a, b *object.Tree, dir string) (map[string]bool, error) {
	ch, err := object.DiffTree(a, b)
	if err != nil {
		return nil, fmt.Errorf("diff trees: %w", err)
	}
	out := map[string]bool{}
	for _, c := range ch {
		for _, n := range []string{c.From.Name, c.To.Name} {
			if n != "" && inDir(n, dir) {
				out[n] = true
			}
		}
	}
	return out, nil
}

// inDir reports whether file name lies directly in dir.
func inDir(name, dir string) bool { return path.Dir(name) == path.Clean(or(dir, ".")) }

// signature is an author or committer at time at.
func signature(name, email string, at time.Time) object.Signature {
	return object.Signature{Name: name, Email: email, When: at}
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// compactEvery is how many commits pass between packings of the clone:
// each commit writes four loose objects (blob, two trees, commit), files
// of a few KiB each on disk.
const compactEvery = 2000

// compact packs every object reachable from a reference into one pack
// and removes the loose objects (now packed, or left unreachable by a
// rebase). It must not run while objects are being written: the Serve
// goroutine, the only writer, runs it.
func (p *repo) compact() error {
	if err := p.r.RepackObjects(&git.RepackConfig{}); err != nil {
		return fmt.Errorf("repack: %w", err)
	}
	los, ok := p.r.Storer.(storer.LooseObjectStorer)
	if !ok {
		return nil
	}
	var loose []plumbing.Hash
	if err := los.ForEachObjectHash(func(h plumbing.Hash) error { loose = append(loose, h); return nil }); err != nil {
		return fmt.Errorf("list loose objects: %w", err)
	}
	for _, h := range loose {
		if err := los.DeleteLooseObject(h); err != nil {
			return fmt.Errorf("delete loose object %s: %w", h, err)
		}
	}
	return nil
}
