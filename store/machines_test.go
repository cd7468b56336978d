package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCreateMachine(t *testing.T) {
	db, clk, _ := openTest(t)
	mustCreate(t, db, Machine{MAC: mac(1)})
	seen := clk.Now().Add(-time.Hour)
	tests := []struct {
		name    string
		m       Machine
		a       Audit
		wantErr error
	}{
		{"defaults", Machine{MAC: mac(2), Revision: 7}, admin, nil},
		{"keeps first seen", Machine{MAC: mac(3), FirstSeen: seen, LastSeen: seen}, admin, nil},
		{"temporary", Machine{MAC: mac(4), Temporary: true, ExpiresAt: seen}, admin, nil},
		{"inventory", Machine{MAC: mac(5), Inventory: json.RawMessage(`{"cpu":4}`)}, admin, nil},
		{"duplicate", Machine{MAC: mac(1)}, admin, ErrExists},
		{"upper-case MAC", Machine{MAC: "52:54:00:AB:CD:EF"}, admin, ErrInvalid},
		{"dashed MAC", Machine{MAC: "52-54-00-ab-cd-ef"}, admin, ErrInvalid},
		{"temporary without expiry", Machine{MAC: mac(6), Temporary: true}, admin, ErrInvalid},
		{"unknown cluster", Machine{MAC: mac(6), Cluster: "nope"}, admin, ErrInvalid},
		{"unknown profile", Machine{MAC: mac(6), Profile: "nope"}, admin, ErrInvalid},
		{"bad state", Machine{MAC: mac(6), State: 42}, admin, ErrInvalid},
		{"bad inventory", Machine{MAC: mac(6), Inventory: json.RawMessage(`{`)}, admin, ErrInvalid},
		{"progress over 100", Machine{MAC: mac(6), Progress: 101}, admin, ErrInvalid},
		{"no actor", Machine{MAC: mac(6)}, Audit{Action: "x"}, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.CreateMachine(tt.m, tt.a)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("CreateMachine: %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				if !errors.Is(tt.wantErr, ErrExists) {
					if _, err := db.GetMachine(tt.m.MAC); err == nil {
						t.Error("refused machine was stored")
					}
				}
				return
			}
			if got.Revision != 1 {
				t.Errorf("Revision = %d, want 1", got.Revision)
			}
			wantSeen := tt.m.FirstSeen
			if wantSeen.IsZero() {
				wantSeen = clk.Now()
			}
			if !got.FirstSeen.Equal(wantSeen) || !got.LastSeen.Equal(wantSeen) {
				t.Errorf("FirstSeen, LastSeen = %v, %v; want %v", got.FirstSeen, got.LastSeen, wantSeen)
			}
			stored, err := db.GetMachine(tt.m.MAC)
			if err != nil || stored.Revision != 1 || string(stored.Inventory) != string(tt.m.Inventory) {
				t.Errorf("GetMachine = %+v, %v", stored, err)
			}
			entries, err := db.ListAudit(AuditFilter{MAC: tt.m.MAC})
			if err != nil || len(entries) != 1 || entries[0].Actor != "admin" {
				t.Errorf("audit = %+v, %v; want one entry by admin", entries, err)
			}
		})
	}
}

func TestGetMachineErrors(t *testing.T) {
	db, _, _ := openTest(t)
	for _, tt := range []struct {
		mac  string
		want error
	}{{mac(9), ErrNotFound}, {"", ErrInvalid}, {"nonsense", ErrInvalid}} {
		if _, err := db.GetMachine(tt.mac); !errors.Is(err, tt.want) {
			t.Errorf("GetMachine(%q) = %v, want %v", tt.mac, err, tt.want)
		}
	}
}

func TestListMachinesSortedByMAC(t *testing.T) {
	db, _, _ := openTest(t)
	for _, i := range []int{300, 2, 17, 1} {
		mustCreate(t, db, Machine{MAC: mac(i)})
	}
	ms, err := db.ListMachines()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.MAC)
	}
	want := []string{mac(1), mac(2), mac(17), mac(300)}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("ListMachines = %v, want %v", got, want)
	}
}

