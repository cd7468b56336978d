package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// memoryCgroup is a memory cgroup a benchmark starts a server in, to
// measure it with as much memory as an appliance would be given. procs is
// empty (and why says why) when none could be made; the benchmark then
// measures without a limit.
type memoryCgroup struct {
	dir, procs, version, why string
}

// newMemoryCgroup makes a cgroup limited to limit bytes: cgroup v2's
// memory.max where the unified hierarchy has the memory controller, else
// v1's memory.limit_in_bytes. It is removed when the benchmark ends (its
// processes must have stopped by then). tag tells apart the cgroups of
// one benchmark.
func newMemoryCgroup(b *testing.B, tag string, limit int64) memoryCgroup {
	b.Helper()
	name := fmt.Sprintf("foundry-bench-%d-%s", os.Getpid(), tag)
	try := func(root, version, limitFile string) (memoryCgroup, error) {
		dir := filepath.Join(root, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return memoryCgroup{}, err
		}
		b.Cleanup(func() { os.Remove(dir) })
		if err := os.WriteFile(filepath.Join(dir, limitFile), []byte(strconv.FormatInt(limit, 10)), 0o644); err != nil {
			return memoryCgroup{}, fmt.Errorf("set %s: %w", limitFile, err)
		}
		return memoryCgroup{dir: dir, procs: filepath.Join(dir, "cgroup.procs"), version: version}, nil
	}
	// The benchmarks run in a mount namespace with sysfs mounted anew
	// (nstest), so the cgroup hierarchies are mounted here, in that
	// namespace only: the unified one if it has the memory controller,
	// else v1's memory hierarchy.
	var errs []error
	v2 := b.TempDir()
	if err := syscall.Mount("cgroup2", v2, "cgroup2", 0, ""); err != nil {
		errs = append(errs, fmt.Errorf("mount cgroup2: %w", err))
	} else {
		b.Cleanup(func() { syscall.Unmount(v2, syscall.MNT_DETACH) })
		if c, err := os.ReadFile(filepath.Join(v2, "cgroup.controllers")); err == nil && strings.Contains(string(c), "memory") {
			cg, err := try(v2, "cgroup v2", "memory.max")
			if err == nil {
				return cg
			}
			errs = append(errs, err)
		}
	}
	v1 := b.TempDir()
	if err := syscall.Mount("cgroup", v1, "cgroup", 0, "memory"); err != nil {
		errs = append(errs, fmt.Errorf("mount the cgroup v1 memory hierarchy: %w", err))
		return memoryCgroup{why: errors.Join(errs...).Error()}
	}
	b.Cleanup(func() { syscall.Unmount(v1, syscall.MNT_DETACH) })
	cg, err := try(v1, "cgroup v1", "memory.limit_in_bytes")
	if err == nil {
		return cg
	}
	return memoryCgroup{why: errors.Join(append(errs, err)...).Error()}
}

// peak is the most memory charged to the cgroup (v2: memory.peak, Linux
// 5.19 and later; v1: memory.max_usage_in_bytes); 0 when unknown.
func (c memoryCgroup) peak() int64 {
	for _, f := range []string{"memory.peak", "memory.max_usage_in_bytes"} {
		if raw, err := os.ReadFile(filepath.Join(c.dir, f)); err == nil {
			n, _ := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
			return n
		}
	}
	return 0
}

// oomKills is how many processes the kernel killed in the cgroup for want
// of memory (v2: memory.events; v1: memory.oom_control, Linux 4.13 and
// later).
func (c memoryCgroup) oomKills() int64 {
	for _, f := range []string{"memory.events", "memory.oom_control"} {
		raw, err := os.ReadFile(filepath.Join(c.dir, f))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				return n
			}
		}
	}
	return 0
}

// anon is the anonymous memory charged to the cgroup now (v2: memory.stat
// anon; v1: memory.stat rss), or -1 when it cannot be read.
func (c memoryCgroup) anon() int64 {
	raw, err := os.ReadFile(filepath.Join(c.dir, "memory.stat"))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(raw), "\n") {
		name, v, _ := strings.Cut(line, " ")
		if name == "anon" || name == "rss" {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// sampleAnon reads anon every 100 ms until the returned function is
// called, which returns the highest reading (-1: none could be read):
// the cgroup's peak counts page cache too, which the kernel takes back
// when it needs to; anonymous memory it can only take back by a kill.
func (c memoryCgroup) sampleAnon() (stop func() int64) {
	done, result := make(chan struct{}), make(chan int64, 1)
	go func() {
		peak := int64(-1)
		for {
			peak = max(peak, c.anon())
			select {
			case <-done:
				result <- peak
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return func() int64 { close(done); return <-result }
}
