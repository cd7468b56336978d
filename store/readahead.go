package store

import (
	"bufio"
	"bytes"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Badger maps its tables (*.sst) and reads them through the mappings. A
// page fault on a mapping without advice makes Linux read around the page
// as much as the device's read-ahead allows (read_ahead_kb: 8 MiB on the VM
// BenchmarkScale runs on), so one lookup of a 4 KiB block reads megabytes.
// When the appliance has less memory than its database, every such read
// evicts as much of what the next lookups need, and they fault in turn:
// at 100,000 machines in a 300 MiB cgroup, a get with its inventory faulted
// 1.3 times and charged 1,050 pages (4 MiB) of reads to the cgroup on
// average, an approval 3 times and 2,200 pages, and both ran 3-7 times
// slower than with memory to spare (docs/robustness.md, BenchmarkScale).
// Badger has no hook on its mappings, so the store finds them in
// /proc/self/maps and advises each MADV_RANDOM: a fault reads the page it
// needs (pages already cached around it are still mapped with it).

// adviseEvery is how often new tables (from flushes and compactions) are
// looked for; until then a fault in one reads around as before.
const adviseEvery = time.Second

// tableAdvisor advises the mappings of one database's tables. The zero
// value is not used: newTableAdvisor makes one.
type tableAdvisor struct {
	dir    string // the database directory as /proc/self/maps names it
	advise func(start, length uintptr) error

	mu   sync.Mutex
	done map[mapping]struct{} // mappings advised; rebuilt each pass
	fail error                // the last advice refused, for the test

	stop     chan struct{}
	stopOnce sync.Once
	exited   chan struct{}
}

// mapping is one mapped range of a file.
type mapping struct {
	start, end uintptr
	inode      uint64
}

// newTableAdvisor returns an advisor for the tables under dir, nil where
// mappings cannot be advised (not Linux).
func newTableAdvisor(dir string) *tableAdvisor {
	if !canAdvise {
		return nil
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	return &tableAdvisor{dir: filepath.Clean(dir), advise: adviseRandom, done: map[mapping]struct{}{}}
}

// start advises the tables mapped now, then looks for new ones every
// adviseEvery until close.
func (a *tableAdvisor) start() {
	if a == nil {
		return
	}
	a.pass()
	a.stop, a.exited = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(a.exited)
		t := time.NewTicker(adviseEvery)
		defer t.Stop()
		for {
			select {
			case <-a.stop:
				return
			case <-t.C:
				a.pass()
			}
		}
	}()
}

func (a *tableAdvisor) close() {
	if a == nil || a.stop == nil {
		return
	}
	a.stopOnce.Do(func() { close(a.stop) })
	<-a.exited
}

// pass advises every table mapping not advised yet. A table closed since
// /proc/self/maps was read is no longer mapped there: the advice fails
// (ENOMEM) or lands on whatever was mapped in its place, where
// MADV_RANDOM only stops read-around. Both are harmless.
func (a *tableAdvisor) pass() {
	maps, err := readSelfMaps()
	if err != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	next := make(map[mapping]struct{}, len(a.done))
	for _, m := range tableMappings(maps, a.dir) {
		if _, ok := a.done[m]; !ok {
			if err := a.advise(m.start, m.end-m.start); err != nil {
				a.fail = err
				continue
			}
		}
		next[m] = struct{}{}
	}
	a.done = next
}

// advised is how many table mappings carry the advice, and the last
// advice refused.
func (a *tableAdvisor) advised() (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.done), a.fail
}

// tableMappings parses /proc/<pid>/maps and returns the mappings of the
// *.sst files directly in dir.
func tableMappings(maps []byte, dir string) []mapping {
	var out []mapping
	sc := bufio.NewScanner(bytes.NewReader(maps))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		// address perms offset dev inode pathname
		f := strings.Fields(sc.Text())
		if len(f) < 6 {
			continue
		}
		path := strings.Join(f[5:], " ")
		if !strings.HasSuffix(path, ".sst") || filepath.Dir(path) != dir {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		inode, err3 := strconv.ParseUint(f[4], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || end <= start {
			continue
		}
		out = append(out, mapping{start: uintptr(start), end: uintptr(end), inode: inode})
	}
	return out
}
