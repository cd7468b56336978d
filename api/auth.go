package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/foundry-appliance/foundry/agentwire"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/foundry-appliance/foundry/store"
)

// TokenPrefix starts every generated admin API token.
const TokenPrefix = "fdy_"

// NonceHeader carries the boot nonce on every agent call (agentwire's).
const NonceHeader = agentwire.NonceHeader

// access is what an operation requires.
type access int

const (
	accessRead  access = iota // any admin-API token (viewer or admin)
	accessWrite               // an admin token
	accessAgent               // the boot nonce of a discovery agent
)

// principal is the authenticated caller, kept in the request context.
type principal struct {
	// Actor is the audit actor: "token:<name>" or "agent:<mac>".
	Actor string
	Role  store.Role
	// MAC is the agent's machine (agents only).
	MAC string
	// Base is the appliance URL as the agent reached it (agents only).
	Base string
	// Nonce is the agent's boot nonce, kept so that a long poll can see
	// that its boot session ended while it waited (agents only).
	Nonce string
	// TokenHash is the SHA-256 of a stored API token's secret, kept so
	// that a long-lived request (the event stream) can see that the token
	// was revoked after it was admitted. Nil for FOUNDRY_ADMIN_TOKEN,
	// which only a restart can revoke.
	TokenHash []byte
}

type principalKey struct{}

func caller(ctx context.Context) principal {
	p, _ := ctx.Value(principalKey{}).(principal)
	return p
}

// NewAPIToken returns a new secret "fdy_" + 32 random bytes in base64url
// and the SHA-256 under which the store keeps it.
func NewAPIToken() (secret string, hash []byte, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, fmt.Errorf("read random bytes: %w", err)
	}
	secret = TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	h := sha256.Sum256([]byte(secret))
	return secret, h[:], nil
}

func newTokenID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// Bootstrap makes sure an administrator can reach a new appliance. With
// envToken set (FOUNDRY_ADMIN_TOKEN) it does nothing. Otherwise, when the
// store holds no API token and <dataDir>/admin-token does not exist, it
// generates an admin token named "bootstrap", stores its hash, writes the
// secret to <dataDir>/admin-token with mode 0600 and returns it so that the
// caller prints it once. In every other case it returns "".
//
// An existing admin-token file is never re-imported: a token revoked
// through the API stays revoked across restarts.
func Bootstrap(db *store.DB, dataDir string, envToken string) (string, error) {
	if envToken != "" {
		return "", nil
	}
	tokens, err := db.ListAPITokens()
	if err != nil {
		return "", fmt.Errorf("bootstrap admin token: %w", err)
	}
	path := filepath.Join(dataDir, "admin-token")
	if len(tokens) > 0 {
		return "", nil
	}
	if _, err := os.Stat(path); err == nil {
		return "", nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("bootstrap admin token: %w", err)
	}
	secret, hash, err := NewAPIToken()
	if err != nil {
		return "", fmt.Errorf("bootstrap admin token: %w", err)
	}
	id, err := newTokenID()
	if err != nil {
		return "", fmt.Errorf("bootstrap admin token: %w", err)
	}
	// The file is written before the hash is stored: if the store write
	// fails the file is removed, and a crash in between leaves a file whose
	// token does not work rather than a working token nobody can read.
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("bootstrap admin token: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("bootstrap admin token: %w", err)
	}
	_, werr := fmt.Fprintln(f, secret)
	if serr := f.Sync(); werr == nil {
		werr = serr
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = db.CreateAPIToken(store.APIToken{ID: id, Name: "bootstrap", Role: store.RoleAdmin, Hash: hash})
	}
	if werr != nil {
		os.Remove(path)
		return "", fmt.Errorf("bootstrap admin token: %w", werr)
	}
	return secret, nil
}

