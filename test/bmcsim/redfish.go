package bmcsim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Redfish is a Redfish service for tests: no Redfish emulator installs
// from the registries this project reaches (OpenStack's sushy-tools and
// DMTF's Redfish-Mockup-Server are Python projects outside Debian), so
// this one answers what a BMC answers to bmclib and gofish, after DMTF's
// schemas (ServiceRoot, SessionService, ComputerSystem with the Reset
// action and Boot override, AccountService), with HTTPS, sessions and
// Redfish error bodies. Like the IPMI simulator, its chassis is a real
// QEMU process that Reset starts and stops.
type Redfish struct {
	// Host and Port are where it listens (127.0.0.1, a free port).
	Host string
	Port int
	// User and Password are its administrator account.
	User, Password string

	srv *httptest.Server

	mu       sync.Mutex
	qemu     *exec.Cmd
	boot     map[string]any
	sessions map[string]bool
	log      []string
}

// StartRedfish serves a Redfish BMC until the test ends.
func StartRedfish(t testing.TB) *Redfish {
	t.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}
	r := &Redfish{User: "root", Password: "calvin", sessions: map[string]bool{},
		boot: map[string]any{"BootSourceOverrideEnabled": "Disabled", "BootSourceOverrideTarget": "None", "BootSourceOverrideMode": "Legacy"}}
	r.srv = httptest.NewTLSServer(http.HandlerFunc(r.serve))
	u, _ := url.Parse(r.srv.URL)
	r.Host = u.Hostname()
	r.Port, _ = strconv.Atoi(u.Port())
	t.Cleanup(func() {
		r.srv.Close()
		r.mu.Lock()
		r.stop()
		r.mu.Unlock()
	})
	return r
}

// MachinePID is the chassis's QEMU process, 0 when off.
func (r *Redfish) MachinePID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.qemu == nil {
		return 0
	}
	return r.qemu.Process.Pid
}

// Log lists the changes asked of the service ("Reset On", "Boot Pxe
// Once", "Password root"), in order.
func (r *Redfish) Log() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.log...)
}

func (r *Redfish) start() error {
	cmd := exec.Command("qemu-system-x86_64", "-accel", "tcg", "-m", "64", "-nodefaults", "-display", "none", "-S")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	r.qemu = cmd
	return nil
}

func (r *Redfish) stop() {
	if r.qemu != nil {
		r.qemu.Process.Kill()
		r.qemu.Wait()
		r.qemu = nil
	}
}

