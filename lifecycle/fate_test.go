package lifecycle

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/lifecycle.md from the code")

// allQueries is every combination of record, segment, client and mode.
func allQueries() []Query {
	var machines []*Machine
	machines = append(machines, nil)
	for _, s := range append(States(), State(42), State(-5)) {
		for _, p := range []ProfileKind{"", Netboot, Image} {
			for _, menu := range []bool{false, true} {
				for _, uefi := range []string{"", BinaryIPXE, BinarySNP, "bogus.efi"} {
					machines = append(machines, &Machine{State: s, Profile: p, Menu: menu, UEFIBinary: uefi})
					// The flags that matter in one state only are
					// crossed with that state (and two others, where a
					// stale flag must change nothing).
					if s == Provisioning || s == Ready || s == Approved {
						machines = append(machines, &Machine{State: s, Profile: p, Menu: menu, UEFIBinary: uefi, Installed: true})
					}
					if s.Pending() || s == Ready || s == Rejected {
						machines = append(machines, &Machine{State: s, Profile: p, Menu: menu, UEFIBinary: uefi, Wipe: true})
					}
				}
			}
		}
	}
	var segs []Segment
	for _, d := range []bool{false, true} {
		for _, p := range []bool{false, true} {
			for _, u := range []bool{false, true} {
				for _, b := range []string{"", BinaryIPXE, BinarySNP} {
					segs = append(segs, Segment{Discovery: d, Proxy: p, AllowUnknown: u, UEFIBinary: b})
				}
			}
		}
	}
	var out []Query
	for _, m := range machines {
		for _, seg := range segs {
			for fw := FirmwareNone; fw <= FirmwareHTTP; fw++ {
				for a := ArchUnknown; a <= ArchOther; a++ {
					for _, mode := range []Mode{ModeNormal, ModeDiscovery, ModeProduction} {
						for _, arm := range []bool{false, true} {
							for _, bound := range []bool{false, true} {
								out = append(out, Query{Machine: m, Segment: seg, Client: Client{fw, a}, Mode: mode, HaveARM64: arm, Bound: bound})
								if m != nil && m.Wipe {
									out = append(out, Query{Machine: m, Segment: seg, Client: Client{fw, a}, Mode: mode, HaveARM64: arm, Bound: bound, Wiped: true})
								}
							}
						}
					}
				}
			}
		}
	}
	return out
}

// TestDecideEverywhere checks the rules of docs/spec.md §1–2 on every combination.
// Each rule is a property that one wrong branch in Decide would break.
func TestDecideEverywhere(t *testing.T) {
	qs := allQueries()
	if len(qs) < 100000 {
		t.Fatalf("only %d combinations", len(qs))
	}
	fail := func(q Query, f Fate, rule string) {
		t.Helper()
		t.Fatalf("%s\nquery %+v machine %+v\nfate %+v", rule, q, q.Machine, f)
	}
	for _, q := range qs {
		f := Decide(q)
		m, seg := q.Machine, q.Segment
		pending := m != nil && m.State.Pending()
		switch {
		case m != nil && !m.State.Valid() && (f.Reply || f.Script != ScriptBroken || f.Agent != AgentWait):
			fail(q, f, "a record in an unknown state gets nothing")
		case f.Boot != BootNone && !f.Reply:
			fail(q, f, "a boot is offered only in a reply")
		case f.Address && seg.Proxy:
			fail(q, f, "proxy mode never gives an address")
		case f.Record && (m != nil || !seg.Discovery || f.Boot == BootNone):
			fail(q, f, "a record is created only for an unknown MAC booting on a discovery segment")
		case m == nil && !seg.Discovery && f.Boot != BootNone:
			fail(q, f, "discovery only on discovery segments")
		case m == nil && f.Address && (seg.Discovery == false && (!seg.AllowUnknown || seg.Proxy)):
			fail(q, f, "an unknown MAC gets an address off discovery segments only where allowed")
		case pending && !seg.Discovery && (f.Boot != BootNone || f.Script != ScriptHeld):
			fail(q, f, "a machine waiting for approval boots nothing off discovery segments")
		case m != nil && m.State == Rejected && (f.Reply || f.Script != ScriptRejected || f.Agent != AgentReject):
			fail(q, f, "a rejected machine gets nothing")
		case m == nil && (f.Script != ScriptUnknown || f.Agent != AgentWait):
			fail(q, f, "an unknown MAC gets the unknown script")
		case f.Boot == BootTFTP && f.File == "", f.Boot == BootHTTP && f.File == "":
			fail(q, f, "a boot names its file")
		case f.Boot != BootNone && f.Boot != BootScript && q.Client.Firmware == FirmwareIPXE:
			fail(q, f, "iPXE always gets its script URL")
		case f.Boot == BootScript && q.Client.Firmware != FirmwareIPXE:
			fail(q, f, "only iPXE gets a script URL")
		case f.Boot == BootTFTP && q.Client.Firmware != FirmwarePXE:
			fail(q, f, "TFTP files go to firmware PXE")
		case f.File == BinaryBIOS && q.Client.Arch != ArchBIOS:
			fail(q, f, "undionly.kpxe only for BIOS")
		case f.File == BinaryARM64 && (!q.HaveARM64 || q.Client.Arch != ArchARM64):
			fail(q, f, "the arm64 binary only when present, for arm64")
		case q.Client.Arch == ArchX64 && f.Boot != BootNone && f.Boot != BootScript && f.File != wantUEFI(q):
			fail(q, f, "the machine's UEFI binary wins over the segment's, which defaults to ipxe.efi")
		case f.Agent == AgentImage && (m.Profile != Image || (m.State != Approved && m.State != Provisioning)):
			fail(q, f, "only an approved image machine writes an image")
		case f.Agent == AgentWipe && !(m.Wipe && pending && !q.Wiped), m != nil && m.Wipe && pending && !q.Wiped && f.Agent != AgentWipe:
			fail(q, f, "a released machine's every session wipes its disks once, and nothing else does")
		case f.Agent == AgentImage && !q.Bound:
			fail(q, f, "only the session approval bound is given the image")
		case f.AgentDetails && (!q.Bound || f.Agent == AgentWait || f.Agent == AgentReject || f.Agent == AgentWipe):
			fail(q, f, "the approval's details go only to the bound session, with a decision that uses them")
		case q.Bound && m != nil && m.State.Accepted() && m.Profile != "" && f.Agent != AgentReject && !f.AgentDetails && f.Agent != AgentWait:
			fail(q, f, "the bound session gets the details its decision needs")
		case f.Script == ScriptMenu && (!m.Menu || q.Mode != ModeNormal):
			fail(q, f, "the menu only for machines with one, and not for a menu item")
		case f.Script == ScriptDiscovery && !(pending && seg.Discovery) && !(m != nil && m.State.Accepted() && installing(m)) &&
			!(m != nil && m.Menu && q.Mode == ModeDiscovery):
			fail(q, f, "the discovery OS only for discovery, installs and the rediscover menu item")
		case m != nil && m.State.Accepted() && m.Profile == "" && (f.Script != ScriptBroken || f.Agent == AgentImage):
			fail(q, f, "an accepted machine without a profile boots nothing and installs nothing")
		}
		// A mode only matters for machines whose normal script is the menu.
		if q.Mode != ModeNormal {
			base := q
			base.Mode = ModeNormal
			if b := Decide(base); b.Script != ScriptMenu && b.Script != f.Script {
				fail(q, f, "the mode changed the script of a machine without a menu")
			}
		}
	}
}