// authMiddleware admits a request to an operation that needs acc.
func (s *Server) authMiddleware(acc access) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		var (
			p   principal
			err error
		)
		if acc == accessAgent {
			p, err = s.authAgent(ctx)
		} else {
			p, err = s.authAdmin(ctx, acc)
		}
		if err != nil {
			var se huma.StatusError
			if !errors.As(err, &se) {
				s.log.Error("authenticate request", "err", err)
				se = huma.Error500InternalServerError("authentication failed")
			}
			if se.GetStatus() == http.StatusUnauthorized {
				if acc == accessAgent {
					ctx.SetHeader("WWW-Authenticate", `FoundryNonce header="`+NonceHeader+`"`)
				} else {
					ctx.SetHeader("WWW-Authenticate", `Bearer realm="foundry"`)
				}
			}
			huma.WriteErr(s.api, ctx, se.GetStatus(), se.Error(), detailsOf(se)...)
			return
		}
		next(huma.WithValue(ctx, principalKey{}, p))
	}
}

func detailsOf(se huma.StatusError) []error {
	var em *huma.ErrorModel
	if !errors.As(se, &em) {
		return nil
	}
	out := make([]error, 0, len(em.Errors))
	for _, d := range em.Errors {
		if d != nil {
			out = append(out, d)
		}
	}
	return out
}

func (s *Server) authAgent(ctx huma.Context) (principal, error) {
	nonce := ctx.Header(NonceHeader)
	if nonce == "" {
		return principal{}, huma.Error401Unauthorized("agent calls need the boot nonce in the "+NonceHeader+" header",
			&huma.ErrorDetail{Location: "header." + NonceHeader, Message: "missing"})
	}
	if len(nonce) > 256 {
		return principal{}, huma.Error401Unauthorized("unknown or expired boot nonce",
			&huma.ErrorDetail{Location: "header." + NonceHeader, Message: "too long"})
	}
	mac, err := s.Store.CheckNonce(nonce)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		return principal{}, huma.Error401Unauthorized("unknown or expired boot nonce; reboot the machine into discovery",
			&huma.ErrorDetail{Location: "header." + NonceHeader, Message: "not valid"})
	}
	if err != nil {
		return principal{}, fmt.Errorf("check nonce: %w", err)
	}
	scheme := "http"
	if ctx.TLS() != nil {
		scheme = "https"
	}
	return principal{Actor: "agent:" + mac, MAC: mac, Base: scheme + "://" + ctx.Host(), Nonce: nonce}, nil
}

func (s *Server) authAdmin(ctx huma.Context, acc access) (principal, error) {
	h := ctx.Header("Authorization")
	scheme, secret, ok := strings.Cut(h, " ")
	secret = strings.TrimSpace(secret)
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return principal{}, huma.Error401Unauthorized("this call needs an API token: Authorization: Bearer <token>",
			&huma.ErrorDetail{Location: "header.Authorization", Message: "missing bearer token"})
	}
	sum := sha256.Sum256([]byte(secret))
	var p principal
	switch {
	case s.envHash != nil && subtle.ConstantTimeCompare(sum[:], s.envHash) == 1:
		p = principal{Actor: "token:env", Role: store.RoleAdmin}
	default:
		t, err := s.Store.FindAPIToken(sum[:])
		if errors.Is(err, store.ErrNotFound) {
			return principal{}, huma.Error401Unauthorized("unknown or revoked API token",
				&huma.ErrorDetail{Location: "header.Authorization", Message: "not valid"})
		}
		if err != nil {
			return principal{}, fmt.Errorf("find api token: %w", err)
		}
		p = principal{Actor: "token:" + t.Name, Role: t.Role, TokenHash: sum[:]}
	}
	if acc == accessWrite && p.Role != store.RoleAdmin {
		return principal{}, huma.Error403Forbidden("this token has the " + string(p.Role) + " role; changes need an admin token")
	}
	return p, nil
}

// stillAdmitted reports whether the caller's API token still exists: a
// revoked token must not keep a stream that it opened. A store failure
// counts as revoked, so that a stream fails closed.
func (s *Server) stillAdmitted(p principal) bool {
	if p.TokenHash == nil {
		return true
	}
	_, err := s.Store.FindAPIToken(p.TokenHash)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Error("re-check api token of an event stream", "actor", p.Actor, "err", err)
	}
	return err == nil
}
