package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/foundry-appliance/foundry/lifecycle"
	"github.com/foundry-appliance/foundry/names"
	"github.com/foundry-appliance/foundry/store"
)

// The installed system reports its first boot through cloud-init's
// phone_home module, which posts a form to a fixed URL. That URL carries
// the machine's MAC and a secret drawn at approval, which reaches the
// machine only in its bound session's decision and its seed: nobody else
// can make the machine ready. The secret is used once.

// firstBootPath is where the installed system reports, under Prefix.
const firstBootPath = "/first-boot/{mac}/{secret}"

// maxFirstBootBytes bounds the report: phone_home posts the instance ID,
// host names and the public host keys.
const maxFirstBootBytes = 16 << 10

// newSecret draws a first-boot secret: 32 random bytes, base64url.
func newSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// firstBootURL is the report URL of machine m for the appliance at base.
func firstBootURL(base string, m store.Machine) string {
	if m.FirstBootSecret == "" {
		return ""
	}
	return strings.TrimRight(base, "/") + Prefix + "/first-boot/" + m.MAC + "/" + m.FirstBootSecret
}

type firstBootIn struct {
	MAC     string `path:"mac" example:"52:54:00:12:34:56"`
	Secret  string `path:"secret" maxLength:"64" doc:"The machine's first-boot secret, from its cloud-init seed"`
	RawBody []byte `contentType:"application/x-www-form-urlencoded"`
}

// FirstBootAnswer is the answer to the installed system's report.
type FirstBootAnswer struct {
	State string `json:"state" example:"ready"`
}

func (s *Server) registerFirstBoot() {
	register(s, accessSecret, huma.Operation{
		OperationID: "first-boot", Method: http.MethodPost, Path: Prefix + firstBootPath,
		Summary: "The installed system reports its first boot (cloud-init phone_home)", Tags: []string{"agent"},
		Description: "provisioning (image written) → ready. The URL, with the machine's one-time first-boot secret, is in the cloud-init seed the agent wrote; " +
			"the body is phone_home's form (instance_id, hostname, fqdn, pub_key_*). A wrong secret, or a machine that is not waiting for its first boot, gets 404 and changes nothing.",
		MaxBodyBytes: maxFirstBootBytes,
		Errors:       []int{http.StatusNotFound, http.StatusUnprocessableEntity},
	}, s.firstBoot)
}

var errNoFirstBoot = errors.New("no first boot expected")

func (s *Server) firstBoot(_ context.Context, in *firstBootIn) (*struct{ Body FirstBootAnswer }, error) {
	notFound := huma.Error404NotFound("no machine waits for a first boot at this URL")
	mac, err := names.ParseMAC(in.MAC)
	if err != nil {
		return nil, notFound
	}
	form, err := url.ParseQuery(string(in.RawBody))
	if err != nil {
		return nil, huma.Error422UnprocessableEntity("the report is not a form: "+err.Error(), &huma.ErrorDetail{Location: "body"})
	}
	report := store.FirstBoot{At: s.now()}
	if h, err := names.Hostname(first(form["fqdn"], form["hostname"])); err == nil {
		report.Hostname = h
	}
	for _, k := range []string{"pub_key_ed25519", "pub_key_ecdsa", "pub_key_rsa"} {
		if v := strings.TrimSpace(form.Get(k)); v != "" && len(v) < 2048 && len(strings.Fields(v)) >= 2 && names.Printable(v) {
			report.SSHHostKeys = append(report.SSHHostKeys, v)
		}
	}
	given := sha256.Sum256([]byte(in.Secret))
	var took time.Duration
	m, err := s.Store.UpdateMachineSessions(mac, store.Audit{Actor: "os:" + mac, Action: string(lifecycle.ActFirstBoot)},
		func(m *store.Machine, ss *store.Sessions) error {
			want := sha256.Sum256([]byte(m.FirstBootSecret))
			if m.FirstBootSecret == "" || subtle.ConstantTimeCompare(given[:], want[:]) != 1 || !m.Installed {
				return errNoFirstBoot
			}
			to, err := lifecycle.Next(lifecycle.ActFirstBoot, lifecycle.RoleOS, m.State)
			if err != nil {
				return errNoFirstBoot
			}
			m.State, m.ReadyAt, m.FirstBootSecret, m.FirstBoot = to, report.At, "", &report
			m.Message = "installed system booted"
			if m.Approval != nil {
				took = report.At.Sub(m.Approval.ApprovedAt)
				ss.SetDetail(fmt.Sprintf("ready %s after approval; host %s", took.Round(time.Second), report.Hostname))
			}
			return nil
		})
	if errors.Is(err, errNoFirstBoot) || errors.Is(err, store.ErrNotFound) {
		s.log.Warn("first-boot report refused", "mac", mac)
		return nil, notFound
	}
	if err != nil {
		return nil, s.storeErr(err, "machine "+mac, "path.mac")
	}
	s.log.Info("machine ready: installed system reported its first boot", "mac", mac, "after_approval", took.Round(time.Second))
	return &struct{ Body FirstBootAnswer }{Body: FirstBootAnswer{State: m.State.String()}}, nil
}

func first(lists ...[]string) string {
	for _, l := range lists {
		if len(l) > 0 && l[0] != "" {
			return l[0]
		}
	}
	return ""
}