func wantUEFI(q Query) string {
	if m := q.Machine; m != nil && (m.UEFIBinary == BinaryIPXE || m.UEFIBinary == BinarySNP) {
		return m.UEFIBinary
	}
	if q.Segment.UEFIBinary != "" {
		return q.Segment.UEFIBinary
	}
	return BinaryIPXE
}

// installing reports whether an accepted machine is still in the phase
// where its agent runs (image install, or a netboot machine reporting).
func installing(m *Machine) bool {
	if m.Profile == Image {
		return m.State != Ready
	}
	return m.State == Provisioning || m.State == Failed
}

// TestScriptByState is the script table of docs/spec.md §2, spelled out.
func TestScriptByState(t *testing.T) {
	disc := Segment{Discovery: true}
	for _, tc := range []struct {
		m    *Machine
		seg  Segment
		mode Mode
		want Script
	}{
		{nil, disc, "", ScriptUnknown},
		{&Machine{State: Discovered}, disc, "", ScriptDiscovery},
		{&Machine{State: Inventoried}, disc, "", ScriptDiscovery},
		{&Machine{State: Inventoried}, Segment{}, "", ScriptHeld},
		{&Machine{State: Rejected}, disc, "", ScriptRejected},
		{&Machine{State: Approved, Profile: Image}, Segment{}, "", ScriptDiscovery},
		{&Machine{State: Ready, Profile: Image}, disc, "", ScriptLocal},
		{&Machine{State: Ready, Profile: Image, Menu: true}, disc, "", ScriptMenu},
		{&Machine{State: Ready, Profile: Image, Menu: true}, disc, ModeProduction, ScriptLocal},
		{&Machine{State: Ready, Profile: Netboot}, Segment{}, "", ScriptProduction},
		{&Machine{State: Ready, Profile: Netboot, Menu: true}, disc, ModeDiscovery, ScriptDiscovery},
		{&Machine{State: Ready, Profile: Netboot}, disc, ModeDiscovery, ScriptProduction},
		{&Machine{State: Failed, Profile: Netboot}, disc, "", ScriptDiscovery},
		{&Machine{State: Approved}, disc, "", ScriptBroken},
	} {
		if got := Decide(Query{Machine: tc.m, Segment: tc.seg, Mode: tc.mode}).Script; got != tc.want {
			t.Errorf("%s on %+v mode %q: script %s, want %s", machineLabel(tc.m), tc.seg, tc.mode, got, tc.want)
		}
	}
}