func TestUpdateMachine(t *testing.T) {
	db, _, _ := openTest(t)
	mustCreate(t, db, Machine{MAC: mac(1), Hostname: "old"})
	got, err := db.UpdateMachine(mac(1), Audit{Actor: "agent", Action: "register"}, func(m *Machine) error {
		m.Hostname = "new"
		m.State = StateInventoried
		m.Revision = 99 // ignored: the store owns Revision
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Hostname != "new" || got.Revision != 2 || got.State != StateInventoried {
		t.Errorf("UpdateMachine returned %+v", got)
	}
	if stored, _ := db.GetMachine(mac(1)); stored.Hostname != "new" || stored.Revision != 2 {
		t.Errorf("stored %+v", stored)
	}
	entries, err := db.ListAudit(AuditFilter{MAC: mac(1)})
	if err != nil || len(entries) != 2 {
		t.Fatalf("audit = %+v, %v", entries, err)
	}
	if e := entries[0]; e.MAC != mac(1) || e.Actor != "agent" || e.Action != "register" || e.Detail != "state discovered -> inventoried" {
		t.Errorf("newest audit entry = %+v", e)
	}
}

func TestUpdateMachineErrorsChangeNothing(t *testing.T) {
	db, _, _ := openTest(t)
	inv := `{"cpu":{"model":"Xeon"}}`
	orig := mustCreate(t, db, Machine{MAC: mac(1), Hostname: "keep", Inventory: json.RawMessage(inv)})
	errBoom := errors.New("boom")
	tests := []struct {
		name string
		mac  string
		a    Audit
		fn   func(*Machine) error
		want error
	}{
		{"fn error", mac(1), admin, func(m *Machine) error { m.Hostname = "changed"; return errBoom }, errBoom},
		{"MAC change", mac(1), admin, func(m *Machine) error { m.MAC = mac(2); return nil }, ErrInvalid},
		{"bad transition", mac(1), admin, func(m *Machine) error { m.State = StateReady; return nil }, ErrTransition},
		{"temporary without expiry", mac(1), admin, func(m *Machine) error { m.Temporary = true; return nil }, ErrInvalid},
		{"unknown cluster", mac(1), admin, func(m *Machine) error { m.Cluster = "ghost"; return nil }, ErrInvalid},
		{"inventory not JSON", mac(1), admin, func(m *Machine) error { m.Inventory = json.RawMessage(`{"cpu"`); return nil }, ErrInvalid},
		// The bytes read with the record, changed where they are: checked
		// again all the same (checkMachine's stored sum).
		{"inventory broken in place", mac(1), admin, func(m *Machine) error { m.Inventory[0] = '['; return nil }, ErrInvalid},
		{"nil fn", mac(1), admin, nil, ErrInvalid},
		{"no actor", mac(1), Audit{}, func(*Machine) error { return nil }, ErrInvalid},
		{"unknown machine", mac(5), admin, func(*Machine) error { return nil }, ErrNotFound},
		{"bad MAC", "52:54:00:12:34", admin, func(*Machine) error { return nil }, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := db.UpdateMachine(tt.mac, tt.a, tt.fn); !errors.Is(err, tt.want) {
				t.Fatalf("UpdateMachine: %v, want %v", err, tt.want)
			}
			got, err := db.GetMachine(mac(1))
			if err != nil || got.Hostname != "keep" || got.Revision != orig.Revision || got.State != orig.State || string(got.Inventory) != inv {
				t.Errorf("machine changed: %+v, %v", got, err)
			}
			if entries, _ := db.ListAudit(AuditFilter{MAC: mac(1)}); len(entries) != 1 {
				t.Errorf("%d audit entries, want only the create", len(entries))
			}
		})
	}
}

// TestStateTransitions tries every pair of states against CanTransition.
func TestStateTransitions(t *testing.T) {
	db, _, _ := openTest(t)
	i := 0
	for _, from := range States() {
		for _, to := range States() {
			i++
			m := mustCreate(t, db, Machine{MAC: mac(i), State: from})
			t.Run(fmt.Sprintf("%s to %s", from, to), func(t *testing.T) {
				got, err := db.UpdateMachine(m.MAC, admin, func(m *Machine) error { m.State = to; return nil })
				allowed := from == to || from.CanTransition(to)
				if allowed {
					if err != nil || got.State != to {
						t.Fatalf("UpdateMachine = %v, %v; want allowed", got.State, err)
					}
					return
				}
				if !errors.Is(err, ErrTransition) {
					t.Fatalf("UpdateMachine: %v, want ErrTransition", err)
				}
				if !strings.Contains(err.Error(), from.String()) || !strings.Contains(err.Error(), to.String()) {
					t.Errorf("error %q does not name both states", err)
				}
				if stored, _ := db.GetMachine(m.MAC); stored.State != from {
					t.Errorf("state changed to %s", stored.State)
				}
			})
		}
	}
}

func TestConcurrentUpdatesLoseNothing(t *testing.T) {
	db, _, _ := openTest(t)
	mustCreate(t, db, Machine{MAC: mac(1)})
	mustCreate(t, db, Machine{MAC: mac(2)})
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range 2 * n {
		wg.Go(func() {
			_, err := db.UpdateMachine(mac(1+i%2), admin, func(m *Machine) error {
				m.Progress++
				return nil
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, mc := range []string{mac(1), mac(2)} {
		m, err := db.GetMachine(mc)
		if err != nil || m.Progress != n || m.Revision != n+1 {
			t.Errorf("%s: progress %d revision %d (%v); want %d, %d", mc, m.Progress, m.Revision, err, n, n+1)
		}
		if entries, _ := db.ListAudit(AuditFilter{MAC: mc, Limit: 1000}); len(entries) != n+1 {
			t.Errorf("%s: %d audit entries, want %d", mc, len(entries), n+1)
		}
	}
}

func TestDeleteMachine(t *testing.T) {
	db, _, _ := openTest(t)
	mustCreate(t, db, Machine{MAC: mac(1)})
	nonce, err := db.IssueNonce(mac(1), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteMachine(mac(1), Audit{Actor: "admin"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetMachine(mac(1)); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetMachine after delete: %v", err)
	}
	if _, err := db.CheckNonce(nonce); !errors.Is(err, ErrNotFound) {
		t.Errorf("nonce of a deleted machine still valid: %v", err)
	}
	entries, _ := db.ListAudit(AuditFilter{MAC: mac(1)})
	if len(entries) != 2 || entries[0].Action != "delete" {
		t.Errorf("audit after delete = %+v", entries)
	}
	for _, tt := range []struct {
		mac  string
		a    Audit
		want error
	}{{mac(1), admin, ErrNotFound}, {"x", admin, ErrInvalid}, {mac(2), Audit{}, ErrInvalid}} {
		if err := db.DeleteMachine(tt.mac, tt.a); !errors.Is(err, tt.want) {
			t.Errorf("DeleteMachine(%q, %+v) = %v, want %v", tt.mac, tt.a, err, tt.want)
		}
	}
}

// TestUpdateMachineSteps: steps are checked, audited and announced one by
// one but committed once; any failing step writes nothing.
func TestUpdateMachineSteps(t *testing.T) {
	if StateInventoried.CanTransition(StateReady) {
		t.Fatal("inventoried -> ready is allowed: this test needs a transition only two steps make")
	}
	db, _, _ := openTest(t)
	to := func(st State) func(*Machine, *Sessions) error {
		return func(m *Machine, _ *Sessions) error { m.State = st; return nil }
	}
	// The approval binds the registration's inventory, as the API's does.
	inv := json.RawMessage(`{"system":{"vendor":"Supermicro","serial":"SN1"},"cpu":{"cores":8}}`)
	approveAs := func(host string) Step {
		return Step{Audit{Actor: "admin", Action: "approve"}, func(m *Machine, _ *Sessions) error {
			m.State, m.Hostname, m.Inventory = StateApproved, host, inv
			return nil
		}}
	}
	approve := approveAs("web01")
	ready := Step{Audit{Actor: "admin", Action: "ready", Detail: "netboot"}, to(StateReady)}
	errBoom := errors.New("boom")

	inventoried := func(i int) Machine {
		mustCreate(t, db, Machine{MAC: mac(i)})
		m, err := db.UpdateMachine(mac(i), admin, func(m *Machine) error { m.State = StateInventoried; return nil })
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if StateApproved.CanTransition(StateInventoried) {
		t.Fatal("approved -> inventoried is allowed: this test needs a step not allowed after the first")
	}
	orig := inventoried(1)
	for _, tc := range []struct {
		name  string
		steps []Step
		want  error
	}{
		{"none", nil, ErrInvalid},
		{"second fails", []Step{approve, {Audit{Actor: "a", Action: "x"}, func(*Machine, *Sessions) error { return errBoom }}}, errBoom},
		{"second not allowed after the first", []Step{approve, {Audit{Actor: "a", Action: "x"}, to(StateInventoried)}}, ErrTransition},
		{"one step cannot do both", []Step{{Audit{Actor: "a", Action: "x"}, to(StateReady)}}, ErrTransition},
		{"nil step", []Step{approve, {Audit{Actor: "a", Action: "x"}, nil}}, ErrInvalid},
		{"step without actor", []Step{approve, {Audit{Action: "x"}, to(StateReady)}}, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := db.UpdateMachineSteps(mac(1), tc.steps...); !errors.Is(err, tc.want) {
				t.Fatalf("UpdateMachineSteps: %v, want %v", err, tc.want)
			}
			got, _ := db.GetMachine(mac(1))
			if got.Revision != orig.Revision || got.State != StateInventoried || got.Hostname != "" {
				t.Errorf("machine changed: %+v", got)
			}
			if entries, _ := db.ListAudit(AuditFilter{MAC: mac(1)}); len(entries) != 2 {
				t.Errorf("%d audit entries, want the create and the inventory only", len(entries))
			}
		})
	}

	events, stop := db.Subscribe(8)
	defer stop()
	got, err := db.UpdateMachineSteps(mac(1), approve, ready)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != StateReady || got.Hostname != "web01" || got.Revision != orig.Revision+2 {
		t.Errorf("UpdateMachineSteps returned %+v", got)
	}
	if stored, _ := db.GetMachine(mac(1)); stored.State != StateReady || stored.Revision != orig.Revision+2 {
		t.Errorf("stored %+v", stored)
	}
	entries, err := db.ListAudit(AuditFilter{MAC: mac(1)})
	if err != nil || len(entries) != 4 {
		t.Fatalf("audit = %+v, %v", entries, err)
	}
	for i, want := range []struct {
		action, detail string
		rev            uint64
	}{{"ready", "netboot", orig.Revision + 2}, {"approve", "state inventoried -> approved", orig.Revision + 1}} {
		if e := entries[i]; e.Action != want.action || e.Detail != want.detail || e.Revision != want.rev {
			t.Errorf("audit entry %d = %+v, want %s (%q) at revision %d", i, e, want.action, want.detail, want.rev)
		}
	}
	// An event of each step's machine, in order (GitOps commits each).
	for _, want := range []struct {
		state State
		rev   uint64
	}{{StateApproved, orig.Revision + 1}, {StateReady, orig.Revision + 2}} {
		select {
		case ev := <-events:
			if ev.Type != EventUpdated || ev.Machine.State != want.state || ev.Machine.Revision != want.rev || ev.Machine.Hostname != "web01" ||
				ev.Machine.Summary.Vendor != "Supermicro" || ev.Machine.Summary.Cores != 8 {
				t.Errorf("event %s of a %s machine at revision %d (summary %+v), want an update to %s at %d with the bound inventory's summary",
					ev.Type, ev.Machine.State, ev.Machine.Revision, ev.Machine.Summary, want.state, want.rev)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no event of the %s step", want.state)
		}
	}
	select {
	case ev := <-events:
		t.Errorf("a third event: %s of a %s machine", ev.Type, ev.Machine.State)
	case <-time.After(100 * time.Millisecond):
	}

	// A quiet step that keeps the state is not audited; its revision
	// still counts.
	orig = inventoried(2)
	quiet := Step{Audit{Actor: "agent", Action: "progress"}, func(m *Machine, ss *Sessions) error { ss.Quiet(); m.Progress = 5; return nil }}
	if got, err := db.UpdateMachineSteps(mac(2), quiet, approveAs("web02")); err != nil || got.Revision != orig.Revision+2 {
		t.Fatalf("quiet then approve: %+v, %v", got, err)
	}
	if entries, _ := db.ListAudit(AuditFilter{MAC: mac(2)}); len(entries) != 3 || entries[0].Action != "approve" || entries[1].Action != admin.Action {
		t.Errorf("audit after a quiet step: %+v, want the create, the inventory and the approval", entries)
	}
}
