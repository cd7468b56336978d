package agent

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mathrand "math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/foundry-appliance/foundry/agentwire"
	"github.com/foundry-appliance/foundry/discovery-os/inventory"
	"github.com/foundry-appliance/foundry/discovery-os/token"
)

// Agent registers the machine and carries out the decision.
type Agent struct {
	// API is the appliance. Required.
	API API
	// MAC is the boot NIC (the machine's key). Required.
	MAC string
	// Inventory is the report sent at registration. Required.
	Inventory inventory.Inventory
	// Console shows progress. Default: none.
	Console Console
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Sleep waits between retries. Default: a timer that honours ctx.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand is the randomness for tokens and salts. Default crypto/rand.
	Rand io.Reader
	// Disks opens a target disk for writing. Default: OpenDisk.
	Disks func(path string) (Disk, error)
	// SecureErase has a disk erase itself, for a release that asks for
	// it. Default: SecureErase.
	SecureErase func(context.Context, inventory.Disk) error
	// Download fetches image URLs. Default: http.DefaultClient.
	Download Doer
	// Seed writes the cloud-init seed files onto the disk at path after
	// the image. Default: WriteSeed.
	Seed func(path string, files map[string][]byte) error
	// Reboot and PowerOff end the discovery OS. Required; in tests they
	// record the call and return.
	Reboot, PowerOff func() error
	// RetryDelay is the pause after a failed call. Default 5 s.
	RetryDelay time.Duration
	// FailureDelay is the pause after provisioning failed, before asking
	// for a new decision. Default 30 s.
	FailureDelay time.Duration
	// RefreshBefore is how long before expiry the token is replaced.
	// Default 2 min.
	RefreshBefore time.Duration
	// PollWait is the long-poll duration asked for. Default 60 s.
	PollWait time.Duration
	// RefusedDelay is how long the agent waits, once the appliance refuses
	// its boot session (401/403: the nonce is unknown, ended or another
	// machine's), before it reboots to PXE for a new one. Default 30 s,
	// plus up to as much again at random, so that machines refused
	// together (an appliance whose database was replaced) do not reboot in
	// step.
	RefusedDelay time.Duration
	// Log receives what happens. Default: silent.
	Log *slog.Logger
	// OpenIPMI opens the BMC's system interface when a decision asks for
	// the appliance's BMC user (bmcuser.go). Default: OpenIPMI.
	OpenIPMI func() (IPMICloser, error)

	tok token.Token
	// pending is a new token hash the appliance has not acknowledged yet.
	pending *agentwire.AgentToken
	// waitMessage is the last wait decision's Message, as shown.
	waitMessage string
}

func (a *Agent) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Agent) log() *slog.Logger {
	if a.Log != nil {
		return a.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (a *Agent) sleep(ctx context.Context, d time.Duration) error {
	if a.Sleep != nil {
		return a.Sleep(ctx, d)
	}
	return Pause(ctx, d)
}

// Pause waits for d or until ctx ends, and then returns ctx's error.
func Pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func durationOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func (a *Agent) status(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	a.log().Info(msg)
	if a.Console != nil {
		a.Console.Update(func(s *Screen) { s.Status = msg })
	}
}

func (a *Agent) fail(err error) {
	a.log().Error("failure", "err", err)
	if a.Console != nil {
		a.Console.Update(func(s *Screen) { s.Error = printable(err.Error()) })
	}
}

// newToken draws a token and returns the hash to send.
func (a *Agent) newToken() (agentwire.AgentToken, error) {
	rnd := a.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	t, err := token.New(rnd, a.now())
	if err != nil {
		return agentwire.AgentToken{}, err
	}
	salt, err := token.NewSalt(rnd)
	if err != nil {
		return agentwire.AgentToken{}, err
	}
	a.tok = t
	if a.Console != nil {
		a.Console.Update(func(s *Screen) { s.Token, s.ExpiresAt = t.Value, t.ExpiresAt })
	}
	a.log().Info("registration token", "token", t.Value, "expires_at", t.ExpiresAt)
	return agentwire.NewAgentToken(t, salt), nil
}

// Run registers and then follows decisions until one ends the discovery
// OS (Reboot or PowerOff was called: Run returns their error) or ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	if a.API == nil || a.MAC == "" || a.Reboot == nil || a.PowerOff == nil {
		return errors.New("agent: API, MAC, Reboot and PowerOff are required")
	}
	if err := a.register(ctx); err != nil {
		var ended *endedError
		if errors.As(err, &ended) {
			return ended.err // the discovery OS is ending: Reboot's result
		}
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := a.refreshToken(ctx); err != nil {
			a.fail(err)
		}
		d, err := a.API.Decision(ctx, durationOr(a.PollWait, 60*time.Second))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if refused(err) {
				return a.rebootRefused(ctx, err)
			}
			a.fail(fmt.Errorf("wait for decision: %w", err))
			if err := a.sleep(ctx, durationOr(a.RetryDelay, 5*time.Second)); err != nil {
				return err
			}
			continue
		}
		done, err := a.handle(ctx, d)
		if done {
			return err
		}
	}
}

// refused reports an answer that no retry with this boot's nonce can
// change: the appliance does not know the session (401) or it belongs to
// someone else (403).
func refused(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden)
}

// endedError carries Reboot's or PowerOff's result out of a loop that
// ended the discovery OS.
type endedError struct{ err error }

func (e *endedError) Error() string { return fmt.Sprintf("discovery OS ended: %v", e.err) }

