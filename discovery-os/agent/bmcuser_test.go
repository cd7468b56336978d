package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/agentwire"
)

// fakeBMC answers the system-interface commands CreateBMCUser sends, the
// way the IPMI 2.0 specification (and ipmi_sim) lays them out.
type fakeBMC struct {
	names    map[int]string
	pass     map[int]string
	access   map[int][]byte
	enabled  map[int]bool
	lanCh    byte
	refuse   byte // a command refused with completion code 0xd4
	closed   bool
	commands []string
}

func newFakeBMC() *fakeBMC {
	return &fakeBMC{names: map[int]string{2: "admin"}, pass: map[int]string{}, access: map[int][]byte{}, enabled: map[int]bool{}, lanCh: 1}
}

func (b *fakeBMC) Close() error { b.closed = true; return nil }

func (b *fakeBMC) Send(netfn, cmd byte, d []byte) ([]byte, error) {
	b.commands = append(b.commands, fmt.Sprintf("%02x/%02x", netfn, cmd))
	if cmd == b.refuse {
		return []byte{0xd4}, nil
	}
	switch {
	case netfn == netfnApp && cmd == cmdGetChannelInfo:
		medium := byte(0x0c) // system interface
		if d[0] == b.lanCh {
			medium = mediumLAN
		}
		return []byte{0, d[0], medium, 1, 0, 0, 0, 0, 0, 0}, nil
	case netfn == netfnApp && cmd == cmdGetUserAccess:
		return []byte{0, 10, 1, 0, 0x34}, nil
	case netfn == netfnApp && cmd == cmdGetUserName:
		name := make([]byte, 16)
		copy(name, b.names[int(d[0])])
		return append([]byte{0}, name...), nil
	case netfn == netfnApp && cmd == cmdSetUserName:
		b.names[int(d[0])] = string(bytes.TrimRight(d[1:], "\x00"))
		return []byte{0}, nil
	case netfn == netfnApp && cmd == cmdSetUserPassword:
		switch d[1] {
		case pwSet:
			if len(d) != 18 {
				return []byte{0xc7}, nil
			}
			b.pass[int(d[0])] = string(bytes.TrimRight(d[2:], "\x00"))
		case pwEnable:
			b.enabled[int(d[0])] = true
		}
		return []byte{0}, nil
	case netfn == netfnApp && cmd == cmdSetUserAccess:
		b.access[int(d[1])] = append([]byte(nil), d...)
		return []byte{0}, nil
	case netfn == netfnTransport && cmd == cmdGetLANConfig:
		switch d[1] {
		case 3:
			return []byte{0, 0x11, 10, 77, 1, 21}, nil
		case 5:
			return []byte{0, 0x11, 0x52, 0x54, 0, 0xba, 0x5e, 1}, nil
		}
	}
	return []byte{0xc1}, nil // invalid command
}

func TestCreateBMCUser(t *testing.T) {
	b := newFakeBMC()
	b.lanCh = 2
	got, err := CreateBMCUser(b, "foundry", "Passw0rdPassw0rd")
	if err != nil {
		t.Fatal(err)
	}
	want := agentwire.AgentBMC{Protocol: "ipmi", Address: "10.77.1.21", MAC: "52:54:00:ba:5e:01", Channel: 2, UserID: 3, Username: "foundry", Password: "Passw0rdPassw0rd"}
	if got != want {
		t.Fatalf("CreateBMCUser = %+v, want %+v", got, want)
	}
	if b.names[3] != "foundry" || b.pass[3] != "Passw0rdPassw0rd" || !b.enabled[3] || b.names[2] != "admin" {
		t.Fatalf("BMC after: names %v pass %v enabled %v", b.names, b.pass, b.enabled)
	}
	// Change bits, link auth, IPMI messaging, channel 2; user 3; admin.
	if a := b.access[3]; !bytes.Equal(a, []byte{0x80 | 0x20 | 0x10 | 2, 3, privAdmin}) {
		t.Fatalf("set user access % x", a)
	}

	// Again (a second boot): the same slot, a new password, no new name.
	b.commands = nil
	got, err = CreateBMCUser(b, "foundry", "An0therPassword")
	if err != nil || got.UserID != 3 || b.pass[3] != "An0therPassword" {
		t.Fatalf("second time: %+v, %v, pass %q", got, err, b.pass[3])
	}
	for _, c := range b.commands {
		if c == fmt.Sprintf("06/%02x", cmdSetUserName) {
			t.Fatal("the existing user was renamed")
		}
	}
}

