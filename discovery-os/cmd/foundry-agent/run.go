package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/foundry-appliance/foundry/discovery-os/agent"
	"github.com/foundry-appliance/foundry/discovery-os/inventory"
)

// retryDelay is the pause between attempts at a step that must succeed
// before anything else can happen (finding the NIC, DHCP).
const retryDelay = 5 * time.Second

func run(ctx context.Context, pid1 bool, cmdlinePath string) error {
	serial := os.Stdout // /dev/console: the last console= on the kernel line, ttyS0
	log := slog.New(slog.NewTextHandler(serial, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if pid1 {
		if err := agent.MountAll(); err != nil {
			log.Error("mount", "err", err)
		}
		go agent.Reap(ctx)
		// Before anything reads crypto/rand (DHCP transaction IDs, the token).
		if err := agent.SeedEntropy(); err != nil {
			log.Error("entropy", "err", err)
		}
	}
	con := &agent.TTYConsole{Serial: serial}
	if tty, err := os.OpenFile("/dev/tty0", os.O_WRONLY, 0); err == nil {
		con.Screen = tty
	}
	go func() {
		for range time.Tick(time.Second) {
			con.Tick()
		}
	}()
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

	if pid1 {
		status("loading drivers")
		loaded, err := agent.LoadModules(log)
		if err != nil {
			showErr(fmt.Errorf("some drivers did not load: %w", err))
		}
		log.Info("drivers loaded", "modules", strings.Join(loaded, ","))
	}

	var ifname string
	for attempt := 1; ; attempt++ {
		status("looking for the boot NIC %s (attempt %d)", cl.MAC, attempt)
		if ifname, err = agent.FindInterface(ctx, cl.MAC, 30*time.Second); err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		showErr(err)
	}
	ip := ""
	if pid1 {
		for attempt := 1; ; attempt++ {
			status("DHCP on %s (attempt %d)", ifname, attempt)
			pfx, err := agent.ConfigureDHCP(ctx, ifname, 30*time.Second)
			if err == nil {
				ip = pfx.String()
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			showErr(err)
			time.Sleep(retryDelay)
		}
	} else if ifi, err := net.InterfaceByName(ifname); err == nil {
		if addrs, _ := ifi.Addrs(); len(addrs) > 0 {
			ip = addrs[0].String()
		}
	}
	con.Update(func(s *agent.Screen) { s.IP = ip })

	status("collecting the inventory")
	col := &inventory.Collector{Log: log}
	if _, err := os.Stat("/dev/ipmi0"); err == nil {
		col.BMCAddress = agent.BMCAddress
	}
	inv := col.Collect()
	listenLLDP(ctx, &inv, log)

	a := &agent.Agent{
		API:       &agent.Client{BaseURL: cl.URL, Nonce: cl.Nonce, HTTP: &http.Client{Timeout: 90 * time.Second}},
		MAC:       cl.MAC,
		Inventory: inv,
		Console:   con,
		Download:  &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 60 * time.Second}},
		Log:       log,
		Reboot:    agent.Reboot,
		PowerOff:  agent.PowerOff,
	}
	if !pid1 {
		a.Reboot = func() error { fmt.Println("foundry: would reboot now"); return nil }
		a.PowerOff = func() error { fmt.Println("foundry: would power off now"); return nil }
		a.Disks = func(p string) (agent.Disk, error) {
			return nil, fmt.Errorf("not writing %s: not running as PID 1 of the discovery OS", p)
		}
	}
	return a.Run(ctx)
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
