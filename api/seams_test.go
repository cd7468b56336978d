package api_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/store"
)

// failingStore is the real store with chosen calls failing as a broken disk
// would make them fail.
type failingStore struct {
	api.Store
	getCluster, update error
}

func (f *failingStore) GetCluster(name string) (store.Cluster, error) {
	if f.getCluster != nil {
		return store.Cluster{}, f.getCluster
	}
	return f.Store.GetCluster(name)
}

func (f *failingStore) UpdateMachine(mac string, a store.Audit, fn func(*store.Machine) error) (store.Machine, error) {
	if f.update != nil && a.Action == "approve" {
		return store.Machine{}, f.update
	}
	return f.Store.UpdateMachine(mac, a, fn)
}

func (f *failingStore) UpdateMachineSessions(mac string, a store.Audit, fn func(*store.Machine, *store.Sessions) error) (store.Machine, error) {
	if f.update != nil && a.Action == "approve" {
		return store.Machine{}, f.update
	}
	return f.Store.UpdateMachineSessions(mac, a, fn)
}

func (f *failingStore) UpdateMachineSteps(mac string, steps ...store.Step) (store.Machine, error) {
	if f.update != nil && steps[0].Audit.Action == "approve" {
		return store.Machine{}, f.update
	}
	return f.Store.UpdateMachineSteps(mac, steps...)
}

// A store failure during approval is a 500 problem (it used to panic the
// handler), and the machine is left as it was.
func TestApproveStoreFailure(t *testing.T) {
	diskErr := errors.New("badger: write /var/lib/foundry/000042.vlog: input/output error")
	for _, tc := range []struct {
		name string
		fs   failingStore
	}{
		{"cluster read fails", failingStore{getCluster: diskErr}},
		{"approval write fails", failingStore{update: diskErr}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := tc.fs
			e := newEnv(t, func(s *api.Server) { fs.Store = s.Store; s.Store = &fs })
			e.setup()
			a := e.inventoried("52:54:00:00:07:01")
			before := e.machine(a.mac)
			code, body := e.raw(http.MethodPost, "/machines/"+a.mac+"/approve",
				map[string]any{"token": a.tok.Value, "cluster": "rack2", "hostname": "web01"},
				map[string]string{"Authorization": "Bearer " + e.adminToken})
			if code != http.StatusInternalServerError {
				t.Fatalf("status %d, want 500: %s", code, body)
			}
			if p := problem(t, body); p.Status != 500 || strings.Contains(body, "input/output") {
				t.Errorf("problem %+v (the store's error belongs in the log, not the answer)", p)
			}
			if after := e.machine(a.mac); after.Revision != before.Revision || after.State != store.StateInventoried {
				t.Errorf("machine changed: revision %d -> %d, state %s", before.Revision, after.Revision, after.State)
			}
		})
	}
}

// Two administrators approving two machines with one host name (or one
// static address) at the same moment: exactly one wins; the other gets a
// problem naming the field, and its machine stays inventoried.
func TestConcurrentApprovalsAreUnique(t *testing.T) {
	for _, tc := range []struct {
		field string
		body  func(i int) map[string]any
	}{
		{"body.hostname", func(i int) map[string]any {
			return map[string]any{"cluster": "rack2", "hostname": "web01"}
		}},
		{"body.network.address", func(i int) map[string]any {
			return map[string]any{"cluster": "rack2", "hostname": fmt.Sprintf("node-%d", i),
				"network": map[string]any{"mode": "static", "address": "10.77.0.50/24"}}
		}},
	} {
		t.Run(tc.field, func(t *testing.T) {
			e := newEnv(t)
			e.setup()
			const n = 8
			agents := make([]*agent, n)
			for i := range agents {
				agents[i] = e.inventoried(fmt.Sprintf("52:54:00:00:08:%02x", i))
			}
			codes, bodies := make([]int, n), make([]string, n)
			var wg sync.WaitGroup
			for i, a := range agents {
				wg.Add(1)
				go func() {
					defer wg.Done()
					body := tc.body(i)
					body["token"] = a.tok.Value
					codes[i], bodies[i] = e.raw(http.MethodPost, "/machines/"+a.mac+"/approve", body,
						map[string]string{"Authorization": "Bearer " + e.adminToken})
				}()
			}
			wg.Wait()
			won := 0
			for i, a := range agents {
				switch codes[i] {
				case http.StatusOK:
					won++
				case http.StatusUnprocessableEntity:
					if p := problem(t, bodies[i]); !hasLocation(p, tc.field) {
						t.Errorf("%s: problem does not name %s: %s", a.mac, tc.field, bodies[i])
					}
					if m := e.machine(a.mac); m.State != store.StateInventoried {
						t.Errorf("%s lost but is %s", a.mac, m.State)
					}
				default:
					t.Errorf("%s: status %d: %s", a.mac, codes[i], bodies[i])
				}
			}
			if won != 1 {
				t.Fatalf("%d approvals won, want exactly 1", won)
			}
		})
	}
}
