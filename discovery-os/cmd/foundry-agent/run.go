package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/foundry-appliance/foundry/agentsig"
	"github.com/foundry-appliance/foundry/discovery-os/agent"
	"github.com/foundry-appliance/foundry/discovery-os/inventory"
	"github.com/foundry-appliance/foundry/discovery-os/kmod"
	"github.com/foundry-appliance/foundry/pid1"
)

// retryDelay is the pause between attempts at a step that must succeed
// before anything else can happen (finding the NIC, DHCP).
const retryDelay = 5 * time.Second

// settleQuiet and settleLimit bound the wait for devices before the
// inventory: no new device or module for settleQuiet, at most settleLimit.
const (
	settleQuiet = 2 * time.Second
	settleLimit = 30 * time.Second
)

// run is the agent's whole life. Every goroutine it starts ends with ctx,
// and run waits for them before it returns: nothing it started outlives it.
func run(ctx context.Context, isInit bool, cmdlinePath string) error {
	// Only the discovery OS owns the screen; on a workstation the agent
	// keeps off the virtual terminals. Opened first so that it is closed
	// last, after the goroutines that draw on it have ended.
	var screen io.Writer
	if isInit {
		if tty, err := os.OpenFile("/dev/tty0", os.O_WRONLY, 0); err == nil {
			defer tty.Close()
			screen = tty
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // runs before wg.Wait: stops what the return leaves running

	serial := os.Stdout // /dev/console: the last console= on the kernel line, ttyS0
	log := slog.New(slog.NewTextHandler(serial, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if isInit {
		if err := pid1.MountAll(); err != nil {
			log.Error("mount", "err", err)
		}
		var reaper pid1.Reaper
		wg.Go(func() { reaper.Run(ctx) })
		// Before anything reads crypto/rand (DHCP transaction IDs, the token).
		if err := pid1.SeedEntropy(); err != nil {
			log.Error("entropy", "err", err)
		}
	}
	con := &agent.TTYConsole{Serial: serial, Screen: screen}
	wg.Go(func() { redraw(ctx, con, time.Second) })
	status := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		con.Update(func(s *agent.Screen) { s.Status = msg })
	}
	showErr := func(err error) {
		log.Error("step failed", "err", err)
		con.Update(func(s *agent.Screen) { s.Error = err.Error() })
	}

	raw, err := os.ReadFile(cmdlinePath)
	if err != nil {
		return fmt.Errorf("read kernel command line: %w", err)
	}
	cl, err := agent.ParseCmdline(string(raw))
	if err != nil {
		con.Update(func(s *agent.Screen) { s.Status = "cannot start"; s.Error = err.Error() })
		return err
	}
	con.Update(func(s *agent.Screen) { s.MAC, s.URL = cl.MAC, cl.URL })

	var loader *kmod.Loader
	if isInit {
		status("loading drivers")
		l, events, err := agent.LoadModules(ctx, log)
		if err != nil {
			showErr(fmt.Errorf("some drivers did not load: %w", err))
		}
		if l != nil {
			loader = l
			log.Info("drivers loaded", "modules", strings.Join(l.Loaded(), ","))
			// Devices found later (disks behind a SCSI scan, USB sticks)
			// get their drivers as the kernel announces them.
			wg.Go(func() { l.Watch(ctx, "/sys", events) })
		}
	}

	if isInit {
		if err := bringUp(ctx, cl, loader, con, log, &wg); err != nil {
			return err
		}
	} else {
		var ifname string
		for {
			if ifname, err = agent.FindInterface(ctx, cl.MAC, 30*time.Second, nil); err == nil {
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			showErr(err)
		}
		if ifi, err := net.InterfaceByName(ifname); err == nil {
			if addrs, _ := ifi.Addrs(); len(addrs) > 0 {
				con.Update(func(s *agent.Screen) { s.IP = addrs[0].String() })
			}
		}
	}

	if loader != nil {
		// The inventory lists the disks: let a SCSI scan or a USB
		// enumeration still running finish first.
		status("waiting for devices to settle")
		if err := loader.Settle(ctx, settleQuiet, settleLimit); err != nil {
			return err
		}
	}
	status("collecting the inventory")
	col := &inventory.Collector{Log: log}
	if _, err := os.Stat("/dev/ipmi0"); err == nil {
		col.BMCAddress, col.BMCMAC = agent.BMCAddress, agent.BMCMAC
	}
	inv := col.Collect()
	listenLLDP(ctx, &inv, log)

	key, err := sessionKey(log)
	if err != nil {
		return err
	}
	a := &agent.Agent{
		// The timeout is above the long-poll's PollWait (default 60 s).
		API:       &agent.Client{BaseURL: cl.URL, Nonce: cl.Nonce, Key: key, HTTP: &http.Client{Timeout: 90 * time.Second}},
		MAC:       cl.MAC,
		Inventory: inv,
		Console:   con,
		Download:  &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 60 * time.Second}},
		Log:       log,
		Reboot:    pid1.Reboot,
		PowerOff:  pid1.PowerOff,
	}
	if !isInit {
		a.Reboot = func() error { fmt.Println("foundry: would reboot now"); return nil }
		a.PowerOff = func() error { fmt.Println("foundry: would power off now"); return nil }
		a.Disks = func(p string) (agent.Disk, error) {
			return nil, fmt.Errorf("not writing %s: not running as PID 1 of the discovery OS", p)
		}
	}
	return a.Run(ctx)
}

// sessionKey makes this boot's key, which the registration binds to the
// boot session and every call is signed with. It lives in memory only: a
// new boot is a new session with a new key. Its ID is logged so that an
// operator can tell this boot's registration (registrations[].id) from
// another one claiming the same MAC.
func sessionKey(log *slog.Logger) (ed25519.PrivateKey, error) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate the boot's key: %w", err)
	}
	log.Info("boot session key", "key_id", agentsig.KeyID(pub))
	return key, nil
}

// listenLLDP listens on every NIC with link at once, for a few seconds,
// and records the neighbours heard.
func listenLLDP(ctx context.Context, inv *inventory.Inventory, log *slog.Logger) {
	var wg sync.WaitGroup
	for i := range inv.NICs {
		if !inv.NICs[i].Link {
			continue
		}
		wg.Add(1)
		go func(n *inventory.NIC) {
			defer wg.Done()
			nb, err := inventory.ListenLLDP(ctx, n.Name, 5*time.Second)
			if err != nil {
				log.Warn("lldp", "nic", n.Name, "err", err)
				return
			}
			n.LLDP = nb
		}(&inv.NICs[i])
	}
	wg.Wait()
}

// redraw refreshes the console every period (the token's remaining time
// counts down on it) until ctx ends.
func redraw(ctx context.Context, con *agent.TTYConsole, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			con.Tick()
		}
	}
}