func (r *Redfish) serve(w http.ResponseWriter, q *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := strings.TrimSuffix(q.URL.Path, "/")
	if p == "/redfish/v1" && q.Method == http.MethodGet {
		// The service root is readable without credentials.
		r.json(w, http.StatusOK, map[string]any{
			"@odata.id": "/redfish/v1/", "@odata.type": "#ServiceRoot.v1_5_0.ServiceRoot", "Id": "RootService",
			"RedfishVersion": "1.6.0", "Name": "Foundry test BMC",
			"Systems":        ref("/redfish/v1/Systems"),
			"SessionService": ref("/redfish/v1/SessionService"),
			"AccountService": ref("/redfish/v1/AccountService"),
			"Links":          map[string]any{"Sessions": ref("/redfish/v1/SessionService/Sessions")},
		})
		return
	}
	if p == "/redfish/v1/SessionService/Sessions" && q.Method == http.MethodPost {
		var login struct{ UserName, Password string }
		json.NewDecoder(q.Body).Decode(&login)
		if login.UserName != r.User || login.Password != r.Password {
			r.fail(w, http.StatusUnauthorized, "Base.1.8.NoValidSession", "There is no valid session established with the implementation.")
			return
		}
		b := make([]byte, 16)
		rand.Read(b)
		tok := hex.EncodeToString(b)
		r.sessions[tok] = true
		w.Header().Set("X-Auth-Token", tok)
		w.Header().Set("Location", "/redfish/v1/SessionService/Sessions/"+tok)
		r.json(w, http.StatusCreated, map[string]any{"@odata.id": "/redfish/v1/SessionService/Sessions/" + tok, "Id": tok, "UserName": login.UserName})
		return
	}
	if !r.authorised(q) {
		r.fail(w, http.StatusUnauthorized, "Base.1.8.NoValidSession", "There is no valid session established with the implementation.")
		return
	}
	switch {
	case strings.HasPrefix(p, "/redfish/v1/SessionService/Sessions/"):
		tok := strings.TrimPrefix(p, "/redfish/v1/SessionService/Sessions/")
		if q.Method == http.MethodDelete {
			delete(r.sessions, tok)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		r.json(w, http.StatusOK, map[string]any{"@odata.id": p, "Id": tok, "UserName": r.User})
	case p == "/redfish/v1/Systems":
		r.json(w, http.StatusOK, map[string]any{"@odata.id": p, "Members@odata.count": 1, "Members": []any{ref("/redfish/v1/Systems/1")}})
	case p == "/redfish/v1/Systems/1" && q.Method == http.MethodGet:
		state := "Off"
		if r.qemu != nil {
			state = "On"
		}
		r.json(w, http.StatusOK, map[string]any{
			"@odata.id": p, "@odata.type": "#ComputerSystem.v1_10_0.ComputerSystem", "Id": "1", "Name": "QEMU",
			"PowerState": state, "Boot": r.boot,
			"Actions": map[string]any{"#ComputerSystem.Reset": map[string]any{
				"target":                            "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
				"ResetType@Redfish.AllowableValues": []string{"On", "ForceOff", "GracefulShutdown", "ForceRestart", "PowerCycle"},
			}},
		})
	case p == "/redfish/v1/Systems/1" && q.Method == http.MethodPatch:
		var body struct{ Boot map[string]any }
		if err := json.NewDecoder(q.Body).Decode(&body); err != nil || body.Boot == nil {
			r.fail(w, http.StatusBadRequest, "Base.1.8.MalformedJSON", "The request body submitted was malformed JSON.")
			return
		}
		for k, v := range body.Boot {
			if k == "BootSourceOverrideTarget" && v != "Pxe" && v != "Hdd" && v != "None" && v != "Cd" && v != "BiosSetup" {
				r.fail(w, http.StatusBadRequest, "Base.1.8.PropertyValueNotInList", "The value "+v.(string)+" for the property BootSourceOverrideTarget is not in the list of acceptable values.")
				return
			}
			r.boot[k] = v
		}
		r.log = append(r.log, "Boot "+r.boot["BootSourceOverrideTarget"].(string)+" "+r.boot["BootSourceOverrideEnabled"].(string))
		w.WriteHeader(http.StatusNoContent)
	case p == "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset" && q.Method == http.MethodPost:
		var body struct{ ResetType string }
		json.NewDecoder(q.Body).Decode(&body)
		r.log = append(r.log, "Reset "+body.ResetType)
		var err error
		switch body.ResetType {
		case "On":
			if r.qemu == nil {
				err = r.start()
			}
		case "ForceOff", "GracefulShutdown":
			r.stop()
		case "ForceRestart", "PowerCycle":
			r.stop()
			err = r.start()
		default:
			r.fail(w, http.StatusBadRequest, "Base.1.8.ActionParameterNotSupported", "The parameter ResetType for the action ComputerSystem.Reset is not supported on the target resource.")
			return
		}
		if err != nil {
			r.fail(w, http.StatusInternalServerError, "Base.1.8.InternalError", "The chassis did not start: "+err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case p == "/redfish/v1/AccountService":
		r.json(w, http.StatusOK, map[string]any{"@odata.id": p, "Id": "AccountService", "Accounts": ref("/redfish/v1/AccountService/Accounts")})
	case p == "/redfish/v1/AccountService/Accounts":
		r.json(w, http.StatusOK, map[string]any{"@odata.id": p, "Members@odata.count": 1, "Members": []any{ref("/redfish/v1/AccountService/Accounts/2")}})
	case p == "/redfish/v1/AccountService/Accounts/2" && q.Method == http.MethodGet:
		r.json(w, http.StatusOK, map[string]any{"@odata.id": p, "Id": "2", "UserName": r.User, "RoleId": "Administrator", "Enabled": true, "Password": nil})
	case p == "/redfish/v1/AccountService/Accounts/2" && q.Method == http.MethodPatch:
		var body map[string]any
		json.NewDecoder(q.Body).Decode(&body)
		if pw, ok := body["Password"].(string); ok {
			if len(pw) < 8 {
				r.fail(w, http.StatusBadRequest, "Base.1.8.PropertyValueFormatError", "The value for the property Password is of a different format than the property can accept.")
				return
			}
			r.Password = pw
			r.log = append(r.log, "Password "+r.User)
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		r.fail(w, http.StatusNotFound, "Base.1.8.ResourceMissingAtURI", "The resource at the URI "+p+" was not found.")
	}
}

func (r *Redfish) authorised(q *http.Request) bool {
	if r.sessions[q.Header.Get("X-Auth-Token")] {
		return true
	}
	u, p, ok := q.BasicAuth()
	return ok && u == r.User && p == r.Password
}

func ref(id string) map[string]string { return map[string]string{"@odata.id": id} }

func (r *Redfish) json(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("OData-Version", "4.0")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// fail answers a Redfish error body (DSP0266 §9.6) with the Base
// registry's message.
func (r *Redfish) fail(w http.ResponseWriter, code int, id, msg string) {
	r.json(w, code, map[string]any{"error": map[string]any{
		"code": id, "message": msg,
		"@Message.ExtendedInfo": []any{map[string]any{"MessageId": id, "Message": msg, "Severity": "Critical"}},
	}})
}

// WaitOff waits until the chassis is off; used by tests after ForceOff.
func (r *Redfish) WaitOff(ctx context.Context) bool {
	for ctx.Err() == nil {
		if r.MachinePID() == 0 {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}
