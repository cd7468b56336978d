package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/discovery-os/inventory"
)

// TestCLIMACConflict plays a spoofer: a second host registers for a MAC
// that is already inventoried. The CLI must make the conflict visible
// (ls, show, watch's state), keep the spoofer's strings from acting on
// the terminal, say which registration a token matches and approval
// binds, and end the spoofer's registration.
func TestCLIMACConflict(t *testing.T) {
	e := newCLIEnv(t, func(s *api.Server) { s.AllowApprovalWithoutToken = true })
	ctx := context.Background()
	t.Setenv("FOUNDRY_URL", e.url)
	t.Setenv("FOUNDRY_TOKEN", e.admin)
	const mac = "52:54:00:12:34:56"
	code := e.registerMachine(mac)
	genuine := e.registration(mac, 0)
	// The spoofer's inventory carries terminal escapes: a window title
	// (OSC 0) in the vendor, clear-screen in the serial.
	spoofCode, spoofer := e.boot(mac, inventory.System{Vendor: "Evil\x1b]0;pwned\x07", Serial: "SN\x1b[2J1"})
	if spoofer == genuine {
		t.Fatal("two boots got one registration ID")
	}

	run := func(wantExit int, args ...string) (string, string) {
		t.Helper()
		out, errOut, exit := e.run(ctx, args...)
		if exit != wantExit {
			t.Fatalf("foundry %s: exit %d (want %d)\nstdout: %s\nstderr: %s", strings.Join(args, " "), exit, wantExit, out, errOut)
		}
		if strings.ContainsAny(out+errOut, "\x1b\x07") {
			t.Fatalf("foundry %s wrote a raw control character:\n%q", strings.Join(args, " "), out+errOut)
		}
		return out, errOut
	}
	macLine := func(out string) string {
		t.Helper()
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, mac) {
				return l
			}
		}
		t.Fatalf("no line for %s in\n%s", mac, out)
		return ""
	}

	out, errOut := run(0, "machines", "ls")
	if l := macLine(out); !strings.Contains(l, "inventoried "+conflictMark) {
		t.Errorf("ls does not mark the conflict: %q", l)
	}
	if errOut != conflictNote+"\n" {
		t.Errorf("ls does not explain the marker: %q", errOut)
	}
	// -o json is the API's object, unchanged.
	out, _ = run(0, "machines", "ls", "-o", "json")
	var list api.MachineList
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Items) != 1 || !list.Items[0].MACConflict ||
		list.Items[0].State != "inventoried" || len(list.Items[0].Registrations) != 2 {
		t.Fatalf("ls -o json: %v %+v", err, list)
	}

	out, _ = run(0, "machines", "show", mac)
	if !strings.HasPrefix(out, "MAC CONFLICT: 2 active registrations for this MAC") ||
		!strings.Contains(out, "foundry machines end-registration "+mac+" ID") {
		t.Errorf("show does not start with the warning:\n%s", out)
	}
	for _, want := range []string{"Registrations (2;", shortID(genuine), shortID(spoofer), `Evil\x1b]0;pwned\x07`, `SN\x1b[2J1`, "Token (newest):"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	out, _ = run(0, "machines", "show", mac, "-o", "json")
	var m api.Machine
	if err := json.Unmarshal([]byte(out), &m); err != nil || len(m.Registrations) != 2 || m.Registrations[0].ID != genuine ||
		m.Registrations[1].ID != spoofer || m.Registrations[1].Summary == nil || m.Registrations[1].Summary.Vendor != "Evil\x1b]0;pwned\x07" {
		t.Fatalf("show -o json: %v %+v", err, m)
	}

	// Without the token nothing tells the two apart.
	_, errOut = run(4, "machines", "approve", mac, "--cluster", "c1")
	if !strings.Contains(errOut, "MAC conflict") {
		t.Errorf("approval without a token under a conflict: %q", errOut)
	}
	out, _ = run(0, "machines", "verify-token", mac, "--console-token", code)
	if !strings.Contains(out, "matches registration "+shortID(genuine)) {
		t.Errorf("verify-token does not name the genuine registration: %q", out)
	}
	out, _ = run(0, "machines", "verify-token", mac, "--console-token", spoofCode)
	if !strings.Contains(out, "matches registration "+shortID(spoofer)) {
		t.Errorf("verify-token does not name the spoofer's registration: %q", out)
	}
	var check api.TokenCheck
	out, _ = run(0, "machines", "verify-token", mac, "--console-token", code, "-o", "json")
	if err := json.Unmarshal([]byte(out), &check); err != nil || !check.Valid || check.Registration != genuine {
		t.Errorf("verify-token -o json: %v %+v", err, check)
	}

	_, errOut = run(3, "machines", "end-registration", mac, "nosuchregistration")
	if !strings.Contains(errOut, "no live registration") {
		t.Errorf("ending an unknown registration: %q", errOut)
	}
	run(2, "machines", "end-registration", mac)
	// The spoofer's short ID, as show prints it, is enough (after "--":
	// an ID may start with '-').
	out, _ = run(0, "machines", "end-registration", "--", mac, shortID(spoofer))
	if !strings.Contains(out, "ended registration "+shortID(spoofer)+" of "+mac+": 1 registration(s) left") || strings.Contains(out, "CONFLICT") {
		t.Errorf("end-registration: %q", out)
	}
	out, errOut = run(0, "machines", "ls")
	if l := macLine(out); strings.Contains(l, conflictMark) || errOut != "" {
		t.Errorf("ls after the spoofer's registration ended: %q %q", l, errOut)
	}
	out, _ = run(0, "machines", "show", mac)
	if strings.Contains(out, "CONFLICT") || !strings.Contains(out, "Registrations (1;") || strings.Contains(out, shortID(spoofer)) {
		t.Errorf("show after the spoofer's registration ended:\n%s", out)
	}
	// The ended registration's token approves nothing.
	run(4, "machines", "verify-token", mac, "--console-token", spoofCode)

	run(0, "profiles", "create", "img", "--kind", "image", "--image-url", "/images/x.raw.zst", "--image-sha256", strings.Repeat("ab", 32))
	run(0, "clusters", "create", "c1", "--default-profile", "img")
	out, _ = run(0, "machines", "approve", mac, "--console-token", code, "--cluster", "c1")
	if !strings.Contains(out, "bound to registration "+shortID(genuine)) {
		t.Errorf("approve does not name the registration it bound: %q", out)
	}
	out, _ = run(0, "machines", "show", mac)
	row := regexp.MustCompile(`(?m)^` + shortID(genuine) + `.*$`).FindString(out)
	// ID, IP, REGISTERED, LAST SEEN, ACTIVE, BOUND, …
	if cells := regexp.MustCompile(`\s{2,}`).Split(row, -1); len(cells) < 6 || cells[4] != "yes" || cells[5] != "yes" {
		t.Errorf("show does not mark the registration approval bound (row %q):\n%s", row, out)
	}
}

