package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/foundry-appliance/foundry/store"
)

// Version is the API version shown in the OpenAPI document.
const Version = "1.0.0"

// Prefix is where the REST API lives.
const Prefix = "/api/v1"

// Security scheme names in the OpenAPI document.
const (
	schemeBearer = "bearer"
	schemeNonce  = "agentNonce"
)

// apiConfig is the API's configuration: OpenAPI 3.1 at /openapi.json and
// /openapi.yaml, no built-in docs page (it would load scripts from a CDN;
// serveDocs serves embedded assets instead), no $schema links in bodies,
// and the machine list's own JSON encoder (jsonFormats).
func apiConfig() huma.Config {
	cfg := huma.DefaultConfig("Foundry API", Version)
	cfg.DocsPath = ""
	cfg.SchemasPath = ""
	cfg.CreateHooks = nil
	cfg.Formats = jsonFormats(cfg.Formats)
	cfg.Info.Description = "Discover, review and approve bare-metal machines. " +
		"Administrators authenticate with a bearer token (role admin or viewer: viewers may read everything and change nothing). " +
		"The discovery agent signs every call with its boot's Ed25519 key (HTTP Message Signatures, RFC 9421), which it registers once with the one-time boot nonce from its kernel command line. " +
		"Errors are RFC 9457 problem documents; errors[].location names the offending field (e.g. body.hostname)."
	cfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		schemeBearer: {
			Type: "http", Scheme: "bearer", BearerFormat: "fdy_ token",
			Description: "Admin API token: `fdy_` + 43 base64url characters, or FOUNDRY_ADMIN_TOKEN.",
		},
		schemeNonce: {
			Type: "apiKey", In: "header", Name: NonceHeader,
			Description: "Boot nonce of the discovery agent (foundry.nonce= on its kernel line): used once, by the registration, for its own MAC only. " +
				"Every agent call, the registration included, also carries an RFC 9421 signature (Signature-Input, Signature, and Content-Digest over a body) " +
				"by the boot's Ed25519 key, label \"foundry\", tag \"foundry-agent\", keyid the key's SHA-256 thumbprint, covering @method @authority @path @query, " +
				"and a call number in the nonce parameter that must grow with every call (package agentsig).",
		},
	}
	cfg.Tags = []*huma.Tag{
		{Name: "machines", Description: "Discovered machines: review, approve, reject"},
		{Name: "clusters", Description: "Clusters group machines and carry defaults"},
		{Name: "profiles", Description: "Production workflows (netboot or image)"},
		{Name: "images", Description: "The image library: OS images imported by URL or upload, served to machines under /images/library/"},
		{Name: "segments", Description: "Configured network segments and their leases"},
		{Name: "audit", Description: "Who did what"},
		{Name: "tokens", Description: "Admin API tokens (managing them is admin only; whoami is open to every token)"},
		{Name: "events", Description: "Server-sent event stream of machine changes"},
		{Name: "export", Description: "Approved machines as Tinkerbell Hardware objects (YAML)"},
		{Name: "agent", Description: "Calls of the discovery agent (boot nonce)"},
	}
	cfg.Transformers = append(cfg.Transformers, namedRequiredField)
	return cfg
}

// namedRequiredField rewrites huma's "expected required property X to be
// present" at location L into location L.X, so that every problem names the
// field itself.
func namedRequiredField(_ huma.Context, _ string, v any) (any, error) {
	em, ok := v.(*huma.ErrorModel)
	if !ok {
		return v, nil
	}
	for _, d := range em.Errors {
		if d == nil {
			continue
		}
		var name string
		if _, err := fmt.Sscanf(d.Message, "expected required property %s to be present", &name); err == nil && name != "" {
			if d.Location == "" {
				d.Location = name
			} else if !strings.HasSuffix(d.Location, "."+name) {
				d.Location += "." + name
			}
		}
	}
	return em, nil
}

// register adds an operation with its security requirement, auth check
// and documented error statuses.
func register[I, O any](s *Server, acc access, op huma.Operation, h func(context.Context, *I) (*O, error)) {
	s.prepare(acc, &op)
	huma.Register(s.api, op, h)
}

