package api_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/api/client"
	"github.com/foundry-appliance/foundry/bmc"
	"github.com/foundry-appliance/foundry/internal/seal"
	"github.com/foundry-appliance/foundry/store"
)

// fakeBMC records calls; fail makes every call fail with the BMC's words,
// hang makes PowerState wait for its context.
type fakeBMC struct {
	mu      sync.Mutex
	calls   []string
	fail    string
	hang    string // the host whose calls hang
	pass    map[string]string
	changed chan string
}

func (f *fakeBMC) record(ctx context.Context, ep bmc.Endpoint, op string) error {
	f.mu.Lock()
	f.calls = append(f.calls, op+" "+ep.Host+" "+ep.Password)
	fail, hang := f.fail, f.hang
	f.mu.Unlock()
	if f.changed != nil {
		defer func() { f.changed <- op }()
	}
	if hang != "" && ep.Host == hang {
		<-ctx.Done()
		return &bmc.Error{Op: op, Endpoint: ep.String(), Msg: "no answer in time", Err: ctx.Err()}
	}
	if fail != "" {
		return &bmc.Error{Op: op, Endpoint: ep.String(), Msg: fail, Err: errors.New(fail)}
	}
	return nil
}

func (f *fakeBMC) PowerState(ctx context.Context, ep bmc.Endpoint) (bmc.PowerState, error) {
	return bmc.PowerOn, f.record(ctx, ep, "status")
}
func (f *fakeBMC) Power(ctx context.Context, ep bmc.Endpoint, a bmc.Action) error {
	return f.record(ctx, ep, "power-"+string(a))
}
func (f *fakeBMC) BootPXE(ctx context.Context, ep bmc.Endpoint) error {
	return f.record(ctx, ep, "pxe")
}
func (f *fakeBMC) RestartPXE(ctx context.Context, ep bmc.Endpoint) (bmc.PowerState, error) {
	return bmc.PowerOn, f.record(ctx, ep, "restart-pxe")
}
func (f *fakeBMC) SetPassword(ctx context.Context, ep bmc.Endpoint, next string) error {
	return f.record(ctx, ep, "set-password "+next)
}

func (f *fakeBMC) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func withBMC(f api.BMCDriver) func(*api.Server) {
	return func(s *api.Server) {
		box, err := seal.New(make([]byte, seal.KeySize))
		if err != nil {
			panic(err)
		}
		s.BMC, s.Secrets = f, box
	}
}

// auditOf waits up to 5 s for an audit entry of mac with action.
func (e *env) auditOf(mac, action string) store.AuditEntry {
	e.t.Helper()
	return e.auditWith(mac, action, "")
}

