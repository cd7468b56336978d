// Package osimage builds the operating system Foundry installs by default:
// a Debian 12 (bookworm) amd64 disk image made from Debian's own packages
// with mmdebstrap, bootable under BIOS and UEFI, whose cloud-init reads
// only a NoCloud seed — the CIDATA partition the discovery agent adds
// after the image (discovery-os/agent.WriteSeed).
//
// The image is a GPT disk:
//
//	1  ESP, FAT32  EFI/BOOT/BOOTX64.EFI, made by grub-mkstandalone; its
//	               embedded configuration finds the root file system by
//	               UUID and reads /boot/grub/grub.cfg from it
//	2  root, ext4  flagged LegacyBIOSBootable: syslinux's gptmbr.bin in the
//	               MBR's boot code chains to extlinux installed on it
//
// Both boot loaders load /vmlinuz and /initrd.img, the symbolic links
// Debian's kernel packages keep current, so a kernel upgrade on the
// installed machine stays bootable.
//
// No loop device is partition-scanned (some hosts cannot): each file
// system is made in place at its offset in the image file (mkfs.vfat
// --offset, mkfs.ext4 -E offset), mtools copies onto the ESP, and only
// extlinux needs a mount, a loop mount with offset and sizelimit.
//
// A build is skipped when the stamp next to the image records the same
// inputs: this package's sources, the Builder's settings and the versions
// of the host's build tools. Debian's package versions are not inputs —
// a rebuild takes the mirror's current ones — and manifest.json records
// them.
package osimage

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// DefaultSources are the apt sources of the build and of the installed
// system: Debian 12 with its updates and security updates. The host's
// apt proxy, if any, applies (mmdebstrap uses the host's apt).
var DefaultSources = []string{
	"deb http://deb.debian.org/debian bookworm main",
	"deb http://deb.debian.org/debian bookworm-updates main",
	"deb http://deb.debian.org/debian-security bookworm-security main",
}

// DefaultPackages are installed on top of mmdebstrap's minbase variant,
// without recommends. cloud-init renders NoCloud network-config for
// ifupdown (its ENI renderer, the one Debian's cloud-init picks when
// ifupdown is installed); resolvconf applies the seed's name servers;
// cloud-guest-utils lets cloud-init grow the root partition; dbus and
// libpam-systemd let the operator use systemctl, hostnamectl and the like
// without root, as on any Debian server.
var DefaultPackages = []string{
	"linux-image-amd64", "systemd-sysv", "udev", "kmod", "e2fsprogs", "dbus", "libpam-systemd",
	"cloud-init", "cloud-guest-utils", "openssh-server", "sudo",
	"ifupdown", "isc-dhcp-client", "iproute2", "netbase", "resolvconf", "ca-certificates",
	"procps", "iputils-ping", "less", "vim-tiny",
}

// DefaultExcludes keep documentation, translations and the kernel modules
// a server does not use (sound, cameras and TV, wireless, Bluetooth,
// staging and industrial-I/O drivers) out of the image. They stay in the
// installed system's dpkg configuration, so upgrades leave them out too.
var DefaultExcludes = []string{
	"/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*",
	"/usr/share/locale/*", "/usr/share/lintian/*", "/usr/share/linda/*",
	"/lib/modules/*/kernel/sound/*", "/lib/modules/*/kernel/drivers/media/*",
	"/lib/modules/*/kernel/drivers/net/wireless/*", "/lib/modules/*/kernel/net/wireless/*",
	"/lib/modules/*/kernel/net/mac80211/*", "/lib/modules/*/kernel/net/bluetooth/*",
	"/lib/modules/*/kernel/drivers/bluetooth/*", "/lib/modules/*/kernel/drivers/staging/*",
	"/lib/modules/*/kernel/drivers/iio/*",
}

// DefaultIncludes are put back after DefaultExcludes: Debian's policy
// wants every package's copyright file present.
var DefaultIncludes = []string{"/usr/share/doc/*/copyright", "/usr/share/locale/locale.alias"}

// hostTools are the Debian packages whose programs make the image; their
// versions are inputs of the build.
var hostTools = []string{"mmdebstrap", "e2fsprogs", "dosfstools", "mtools", "extlinux",
	"syslinux-common", "grub-efi-amd64-bin", "grub-common", "mount"}

