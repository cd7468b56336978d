package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/foundry-appliance/foundry/ipxe"
)

// BootScript is the iPXE script a machine would get on its next network
// boot, rendered without any side effect.
type BootScript struct {
	MAC   string `json:"mac" example:"52:54:00:12:34:56"`
	Kind  string `json:"kind" enum:"unknown,discovery,production,local,menu,rejected,error" example:"discovery" doc:"Which script the machine gets; error when none can be rendered (the machine then gets a script that stops its boot)"`
	Text  string `json:"text" example:"#!ipxe\n# Foundry discovery script for 52:54:00:12:34:56\nkernel http://10.77.0.1:8080/images/discovery/vmlinuz initrd=initrd foundry.nonce=NONCE-ISSUED-AT-BOOT\nboot\n" doc:"The script, starting with #!ipxe. A discovery script shows NONCE-ISSUED-AT-BOOT (ipxe.PreviewNonce) where the one-time boot nonce goes: a preview never issues or revokes one"`
	Error string `json:"error,omitempty" doc:"Why no script could be rendered (kind error), e.g. an unsafe value in the machine's profile"`
}

// scriptPreviewer is what *ipxe.Server offers; Server.Boot is used for
// previews when it has it and BootPreview is nil.
type scriptPreviewer interface {
	Preview(mac string, mode ipxe.Mode) (ipxe.Script, error)
}

// bootPreview returns the preview function, or nil when there is none.
func (s *Server) bootPreview() func(mac string) (kind, text string, err error) {
	if s.BootPreview != nil {
		return s.BootPreview
	}
	if p, ok := s.Boot.(scriptPreviewer); ok {
		return func(mac string) (string, string, error) {
			sc, err := p.Preview(mac, ipxe.ModeNormal)
			return sc.Kind.String(), sc.Text, err
		}
	}
	return nil
}

func (s *Server) registerBootScript() {
	register(s, accessRead, huma.Operation{
		OperationID: "get-boot-script", Method: http.MethodGet, Path: Prefix + "/machines/{mac}/boot-script",
		Summary: "Preview a machine's boot script", Tags: []string{"machines"},
		Description: "The iPXE script the machine would get from GET /boot/{mac} now. Read-only: unlike /boot/{mac}, " +
			"a preview never issues a boot nonce, so it never revokes the nonce a running discovery agent holds. " +
			"404 when the machine does not exist or the appliance offers no preview.",
		Errors: []int{http.StatusNotFound, http.StatusUnprocessableEntity},
	}, func(_ context.Context, in *macPath) (*struct{ Body BootScript }, error) {
		m, err := s.getMachine(in.MAC)
		if err != nil {
			return nil, err
		}
		preview := s.bootPreview()
		if preview == nil {
			return nil, huma.Error404NotFound("this appliance serves no boot scripts, so there is nothing to preview (api.Server has neither BootPreview nor a Boot handler that can preview)")
		}
		kind, text, err := preview(m.MAC)
		if err != nil {
			// What the machine really gets in this case: ipxe serves its
			// error script and logs why.
			s.log.Warn("boot script preview failed", "mac", m.MAC, "err", err)
			return &struct{ Body BootScript }{Body: BootScript{MAC: m.MAC, Kind: "error", Text: ipxe.ErrorScript(m.MAC), Error: err.Error()}}, nil
		}
		return &struct{ Body BootScript }{Body: BootScript{MAC: m.MAC, Kind: kind, Text: text}}, nil
	})
}
