package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/foundry-appliance/foundry/pid1"
)

// Service runs `foundry serve` and restarts it when it dies, until its
// context ends; then it stops it with SIGTERM (which closes the database
// cleanly) and waits.
type Service struct {
	// Binary is the foundry executable; default "/usr/bin/foundry".
	Binary string
	// Config is the configuration file passed to serve; required.
	Config string
	// Log is where serve's output goes (a file on the data disk, or the
	// console); required, an *os.File because the reaper, not exec, waits
	// for the process.
	Log *os.File
	// Reaper starts the process and reports its exit; required (PID 1
	// reaps every child).
	Reaper *pid1.Reaper
	// StopGrace is how long serve has to exit after SIGTERM before it is
	// killed; default 30 s (Badger flushes its memtable on close).
	StopGrace time.Duration
	// Logger receives starts, exits and restarts; default silent.
	Logger *slog.Logger
	// OnExit is called when serve exits by itself, with how it ended, for
	// the console; default none.
	OnExit func(error)
}

// Run keeps serve running until ctx ends, then stops it. It returns the
// error of the final stop (nil after a clean exit).
func (s *Service) Run(ctx context.Context) error {
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	backoff := time.Second
	for {
		started := time.Now()
		cmd := exec.Command(or(s.Binary, "/usr/bin/foundry"), "serve", "--config", s.Config)
		cmd.Stdout, cmd.Stderr = s.Log, s.Log
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // keyboard signals on the console are not for it
		exited, err := s.Reaper.Start(cmd)
		if err != nil {
			return fmt.Errorf("start foundry serve: %w", err)
		}
		log.Info("foundry serve started", "pid", cmd.Process.Pid)
		select {
		case ws := <-exited:
			err := exitErr(ws)
			if err == nil {
				err = errors.New("exit status 0 before it was asked to stop")
			}
			log.Error("foundry serve exited", "err", err, "after", time.Since(started).Round(time.Second))
			if s.OnExit != nil {
				s.OnExit(err)
			}
			// A crash loop must not spin: back off, and start over once it
			// has stayed up for a while.
			if time.Since(started) > time.Minute {
				backoff = time.Second
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 30*time.Second)
		case <-ctx.Done():
			return s.stop(cmd.Process, exited, log)
		}
	}
}

func (s *Service) stop(p *os.Process, exited <-chan unix.WaitStatus, log *slog.Logger) error {
	grace := s.StopGrace
	if grace <= 0 {
		grace = 30 * time.Second
	}
	_ = p.Signal(syscall.SIGTERM)
	select {
	case ws := <-exited:
		log.Info("foundry serve stopped", "status", exitErr(ws))
		return exitErr(ws)
	case <-time.After(grace):
		_ = p.Kill()
		<-exited
		return fmt.Errorf("foundry serve did not stop within %v of SIGTERM and was killed", grace)
	}
}

func exitErr(ws unix.WaitStatus) error {
	switch {
	case ws.Exited() && ws.ExitStatus() == 0:
		return nil
	case ws.Exited():
		return fmt.Errorf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Errorf("killed by %v", ws.Signal())
	}
	return fmt.Errorf("wait status %#x", uint32(ws))
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