// sources are this package's Go files; their content is an input.
//
//go:embed *.go
var sources embed.FS

// Builder builds the image. The zero value builds Debian 12 into
// build/os/debian-12-amd64.raw with the defaults below.
type Builder struct {
	// Dir receives the outputs; default "build/os".
	Dir string
	// Name is the outputs' base name; default "debian-12-amd64".
	Name string
	// Suite is Debian's release; default "bookworm".
	Suite string
	// Sources are apt sources lines; default DefaultSources.
	Sources []string
	// Packages are installed on top of minbase; default DefaultPackages.
	Packages []string
	// Excludes and Includes are dpkg path-exclude and path-include
	// patterns; default DefaultExcludes and DefaultIncludes.
	Excludes, Includes []string
	// ESPMiB is the EFI system partition's size; default 64 (FAT32's
	// smallest comfortable size).
	ESPMiB int
	// RootFreeMiB is the free space of the root file system beyond its
	// content; default 256. cloud-init grows the root partition and file
	// system to the disk at first boot.
	RootFreeMiB int
	// Force rebuilds even when the stamp says the image is current.
	Force bool
	// Log receives progress; nil is silent.
	Log *slog.Logger
}

// Manifest describes a built image; it is written next to it as
// <Name>.manifest.json.
type Manifest struct {
	Name          string            `json:"name"`
	Suite         string            `json:"suite"`
	KernelRelease string            `json:"kernel_release"`
	KernelCmdline string            `json:"kernel_cmdline"`
	RootUUID      string            `json:"root_uuid"`
	ESPSerial     string            `json:"esp_serial"`
	RawBytes      int64             `json:"raw_bytes"`
	RawSHA256     string            `json:"raw_sha256"`
	ZstBytes      int64             `json:"zst_bytes"`
	ZstSHA256     string            `json:"zst_sha256"`
	Inputs        string            `json:"inputs"`
	BuiltAt       time.Time         `json:"built_at"`
	BuildSeconds  float64           `json:"build_seconds"`
	Packages      map[string]string `json:"packages"`
}

// Paths are the outputs of a Builder.
type Paths struct {
	Raw, Zst, Sums, Manifest, Stamp string
}

// Paths returns where b writes its outputs.
func (b Builder) Paths() Paths {
	b = b.withDefaults()
	p := filepath.Join(b.Dir, b.Name)
	return Paths{Raw: p + ".raw", Zst: p + ".raw.zst", Sums: p + ".sha256",
		Manifest: p + ".manifest.json", Stamp: p + ".stamp"}
}

func (b Builder) withDefaults() Builder {
	if b.Dir == "" {
		b.Dir = "build/os"
	}
	if b.Name == "" {
		b.Name = "debian-12-amd64"
	}
	if b.Suite == "" {
		b.Suite = "bookworm"
	}
	if b.Sources == nil {
		b.Sources = DefaultSources
	}
	if b.Packages == nil {
		b.Packages = DefaultPackages
	}
	if b.Excludes == nil {
		b.Excludes = DefaultExcludes
	}
	if b.Includes == nil {
		b.Includes = DefaultIncludes
	}
	if b.ESPMiB == 0 {
		b.ESPMiB = 64
	}
	if b.RootFreeMiB == 0 {
		b.RootFreeMiB = 256
	}
	if b.Log == nil {
		b.Log = slog.New(slog.DiscardHandler)
	}
	return b
}

