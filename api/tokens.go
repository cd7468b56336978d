package api

import (
	"context"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/foundry-appliance/foundry/store"
)

// TokenCreate names a new admin API token.
type TokenCreate struct {
	Name string `json:"name" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._-]*$" example:"ci"`
	Role string `json:"role" enum:"admin,viewer" default:"viewer" example:"viewer"`
}

// NewToken is a created token; Secret is shown only in this answer.
type NewToken struct {
	APIToken
	Secret string `json:"secret" example:"fdy_3q2-7wJmV0bH1Zr8cYw6YxWkq5Tf9sQy3aHj0uN4kLs" doc:"The bearer token; shown once, stored only as a hash"`
}

type tokenIDPath struct {
	ID string `path:"id" maxLength:"64" example:"3f2a9c1e5b7d4a60"`
}

func tokenView(t store.APIToken) APIToken {
	return APIToken{ID: t.ID, Name: t.Name, Role: string(t.Role), CreatedAt: t.CreatedAt}
}

// WhoAmI is the calling token as the API sees it.
type WhoAmI struct {
	Name string `json:"name" example:"ci" doc:"The token's name; env for FOUNDRY_ADMIN_TOKEN"`
	Role string `json:"role" enum:"admin,viewer" example:"viewer" doc:"admin may change things; viewer may only read"`
}

func (s *Server) registerTokens() {
	register(s, accessRead, huma.Operation{
		OperationID: "whoami", Method: http.MethodGet, Path: Prefix + "/whoami",
		Summary: "Name and role of the calling token", Tags: []string{"tokens"},
		Description: "Open to every admin-API token, so that a client can learn its role without provoking a 403.",
	}, func(ctx context.Context, _ *struct{}) (*struct{ Body WhoAmI }, error) {
		p := caller(ctx)
		return &struct{ Body WhoAmI }{Body: WhoAmI{Name: strings.TrimPrefix(p.Actor, "token:"), Role: string(p.Role)}}, nil
	})
	// Listing tokens is admin-only too: a viewer has no business knowing
	// which credentials exist.
	register(s, accessWrite, huma.Operation{
		OperationID: "list-tokens", Method: http.MethodGet, Path: Prefix + "/tokens",
		Summary: "List admin API tokens", Tags: []string{"tokens"},
	}, func(context.Context, *struct{}) (*struct{ Body []APIToken }, error) {
		return listed(s, "tokens", s.Store.ListAPITokens, tokenView)
	})
	register(s, accessWrite, huma.Operation{
		OperationID: "create-token", Method: http.MethodPost, Path: Prefix + "/tokens",
		Summary: "Create an admin API token", Tags: []string{"tokens"}, DefaultStatus: http.StatusCreated,
		Errors: []int{http.StatusConflict, http.StatusUnprocessableEntity},
	}, func(ctx context.Context, in *struct{ Body TokenCreate }) (*struct{ Body NewToken }, error) {
		ts, err := s.Store.ListAPITokens()
		if err != nil {
			return nil, s.storeErr(err, "tokens", "")
		}
		for _, t := range ts {
			if t.Name == in.Body.Name {
				return nil, huma.Error409Conflict("a token named "+in.Body.Name+" exists; revoke it or choose another name",
					&huma.ErrorDetail{Location: "body.name", Message: "already exists", Value: in.Body.Name})
			}
		}
		role := store.Role(in.Body.Role)
		if role == "" {
			role = store.RoleViewer
		}
		secret, hash, err := NewAPIToken()
		if err != nil {
			return nil, s.storeErr(err, "token", "")
		}
		id, err := newTokenID()
		if err != nil {
			return nil, s.storeErr(err, "token", "")
		}
		t := store.APIToken{ID: id, Name: in.Body.Name, Role: role, Hash: hash, CreatedAt: s.now().UTC()}
		if err := s.Store.CreateAPIToken(t); err != nil {
			return nil, s.storeErr(err, "token "+in.Body.Name, "body.name")
		}
		s.audit(ctx, "token-create", "name="+t.Name+" role="+string(role)+" id="+id)
		return &struct{ Body NewToken }{Body: NewToken{APIToken: tokenView(t), Secret: secret}}, nil
	})
	register(s, accessWrite, huma.Operation{
		OperationID: "revoke-token", Method: http.MethodDelete, Path: Prefix + "/tokens/{id}",
		Summary: "Revoke an admin API token", Tags: []string{"tokens"}, DefaultStatus: http.StatusNoContent,
		Errors: []int{http.StatusNotFound},
	}, func(ctx context.Context, in *tokenIDPath) (*struct{}, error) {
		if err := s.Store.DeleteAPIToken(in.ID); err != nil {
			return nil, s.storeErr(err, "token "+in.ID, "path.id")
		}
		s.audit(ctx, "token-revoke", "id="+in.ID)
		return nil, nil
	})
}

// audit records an action that concerns no machine; a failure is logged,
// since the change it describes has already happened.
func (s *Server) audit(ctx context.Context, action, detail string) {
	if err := s.Store.AppendAudit("", store.Audit{Actor: caller(ctx).Actor, Action: action, Detail: detail}); err != nil {
		s.log.Error("append audit entry", "action", action, "err", err)
	}
}
