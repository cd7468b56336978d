package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/api/client"
	"github.com/foundry-appliance/foundry/store"
)

// TestConcurrentWrongTokensCompareAtMostFive: 40 wrong tokens sent at once
// (approve and verify-token mixed) get exactly five comparisons — five 422s,
// five approve-denied audit entries, a failure count of five — and 423 for
// all the rest; the right token is then locked out too.
func TestConcurrentWrongTokensCompareAtMostFive(t *testing.T) {
	e := newEnv(t)
	e.setup()
	a := e.inventoried(macA)
	ctx := context.Background()
	const n = 40
	codes := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			wrong := fmt.Sprintf("FOUNDRY-AAAA-AAAA-%04d", i)
			var err error
			if i%2 == 0 {
				_, err = e.admin.Approve(ctx, macA, api.ApproveRequest{Token: wrong, Cluster: "rack1"})
			} else {
				_, err = e.admin.VerifyToken(ctx, macA, wrong)
			}
			codes[i] = client.StatusOf(err)
		}()
	}
	close(start)
	wg.Wait()
	count := map[int]int{}
	for _, c := range codes {
		count[c]++
	}
	if count[http.StatusUnprocessableEntity] != 5 || count[http.StatusLocked] != n-5 {
		t.Fatalf("statuses %v, want five 422 and %d 423", count, n-5)
	}
	if f := e.sessions(macA)[0].Token.Failures; f != 5 {
		t.Fatalf("failure count %d, want 5", f)
	}
	denied, err := e.admin.ListAudit(ctx, client.AuditOptions{MAC: macA, Action: "approve-denied"})
	if err != nil || len(denied.Items) != 5 {
		t.Fatalf("approve-denied entries: %+v %v", denied, err)
	}
	attempts := map[string]bool{}
	for _, d := range denied.Items {
		attempts[d.Detail] = true
	}
	for i := 1; i <= 5; i++ {
		found := false
		for d := range attempts {
			found = found || strings.Contains(d, fmt.Sprintf("(%d of 5)", i))
		}
		if !found {
			t.Errorf("no audit entry for attempt %d: %v", i, attempts)
		}
	}
	if _, err := e.admin.Approve(ctx, macA, api.ApproveRequest{Token: a.tok.Value, Cluster: "rack1"}); client.StatusOf(err) != http.StatusLocked {
		t.Fatalf("right token after the lockout: %v", err)
	}
}

// TestRightTokenAmongWrongOnes: a right token is never refused for a race
// it did not lose (it is checked whenever fewer than five wrong ones were
// counted), and writes no denial.
func TestRightTokenAmongWrongOnes(t *testing.T) {
	e := newEnv(t)
	e.setup()
	a := e.inventoried(macA)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.admin.VerifyToken(ctx, macA, fmt.Sprintf("FOUNDRY-BBBB-BBBB-%04d", i))
		}()
	}
	check, err := e.admin.VerifyToken(ctx, macA, a.tok.Value)
	wg.Wait()
	if err != nil || !check.Valid {
		t.Fatalf("right token with three wrong ones beside it: %+v %v", check, err)
	}
	if f := e.sessions(macA)[0].Token.Failures; f != 3 {
		t.Fatalf("failure count %d, want 3", f)
	}
}

// TestRevokedTokenEndsItsStream: a viewer's open event stream ends within
// a few seconds of the viewer's token being revoked, idle or not, and
// carries no event committed after the revocation; another token's stream
// goes on.
func TestRevokedTokenEndsItsStream(t *testing.T) {
	e := newEnv(t)
	e.setup()
	e.inventoried(macA)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type event struct{ name, data string }
	open := func(secret string) <-chan event {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.ts.URL+api.Prefix+"/events", nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("open stream: %v %v", resp, err)
		}
		out := make(chan event, 64)
		go func() {
			defer resp.Body.Close()
			defer close(out)
			events := client.NewEventReader(resp.Body)
			for {
				ev, err := events.Next()
				if err != nil {
					return
				}
				out <- event{name: ev.Type, data: ev.Data}
			}
		}()
		if ev := <-out; ev.name != "ping" {
			t.Fatalf("first event %+v", ev)
		}
		return out
	}
	change := func(ip string) {
		if _, err := e.db.UpdateMachine(macA, store.Audit{Actor: "test"}, func(m *store.Machine) error { m.IP = ip; return nil }); err != nil {
			t.Fatal(err)
		}
	}

	for _, busy := range []bool{false, true} {
		t.Run(map[bool]string{false: "idle", true: "busy"}[busy], func(t *testing.T) {
			name := fmt.Sprintf("watcher-%v", busy)
			secret := e.token(name, store.RoleViewer)
			watched := open(secret)
			other := open(e.viewer.Token)
			if err := e.admin.RevokeToken(ctx, "id-"+name); err != nil {
				t.Fatal(err)
			}
			revoked := time.Now()
			if busy {
				change("10.77.0.111")
			}
			for ev := range watched {
				if ev.name == "machine" {
					t.Fatalf("the revoked token's stream got an event: %s", ev.data)
				}
			}
			took := time.Since(revoked)
			t.Logf("stream ended %v after the revocation", took)
			if took > 4*time.Second {
				t.Errorf("stream ended %v after the revocation, want within 4s", took)
			}
			change("10.77.0.112")
			select {
			case ev := <-other:
				if ev.name != "machine" {
					t.Fatalf("other stream: %+v", ev)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the other token's stream ended or got nothing")
			}
		})
	}
}