func TestCreateBMCUserRefusals(t *testing.T) {
	full := newFakeBMC()
	for i := 2; i <= 10; i++ {
		full.names[i] = fmt.Sprintf("u%d", i)
	}
	refused := newFakeBMC()
	refused.refuse = cmdSetUserPassword
	for _, c := range []struct {
		name       string
		b          *fakeBMC
		user, pass string
		want       string
	}{
		{"no free slot", full, "foundry", "p", "no free user slot"},
		{"password refused", refused, "foundry", "p", "set password of user 3: completion code 0xd4"},
		{"name too long", newFakeBMC(), strings.Repeat("u", 17), "p", "16 bytes"},
		{"password too long", newFakeBMC(), "foundry", strings.Repeat("p", 17), "16 bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := CreateBMCUser(c.b, c.user, c.pass); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func TestBMCPassword(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		p, err := newBMCPassword(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != BMCPasswordLength || seen[p] || strings.ContainsAny(p, "01lIO") {
			t.Fatalf("password %q", p)
		}
		seen[p] = true
	}
}

// bmcAPI is the harness's appliance with the decisions scripted here and
// the BMC report recorded.
type bmcAPI struct {
	API
	mu        sync.Mutex
	decisions []agentwire.Decision
	reports   []agentwire.AgentBMC
}

func (a *bmcAPI) Decision(ctx context.Context, _ time.Duration) (agentwire.Decision, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.decisions) == 0 {
		return agentwire.Decision{}, errors.New("no more decisions")
	}
	d := a.decisions[0]
	a.decisions = a.decisions[1:]
	return d, nil
}

func (a *bmcAPI) ReportBMC(_ context.Context, b agentwire.AgentBMC) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reports = append(a.reports, b)
	return nil
}

// A wait with bmc_user: the agent creates the user, reports it with the
// password it drew, and goes on to the next decision; without a BMC it
// reports why.
func TestAgentCreatesBMCUserWhenAsked(t *testing.T) {
	ask := agentwire.Decision{Decision: agentwire.KindWait, BMCUser: &agentwire.DecisionBMCUser{Username: "foundry"}}
	for _, c := range []struct {
		name string
		open func() (IPMICloser, error)
		want string
	}{
		{"bmc", nil, ""},
		{"no bmc", func() (IPMICloser, error) { return nil, errors.New("open /dev/ipmi0: no such file or directory") }, "/dev/ipmi0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			fake := newFakeBMC()
			api := &bmcAPI{API: h.agent.API, decisions: []agentwire.Decision{ask, {Decision: agentwire.KindNetboot}}}
			h.agent.API = api
			h.agent.OpenIPMI = c.open
			if h.agent.OpenIPMI == nil {
				h.agent.OpenIPMI = func() (IPMICloser, error) { return fake, nil }
			}
			if err := h.run(t); err != nil {
				t.Fatal(err)
			}
			if h.rebooted != 1 || len(api.reports) != 1 {
				t.Fatalf("rebooted %d, reports %+v", h.rebooted, api.reports)
			}
			r := api.reports[0]
			if c.want != "" {
				if !strings.Contains(r.Error, c.want) || r.Password != "" {
					t.Fatalf("report %+v, want an error with %q", r, c.want)
				}
				return
			}
			if r.Error != "" || r.Username != "foundry" || len(r.Password) != BMCPasswordLength || fake.pass[r.UserID] != r.Password || !fake.closed {
				t.Fatalf("report %+v; BMC passwords %v, closed %v", r, fake.pass, fake.closed)
			}
		})
	}
}