// Build makes the image unless the stamp shows it is current, and returns
// its manifest and whether it was already there.
func (b Builder) Build(ctx context.Context) (m Manifest, cached bool, err error) {
	b = b.withDefaults()
	paths := b.Paths()
	tools, err := toolVersions(ctx)
	if err != nil {
		return Manifest{}, false, err
	}
	inputs, err := b.inputs(tools)
	if err != nil {
		return Manifest{}, false, err
	}
	if !b.Force {
		if m, ok := current(paths, inputs); ok {
			b.Log.Info("image is current", "raw", paths.Raw, "inputs", inputs[:12])
			return m, true, nil
		}
	}
	if os.Geteuid() != 0 {
		return Manifest{}, false, errors.New("building the OS image needs root (mmdebstrap, mkfs with device nodes, a loop mount)")
	}
	start := time.Now()
	if err := os.MkdirAll(b.Dir, 0o755); err != nil {
		return Manifest{}, false, fmt.Errorf("create %s: %w", b.Dir, err)
	}
	// A previous stamp must not vouch for files this build is replacing.
	os.Remove(paths.Stamp)
	work, err := filepath.Abs(filepath.Join(b.Dir, ".work-"+b.Name))
	if err != nil {
		return Manifest{}, false, err
	}
	if err := clearWork(work); err != nil {
		return Manifest{}, false, err
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return Manifest{}, false, fmt.Errorf("create work directory: %w", err)
	}
	defer func() {
		if cerr := clearWork(work); cerr != nil && err == nil {
			err = cerr
		}
	}()

	m, err = b.build(ctx, work, paths)
	if err != nil {
		return Manifest{}, false, err
	}
	m.Inputs = inputs
	m.BuiltAt = start.UTC().Truncate(time.Second)
	m.BuildSeconds = time.Since(start).Round(100 * time.Millisecond).Seconds()
	if err := writeJSON(paths.Manifest, m); err != nil {
		return Manifest{}, false, err
	}
	if err := os.WriteFile(paths.Stamp, []byte(inputs+"\n"), 0o644); err != nil {
		return Manifest{}, false, fmt.Errorf("write stamp: %w", err)
	}
	b.Log.Info("image built", "raw", paths.Raw, "seconds", m.BuildSeconds)
	return m, false, nil
}

// build runs the steps in work and leaves the outputs at paths.
func (b Builder) build(ctx context.Context, work string, paths Paths) (Manifest, error) {
	root := filepath.Join(work, "root")
	step := time.Now()
	b.Log.Info("bootstrapping Debian", "suite", b.Suite, "packages", len(b.Packages))
	if out, err := run(ctx, "mmdebstrap", mmdebstrapArgs(b, root)...); err != nil {
		return Manifest{}, fmt.Errorf("mmdebstrap: %w\n%s", err, tail(out))
	}
	b.Log.Info("bootstrapped", "seconds", since(step))

	cfg, err := newBootConfig()
	if err != nil {
		return Manifest{}, err
	}
	kernel, err := configure(root, cfg)
	if err != nil {
		return Manifest{}, fmt.Errorf("configure %s: %w", root, err)
	}
	pkgs, err := installedPackages(ctx, root)
	if err != nil {
		return Manifest{}, err
	}
	content, err := treeSize(root)
	if err != nil {
		return Manifest{}, fmt.Errorf("measure %s: %w", root, err)
	}
	l := newLayout(b.ESPMiB, content, b.RootFreeMiB)

	step = time.Now()
	raw := paths.Raw + ".tmp"
	if err := makeDisk(ctx, raw, l, root, cfg, work); err != nil {
		os.Remove(raw)
		return Manifest{}, fmt.Errorf("make disk: %w", err)
	}
	b.Log.Info("disk made", "bytes", l.Total, "root_content", content, "seconds", since(step))
	// The tree is no longer needed; free its space before compressing.
	os.RemoveAll(root)

	step = time.Now()
	sums, err := compress(raw, paths.Zst+".tmp")
	if err != nil {
		os.Remove(paths.Zst + ".tmp")
		return Manifest{}, err
	}
	b.Log.Info("compressed", "bytes", sums.zstBytes, "seconds", since(step))
	for _, f := range [][2]string{{raw, paths.Raw}, {paths.Zst + ".tmp", paths.Zst}} {
		if err := os.Rename(f[0], f[1]); err != nil {
			return Manifest{}, fmt.Errorf("move output into place: %w", err)
		}
	}
	list := fmt.Sprintf("%s  %s\n%s  %s\n", sums.raw, filepath.Base(paths.Raw), sums.zst, filepath.Base(paths.Zst))
	if err := os.WriteFile(paths.Sums, []byte(list), 0o644); err != nil {
		return Manifest{}, fmt.Errorf("write checksums: %w", err)
	}
	return Manifest{Name: b.Name, Suite: b.Suite, KernelRelease: kernel, KernelCmdline: cfg.cmdline(),
		RootUUID: cfg.RootUUID, ESPSerial: cfg.ESPSerial, RawBytes: l.Total, RawSHA256: sums.raw,
		ZstBytes: sums.zstBytes, ZstSHA256: sums.zst, Packages: pkgs}, nil
}

