package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/foundry-appliance/foundry/gitops"
	"github.com/foundry-appliance/foundry/hardware"
	"github.com/foundry-appliance/foundry/store"
)

// GitOps is the repository exporter as the API sees it (*gitops.Server):
// its state for the dashboard, the push webhook, and the declarations
// that fill in an approval.
type GitOps interface {
	Status() gitops.Status
	Webhook(h http.Header, body []byte) error
	Declaration(mac string) (d hardware.Declaration, origin string, ok bool)
}

// GitOpsStatus is GET /api/v1/gitops.
type GitOpsStatus struct {
	// Enabled is false when the configuration has no gitops section; the
	// other fields are then empty.
	Enabled bool `json:"enabled"`
	gitops.Status
}

type webhookIn struct {
	RawBody []byte
	// The forges' ways of proving the secret (gitops.VerifyWebhook).
	Signature string `header:"X-Hub-Signature-256" doc:"sha256=<hex HMAC-SHA256 of the body with the shared secret> (GitHub, Gitea, Forgejo)"`
	Token     string `header:"X-Gitlab-Token" doc:"The shared secret itself (GitLab)"`
}

func (s *Server) registerGitOps() {
	register(s, accessRead, huma.Operation{
		OperationID: "get-gitops", Method: http.MethodGet, Path: Prefix + "/gitops",
		Summary: "The GitOps repository's state", Tags: []string{"gitops"},
		Description: "Where machines are committed as Tinkerbell Hardware (docs/gitops.md): the remote (without credentials), branch and directory, " +
			"commits waiting for a push, the last push and fetch, and why the last attempt failed while the remote is down or refusing. " +
			"enabled is false when the appliance has no gitops configuration.",
	}, func(context.Context, *struct{}) (*struct{ Body GitOpsStatus }, error) {
		if s.GitOps == nil {
			return &struct{ Body GitOpsStatus }{Body: GitOpsStatus{}}, nil
		}
		return &struct{ Body GitOpsStatus }{Body: GitOpsStatus{Enabled: true, Status: s.GitOps.Status()}}, nil
	})
	register(s, accessSecret, huma.Operation{
		OperationID: "gitops-webhook", Method: http.MethodPost, Path: Prefix + "/gitops/webhook",
		Summary: "Tell the appliance that the GitOps repository changed", Tags: []string{"gitops"},
		Description: "A forge's push webhook: the appliance fetches the repository at once instead of at its next pull interval. " +
			"Authenticated by the shared secret of gitops.webhook_secret_file, proven as GitHub, Gitea and Forgejo do (X-Hub-Signature-256) or as GitLab does (X-Gitlab-Token). " +
			"The body is not otherwise read.",
		DefaultStatus: http.StatusNoContent,
		Errors:        []int{http.StatusUnauthorized, http.StatusNotFound},
	}, func(_ context.Context, in *webhookIn) (*struct{}, error) {
		if s.GitOps == nil {
			return nil, huma.Error404NotFound("gitops is not configured on this appliance")
		}
		h := http.Header{}
		if in.Signature != "" {
			h.Set("X-Hub-Signature-256", in.Signature)
		}
		if in.Token != "" {
			h.Set("X-Gitlab-Token", in.Token)
		}
		if err := s.GitOps.Webhook(h, in.RawBody); err != nil {
			s.log.Warn("gitops webhook refused", "err", err)
			return nil, huma.Error401Unauthorized("the webhook's secret does not match gitops.webhook_secret_file")
		}
		return nil, nil
	})
}

// ApproveDeclared approves mac from its declaration in Git, without the
// console token (gitops.approve_without_token): the approval rules of an
// administrator's approval apply (cluster, profile, host name, disk among
// the inventoried ones, a static address within the segment, uniqueness),
// and so does the MAC-conflict rule: with more than one registration only
// the console token can tell the genuine machine, so none is approved. by
// is the audit actor ("git:<email>"), why the declaration's origin.
func (s *Server) ApproveDeclared(ctx context.Context, mac string, d hardware.Declaration, by, why string) error {
	s.Handler()
	if s.initErr != nil {
		return s.initErr
	}
	ctx = context.WithValue(ctx, principalKey{}, principal{Actor: by, Role: store.RoleAdmin})
	_, err := s.approveMachine(ctx, mac, fromDeclaration(ApproveRequest{}, d), why)
	var em *huma.ErrorModel
	if errors.As(err, &em) {
		msg := em.Detail
		for _, e := range em.Errors {
			if e != nil && !strings.Contains(msg, e.Message) {
				msg += "; " + e.Error()
			}
		}
		return errors.New(msg)
	}
	return err
}

// fromDeclaration fills what req leaves out from a declaration.
func fromDeclaration(req ApproveRequest, d hardware.Declaration) ApproveRequest {
	fill := func(v *string, from string) {
		if strings.TrimSpace(*v) == "" {
			*v = from
		}
	}
	fill(&req.Cluster, d.Cluster)
	fill(&req.Profile, d.Profile)
	fill(&req.Hostname, d.Hostname)
	fill(&req.Disk, d.Disk)
	if req.SSHKeys == nil {
		req.SSHKeys = d.SSHKeys
	}
	if req.Network == nil {
		req.Network = &Network{Mode: d.Network, Address: d.Address, Gateway: d.Gateway, DNS: d.DNS}
	}
	return req
}
