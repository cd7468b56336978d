package inventory

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Collector reads the inventory of the machine it runs on (or of a captured
// tree). The zero value reads the live system.
type Collector struct {
	// Root is prepended to every /sys, /proc and /dev path. Default "/".
	Root string
	// PCIIDs is the pci.ids database used for vendor, device and class
	// names. Default: Root + "/usr/share/misc/pci.ids". A missing file only
	// leaves the names empty.
	PCIIDs string
	// Now returns the collection time. Default time.Now.
	Now func() time.Time
	// BMCAddress asks the BMC for its LAN address (the agent does it over
	// /dev/ipmi0). Called only when a BMC was found. Default: not asked.
	BMCAddress func() (string, error)
	// BMCMAC asks the BMC for its LAN MAC, like BMCAddress. Default: not
	// asked.
	BMCMAC func() (string, error)
	// Log receives what could not be read. Default: silent.
	Log *slog.Logger
}

// maxFile bounds every sysfs/procfs read: these files are small, and a
// corrupt tree must not make the agent read gigabytes.
const maxFile = 1 << 20

// Collect reads everything it can. A part that cannot be read is left empty
// and noted in Warnings; Collect itself never fails.
func (c *Collector) Collect() Inventory {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	r := &reader{c: c}
	inv := Inventory{SchemaVersion: SchemaVersion, CollectedAt: now().UTC()}
	r.dmiID(&inv)
	inv.CPU = r.cpu()
	inv.Memory = r.memory()
	smb := r.smbios()
	if len(smb.dimms) > 0 {
		inv.Memory.DIMMs = smb.dimms
		inv.Memory.TotalBytes = 0
		for _, d := range smb.dimms {
			inv.Memory.TotalBytes += d.SizeBytes
		}
	}
	inv.BMC = r.bmc(smb)
	inv.PCI = r.pci()
	inv.GPUs = []PCIDevice{}
	for _, d := range inv.PCI {
		if strings.HasPrefix(d.Class, "03") {
			inv.GPUs = append(inv.GPUs, d)
		}
	}
	inv.Disks = r.disks()
	inv.NICs = r.nics()
	inv.NFSMounts = r.nfsMounts()
	inv.ISCSISessions = r.iscsiSessions()
	inv.Warnings = r.warnings
	return inv
}

// reader carries one collection's warnings.
type reader struct {
	c        *Collector
	warnings []string
}

func (r *reader) log() *slog.Logger {
	if r.c.Log != nil {
		return r.c.Log
	}
	return slog.New(slog.DiscardHandler)
}

// warn records a problem that left part of the report empty.
func (r *reader) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.warnings = append(r.warnings, msg)
	r.log().Warn("inventory", "problem", msg)
}

// path maps an absolute system path into Root.
func (r *reader) path(p string) string {
	root := r.c.Root
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, p)
}

// read returns the trimmed content of a file under Root, "" when it is
// missing or unreadable (sysfs attributes come and go by driver).
func (r *reader) read(p string) string {
	b, err := readLimited(r.path(p))
	if err != nil {
		return ""
	}
	return validText(strings.TrimSpace(string(b)))
}

// validText replaces what is not UTF-8 in text the kernel or firmware
// wrote (DMI strings may be Latin-1) with U+FFFD, as the JSON encoding of
// the report would: the agent keeps what the appliance receives.
func validText(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

func readLimited(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxFile))
}

// readInt parses a decimal attribute; ok is false when it is absent or not
// a number (e.g. "speed" reads -1 or fails with EINVAL without a link).
func (r *reader) readInt(p string) (int64, bool) {
	v, err := strconv.ParseInt(r.read(p), 10, 64)
	return v, err == nil
}

// linkBase is the last element of a symlink's target ("e1000" for
// device/driver), "" when p is not a symlink.
func (r *reader) linkBase(p string) string {
	t, err := os.Readlink(r.path(p))
	if err != nil {
		return ""
	}
	return filepath.Base(t)
}

// realSys resolves a sysfs symlink under Root and returns the resolved path
// relative to Root ("/sys/devices/…"), "" when it cannot be resolved or
// leaves Root.
func (r *reader) realSys(p string) string {
	root := r.path("/")
	full, err := filepath.EvalSymlinks(r.path(p))
	if err != nil {
		return ""
	}
	rel, err := filepath.Rel(root, full)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return ""
	}
	return "/" + rel
}

// list returns the sorted entry names of a directory under Root.
func (r *reader) list(p string) []string {
	ents, err := os.ReadDir(r.path(p))
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}