// inputs is the hash of everything that decides the image's content
// besides Debian's package versions; tools are the host tools' versions.
func (b Builder) inputs(tools string) (string, error) {
	b = b.withDefaults()
	h := sha256.New()
	settings, _ := json.Marshal(struct {
		Name, Suite                           string
		Sources, Packages, Excludes, Includes []string
		ESPMiB, RootFreeMiB                   int
	}{b.Name, b.Suite, b.Sources, b.Packages, b.Excludes, b.Includes, b.ESPMiB, b.RootFreeMiB})
	fmt.Fprintf(h, "settings %s\ntools %s\n", settings, tools)
	names, err := fs.Glob(sources, "*.go")
	if err != nil {
		return "", fmt.Errorf("list builder sources: %w", err)
	}
	slices.Sort(names)
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		src, err := sources.ReadFile(n)
		if err != nil {
			return "", fmt.Errorf("read builder source %s: %w", n, err)
		}
		fmt.Fprintf(h, "source %s %d\n%s", n, len(src), src)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// toolVersions lists the installed versions of hostTools (a missing one
// reads as such, so that installing it changes the inputs).
func toolVersions(ctx context.Context) (string, error) {
	var b strings.Builder
	for _, t := range hostTools {
		out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Version}", t).Output()
		v := strings.TrimSpace(string(out))
		if err != nil || v == "" {
			v = "missing"
		}
		fmt.Fprintf(&b, "%s=%s ", t, v)
	}
	return strings.TrimSpace(b.String()), nil
}

// current returns the manifest of an image whose stamp records inputs
// and whose outputs are all there.
func current(p Paths, inputs string) (Manifest, bool) {
	stamp, err := os.ReadFile(p.Stamp)
	if err != nil || strings.TrimSpace(string(stamp)) != inputs {
		return Manifest{}, false
	}
	for _, f := range []string{p.Raw, p.Zst, p.Sums} {
		if _, err := os.Stat(f); err != nil {
			return Manifest{}, false
		}
	}
	var m Manifest
	b, err := os.ReadFile(p.Manifest)
	if err != nil || json.Unmarshal(b, &m) != nil {
		return Manifest{}, false
	}
	return m, true
}

// installedPackages reads the image's dpkg database.
func installedPackages(ctx context.Context, root string) (map[string]string, error) {
	out, err := run(ctx, "dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"), "-W", "-f=${Package}\t${Version}\n")
	if err != nil {
		return nil, fmt.Errorf("list installed packages: %w\n%s", err, tail(out))
	}
	pkgs := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if name, version, ok := strings.Cut(l, "\t"); ok {
			pkgs[name] = version
		}
	}
	return pkgs, nil
}

// clearWork removes the work directory, after unmounting anything a
// killed build left mounted in it: removing files through a leftover
// mount (mmdebstrap's /proc, /sys and /dev in the tree, or the root file
// system mounted for extlinux) would remove them elsewhere.
func clearWork(work string) error {
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("read mount table: %w", err)
	}
	for _, m := range mountsUnder(string(info), work) {
		syscall.Unmount(m, syscall.MNT_DETACH)
	}
	info, _ = os.ReadFile("/proc/self/mountinfo")
	if left := mountsUnder(string(info), work); len(left) > 0 {
		return fmt.Errorf("cannot unmount %s: not removing %s", strings.Join(left, ", "), work)
	}
	if err := os.RemoveAll(work); err != nil {
		return fmt.Errorf("clear work directory: %w", err)
	}
	return nil
}

// mountsUnder returns the mount points in mountinfo (proc(5)'s format) at
// or below dir, deepest first.
func mountsUnder(mountinfo, dir string) []string {
	var found []string
	unescape := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	for _, l := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		if m := unescape.Replace(f[4]); m == dir || strings.HasPrefix(m, dir+"/") {
			found = append(found, m)
		}
	}
	slices.SortStableFunc(found, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return found
}

// run runs a program and returns its combined output. When ctx ends the
// program gets SIGTERM, so that mmdebstrap can unmount what it mounted.
func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = time.Minute
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "MTOOLS_SKIP_CHECK=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return out, nil
}

// tail is the end of a program's output, enough to show why it failed.
func tail(out []byte) string {
	const max = 4000
	if len(out) > max {
		out = out[len(out)-max:]
	}
	return string(out)
}

func since(t time.Time) float64 { return time.Since(t).Round(100 * time.Millisecond).Seconds() }

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
