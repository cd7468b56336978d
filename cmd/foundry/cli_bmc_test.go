package main

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/cobra"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/bmc"
	"github.com/foundry-appliance/foundry/internal/seal"
	"github.com/foundry-appliance/foundry/test/syncbuf"
)

// cliBMC answers like a BMC; refuse makes it refuse with a BMC's words.
type cliBMC struct {
	mu     sync.Mutex
	calls  []string
	refuse string
}

func (b *cliBMC) do(op string, ep bmc.Endpoint) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, op+" "+ep.Username+":"+ep.Password+"@"+ep.Host)
	if b.refuse != "" {
		return &bmc.Error{Op: op, Endpoint: ep.String(), Msg: b.refuse, Err: errors.New(b.refuse)}
	}
	return nil
}
func (b *cliBMC) PowerState(_ context.Context, ep bmc.Endpoint) (bmc.PowerState, error) {
	return bmc.PowerOff, b.do("status", ep)
}
func (b *cliBMC) Power(_ context.Context, ep bmc.Endpoint, a bmc.Action) error {
	return b.do("power-"+string(a), ep)
}
func (b *cliBMC) BootPXE(_ context.Context, ep bmc.Endpoint) error { return b.do("pxe", ep) }
func (b *cliBMC) RestartPXE(_ context.Context, ep bmc.Endpoint) (bmc.PowerState, error) {
	return bmc.PowerOn, b.do("restart-pxe", ep)
}
func (b *cliBMC) SetPassword(_ context.Context, ep bmc.Endpoint, next string) error {
	return b.do("set-password", ep)
}

// runIn is run with stdin.
func (e *cliEnv) runIn(stdin string, args ...string) (string, string, int) {
	e.t.Helper()
	root := &cobra.Command{Use: "foundry", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(cliCommands()...)
	var out, errOut syncbuf.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	code := 0
	if err != nil {
		code = exitCode(err)
		errOut.Write([]byte(err.Error()))
	}
	return out.String(), errOut.String(), code
}

func TestCLIPowerAndBMC(t *testing.T) {
	fake := &cliBMC{}
	box, err := seal.New(make([]byte, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	e := newCLIEnv(t, func(s *api.Server) { s.BMC, s.Secrets = fake, box })
	mac := "52:54:00:00:0b:01"
	e.registerMachine(mac)
	base := []string{"--server", e.url, "--token", e.admin}
	run := func(stdin string, a ...string) (string, string, int) {
		return e.runIn(stdin, append(a, base...)...)
	}

	// The password comes from standard input, never the command line.
	if _, stderr, code := run("", "machines", "bmc", "set", mac, "--address", "10.1.2.3", "--username", "foundry"); code != exitUsage || !strings.Contains(stderr, "--password-stdin") {
		t.Fatalf("bmc set without --password-stdin: %d %s", code, stderr)
	}
	out, stderr, code := run("Pa55word\n", "machines", "bmc", "set", mac, "--address", "10.1.2.3", "--username", "foundry", "--password-stdin")
	if code != 0 || !strings.Contains(out, "ipmi 10.1.2.3 user foundry, password stored (entered by hand)") {
		t.Fatalf("bmc set: %d %q %q", code, out, stderr)
	}
	out, _, code = run("", "machines", "show", mac)
	if code != 0 || !strings.Contains(out, "ipmi 10.1.2.3 user foundry, password stored") || strings.Contains(out, "Pa55word") {
		t.Fatalf("show: %d %s", code, out)
	}
	out, _, code = run("", "machines", "show", mac, "-o", "json")
	if code != 0 || strings.Contains(out, "Pa55word") || !strings.Contains(out, `"credential": true`) {
		t.Fatalf("show -o json: %d %s", code, out)
	}

	out, stderr, code = run("", "machines", "power", mac, "cycle")
	if code != 0 || !strings.HasPrefix(out, "power on (read ") {
		t.Fatalf("power cycle: %d %q %q", code, out, stderr)
	}
	out, _, code = run("", "machines", "pxe-next", mac)
	if code != 0 || !strings.Contains(out, "next boot of "+mac+": network") {
		t.Fatalf("pxe-next: %d %q", code, out)
	}
	fake.mu.Lock()
	calls := strings.Join(fake.calls, ",")
	fake.refuse = "Error: Unable to establish IPMI v2 / RMCP+ session"
	fake.mu.Unlock()
	if !strings.Contains(calls, "power-cycle foundry:Pa55word@10.1.2.3") || !strings.Contains(calls, "pxe foundry:Pa55word@10.1.2.3") {
		t.Fatalf("BMC calls %s", calls)
	}
	// A refusal prints the BMC's own words and fails.
	_, stderr, code = run("", "machines", "power", mac, "off")
	if code == 0 || !strings.Contains(stderr, "Unable to establish IPMI v2 / RMCP+ session") {
		t.Fatalf("refused power off: %d %q", code, stderr)
	}
	out, _, _ = run("", "machines", "power", mac)
	if !strings.Contains(out, "the BMC's last error") || !strings.Contains(out, "RMCP+") {
		t.Fatalf("power status after a refusal: %q", out)
	}
	if _, stderr, code = run("", "machines", "power", mac, "reboot"); code != exitUsage {
		t.Fatalf("unknown action: %d %s", code, stderr)
	}
	// The viewer may read but not act.
	if _, _, code = e.runIn("", "machines", "power", mac, "on", "--server", e.url, "--token", e.viewer); code != exitAuth {
		t.Fatalf("viewer power on: exit %d", code)
	}
	if _, _, code = run("", "machines", "bmc", "delete", mac); code != 0 {
		t.Fatalf("bmc delete: %d", code)
	}
	if m, err := e.db.GetMachine(mac); err != nil || m.BMC != nil {
		t.Fatalf("after delete: %+v %v", m.BMC, err)
	}
	if _, stderr, code = run("", "machines", "power", mac, "on"); code != exitRefused {
		t.Fatalf("power without a BMC: %d %s", code, stderr)
	}
}

// The cluster setting and the approval flag: update keeps the setting
// unless the flag is given.
func TestCLIBMCUserSettings(t *testing.T) {
	e := newCLIEnv(t)
	base := []string{"--server", e.url, "--token", e.admin}
	run := func(a ...string) (string, int) {
		out, stderr, code := e.runIn("", append(a, base...)...)
		return out + stderr, code
	}
	if out, code := run("clusters", "create", "rack9", "--bmc-user"); code != 0 || !strings.Contains(out, "BMC user at approval") {
		t.Fatalf("create: %d %s", code, out)
	}
	if _, code := run("clusters", "update", "rack9", "--description", "row 9"); code != 0 {
		t.Fatal("update")
	}
	c, err := e.db.GetCluster("rack9")
	if err != nil || !c.BMCUser || c.Description != "row 9" {
		t.Fatalf("after update: %+v %v", c, err)
	}
	if _, code := run("clusters", "update", "rack9", "--bmc-user=false"); code != 0 {
		t.Fatal("update")
	}
	if c, _ := e.db.GetCluster("rack9"); c.BMCUser {
		t.Fatal("--bmc-user=false kept the setting")
	}
}