// prepare fills in what every operation has.
func (s *Server) prepare(acc access, op *huma.Operation) {
	if acc == accessSecret {
		// The handler checks the secret in the path; there is no header
		// credential to check first ({} is OpenAPI's "none").
		op.Security = []map[string][]string{{}}
		if op.MaxBodyBytes == 0 {
			op.MaxBodyBytes = 64 << 10
		}
		return
	}
	if acc == accessAgent {
		op.Security = []map[string][]string{{schemeNonce: {}}}
		op.Tags = []string{"agent"}
	} else {
		op.Security = []map[string][]string{{schemeBearer: {}}}
	}
	op.Middlewares = append(op.Middlewares, s.authMiddleware(acc))
	op.Errors = appendUnique(op.Errors, http.StatusUnauthorized)
	if acc == accessWrite {
		op.Errors = appendUnique(op.Errors, http.StatusForbidden)
	}
	if op.MaxBodyBytes == 0 {
		op.MaxBodyBytes = 64 << 10
	}
	// Every call that changes state can meet a full data disk (store
	// ErrNoSpace) and, with a body, one longer than MaxBodyBytes.
	if op.Method != http.MethodGet && (acc == accessWrite || acc == accessAgent) {
		op.Errors = appendUnique(op.Errors, http.StatusInsufficientStorage)
		if op.Method != http.MethodDelete {
			op.Errors = appendUnique(op.Errors, http.StatusRequestEntityTooLarge)
		}
	}
}

func appendUnique(xs []int, x int) []int {
	for _, v := range xs {
		if v == x {
			return xs
		}
	}
	return append(xs, x)
}

// registerRoutes adds every REST operation.
func (s *Server) registerRoutes() {
	s.registerMachines()
	s.registerBootScript()
	s.registerBoot()
	s.registerExport()
	s.registerApproval()
	s.registerClusters()
	s.registerProfiles()
	s.registerImages()
	s.registerSegments()
	s.registerAbout()
	s.registerAudit()
	s.registerTokens()
	s.registerEvents()
	s.registerAgent()
	s.registerFirstBoot()
	s.registerRelease()
	s.registerGitOps()
	s.registerBMC()
}

// storeErr turns a store error into a problem response. what names the
// object for messages; field is the location blamed for ErrInvalid.
func (s *Server) storeErr(err error, what, field string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return huma.Error404NotFound(what + " not found")
	case errors.Is(err, store.ErrExists):
		return huma.Error409Conflict(what+" already exists", &huma.ErrorDetail{Location: field, Message: "already exists"})
	case errors.Is(err, store.ErrInUse):
		return huma.Error409Conflict(err.Error(), &huma.ErrorDetail{Location: field, Message: what + " is in use"})
	case errors.Is(err, store.ErrTransition):
		return huma.Error409Conflict(err.Error())
	case errors.Is(err, store.ErrInvalid):
		return huma.Error422UnprocessableEntity(err.Error(), &huma.ErrorDetail{Location: field, Message: err.Error()})
	case errors.Is(err, store.ErrNoSpace):
		return noSpace(err)
	case errors.Is(err, store.ErrUnavailable):
		// A shared backend without quorum: nothing to fix in the request;
		// the client retries once the backend is back (/readyz says when).
		s.log.Warn("api store unavailable", "what", what, "err", err)
		return huma.Error503ServiceUnavailable("the store's backend is unavailable; retry later: " + err.Error())
	}
	var se huma.StatusError
	if errors.As(err, &se) {
		return err
	}
	s.log.Error("api store error", "what", what, "err", err)
	return huma.Error500InternalServerError("internal error; see the appliance log")
}

// listed answers a list operation: every record list returns, rendered
// with view. what names the records in a store error.
func listed[S, V any](s *Server, what string, list func() ([]S, error), view func(S) V) (*struct{ Body []V }, error) {
	xs, err := list()
	if err != nil {
		return nil, s.storeErr(err, what, "")
	}
	return &struct{ Body []V }{Body: views(xs, view)}, nil
}

// views renders each of xs with view. The result is never nil, so that an
// empty list encodes as [] rather than null.
func views[S, V any](xs []S, view func(S) V) []V {
	out := make([]V, 0, len(xs))
	for _, x := range xs {
		out = append(out, view(x))
	}
	return out
}

// fieldErr is a 422 naming one field.
func fieldErr(location, msg string, value any) error {
	return huma.Error422UnprocessableEntity(msg, &huma.ErrorDetail{Location: location, Message: msg, Value: value})
}
