package api

import (
	"context"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"unicode"

	"github.com/danielgtaylor/huma/v2"

	"github.com/foundry-appliance/foundry/ipxe"
	"github.com/foundry-appliance/foundry/names"
	"github.com/foundry-appliance/foundry/store"
)

// ProfileFields are the settable fields of a profile.
type ProfileFields struct {
	Kind        string `json:"kind" enum:"netboot,image" example:"netboot" doc:"netboot: every PXE boot gets the production script; image: the agent writes an image to disk, then the machine boots locally"`
	Description string `json:"description,omitempty" maxLength:"4096"`
	Kernel      string `json:"kernel,omitempty" maxLength:"2048" example:"http://10.77.0.1:8080/images/debian/vmlinuz" doc:"netboot: kernel URL (http, https or a path on the appliance)"`
	Initrd      string `json:"initrd,omitempty" maxLength:"2048" example:"http://10.77.0.1:8080/images/debian/initrd.gz"`
	Cmdline     string `json:"cmdline,omitempty" maxLength:"4096" example:"console=ttyS0,115200"`
	Script      string `json:"script,omitempty" maxLength:"65536" doc:"netboot: a whole iPXE script (starting with #!ipxe) instead of kernel/initrd/cmdline"`
	ImageURL    string `json:"image_url,omitempty" maxLength:"2048" example:"http://10.77.0.1:8080/images/debian-12.raw.zst" doc:"image: raw, .gz, .zst or .xz image URL"`
	ImageSHA256 string `json:"image_sha256,omitempty" maxLength:"64" example:"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" doc:"image: SHA-256 of the image file as served"`
	Image       string `json:"image,omitempty" maxLength:"64" example:"debian-12" doc:"image: the name of a ready library image, instead of image_url and image_sha256 (the agent gets its appliance URL and checksum)"`
}

// ProfileCreate is the body that creates a profile.
type ProfileCreate struct {
	Name string `json:"name" minLength:"1" maxLength:"64" pattern:"^[A-Za-z0-9][A-Za-z0-9._-]*$" example:"debian-netboot"`
	ProfileFields
}

type profileOut struct{ Body Profile }

// checkProfile returns every problem of f, each naming its field.
func checkProfile(f ProfileFields) error {
	var errs []error
	bad := func(field, msg string, v any) {
		errs = append(errs, &huma.ErrorDetail{Location: "body." + field, Message: msg, Value: v})
	}
	checkURL := func(field, v string) {
		if v != "" && !bootURL(v) {
			bad(field, "want an http or https URL, or a path on the appliance starting with /", v)
		}
	}
	switch store.ProfileKind(f.Kind) {
	case store.ProfileNetboot:
		if f.Kernel == "" && f.Script == "" {
			bad("kernel", "a netboot profile needs a kernel (or a whole script)", nil)
		}
		if f.Script != "" && !strings.HasPrefix(f.Script, "#!ipxe") {
			bad("script", "an iPXE script starts with #!ipxe", nil)
		}
		checkURL("kernel", f.Kernel)
		checkURL("initrd", f.Initrd)
		if strings.IndexFunc(f.Cmdline, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
			bad("cmdline", "the kernel command line must be one line of printable characters", f.Cmdline)
		}
		if f.ImageURL != "" || f.ImageSHA256 != "" {
			bad("image_url", "image fields belong to image profiles", f.ImageURL)
		}
		if f.Image != "" {
			bad("image", "image fields belong to image profiles", f.Image)
		}
	case store.ProfileImage:
		switch {
		case f.Image != "":
			if names.CheckName(f.Image) != nil {
				bad("image", "want the name of a library image", f.Image)
			}
			if f.ImageURL != "" || f.ImageSHA256 != "" {
				bad("image_url", "name a library image or give an image URL and checksum, not both", f.ImageURL)
			}
		case f.ImageURL == "":
			bad("image_url", "an image profile needs a library image (image) or an image URL", nil)
		default:
			checkURL("image_url", f.ImageURL)
			if b, err := hex.DecodeString(f.ImageSHA256); err != nil || len(b) != 32 {
				bad("image_sha256", "want the image's SHA-256 as 64 hex digits", f.ImageSHA256)
			}
		}
		if f.Kernel != "" || f.Initrd != "" || f.Cmdline != "" || f.Script != "" {
			bad("kernel", "kernel, initrd, cmdline and script belong to netboot profiles", nil)
		}
	default:
		bad("kind", "want netboot or image", f.Kind)
	}
	if len(errs) == 0 {
		return nil
	}
	return huma.Error422UnprocessableEntity("invalid profile: "+errs[0].(*huma.ErrorDetail).Message, errs...)
}

// checkBootSafe refuses what the iPXE renderer would refuse at boot time
// (a '$' or '#' in a URL, a command separator in the command line, a
// template that does not parse or run), naming the field. It runs after
// checkProfile, so only values iPXE cannot hold safely are left to find.
func checkBootSafe(nameLoc, name string, f ProfileFields) error {
	if err := ipxe.ValidateProfile(store.Profile{Name: name}); err != nil {
		return fieldErr(nameLoc, "want 1-64 letters, digits, '-', '_' or '.'", name)
	}
	p := store.Profile{Name: name}
	f.apply(&p)
	err := ipxe.ValidateProfile(p)
	if err == nil {
		return nil
	}
	// ValidateProfile stops at the first bad value; find which field it
	// was by validating the fields one at a time, in its order.
	field, value := "script", p.Script
	if p.Script == "" {
		field, value = "cmdline", p.Cmdline
		only := p
		only.Initrd, only.Cmdline = "", ""
		if ipxe.ValidateProfile(only) != nil {
			field, value = "kernel", p.Kernel
		} else if only.Initrd = p.Initrd; ipxe.ValidateProfile(only) != nil {
			field, value = "initrd", p.Initrd
		}
	}
	msg := err.Error()
	return huma.Error422UnprocessableEntity("invalid profile: "+msg, &huma.ErrorDetail{Location: "body." + field, Message: msg, Value: value})
}

