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

// BootMenu is the iPXE menu (production, rediscover, local disk, iPXE
// shell) that an approved machine gets instead of its direct production or
// local-disk boot (docs/spec.md §2). The enum of default is store.MenuItems();
// TestBootMenuEnumIsTheStores keeps the two equal.
type BootMenu struct {
	Enabled        bool   `json:"enabled" doc:"Production and local-disk boots show the menu instead of booting directly"`
	TimeoutSeconds int    `json:"timeout_seconds,omitempty" minimum:"0" maximum:"600" example:"10" doc:"Seconds the menu waits before booting the default item; 0 or absent: the appliance's default (5 s)"`
	Default        string `json:"default,omitempty" enum:"production,rediscover,local,shell" example:"local" doc:"Item booted when the timeout runs out or the menu is escaped; default production"`
}

// BootSettings are a machine's per-machine boot choices.
type BootSettings struct {
	Menu       BootMenu `json:"menu"`
	UEFIBinary string   `json:"uefi_binary,omitempty" enum:",ipxe.efi,snponly.efi" example:"snponly.efi" doc:"x86-64 UEFI iPXE binary offered over TFTP; empty or absent: the segment's choice"`
}

type bootIn struct {
	MAC  string `path:"mac" example:"52:54:00:12:34:56" doc:"Boot MAC"`
	Body BootSettings
}

// errStale says the machine changed between reading it and writing it.
var errStale = errors.New("machine changed concurrently")

func (s *Server) registerBoot() {
	register(s, accessWrite, huma.Operation{
		OperationID: "set-machine-boot", Method: http.MethodPut, Path: Prefix + "/machines/{mac}/boot",
		Summary: "Set a machine's boot menu and UEFI binary", Tags: []string{"machines"},
		Description: "Replaces the machine's boot settings. The menu takes effect on the next boot that would be a production or local-disk boot. " +
			"A rejected machine gets no boot at all, so its settings cannot be changed (409). A call that changes nothing writes nothing.",
		Errors: []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity},
	}, s.setBoot)
}

func (s *Server) setBoot(ctx context.Context, in *bootIn) (*machineOut, error) {
	mac, err := canonicalMAC(in.MAC)
	if err != nil {
		return nil, err
	}
	menu := store.BootMenu{Enabled: in.Body.Menu.Enabled, TimeoutSeconds: in.Body.Menu.TimeoutSeconds, Default: in.Body.Menu.Default}
	if menu.Default == "" {
		menu.Default = store.MenuProduction
	}
	uefi := in.Body.UEFIBinary
	// The audit detail names what changed, which is known only against the
	// record that is replaced: write only if that record is still current.
	for range 5 {
		old, err := s.Store.GetMachine(mac)
		if err != nil {
			return nil, s.storeErr(err, "machine "+mac, "path.mac")
		}
		if old.State == store.StateRejected {
			return nil, huma.Error409Conflict(fmt.Sprintf("machine %s is rejected: it gets no boot, so it has no boot settings (delete it to let it be discovered again)", mac))
		}
		detail := bootChanges(old, menu, uefi)
		if detail == "" {
			return &machineOut{Body: s.machineView(old, true)}, nil
		}
		m, err := s.Store.UpdateMachine(mac, store.Audit{Actor: caller(ctx).Actor, Action: "boot-settings", Detail: detail},
			func(m *store.Machine) error {
				if m.Revision != old.Revision {
					return errStale
				}
				m.Menu, m.UEFIBinary = menu, uefi
				return nil
			})
		if errors.Is(err, errStale) {
			continue
		}
		if err != nil {
			return nil, s.storeErr(err, "machine "+mac, "path.mac")
		}
		return &machineOut{Body: s.machineView(m, true)}, nil
	}
	return nil, huma.Error409Conflict(fmt.Sprintf("machine %s kept changing while its boot settings were written; try again", mac))
}

// bootChanges describes the difference between m's boot settings and the
// new ones for the audit log ("" when there is none).
func bootChanges(m store.Machine, menu store.BootMenu, uefi string) string {
	was := bootMenuView(m.Menu)
	var out []string
	change := func(what, from, to string) {
		if from != to {
			out = append(out, fmt.Sprintf("%s %s -> %s", what, from, to))
		}
	}
	change("menu", onOff(was.Enabled), onOff(menu.Enabled))
	change("timeout", timeoutText(was.TimeoutSeconds), timeoutText(menu.TimeoutSeconds))
	change("default", was.Default, menu.Default)
	change("uefi_binary", uefiText(m.UEFIBinary), uefiText(uefi))
	return strings.Join(out, ", ")
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func timeoutText(sec int) string {
	if sec <= 0 {
		return "default"
	}
	return fmt.Sprintf("%ds", sec)
}

func uefiText(s string) string {
	if s == "" {
		return "segment's"
	}
	return s
}

// bootMenuView shows a stored menu with its default item resolved.
func bootMenuView(b store.BootMenu) BootMenu {
	v := BootMenu{Enabled: b.Enabled, TimeoutSeconds: b.TimeoutSeconds, Default: b.Default}
	if v.Default == "" {
		v.Default = store.MenuProduction
	}
	return v
}
