package appliance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/foundry-appliance/foundry/appliance/console"
	"github.com/foundry-appliance/foundry/appliance/datadisk"
	"github.com/foundry-appliance/foundry/appliance/netplan"
	"github.com/foundry-appliance/foundry/pid1"
)

// Where the appliance keeps things. DataMount is the data disk's mount
// point; without a disk the same layout lives under RAMRoot.
const (
	DataMount  = "/data"
	RAMRoot    = "/run/foundry"
	PlanFile   = "appliance.yaml"
	setupAgain = "setup-requested" // a marker on the data disk: run the setup at the next boot
)

// Init is the appliance's PID 1 once the kernel has unpacked the
// initramfs: it finds the data disk, decides the network plan, configures
// the links, starts `foundry serve` with a configuration generated from
// the plan, shows the status page, and shuts down cleanly on the power
// button or a console command.
type Init struct {
	// Version is shown on the status page.
	Version string
	// Cmdline is the parsed kernel line; CmdlineErr its problems, shown as
	// warnings (the rest of the line still applies).
	Cmdline    Cmdline
	CmdlineErr error
	// Console shows the status page; Out reaches both consoles (setup
	// prompts); In reads what is typed on them. Required.
	Console *console.Console
	Out     io.Writer
	In      *console.Input
	// Log receives the init's own structured log (the serial console).
	// Default silent.
	Log *slog.Logger
	// Reaper starts `foundry serve` and reaps orphans; required, running.
	Reaper *pid1.Reaper
	// Foundry is the foundry binary; default "/usr/bin/foundry".
	Foundry string
	// Images holds the discovery image and iPXE binaries shipped with
	// this build (discovery/, ipxe/), copied into image_dir at each boot;
	// default "/usr/share/foundry/images".
	Images string
	// Disks finds block devices; default datadisk.Scanner{}.
	Disks datadisk.Scanner
	// Tools formats and checks the data disk; default datadisk.Tools{}.
	Tools datadisk.Tools

	mu     sync.Mutex
	status console.Status
}