// rebootRefused ends a boot whose session the appliance refuses: retrying
// forever would strand the machine, and a new PXE boot gets a new nonce
// from the machine's own DHCP exchange. It returns Reboot's error (nil in
// tests), after RefusedDelay with jitter.
func (a *Agent) rebootRefused(ctx context.Context, cause error) error {
	base := durationOr(a.RefusedDelay, 30*time.Second)
	delay := base + time.Duration(mathrand.Int64N(int64(base)+1))
	// The token leaves the screen at once: this boot's registration is
	// over, and a token still shown could only approve a registration
	// someone else made with a copy of its hash (docs/security.md).
	if a.Console != nil {
		a.Console.Update(func(s *Screen) { s.Token, s.ExpiresAt = "", time.Time{} })
	}
	a.fail(fmt.Errorf("the appliance refuses this boot session (%w); rebooting to PXE in %s", cause, delay.Round(time.Second)))
	if err := a.sleep(ctx, delay); err != nil {
		return err
	}
	a.status("rebooting to PXE for a new boot session")
	return a.Reboot()
}

// register sends the inventory with a fresh token, retrying until the
// appliance accepts it.
func (a *Agent) register(ctx context.Context) error {
	inv, err := json.Marshal(a.Inventory)
	if err != nil {
		return fmt.Errorf("encode inventory: %w", err)
	}
	th, err := a.newToken()
	if err != nil {
		return fmt.Errorf("generate token: %w", err)
	}
	for attempt := 1; ; attempt++ {
		if a.tok.Expired(a.now().Add(durationOr(a.RefreshBefore, 2*time.Minute))) {
			if th, err = a.newToken(); err != nil {
				return fmt.Errorf("generate token: %w", err)
			}
		}
		a.status("registering with the appliance (attempt %d)", attempt)
		state, err := a.API.Register(ctx, agentwire.AgentRegister{MAC: a.MAC, Inventory: inv, Token: th})
		if err == nil {
			a.status("registered (%s): waiting for approval", state)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if refused(err) {
			return &endedError{a.rebootRefused(ctx, err)}
		}
		a.fail(fmt.Errorf("register: %w", err))
		if err := a.sleep(ctx, durationOr(a.RetryDelay, 5*time.Second)); err != nil {
			return err
		}
	}
}

// refreshToken replaces the token shortly before it expires, and resends a
// new hash the appliance has not acknowledged: until it has, approval with
// the token on the screen would fail.
func (a *Agent) refreshToken(ctx context.Context) error {
	if a.pending == nil && a.tok.Expired(a.now().Add(durationOr(a.RefreshBefore, 2*time.Minute))) {
		th, err := a.newToken()
		if err != nil {
			return fmt.Errorf("generate token: %w", err)
		}
		a.pending = &th
	}
	if a.pending == nil {
		return nil
	}
	if err := a.API.Token(ctx, *a.pending); err != nil {
		return fmt.Errorf("send new token: %w", err)
	}
	a.pending = nil
	a.status("new registration token sent: waiting for approval")
	return nil
}

// handle carries out one decision; done reports that the discovery OS is
// ending (or must stop) and err is then Run's result.
func (a *Agent) handle(ctx context.Context, d agentwire.Decision) (done bool, err error) {
	switch d.Decision {
	case agentwire.KindWait, "":
		if d.BMCUser != nil {
			a.createBMCUser(ctx, *d.BMCUser)
		}
		a.showWait(d.Message)
		return false, nil
	case agentwire.KindNetboot:
		a.status("approved: rebooting into the production netboot profile")
		a.report(ctx, true, "rebooting into the netboot profile")
		return true, a.Reboot()
	case agentwire.KindWipe:
		return false, a.wipe(ctx, d.Wipe)
	case agentwire.KindReject:
		a.status("rejected by the administrator: powering off")
		a.report(ctx, true, "powering off (rejected)")
		return true, a.PowerOff()
	case agentwire.KindImage:
		if err := a.provision(ctx, d); err != nil {
			if ctx.Err() != nil {
				return true, ctx.Err()
			}
			a.fail(err)
			a.status("provisioning failed: waiting for a new decision")
			a.report(ctx, false, printable(err.Error()))
			return false, a.sleep(ctx, durationOr(a.FailureDelay, 30*time.Second))
		}
		a.status("image written: rebooting to the local disk")
		a.report(ctx, true, "image written and verified; rebooting to local disk")
		return true, a.Reboot()
	default:
		a.fail(fmt.Errorf("unknown decision %q from the appliance", printable(d.Decision)))
		return false, a.sleep(ctx, durationOr(a.RetryDelay, 5*time.Second))
	}
}

// showWait puts a wait decision's explanation on the console when it
// changes: a wait that approval will not end (another boot session of this
// machine was approved) needs a person, and must say so on the screen
// rather than look like an ordinary wait for approval.
func (a *Agent) showWait(msg string) {
	msg = strings.TrimSpace(printable(msg))
	if msg == a.waitMessage {
		return
	}
	a.waitMessage = msg
	if msg == "" {
		a.status("waiting for approval")
		return
	}
	a.status("waiting: %s", msg)
}

// report sends the result, retrying a few times: the appliance moves the
// machine's state on it, but a reboot must not wait forever for it.
func (a *Agent) report(ctx context.Context, success bool, msg string) {
	for range 3 {
		err := a.API.Result(ctx, success, msg)
		if err == nil || IsPermanent(err) || ctx.Err() != nil {
			if err != nil {
				a.log().Warn("report result", "err", err)
			}
			return
		}
		a.log().Warn("report result", "err", err)
		if a.sleep(ctx, durationOr(a.RetryDelay, 5*time.Second)) != nil {
			return
		}
	}
}
