package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestClusterLifecycle(t *testing.T) {
	db, clk, _ := openTest(t)
	if _, err := db.CreateProfile(Profile{Name: "deb", Kind: ProfileNetboot}, admin); err != nil {
		t.Fatal(err)
	}
	created, err := db.CreateCluster(Cluster{Name: "prod", DefaultProfile: "deb"}, admin)
	if err != nil {
		t.Fatal(err)
	}
	if !created.CreatedAt.Equal(clk.Now()) || !created.UpdatedAt.Equal(clk.Now()) {
		t.Errorf("times %v %v, want %v", created.CreatedAt, created.UpdatedAt, clk.Now())
	}
	if _, err := db.CreateCluster(Cluster{Name: "dev"}, admin); err != nil {
		t.Fatal(err)
	}
	if cs, err := db.ListClusters(); err != nil || len(cs) != 2 || cs[0].Name != "dev" || cs[1].Name != "prod" {
		t.Errorf("ListClusters = %+v, %v", cs, err)
	}
	clk.Add(time.Minute)
	up, err := db.UpdateCluster("prod", admin, func(c *Cluster) error { c.Description = "production"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := db.GetCluster("prod"); got.Description != "production" || !got.UpdatedAt.Equal(clk.Now()) ||
		!got.CreatedAt.Equal(created.CreatedAt) || got != up {
		t.Errorf("after update: %+v (returned %+v)", got, up)
	}
	errBoom := errors.New("boom")
	for name, tt := range map[string]struct {
		fn   func(*Cluster) error
		want error
	}{
		"rename":          {func(c *Cluster) error { c.Name = "other"; return nil }, ErrInvalid},
		"fn error":        {func(c *Cluster) error { c.Description = "lost"; return errBoom }, errBoom},
		"unknown default": {func(c *Cluster) error { c.DefaultProfile = "ghost"; return nil }, ErrInvalid},
		"long text":       {func(c *Cluster) error { c.Description = string(make([]byte, maxText+1)); return nil }, ErrInvalid},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := db.UpdateCluster("prod", admin, tt.fn); !errors.Is(err, tt.want) {
				t.Errorf("UpdateCluster = %v, want %v", err, tt.want)
			}
			if got, _ := db.GetCluster("prod"); got != up {
				t.Errorf("cluster changed: %+v", got)
			}
		})
	}
	if err := db.DeleteCluster("dev", admin); err != nil {
		t.Fatal(err)
	}
	entries, _ := db.ListAudit(AuditFilter{Action: "test"})
	if len(entries) != 5 || entries[0].Detail != "cluster dev" || entries[0].MAC != "" {
		t.Errorf("cluster audit entries = %+v", entries)
	}
}