func bootURL(v string) bool {
	if strings.ContainsFunc(v, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) {
		return false
	}
	if strings.HasPrefix(v, "/") && !strings.HasPrefix(v, "//") {
		return true
	}
	u, err := url.Parse(v)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func (f ProfileFields) apply(p *store.Profile) {
	p.Kind, p.Description = store.ProfileKind(f.Kind), f.Description
	p.Kernel, p.Initrd, p.Cmdline, p.Script = f.Kernel, f.Initrd, f.Cmdline, f.Script
	p.ImageURL, p.ImageSHA256 = f.ImageURL, strings.ToLower(f.ImageSHA256)
	p.Image = f.Image
}

func (s *Server) registerProfiles() {
	register(s, accessRead, huma.Operation{
		OperationID: "list-profiles", Method: http.MethodGet, Path: Prefix + "/profiles",
		Summary: "List profiles", Tags: []string{"profiles"},
	}, func(context.Context, *struct{}) (*struct{ Body []Profile }, error) {
		return listed(s, "profiles", s.Store.ListProfiles, profileView)
	})
	register(s, accessRead, huma.Operation{
		OperationID: "get-profile", Method: http.MethodGet, Path: Prefix + "/profiles/{name}",
		Summary: "Get a profile", Tags: []string{"profiles"}, Errors: []int{http.StatusNotFound},
	}, func(_ context.Context, in *namePath) (*profileOut, error) {
		p, err := s.Store.GetProfile(in.Name)
		if err != nil {
			return nil, s.storeErr(err, "profile "+in.Name, "path.name")
		}
		return &profileOut{Body: profileView(p)}, nil
	})
	register(s, accessWrite, huma.Operation{
		OperationID: "create-profile", Method: http.MethodPost, Path: Prefix + "/profiles",
		Summary: "Create a profile", Tags: []string{"profiles"}, DefaultStatus: http.StatusCreated,
		Errors: []int{http.StatusConflict, http.StatusUnprocessableEntity},
	}, func(ctx context.Context, in *struct{ Body ProfileCreate }) (*profileOut, error) {
		if err := checkProfile(in.Body.ProfileFields); err != nil {
			return nil, err
		}
		if err := checkBootSafe("body.name", in.Body.Name, in.Body.ProfileFields); err != nil {
			return nil, err
		}
		if err := s.checkProfileImage(in.Body.ProfileFields); err != nil {
			return nil, err
		}
		p := store.Profile{Name: in.Body.Name}
		in.Body.apply(&p)
		p, err := s.Store.CreateProfile(p, store.Audit{Actor: caller(ctx).Actor, Action: "profile-create", Detail: in.Body.Name})
		if err != nil {
			return nil, s.storeErr(err, "profile "+in.Body.Name, "body.name")
		}
		return &profileOut{Body: profileView(p)}, nil
	})
	register(s, accessWrite, huma.Operation{
		OperationID: "update-profile", Method: http.MethodPut, Path: Prefix + "/profiles/{name}",
		Summary: "Replace a profile's settings", Tags: []string{"profiles"},
		Errors: []int{http.StatusNotFound, http.StatusUnprocessableEntity},
	}, func(ctx context.Context, in *struct {
		Name string `path:"name" maxLength:"64" example:"rack1"`
		Body ProfileFields
	}) (*profileOut, error) {
		if err := checkProfile(in.Body); err != nil {
			return nil, err
		}
		if err := checkBootSafe("path.name", in.Name, in.Body); err != nil {
			return nil, err
		}
		if err := s.checkProfileImage(in.Body); err != nil {
			return nil, err
		}
		p, err := s.Store.UpdateProfile(in.Name, store.Audit{Actor: caller(ctx).Actor, Action: "profile-update", Detail: in.Name},
			func(p *store.Profile) error {
				in.Body.apply(p)
				return nil
			})
		if err != nil {
			return nil, s.storeErr(err, "profile "+in.Name, "body")
		}
		return &profileOut{Body: profileView(p)}, nil
	})
	register(s, accessWrite, huma.Operation{
		OperationID: "delete-profile", Method: http.MethodDelete, Path: Prefix + "/profiles/{name}",
		Summary: "Delete an unused profile", Tags: []string{"profiles"}, DefaultStatus: http.StatusNoContent,
		Description: "A profile that a machine or a cluster's default uses cannot be deleted (409).",
		Errors:      []int{http.StatusNotFound, http.StatusConflict},
	}, func(ctx context.Context, in *namePath) (*struct{}, error) {
		err := s.Store.DeleteProfile(in.Name, store.Audit{Actor: caller(ctx).Actor, Action: "profile-delete", Detail: in.Name})
		return nil, s.storeErr(err, "profile "+in.Name, "path.name")
	})
}