// Run brings the appliance up and keeps it up until the power button or a
// console command asks for a power-off or reboot; it returns which, after
// `foundry serve` has stopped and the data disk is unmounted.
func (in *Init) Run(ctx context.Context) (reboot bool, err error) {
	log := in.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	in.status.Version = in.Version
	if in.CmdlineErr != nil {
		in.warn("kernel command line: " + in.CmdlineErr.Error())
	}
	in.say("Foundry %s starting", in.Version)

	in.say("loading drivers")
	in.loadDrivers(log)
	UpAll(ctx, 3*time.Second)

	disk, mounted := in.dataDisk(ctx, log)
	plan, source := in.plan(ctx, &disk, &mounted, log)
	dirs := Dirs{Data: filepath.Join(RAMRoot, "data"), Images: filepath.Join(RAMRoot, "images")}
	logPath := filepath.Join(RAMRoot, "foundry.log")
	if mounted {
		dirs = Dirs{Data: filepath.Join(DataMount, "foundry"), Images: filepath.Join(DataMount, "images")}
		logPath = filepath.Join(DataMount, "log", "foundry.log")
		in.status.DataDisk = disk.Path + " (" + datadisk.Label + ", " + disk.FSType + ", " + datadisk.HumanSize(disk.Size) + ")"
	} else {
		in.warn("RUNNING FROM RAM: machines, leases and settings are lost at power-off. " +
			"Attach a blank disk and choose \"format a blank data disk\" at boot, or give an ext4 file system the label " + datadisk.Label + ".")
	}
	in.say("network plan: %s", source)

	ifname := ""
	if p := plan.Provisioning; p != nil {
		links, _ := Links()
		link, err := Resolve(links, p.Interface)
		if err == nil {
			err = ConfigureStatic(link.Name, p.Address)
		}
		if err != nil {
			in.warn("provisioning interface: " + err.Error() + ". Foundry answers no DHCP until it is fixed (type s and Enter to run the setup).")
			plan.Provisioning = nil
		} else {
			ifname = link.Name
			in.status.Segments = []console.Segment{{Name: netplan.SegmentName, Interface: link.Name + " " + link.MAC,
				Address: p.Address.String(), Range: netplan.RangeText(p.RangeStart, p.RangeEnd)}}
		}
	}
	if plan.Provisioning == nil {
		in.warn("No provisioning segment: Foundry answers no DHCP and discovers nothing. Type s and Enter to run the setup.")
	}

	for _, d := range []string{RAMRoot, dirs.Data, dirs.Images, filepath.Dir(logPath)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return false, fmt.Errorf("create %s: %w", d, err)
		}
	}
	if err := installImages(or(in.Images, "/usr/share/foundry/images"), dirs.Images); err != nil {
		in.warn("boot images: " + err.Error())
	}
	cfg, err := ServeConfig(plan, ifname, dirs)
	if err != nil {
		return false, err
	}
	cfgPath := filepath.Join(RAMRoot, "foundry.yaml")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		return false, fmt.Errorf("write %s: %w", cfgPath, err)
	}
	logFile, err := openLog(logPath, in.Cmdline.LogConsole)
	if err != nil {
		return false, err
	}

	var wg sync.WaitGroup
	serveCtx, stopServe := context.WithCancel(context.Background()) // stopped on purpose only, after ctx
	defer stopServe()
	svc := &Service{Binary: in.Foundry, Config: cfgPath, Log: logFile, Reaper: in.Reaper, Logger: log,
		OnExit: func(err error) {
			in.setError("foundry serve stopped (" + err.Error() + "); restarting. Log: " + logPath)
		}}
	var serveErr error
	wg.Go(func() { serveErr = svc.Run(serveCtx) })
	if !plan.NoManagement {
		mgmt := &Management{Skip: ifname, Log: log}
		wg.Go(func() { mgmt.Run(serveCtx) })
	}

	f := fleet{BaseURL: fmt.Sprintf("http://127.0.0.1:%d", HTTPPort), TokenFile: filepath.Join(dirs.Data, "admin-token")}
	in.status.TokenHint = "type t and Enter here to show it (it is in " + f.TokenFile + ")"
	reboot = in.loop(ctx, f, ifname, mounted, log)

	in.say("shutting down: stopping foundry serve (the database is flushed and closed)")
	stopServe()
	wg.Wait()
	if serveErr != nil {
		in.say("foundry serve: %v", serveErr)
	}
	logFile.Sync()
	logFile.Close() // it is on the data disk: open, it would keep the disk busy
	if mounted {
		if err := datadisk.Unmount(DataMount); err != nil {
			// Still busy: read-only is as safe for the power-off, and a
			// reboot loop over it would help nobody.
			rerr := unix.Mount("", DataMount, "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
			unix.Sync()
			in.say("unmount the data disk: %v; remounted read-only: %v", err, rerr)
			return reboot, nil
		}
		in.say("data disk unmounted cleanly")
	}
	return reboot, nil
}

// loop shows the status page and takes console commands until a power-off
// or reboot is asked for.
func (in *Init) loop(ctx context.Context, f fleet, ifname string, mounted bool, log *slog.Logger) (reboot bool) {
	lines := make(chan string)
	go func() {
		for {
			l, err := in.In.Line(ctx)
			if err != nil {
				return
			}
			select {
			case lines <- l:
			case <-ctx.Done():
				return
			}
		}
	}()
	power := pid1.PowerButton(ctx, 30*time.Second, log)
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	var tokenUntil time.Time
	for {
		in.refresh(ctx, f, ifname, tokenUntil)
		select {
		case <-ctx.Done():
			return false
		case <-power:
			in.say("power button pressed: powering off")
			return false
		case l := <-lines:
			switch console.ParseCommand(l) {
			case console.CmdToken:
				tokenUntil = time.Now().Add(time.Minute)
			case console.CmdPowerOff:
				return false
			case console.CmdReboot:
				return true
			case console.CmdSetup:
				if !mounted {
					in.say("the setup runs again at the next boot (nothing to keep it on without a data disk); rebooting")
					return true
				}
				if err := os.WriteFile(filepath.Join(DataMount, setupAgain), nil, 0o600); err != nil {
					in.say("cannot ask for the setup: %v", err)
					continue
				}
				in.say("the setup runs at the next boot; rebooting")
				return true
			case console.CmdHelp:
				in.say("t: show the admin token for a minute   s: run the network setup (reboots)   p: power off   r: reboot")
			}
		case <-tick.C:
		}
	}
}