func TestNext(t *testing.T) {
	for _, tc := range []struct {
		a    Action
		by   Role
		from State
		want State
		err  error
	}{
		{ActDiscover, RoleDHCP, Gone, Discovered, nil},
		{ActDiscover, RoleAdmin, Gone, Gone, ErrRole},
		{ActRegister, RoleAgent, Discovered, Inventoried, nil},
		{ActRegister, RoleAgent, Approved, Approved, ErrTransition},
		{ActApprove, RoleAdmin, Inventoried, Approved, nil},
		{ActApprove, RoleAgent, Inventoried, Inventoried, ErrRole},
		{ActApprove, RoleAdmin, Discovered, Discovered, ErrTransition},
		{ActReject, RoleAdmin, Inventoried, Rejected, nil},
		{ActRetry, RoleAdmin, Failed, Provisioning, nil},
		{ActRetry, RoleAdmin, Ready, Ready, ErrTransition},
		{ActRediscover, RoleAdmin, Ready, Discovered, nil},
		{ActRediscover, RoleAdmin, Rejected, Rejected, ErrTransition},
		{ActSucceed, RoleAgent, Provisioning, Provisioning, nil},
		{ActFirstBoot, RoleOS, Provisioning, Ready, nil},
		{ActFirstBoot, RoleOS, Approved, Approved, ErrTransition},
		{ActDelete, RoleAdmin, Rejected, Gone, nil},
		{Action("fly"), RoleAdmin, Ready, Ready, ErrTransition},
	} {
		got, err := Next(tc.a, tc.by, tc.from)
		if got != tc.want || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("Next(%s, %s, %s) = %s, %v; want %s, %v", tc.a, tc.by, tc.from, got, err, tc.want, tc.err)
		}
	}
}

// Every move the store accepts is some action's move, and nothing leaves
// rejected except deletion.
func TestCanTransition(t *testing.T) {
	for _, from := range States() {
		for _, to := range States() {
			want := false
			for _, r := range rules {
				for _, by := range r.By {
					if got, err := Next(r.Action, by, from); err == nil && got == to {
						want = true
					}
				}
			}
			if got := from.CanTransition(to); got != want {
				t.Errorf("%s → %s: CanTransition %v, actions say %v", from, to, got, want)
			}
		}
		if Rejected.CanTransition(from) {
			t.Errorf("rejected → %s allowed", from)
		}
	}
}

func TestStateNames(t *testing.T) {
	for _, s := range States() {
		var back State
		if err := back.UnmarshalText([]byte(s.String())); err != nil || back != s {
			t.Errorf("%s does not round-trip: %v", s, err)
		}
	}
	if _, err := ParseState("flying"); err == nil {
		t.Error("unknown state parsed")
	}
}

// docs/lifecycle.md is this package's Markdown, and the dashboard's table of
// actions its AdminActions, byte for byte.
func TestLifecycleDoc(t *testing.T) {
	actions, err := json.MarshalIndent(AdminActions(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	checkGenerated(t, filepath.Join("..", "docs", "lifecycle.md"), Markdown())
	checkGenerated(t, filepath.Join("..", "ui", "src", "lib", "lifecycle.json"), string(actions)+"\n")
}

func checkGenerated(t *testing.T, path, want string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./lifecycle -update)", err)
	}
	if string(got) != want {
		t.Fatalf("%s is out of date: run go test ./lifecycle -update", path)
	}
}

// Every session ends: each state's agent decision either keeps the agent
// waiting or installing, or is final, or the state is left by an action
// that ends the session.
func TestFinalDecision(t *testing.T) {
	for _, st := range States() {
		for _, p := range []ProfileKind{Netboot, Image} {
			for _, installed := range []bool{false, true} {
				m := &Machine{State: st, Profile: p, Installed: installed}
				a := Decide(Query{Machine: m, Bound: true}).Agent
				final := FinalDecision(m, a)
				done := st == Rejected || st == Ready || st == Provisioning && p == Image && installed
				switch {
				case done && !final:
					t.Errorf("%s (%s, installed %v): decision %s is not final", st, p, installed, a)
				case !done && final:
					t.Errorf("%s (%s, installed %v): decision %s ends a session that still has work", st, p, installed, a)
				}
			}
		}
	}
}

// An installed image machine boots its disk until its first-boot report,
// which only the installed system (or the appliance) may make.
func TestInstalledBootsItsDisk(t *testing.T) {
	m := &Machine{State: Provisioning, Profile: Image, Installed: true}
	f := Decide(Query{Machine: m, Segment: Segment{Discovery: true}, Bound: true})
	if f.Script != ScriptLocal || f.Agent != AgentNetboot {
		t.Fatalf("installed: script %s, agent %s", f.Script, f.Agent)
	}
	m.Menu = true
	if f := Decide(Query{Machine: m, Segment: Segment{Discovery: true}}); f.Script != ScriptMenu {
		t.Fatalf("installed with a menu: script %s", f.Script)
	}
	for _, by := range []Role{RoleAgent, RoleAdmin, RoleDHCP} {
		if _, err := Next(ActFirstBoot, by, Provisioning); err == nil {
			t.Errorf("%s reported a first boot", by)
		}
	}
	if to, err := Next(ActFirstBoot, RoleOS, Provisioning); err != nil || to != Ready {
		t.Errorf("first boot: %s %v", to, err)
	}
}