// registration is the ID of mac's i-th registration, as the API lists them.
func (e *cliEnv) registration(mac string, i int) string {
	e.t.Helper()
	out, errOut, exit := e.run(context.Background(), "machines", "show", mac, "-o", "json", "--server", e.url, "--token", e.admin)
	var m api.Machine
	if exit != 0 || json.Unmarshal([]byte(out), &m) != nil || len(m.Registrations) <= i {
		e.t.Fatalf("machines show %s -o json: exit %d: %s%s", mac, exit, errOut, out)
	}
	return m.Registrations[i].ID
}

func TestResolveRegistration(t *testing.T) {
	m := api.Machine{Registrations: []api.Registration{{ID: "abc1xxxxxxxx"}, {ID: "abc2yyyyyyyy"}, {ID: "abc"}}}
	for _, tc := range []struct {
		id, want string
		usage    bool
	}{
		{"abc1xxxxxxxx", "abc1xxxxxxxx", false},
		{"abc2", "abc2yyyyyyyy", false},
		{"abc", "abc", false}, // a whole ID wins over the prefixes it is of others
		{"ab", "", true},
		{"zzz", "zzz", false}, // none: the API answers not found
	} {
		got, err := resolveRegistration(m, tc.id)
		if (err != nil) != tc.usage || got != tc.want {
			t.Errorf("resolveRegistration(%q) = %q, %v; want %q (usage error %v)", tc.id, got, err, tc.want, tc.usage)
		}
		if err != nil && exitCode(err) != exitUsage {
			t.Errorf("resolveRegistration(%q): exit %d, want %d", tc.id, exitCode(err), exitUsage)
		}
	}
}

func TestTokenState(t *testing.T) {
	now := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		t    api.TokenStatus
		want string
	}{
		{api.TokenStatus{ExpiresAt: now.Add(45 * time.Minute)}, "valid, expires in 45m"},
		{api.TokenStatus{ExpiresAt: now.Add(45 * time.Minute), Failures: 2}, "valid, expires in 45m, 2 wrong"},
		{api.TokenStatus{ExpiresAt: now.Add(-time.Minute), Expired: true}, "expired"},
		{api.TokenStatus{ExpiresAt: now.Add(time.Minute), Failures: 5, Locked: true}, "locked (5 wrong)"},
	} {
		if got := tokenState(tc.t, now); got != tc.want {
			t.Errorf("tokenState(%+v) = %q, want %q", tc.t, got, tc.want)
		}
	}
}