// refresh rebuilds the status page and shows it.
func (in *Init) refresh(ctx context.Context, f fleet, ifname string, tokenUntil time.Time) {
	in.mu.Lock()
	s := in.status
	in.mu.Unlock()
	s.Segments = append([]console.Segment(nil), s.Segments...)
	links, _ := Links()
	s.URLs = nil
	for i := range links {
		switch {
		case links[i].Name == ifname:
			links[i].Role = "provisioning"
		case links[i].Carrier:
			links[i].Role = "management (DHCP client)"
		}
		for _, a := range links[i].Addrs {
			s.URLs = append(s.URLs, fmt.Sprintf("http://%s/", netip.AddrPortFrom(a.Addr(), HTTPPort)))
		}
	}
	s.Links = links
	s.Token = ""
	if time.Now().Before(tokenUntil) {
		if tok, err := f.token(); err == nil {
			s.Token = tok
		}
	}
	fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := f.fetch(fctx, &s); err != nil {
		if s.Error == "" {
			s.Error = err.Error()
		}
	} else if s.Error != "" {
		in.setError("") // serve answers again: its old failure is history (in the log)
		s.Error = ""
	}
	in.Console.Show(s)
}

func (in *Init) say(format string, args ...any) { in.Console.Say(format, args...) }

func (in *Init) warn(msg string) {
	in.mu.Lock()
	in.status.Warnings = append(in.status.Warnings, msg)
	in.mu.Unlock()
	in.Console.Say("!! %s", msg)
}

func (in *Init) setError(msg string) {
	in.mu.Lock()
	in.status.Error = msg
	in.mu.Unlock()
}

// loadDrivers loads the drivers of the devices present, then what no
// device asks for: ext4 and the crc32c it needs at mount time (the kernel
// asks userspace for it through request_module, and there is no modprobe
// here), evdev for the power button, af_packet for DHCP.
func (in *Init) loadDrivers(log *slog.Logger) {
	l, err := pid1.ModuleLoader(log)
	if err != nil {
		in.warn("drivers: " + err.Error())
		return
	}
	if err := l.LoadForDevices("/sys"); err != nil {
		log.Warn("some drivers did not load", "err", err)
	}
	for _, m := range []string{"crc32c_intel", "crc32c_generic", "ext4", "evdev", "af_packet"} {
		if _, ok := l.Index.Paths[m]; !ok {
			continue // built in
		}
		// crc32c_intel refuses a CPU without SSE 4.2 (ENODEV);
		// crc32c_generic then does the work.
		if err := l.Load(m); err != nil && !errors.Is(err, unix.ENODEV) {
			log.Warn("module", "module", m, "err", err)
		}
	}
	// Drivers loaded late (USB storage behind a hub) create devices that
	// need drivers of their own.
	time.Sleep(500 * time.Millisecond)
	if err := l.LoadForDevices("/sys"); err != nil {
		log.Warn("some drivers did not load", "err", err)
	}
}

