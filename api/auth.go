package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/foundry-appliance/foundry/agentsig"
	"github.com/foundry-appliance/foundry/agentwire"
	"github.com/foundry-appliance/foundry/store"
)

// TokenPrefix starts every generated admin API token.
const TokenPrefix = "fdy_"

// NonceHeader carries the boot nonce on every agent call (agentwire's).
const NonceHeader = agentwire.NonceHeader

// access is what an operation requires.
type access int

const (
	accessRead   access = iota // any admin-API token (viewer or admin)
	accessWrite                // an admin token
	accessAgent                // a discovery agent's signed call
	accessSecret               // a secret in the URL, checked by the handler (the first-boot report)
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
	// Session is the agent's boot session (its key's ID), kept so that a
	// long poll can see that it ended while it waited; "" on the
	// registration, which opens it (agents only).
	Session string
	// Nonce and PublicKey are the registration's boot nonce and the key
	// that signed it (the registration only).
	Nonce     string
	PublicKey ed25519.PublicKey
	// Remote is the registration's source address.
	Remote string
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
			switch {
			case errors.As(err, &se):
			case errors.Is(err, store.ErrNoSpace):
				// An agent call is admitted only once its call number is
				// stored (replay protection), which a full disk refuses:
				// the call is not taken, and the agent retries a 5xx. Not
				// logged per call: the store logs the full disk once.
				errors.As(noSpace(err), &se)
			default:
				s.log.Error("authenticate request", "err", err)
				se = huma.Error500InternalServerError("authentication failed")
			}
			if se.GetStatus() == http.StatusUnauthorized {
				if acc == accessAgent {
					ctx.SetHeader("WWW-Authenticate", `Signature realm="foundry-agent"`)
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

// authAgent admits a discovery agent's call. Every call is signed with the
// boot's key (package agentsig), body included. The registration carries
// the key in its body and the boot's one-time nonce in NonceHeader, which
// the handler consumes as it opens the session; every later call is
// verified with its session's key and must carry a call number above the
// session's last one, so that a request seen on the wire can be neither
// altered nor replayed.
func (s *Server) authAgent(ctx huma.Context) (principal, error) {
	r, _ := humago.Unwrap(ctx)
	scheme := "http"
	if ctx.TLS() != nil {
		scheme = "https"
	}
	base := scheme + "://" + ctx.Host()
	params, err := agentsig.Parse(r)
	if err != nil {
		return principal{}, unsigned(err)
	}
	if ctx.Operation().OperationID == opAgentRegister {
		return s.authRegistration(ctx, r, base)
	}
	// The credential is looked up before the body is read: a caller
	// without a live session costs no body buffer.
	sess, err := s.Store.GetSession(params.KeyID)
	if errors.Is(err, store.ErrNotFound) {
		return principal{}, huma.Error401Unauthorized("unknown or ended boot session; reboot the machine into discovery",
			&huma.ErrorDetail{Location: "header.Signature-Input", Message: "no such session"})
	}
	if err != nil {
		return principal{}, fmt.Errorf("find session: %w", err)
	}
	// The signature covers the body's digest, so the body is read here,
	// once and bounded like huma bounds it, and then put back for huma.
	body, err := readBody(r, ctx.Operation().MaxBodyBytes)
	if err != nil {
		return principal{}, err
	}
	if _, err := agentsig.Verify(r, ed25519.PublicKey(sess.PublicKey), body); err != nil {
		return principal{}, badSignature(err)
	}
	if _, err := s.Store.AdvanceSession(sess.ID, params.Seq, s.sessionTTL()); errors.Is(err, store.ErrReplay) {
		s.log.Warn("agent call replayed", "mac", sess.MAC, "session", sess.ID, "seq", params.Seq, "remote", ctx.RemoteAddr())
		return principal{}, huma.Error401Unauthorized("this call's number was used before (a replayed request)",
			&huma.ErrorDetail{Location: "header.Signature-Input", Message: "call number already used"})
	} else if errors.Is(err, store.ErrNotFound) {
		return principal{}, huma.Error401Unauthorized("unknown or ended boot session; reboot the machine into discovery")
	} else if err != nil {
		return principal{}, fmt.Errorf("advance session: %w", err)
	}
	return principal{Actor: "agent:" + sess.MAC, MAC: sess.MAC, Base: base, Session: sess.ID}, nil
}

// readBody reads r's body when it is below limit bytes (huma's
// MaxBodyBytes, which refuses limit bytes or more) and puts it back for
// huma to decode. The buffer is allocated once: of the declared length,
// or of the limit when none is declared (the largest, a registration, is
// half a megabyte), so that a large body costs one allocation, not a
// doubling series.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength >= limit {
		return nil, huma.Error413RequestEntityTooLarge(fmt.Sprintf("request body is too large: %d bytes, the limit is %d", r.ContentLength, limit-1))
	}
	size := r.ContentLength
	if size < 0 {
		size = limit
	}
	buf := bytes.NewBuffer(make([]byte, 0, size+bytes.MinRead))
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, limit)); err != nil {
		return nil, huma.Error400BadRequest("read body: " + err.Error())
	}
	if int64(buf.Len()) >= limit {
		return nil, huma.Error413RequestEntityTooLarge(fmt.Sprintf("request body is too large: the limit is %d bytes", limit-1))
	}
	body := buf.Bytes()
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body, nil
}