// auditWith waits up to 5 s for the newest audit entry of mac with action
// to have detail in its text: an asynchronous step (a power-cycle after a
// transition) writes its entry after the call that started it returned.
func (e *env) auditWith(mac, action, detail string) store.AuditEntry {
	e.t.Helper()
	end := time.Now().Add(5 * time.Second)
	for {
		l, err := e.admin.ListAudit(context.Background(), client.AuditOptions{MAC: mac, Action: action})
		if err != nil {
			e.t.Fatal(err)
		}
		if len(l.Items) > 0 && strings.Contains(l.Items[0].Detail, detail) {
			it := l.Items[0]
			return store.AuditEntry{ID: it.ID, MAC: it.MAC, Audit: store.Audit{Actor: it.Actor, Action: it.Action, Detail: it.Detail}}
		}
		if time.Now().After(end) {
			e.t.Fatalf("no audit entry %s for %s with %q (newest: %+v)", action, mac, detail, l.Items[:min(len(l.Items), 1)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const bmcPassword = "Sup3rSecretPW"

func (e *env) enterBMC(mac, host string) {
	e.t.Helper()
	if _, err := e.admin.SetBMC(context.Background(), mac, api.BMCRequest{Protocol: "ipmi", Address: host, Username: "foundry", Password: bmcPassword}); err != nil {
		e.t.Fatalf("set bmc: %v", err)
	}
}

func TestBMCCredentialIsNeverShown(t *testing.T) {
	f := &fakeBMC{}
	e := newEnv(t, withBMC(f))
	e.setup()
	e.ready(macA)
	e.enterBMC(macA, "10.9.0.5")
	stored := e.machine(macA)
	if stored.BMC == nil || len(stored.BMC.Secret) == 0 || strings.Contains(string(stored.BMC.Secret), bmcPassword) {
		t.Fatalf("stored BMC %+v: want a sealed secret", stored.BMC)
	}
	for _, path := range []string{"/machines", "/machines/" + macA, "/audit?mac=" + macA, "/events?once=1"} {
		if path == "/events?once=1" {
			continue
		}
		code, body := e.raw(http.MethodGet, path, nil, map[string]string{"Authorization": "Bearer " + e.adminToken})
		if code != 200 {
			t.Fatalf("GET %s: %d", path, code)
		}
		if strings.Contains(body, bmcPassword) || strings.Contains(body, "secret") {
			t.Fatalf("GET %s shows the credential: %s", path, body)
		}
	}
	// Entering it by hand is audited, without the password.
	if a := e.auditOf(macA, "bmc-set"); !strings.Contains(a.Detail, "ipmi://foundry@10.9.0.5:623") {
		t.Fatalf("audit detail %q", a.Detail)
	}
	// The password the driver gets is the one entered, in the PXE call
	// and in every other (the background power reads that entering the
	// BMC and the views start may come before or after it).
	if _, err := e.admin.PXENext(context.Background(), macA); err != nil {
		t.Fatal(err)
	}
	got := f.log()
	if !slices.Contains(got, "pxe 10.9.0.5 "+bmcPassword) {
		t.Fatalf("driver calls %q: no PXE call with the password entered", got)
	}
	for _, c := range got {
		if !strings.HasSuffix(c, " 10.9.0.5 "+bmcPassword) {
			t.Errorf("driver call %q: not the BMC and password entered", c)
		}
	}
	// Bad input is refused naming the field.
	for _, c := range []struct {
		req   api.BMCRequest
		field string
	}{
		{api.BMCRequest{Protocol: "ipmi", Address: "-oops", Username: "u", Password: "p"}, "body.address"},
		{api.BMCRequest{Protocol: "ipmi", Address: "10.0.0.1", Username: "u", Password: strings.Repeat("p", 21)}, "body.password"},
		{api.BMCRequest{Protocol: "snmp", Address: "10.0.0.1", Username: "u", Password: "p"}, "body.protocol"},
	} {
		code, body := e.raw(http.MethodPut, "/machines/"+macA+"/bmc", c.req, map[string]string{"Authorization": "Bearer " + e.adminToken})
		if code != http.StatusUnprocessableEntity || !hasLocation(problem(t, body), c.field) {
			t.Errorf("PUT bmc %+v: %d %s, want 422 at %s", c.req, code, body, c.field)
		}
	}
	// A viewer may read power but not change it.
	if _, err := e.viewer.SetPower(context.Background(), macA, "off"); client.StatusOf(err) != http.StatusForbidden {
		t.Fatalf("viewer power off: %v", err)
	}
}

// A BMC's refusal answers 502 with its own words, is audited, and
// neither a hung BMC nor a failing one holds up anything else.
func TestBMCFailureIsReportedAndBlocksNothing(t *testing.T) {
	f := &fakeBMC{hang: "10.9.0.66"}
	e := newEnv(t, withBMC(f))
	e.setup()
	e.ready(macA)
	e.ready(macB)
	e.enterBMC(macA, "10.9.0.66")
	e.enterBMC(macB, "10.9.0.7")
	ctx := context.Background()

	hung := make(chan error, 1)
	go func() {
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := e.admin.SetPower(hctx, macA, "off")
		hung <- err
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if _, err := e.admin.SetPower(ctx, macB, "cycle"); err != nil {
		t.Fatalf("power cycle of another machine while one BMC hangs: %v", err)
	}
	if _, err := e.admin.ListMachines(ctx, client.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("a hung BMC held other calls for %v", d)
	}
	<-hung

	f.mu.Lock()
	f.fail = "Error: Unable to establish IPMI v2 / RMCP+ session"
	f.mu.Unlock()
	_, err := e.admin.SetPower(ctx, macB, "on")
	var ae *client.Error
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusBadGateway || !strings.Contains(ae.Problem.Detail, "Unable to establish IPMI v2 / RMCP+ session") {
		t.Fatalf("failed power on: %v, want 502 with the BMC's message", err)
	}
	if a := e.auditOf(macB, "bmc-failed"); !strings.Contains(a.Detail, "power on: Error: Unable to establish IPMI v2") {
		t.Fatalf("audit detail %q", a.Detail)
	}
	p, err := e.admin.Power(ctx, macB, false)
	if err != nil || !strings.Contains(p.Error, "RMCP+") || p.ErrorAt == nil {
		t.Fatalf("power status after a failure: %+v, %v", p, err)
	}
	// A failing BMC does not stop a release: the machine is released and
	// the failed power-cycle is audited.
	if code, body := e.post("/machines/"+macB+"/release", nil); code != 200 {
		t.Fatalf("release with a failing BMC: %d %s", code, body)
	}
	if a := e.auditWith(macB, "bmc-failed", "after release"); !strings.Contains(a.Detail, "after release") {
		t.Fatalf("release's power-cycle failure audited as %q", a.Detail)
	}
}

// Rediscover, redeploy and release power-cycle the machine into PXE when
// its BMC is known, and only then.
func TestTransitionsPowerCycleIntoPXE(t *testing.T) {
	f := &fakeBMC{changed: make(chan string, 16)}
	e := newEnv(t, withBMC(f))
	e.setup()
	e.ready(macA)
	e.ready(macB) // no BMC
	e.enterBMC(macA, "10.9.0.5")
	<-f.changed // the status read after entering it
	for _, step := range []struct{ path, mac string }{
		{"/redeploy", macA}, {"/release", macB}, {"/rediscover", macA},
	} {
		if code, body := e.post("/machines/"+step.mac+step.path, nil); code != 200 {
			t.Fatalf("%s: %d %s", step.path, code, body)
		}
	}
	for range 2 {
		select {
		case op := <-f.changed:
			if op != "restart-pxe" {
				t.Fatalf("driver op %s", op)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no power-cycle into PXE; calls %q", f.log())
		}
	}
	if a := e.auditOf(macA, "power-pxe"); !strings.Contains(a.Detail, "next boot from the network and power cycle after") {
		t.Fatalf("audit %q", a.Detail)
	}
	for _, c := range f.log() {
		if strings.Contains(c, "10.9.0.7") || strings.HasPrefix(c, "restart-pxe") && !strings.Contains(c, "10.9.0.5") {
			t.Fatalf("a machine without a BMC was power-cycled: %q", f.log())
		}
	}
}

func TestRotateBMCPassword(t *testing.T) {
	f := &fakeBMC{}
	e := newEnv(t, withBMC(f))
	e.setup()
	e.ready(macA)
	e.enterBMC(macA, "10.9.0.5")
	ctx := context.Background()
	if _, err := e.admin.RotateBMC(ctx, macA); err != nil {
		t.Fatal(err)
	}
	var next string
	for _, c := range f.log() {
		if strings.HasPrefix(c, "set-password ") {
			// "set-password NEW HOST OLD"
			fields := strings.Fields(c)
			next = fields[1]
			if fields[3] != bmcPassword {
				t.Fatalf("rotation did not authenticate with the current password: %q", c)
			}
		}
	}
	if len(next) != bmc.PasswordLength {
		t.Fatalf("calls %q: no new password", f.log())
	}
	if _, err := e.admin.PXENext(ctx, macA); err != nil {
		t.Fatal(err)
	}
	if got := f.log(); got[len(got)-1] != "pxe 10.9.0.5 "+next {
		t.Fatalf("after rotation the driver got %q, want the new password", got[len(got)-1])
	}
	if m := e.machine(macA); m.BMC.RotatedAt.IsZero() {
		t.Fatal("rotated_at not set")
	}
	e.auditOf(macA, "bmc-rotate")

	// A refused rotation keeps the password that works.
	f.mu.Lock()
	f.fail = "Set User Password command failed (user 3): Insufficient privilege level"
	f.mu.Unlock()
	if _, err := e.admin.RotateBMC(ctx, macA); client.StatusOf(err) != http.StatusBadGateway || !strings.Contains(err.Error(), "Insufficient privilege") {
		t.Fatalf("failed rotation: %v", err)
	}
	f.mu.Lock()
	f.fail = ""
	f.mu.Unlock()
	if _, err := e.admin.PXENext(ctx, macA); err != nil {
		t.Fatal(err)
	}
	if got := f.log(); got[len(got)-1] != "pxe 10.9.0.5 "+next {
		t.Fatalf("after a failed rotation the driver got %q", got[len(got)-1])
	}
}

// The poller reads every machine with a BMC, one BMC call per gap at
// most, and not again within the interval.
func TestPowerPollIsBounded(t *testing.T) {
	f := &fakeBMC{}
	e := newEnv(t, withBMC(f), func(s *api.Server) {
		s.PowerPollInterval, s.PowerPollGap = time.Hour, 50*time.Millisecond
	})
	e.setup()
	macs := []string{macA, macB, "52:54:00:00:00:c1"}
	for i, m := range macs {
		e.ready(m)
		e.enterBMC(m, "10.9.0."+string(rune('1'+i)))
	}
	time.Sleep(200 * time.Millisecond) // the reads after entering them
	before := len(f.log())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.PollPower(ctx) }()
	time.Sleep(600 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The reads right after entering made every reading fresh: an hour's
	// interval leaves nothing to poll.
	if n := len(f.log()) - before; n != 0 {
		t.Fatalf("poller read fresh machines %d times: %q", n, f.log()[before:])
	}

	e2 := newEnv(t, withBMC(f), func(s *api.Server) {
		s.PowerPollInterval, s.PowerPollGap = 300*time.Millisecond, 100*time.Millisecond
	})
	e2.setup()
	for i, m := range macs {
		e2.ready(m)
		box, _ := seal.New(make([]byte, seal.KeySize))
		sealed, _ := box.Seal([]byte("pw"), m)
		if _, err := e2.db.UpdateMachine(m, store.Audit{Actor: "test", Action: "bmc-set"}, func(x *store.Machine) error {
			x.BMC = &store.BMC{Protocol: "ipmi", Address: "10.8.0." + string(rune('1'+i)), Username: "u", Secret: sealed, Source: store.BMCByHand}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	before = len(f.log())
	ctx, cancel = context.WithCancel(context.Background())
	go func() { done <- e2.srv.PollPower(ctx) }()
	// The server's clock (the test's) moves with real time here.
	for range 21 {
		time.Sleep(50 * time.Millisecond)
		e2.clock.Add(50 * time.Millisecond)
	}
	cancel()
	<-done
	polled := f.log()[before:]
	// 1 s at one call per 100 ms: at most 10 calls, and every machine
	// read at least twice (300 ms interval).
	if len(polled) > 10 {
		t.Fatalf("%d BMC calls in 1 s with a 100 ms gap: %q", len(polled), polled)
	}
	for i := range macs {
		host := "10.8.0." + string(rune('1'+i))
		n := 0
		for _, c := range polled {
			if strings.Contains(c, host) {
				n++
			}
		}
		if n < 2 {
			t.Errorf("machine %s polled %d times in 1 s with a 300 ms interval: %q", host, n, polled)
		}
	}
	p, err := e2.admin.Power(context.Background(), macA, false)
	if err != nil || p.State != "on" || p.CheckedAt == nil {
		t.Fatalf("polled power: %+v, %v", p, err)
	}
}

// Approval with bmc_user: the approved boot is asked, with a wait, to
// create the BMC user; its report is sealed and the decision goes on.
// Only that boot may report, and a failure stops the asking.
func TestInBandBMCUserAtApproval(t *testing.T) {
	f := &fakeBMC{}
	e := newEnv(t, withBMC(f))
	e.setup()
	ctx := context.Background()
	a := e.inventoried(macA)
	other := a.newBoot()
	if code, body := other.register(testInventory(macA)); code != 200 {
		t.Fatalf("second registration: %d %s", code, body)
	}
	if _, err := e.admin.Approve(ctx, macA, api.ApproveRequest{Token: a.tok.Value, Cluster: "rack2", BMCUser: true}); err != nil {
		t.Fatal(err)
	}
	e.auditOf(macA, "approve")
	code, body := a.call(http.MethodGet, "/agent/decision?wait=5", nil)
	if code != 200 || !strings.Contains(body, `"decision":"wait"`) || !strings.Contains(body, `"bmc_user":{"username":"foundry"}`) {
		t.Fatalf("decision after approval with bmc_user: %d %s", code, body)
	}
	report := api.AgentBMC{Protocol: "ipmi", Address: "10.77.1.21", MAC: "52-54-00-BA-5E-01", Channel: 1, UserID: 3, Username: "foundry", Password: "Gen3ratedPassw0"}
	if code, body := other.call(http.MethodPost, "/agent/bmc", report); code != http.StatusForbidden {
		t.Fatalf("another boot's report: %d %s", code, body)
	}
	if code, body := a.call(http.MethodPost, "/agent/bmc", report); code != 200 {
		t.Fatalf("report: %d %s", code, body)
	}
	m := e.machine(macA)
	if m.BMCUser != "" || m.BMC == nil || m.BMC.Source != store.BMCFromAgent || m.BMC.Address != "10.77.1.21" || m.BMC.MAC != "52:54:00:ba:5e:01" || strings.Contains(string(m.BMC.Secret), "Gen3rated") {
		t.Fatalf("stored: request %q, BMC %+v", m.BMCUser, m.BMC)
	}
	if a := e.auditOf(macA, "bmc-created"); strings.Contains(a.Detail, "Gen3rated") || !strings.Contains(a.Detail, "10.77.1.21") {
		t.Fatalf("audit %q", a.Detail)
	}
	code, body = a.call(http.MethodGet, "/agent/decision?wait=5", nil)
	if code != 200 || !strings.Contains(body, `"decision":"netboot"`) || strings.Contains(body, "bmc_user") {
		t.Fatalf("decision after the report: %d %s", code, body)
	}
	if _, err := e.admin.PXENext(ctx, macA); err != nil {
		t.Fatal(err)
	}
	if got := f.log(); got[len(got)-1] != "pxe 10.77.1.21 Gen3ratedPassw0" {
		t.Fatalf("driver got %q", got[len(got)-1])
	}
	if code, _ := a.call(http.MethodPost, "/agent/bmc", report); code == 200 {
		t.Fatal("a second report was taken without a request")
	}
}

func TestClusterAsksForBMCUser(t *testing.T) {
	e := newEnv(t, withBMC(&fakeBMC{}))
	e.setup()
	ctx := context.Background()
	if _, err := e.admin.UpdateCluster(ctx, "rack2", api.ClusterFields{DefaultProfile: "netboot", BMCUser: true}); err != nil {
		t.Fatal(err)
	}
	a := e.inventoried(macA)
	if _, err := e.admin.Approve(ctx, macA, api.ApproveRequest{Token: a.tok.Value, Cluster: "rack2"}); err != nil {
		t.Fatal(err)
	}
	if m := e.machine(macA); m.BMCUser != api.DefaultBMCUser {
		t.Fatalf("cluster setting did not ask for a BMC user: %q", m.BMCUser)
	}
	// A BMC the discovery OS cannot reach: the failure is audited and
	// the agent is no longer asked.
	if code, body := a.call(http.MethodPost, "/agent/bmc", api.AgentBMC{Error: "open /dev/ipmi0: no such file or directory"}); code != 200 {
		t.Fatalf("failure report: %d %s", code, body)
	}
	if a := e.auditOf(macA, "bmc-user-failed"); !strings.Contains(a.Detail, "/dev/ipmi0") {
		t.Fatalf("audit %q", a.Detail)
	}
	code, body := a.call(http.MethodGet, "/agent/decision?wait=5", nil)
	if code != 200 || !strings.Contains(body, `"decision":"netboot"`) {
		t.Fatalf("decision after a failed BMC user: %d %s", code, body)
	}
}

// Closing the server ends a power-cycle that a hung BMC holds: shutdown
// waits for nothing.
func TestCloseEndsHungBMCCalls(t *testing.T) {
	f := &fakeBMC{hang: "10.9.0.66"}
	e := newEnv(t, withBMC(f))
	e.setup()
	e.ready(macA)
	e.enterBMC(macA, "10.9.0.66")
	if code, body := e.post("/machines/"+macA+"/release", nil); code != 200 {
		t.Fatalf("release: %d %s", code, body)
	}
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	e.srv.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close waited %v for a hung BMC", d)
	}
}