func TestClusterAndProfileErrors(t *testing.T) {
	db, _, _ := openTest(t)
	if _, err := db.CreateProfile(Profile{Name: "p", Kind: ProfileImage}, admin); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateCluster(Cluster{Name: "c"}, admin); err != nil {
		t.Fatal(err)
	}
	nop := func(*Cluster) error { return nil }
	nopP := func(*Profile) error { return nil }
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"create cluster twice", func() error { _, err := db.CreateCluster(Cluster{Name: "c"}, admin); return err }, ErrExists},
		{"create cluster empty name", func() error { _, err := db.CreateCluster(Cluster{}, admin); return err }, ErrInvalid},
		{"create cluster bad name", func() error { _, err := db.CreateCluster(Cluster{Name: "a/b"}, admin); return err }, ErrInvalid},
		{"create cluster unknown default", func() error {
			_, err := db.CreateCluster(Cluster{Name: "d", DefaultProfile: "nope"}, admin)
			return err
		}, ErrInvalid},
		{"create cluster no actor", func() error { _, err := db.CreateCluster(Cluster{Name: "e"}, Audit{}); return err }, ErrInvalid},
		{"get unknown cluster", func() error { _, err := db.GetCluster("x"); return err }, ErrNotFound},
		{"update unknown cluster", func() error { _, err := db.UpdateCluster("x", admin, nop); return err }, ErrNotFound},
		{"delete unknown cluster", func() error { return db.DeleteCluster("x", admin) }, ErrNotFound},
		{"create profile twice", func() error { _, err := db.CreateProfile(Profile{Name: "p", Kind: ProfileImage}, admin); return err }, ErrExists},
		{"create profile no kind", func() error { _, err := db.CreateProfile(Profile{Name: "q"}, admin); return err }, ErrInvalid},
		{"create profile bad kind", func() error { _, err := db.CreateProfile(Profile{Name: "q", Kind: "pxe"}, admin); return err }, ErrInvalid},
		{"get unknown profile", func() error { _, err := db.GetProfile("x"); return err }, ErrNotFound},
		{"update unknown profile", func() error { _, err := db.UpdateProfile("x", admin, nopP); return err }, ErrNotFound},
		{"rename profile", func() error {
			_, err := db.UpdateProfile("p", admin, func(p *Profile) error { p.Name = "z"; return nil })
			return err
		}, ErrInvalid},
		{"profile kind emptied", func() error {
			_, err := db.UpdateProfile("p", admin, func(p *Profile) error { p.Kind = ""; return nil })
			return err
		}, ErrInvalid},
		{"delete unknown profile", func() error { return db.DeleteProfile("x", admin) }, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
	if ps, _ := db.ListProfiles(); len(ps) != 1 || ps[0].Kind != ProfileImage {
		t.Errorf("profiles = %+v", ps)
	}
	if cs, _ := db.ListClusters(); len(cs) != 1 {
		t.Errorf("clusters = %+v", cs)
	}
}

func TestDeleteInUse(t *testing.T) {
	db, _, _ := openTest(t)
	for _, p := range []string{"used-by-machine", "cluster-default", "free"} {
		if _, err := db.CreateProfile(Profile{Name: p, Kind: ProfileNetboot}, admin); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.CreateCluster(Cluster{Name: "prod", DefaultProfile: "cluster-default"}, admin); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, db, Machine{MAC: mac(1), Cluster: "prod", Profile: "used-by-machine"})

	for _, tt := range []struct {
		name string
		del  func() error
		want error
	}{
		{"cluster with a machine", func() error { return db.DeleteCluster("prod", admin) }, ErrInUse},
		{"profile of a machine", func() error { return db.DeleteProfile("used-by-machine", admin) }, ErrInUse},
		{"default profile of a cluster", func() error { return db.DeleteProfile("cluster-default", admin) }, ErrInUse},
		{"unused profile", func() error { return db.DeleteProfile("free", admin) }, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.del(); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
	// Once the references are gone, deletion is allowed.
	if _, err := db.UpdateMachine(mac(1), admin, func(m *Machine) error { m.Cluster, m.Profile = "", ""; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateCluster("prod", admin, func(c *Cluster) error { c.DefaultProfile = ""; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, del := range []func() error{
		func() error { return db.DeleteCluster("prod", admin) },
		func() error { return db.DeleteProfile("used-by-machine", admin) },
		func() error { return db.DeleteProfile("cluster-default", admin) },
	} {
		if err := del(); err != nil {
			t.Error(err)
		}
	}
}

// TestDeleteRacesReference runs a profile delete against machine creates
// that reference it: whatever the interleaving, no machine may end up
// naming a profile that no longer exists.
func TestDeleteRacesReference(t *testing.T) {
	db, _, _ := openTest(t)
	for round := range 10 {
		name := fmt.Sprintf("p%d", round)
		if _, err := db.CreateProfile(Profile{Name: name, Kind: ProfileNetboot}, admin); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				m := Machine{MAC: mac(round*10 + i), Profile: name}
				if _, err := db.CreateMachine(m, admin); err != nil && !errors.Is(err, ErrInvalid) {
					t.Error(err)
				}
			})
		}
		wg.Go(func() {
			if err := db.DeleteProfile(name, admin); err != nil && !errors.Is(err, ErrInUse) {
				t.Error(err)
			}
		})
		wg.Wait()
		_, perr := db.GetProfile(name)
		ms, err := db.ListMachines()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.Profile == name && errors.Is(perr, ErrNotFound) {
				t.Fatalf("round %d: machine %s names deleted profile %s", round, m.MAC, name)
			}
		}
	}
}