// authRegistration admits a registration: a live boot nonce, and a
// signature by the public key the body registers.
func (s *Server) authRegistration(ctx huma.Context, r *http.Request, base string) (principal, error) {
	nonce := ctx.Header(NonceHeader)
	if nonce == "" {
		return principal{}, huma.Error401Unauthorized("registration needs the boot nonce in the "+NonceHeader+" header",
			&huma.ErrorDetail{Location: "header." + NonceHeader, Message: "missing"})
	}
	mac, err := s.Store.CheckNonce(nonce)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalid) {
		return principal{}, huma.Error401Unauthorized("unknown or expired boot nonce; reboot the machine into discovery",
			&huma.ErrorDetail{Location: "header." + NonceHeader, Message: "not valid"})
	}
	if err != nil {
		return principal{}, fmt.Errorf("check nonce: %w", err)
	}
	body, err := readBody(r, ctx.Operation().MaxBodyBytes)
	if err != nil {
		return principal{}, err
	}
	var k struct {
		PublicKey []byte `json:"public_key"`
	}
	if err := json.Unmarshal(body, &k); err != nil || len(k.PublicKey) != ed25519.PublicKeySize {
		return principal{}, huma.Error422UnprocessableEntity("the registration needs the boot's Ed25519 public key",
			&huma.ErrorDetail{Location: "body.public_key", Message: "want 32 bytes, base64"})
	}
	if _, err := agentsig.Verify(r, k.PublicKey, body); err != nil {
		return principal{}, badSignature(err)
	}
	remote := ctx.RemoteAddr()
	if host, _, err := net.SplitHostPort(remote); err == nil {
		remote = host
	}
	return principal{Actor: "agent:" + mac, MAC: mac, Base: base, Nonce: nonce, PublicKey: k.PublicKey, Remote: remote}, nil
}

func unsigned(err error) error {
	return huma.Error401Unauthorized("agent calls must be signed with the boot's key (RFC 9421): "+err.Error(),
		&huma.ErrorDetail{Location: "header.Signature-Input", Message: "missing or malformed"})
}

func badSignature(err error) error {
	return huma.Error401Unauthorized("the call's signature does not verify: "+err.Error(),
		&huma.ErrorDetail{Location: "header.Signature", Message: "not valid"})
}

// sessionTTL is how long a boot session lives after its last call.
func (s *Server) sessionTTL() time.Duration {
	if s.SessionTTL > 0 {
		return s.SessionTTL
	}
	return DefaultSessionTTL
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
