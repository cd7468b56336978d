package store

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestExpireMachines(t *testing.T) {
	db, clk, _ := openTest(t)
	now := clk.Now()
	machines := []struct {
		m      Machine
		expire bool
	}{
		{Machine{MAC: mac(1), Temporary: true, ExpiresAt: now.Add(-time.Hour)}, true},
		{Machine{MAC: mac(2), Temporary: true, ExpiresAt: now}, true}, // due at exactly now
		{Machine{MAC: mac(3), Temporary: true, ExpiresAt: now.Add(time.Second)}, false},
		{Machine{MAC: mac(4), Temporary: false, ExpiresAt: now.Add(-time.Hour)}, false}, // approved: permanent
		{Machine{MAC: mac(5)}, false},
	}
	var want []string
	for _, tt := range machines {
		mustCreate(t, db, tt.m)
		if tt.expire {
			want = append(want, tt.m.MAC)
		}
	}
	events, cancel := db.Subscribe(10)
	defer cancel()

	gone, err := db.ExpireMachines()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range gone {
		got = append(got, m.MAC)
	}
	if !slices.Equal(got, want) {
		t.Errorf("expired %v, want %v", got, want)
	}
	for _, tt := range machines {
		_, err := db.GetMachine(tt.m.MAC)
		if exists := err == nil; exists == tt.expire {
			t.Errorf("%s: exists=%v after expiry (%v)", tt.m.MAC, exists, err)
		}
		entries, _ := db.ListAudit(AuditFilter{MAC: tt.m.MAC, Actor: "system", Action: "expire"})
		if (len(entries) == 1) != tt.expire {
			t.Errorf("%s: %d expiry audit entries", tt.m.MAC, len(entries))
		}
	}
	for _, mc := range want {
		ev := <-events
		if ev.Type != EventDeleted || ev.Machine.MAC != mc {
			t.Errorf("event %s %s, want deleted %s", ev.Type, ev.Machine.MAC, mc)
		}
	}
	if again, err := db.ExpireMachines(); err != nil || len(again) != 0 {
		t.Errorf("second ExpireMachines = %v, %v; want nothing", again, err)
	}

	// Time passes: the third machine becomes due.
	clk.Add(time.Second)
	gone, err = db.ExpireMachines()
	if err != nil || len(gone) != 1 || gone[0].MAC != mac(3) {
		t.Errorf("after a second: %+v, %v", gone, err)
	}
}

func TestRunExpiry(t *testing.T) {
	db, clk, _ := openTest(t)
	mustCreate(t, db, Machine{MAC: mac(1), Temporary: true, ExpiresAt: clk.Now().Add(time.Minute)})
	nonce, err := db.IssueNonce(mac(2), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- db.RunExpiry(ctx, 10*time.Millisecond) }()

	clk.Add(2 * time.Minute)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := db.GetMachine(mac(1))
		if errors.Is(err, ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("RunExpiry did not expire the machine")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("RunExpiry returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunExpiry did not stop when its context ended")
	}
	// The expired nonce was swept from storage, not only refused.
	if n, err := db.sweepNonces(); err != nil || n != 0 {
		t.Errorf("sweep after RunExpiry found %d expired nonces (%v)", n, err)
	}
	if _, err := db.CheckNonce(nonce); !errors.Is(err, ErrNotFound) {
		t.Errorf("CheckNonce of expired nonce: %v", err)
	}
}