// dataDisk finds, checks and mounts the data disk, formatting a blank one
// when the kernel line says so. It returns the disk and whether it is
// mounted at DataMount.
func (in *Init) dataDisk(ctx context.Context, log *slog.Logger) (datadisk.Device, bool) {
	if in.Cmdline.RAM {
		return datadisk.Device{}, false
	}
	var devs []datadisk.Device
	var err error
	var disk datadisk.Device
	// Disks behind slow controllers (USB) appear a moment after their
	// driver loads.
	for try := 0; try < 6; try++ {
		devs, err = in.Disks.Scan()
		if err != nil {
			in.warn("data disk: " + err.Error())
			return datadisk.Device{}, false
		}
		if disk, err = datadisk.Find(devs); !errors.Is(err, datadisk.ErrNotFound) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	switch {
	case err == nil:
	case errors.Is(err, datadisk.ErrNotFound):
		blanks := datadisk.Blanks(devs)
		if !in.Cmdline.Format || len(blanks) == 0 {
			return datadisk.Device{}, false
		}
		if disk, err = in.format(ctx, blanks[0]); err != nil {
			in.warn("format " + blanks[0].Path + ": " + err.Error())
			return datadisk.Device{}, false
		}
	default:
		in.warn("data disk: " + err.Error())
		return datadisk.Device{}, false
	}
	return disk, in.mount(ctx, disk, log)
}

// format makes d the data disk and finds it again by its new label.
func (in *Init) format(ctx context.Context, d datadisk.Device) (datadisk.Device, error) {
	in.say("formatting %s as %s", d, datadisk.Label)
	if err := in.Tools.Format(ctx, d); err != nil {
		return datadisk.Device{}, err
	}
	devs, err := in.Disks.Scan()
	if err != nil {
		return datadisk.Device{}, err
	}
	return datadisk.Find(devs)
}

func (in *Init) mount(ctx context.Context, d datadisk.Device, log *slog.Logger) bool {
	in.say("checking the data disk %s", d)
	if err := in.Tools.Check(ctx, d); err != nil {
		in.warn("data disk " + d.Path + " failed its file system check, so it is not used: " + err.Error())
		return false
	}
	if err := datadisk.Mount(d, DataMount); err != nil {
		in.warn("data disk: " + err.Error())
		return false
	}
	log.Info("data disk mounted", "device", d.Path, "at", DataMount)
	return true
}

// plan decides the network: the data disk's appliance.yaml, else the
// kernel line, else the console setup, else (nobody answered) none. The
// setup may also format a blank disk, which it then mounts.
func (in *Init) plan(ctx context.Context, disk *datadisk.Device, mounted *bool, log *slog.Logger) (netplan.Plan, string) {
	var previous *netplan.Plan
	planPath := filepath.Join(DataMount, PlanFile)
	again := in.Cmdline.Setup
	if *mounted {
		if _, err := os.Stat(filepath.Join(DataMount, setupAgain)); err == nil {
			again = true
		}
		raw, err := os.ReadFile(planPath)
		switch {
		case err == nil:
			plan, err := netplan.Parse(raw)
			switch {
			case err != nil:
				in.warn(planPath + ": " + err.Error())
			case !again:
				return plan, "data disk (" + planPath + ")"
			default:
				previous = &plan
			}
		case !errors.Is(err, os.ErrNotExist):
			in.warn("read " + planPath + ": " + err.Error())
		}
	}
	if in.Cmdline.Plan != nil && !again {
		return *in.Cmdline.Plan, "kernel command line"
	}
	links, err := Links()
	if err != nil || len(links) == 0 {
		in.warn(fmt.Sprintf("no network interface found (%v): check the drivers", err))
		return netplan.Plan{}, "none: no network interface"
	}
	var blanks []console.Disk
	if !*mounted && !in.Cmdline.RAM {
		if devs, err := in.Disks.Scan(); err == nil {
			for _, d := range datadisk.Blanks(devs) {
				blanks = append(blanks, console.Disk{Path: d.Path, Size: d.Size, Model: d.Model})
			}
		}
	}
	sctx := ctx
	if in.Cmdline.SetupTimeout > 0 {
		var cancel context.CancelFunc
		sctx, cancel = context.WithTimeout(ctx, in.Cmdline.SetupTimeout)
		defer cancel()
		in.say("nothing configures the network yet: answer the setup below within %v, or the appliance comes up without a provisioning segment", in.Cmdline.SetupTimeout)
	}
	ans, err := console.Setup(sctx, in.In, in.Out, links, blanks, func(a console.Answers) error {
		return answersPlan(a).Provisioning.Check()
	})
	if err != nil {
		if previous != nil {
			in.say("setup not answered (%v): keeping %s", err, planPath)
			os.Remove(filepath.Join(DataMount, setupAgain))
			return *previous, "data disk (" + planPath + ")"
		}
		in.warn("setup not answered (" + err.Error() + ")")
		return netplan.Plan{}, "none: setup not answered"
	}
	plan := answersPlan(ans)
	if ans.Format != "" {
		devs, _ := in.Disks.Scan()
		for _, d := range datadisk.Blanks(devs) {
			if d.Path != ans.Format {
				continue
			}
			if f, err := in.format(ctx, d); err != nil {
				in.warn("format " + d.Path + ": " + err.Error())
			} else if *mounted = in.mount(ctx, f, log); *mounted {
				*disk = f
			}
		}
	}
	if *mounted {
		raw, err := netplan.Marshal(plan, "Written by the console setup of Foundry "+in.Version+" on "+time.Now().UTC().Format(time.RFC3339)+".\nEdit it, or type s at the console to run the setup again.")
		if err == nil {
			err = writeFileSync(planPath, raw)
		}
		if err != nil {
			in.warn("save " + planPath + ": " + err.Error())
		}
		os.Remove(filepath.Join(DataMount, setupAgain))
	}
	return plan, "console setup"
}

// answersPlan is the plan the setup's answers describe. The interface is
// recorded by MAC: kernel names can change between kernels.
func answersPlan(a console.Answers) netplan.Plan {
	return netplan.Plan{Provisioning: &netplan.Provisioning{Interface: a.Link.MAC, Address: a.Address,
		RangeStart: a.RangeStart, RangeEnd: a.RangeEnd, Router: a.Router}}
}

// installImages copies the boot images this build ships into image_dir,
// replacing older ones (an upgrade brings a new discovery image) and
// leaving the library alone.
func installImages(src, dst string) error {
	var errs []error
	for _, dir := range []string{"discovery", "ipxe"} {
		files, err := os.ReadDir(filepath.Join(src, dir))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.MkdirAll(filepath.Join(dst, dir), 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		for _, f := range files {
			from, to := filepath.Join(src, dir, f.Name()), filepath.Join(dst, dir, f.Name())
			want, err := os.ReadFile(from)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if have, err := os.ReadFile(to); err == nil && bytes.Equal(have, want) {
				continue
			}
			if err := writeFileSync(to, want); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// writeFileSync writes a file under a temporary name, syncs it and renames
// it into place: a power cut leaves the old file or the new, never half.
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// openLog opens serve's log for appending, keeping the previous boot's as
// .1 once it passes 16 MiB; toConsole sends it to the console instead.
func openLog(path string, toConsole bool) (*os.File, error) {
	if toConsole {
		return os.OpenFile("/dev/console", os.O_WRONLY, 0)
	}
	if st, err := os.Stat(path); err == nil && st.Size() > 16<<20 {
		os.Rename(path, path+".1")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the log %s: %w", path, err)
	}
	fmt.Fprintf(f, "---- boot at %s ----\n", time.Now().UTC().Format(time.RFC3339))
	return f, nil
}

// Sethostname names the appliance (it shows in serve's TLS certificate and
// in DHCP requests on the management links).
func Sethostname(name string) error {
	return unix.Sethostname([]byte(strings.TrimSpace(name)))
}
