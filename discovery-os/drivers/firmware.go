package drivers

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/foundry-appliance/foundry/discovery-os/kmod"
)

// The firmware rule: every file a selected module names (modinfo
// "firmware=") that one of Debian's firmware packages holds goes into the
// image, except
//
//   - older versions of a file the same module also names in a newer
//     version (bnx2x names 7.13.15 and 7.13.21 and tries the newer first);
//   - the firmware of drivers whose cards run the firmware kept in their
//     own flash when the host offers none (flashFirmware): 5 MB
//     compressed, which would take the image over its budget.
//
// Files no package holds are reported, not fatal: a few drivers still name
// firmware Debian does not distribute (acenic, starfire, cassini), and the
// build reads only the packages that hold what it ships (the Makefile's
// FIRMWARE_PKGS).

// flashFirmware are the modules whose firmware is left out because their
// cards start without it, each with what its driver does then (read in
// the drivers' sources).
var flashFirmware = map[string]string{
	"nfp":        "loads the firmware stored in the card's flash (nfp_nsp_load_stored_fw)",
	"netxen_nic": "falls back to the card's flash image (NX_FLASH_ROMIMAGE)",
	"qlcnic":     "uses the card's flash image unless told to load a file (QLCNIC_FLASH_ROMIMAGE)",
	"cxgb4":      "runs the firmware on the card when it is compatible (t4_prep_fw)",
	"csiostor":   "runs the firmware on the card when it is compatible (csio_hw_prep_fw)",
	"myri10ge":   "adopts the firmware running on the NIC (myri10ge_adopt_running_firmware)",
	"liquidio":   "uses the firmware in flash when present (fw_type=auto)",
}

// Package is an unpacked firmware package: Dir holds its lib/firmware
// (or usr/lib/firmware) tree.
type Package struct {
	Name, Dir string
}

// FirmwareFile is one firmware file the image carries.
type FirmwareFile struct {
	// Name is the path the driver asks for, under /lib/firmware.
	Name string
	// Src is the file in the package (a symbolic link resolved).
	Src     string
	Package string
	Size    int64
	// Modules are the selected modules that name it.
	Modules []string
}

// FirmwareSkip is a named firmware file the image does not carry.
type FirmwareSkip struct {
	Name    string   `json:"name"`
	Modules []string `json:"modules"`
	Reason  string   `json:"reason"`
}

// FirmwarePlan is the firmware rule applied to a set of modules.
type FirmwarePlan struct {
	Files   []FirmwareFile
	Skipped []FirmwareSkip
}

// Firmware applies the firmware rule to mods (a closure: every module the
// image carries) with the given packages, searched in order.
func Firmware(mods []kmod.Module, pkgs []Package) (FirmwarePlan, error) {
	named := map[string][]string{} // file → modules
	newestOf := map[string]bool{}
	for _, m := range mods {
		for _, f := range m.Firmware {
			if !slices.Contains(named[f], m.Name) {
				named[f] = append(named[f], m.Name)
			}
		}
		for _, f := range newest(m.Firmware) {
			newestOf[f] = true
		}
	}
	var plan FirmwarePlan
	names := make([]string, 0, len(named))
	for f := range named {
		names = append(names, f)
	}
	slices.Sort(names)
	for _, f := range names {
		by := named[f]
		slices.Sort(by)
		if !newestOf[f] {
			plan.Skipped = append(plan.Skipped, FirmwareSkip{Name: f, Modules: by, Reason: "an older version of a file its module also names"})
			continue
		}
		if why, ok := allFlash(by); ok {
			plan.Skipped = append(plan.Skipped, FirmwareSkip{Name: f, Modules: by, Reason: "the card starts without it: " + why})
			continue
		}
		file, err := find(f, pkgs)
		if err != nil {
			return FirmwarePlan{}, err
		}
		if file.Src == "" {
			plan.Skipped = append(plan.Skipped, FirmwareSkip{Name: f, Modules: by, Reason: "in none of the firmware packages the build reads"})
			continue
		}
		file.Modules = by
		plan.Files = append(plan.Files, file)
	}
	return plan, nil
}

// allFlash reports whether every module naming a file starts its card
// without it, and what the first one does.
func allFlash(mods []string) (string, bool) {
	why := ""
	for _, m := range mods {
		w, ok := flashFirmware[m]
		if !ok {
			return "", false
		}
		if why == "" {
			why = m + " " + w
		}
	}
	return why, why != ""
}

// find looks a firmware name up in the packages; a name that is a
// symbolic link (ice.pkg → ice-1.3.30.0.pkg) resolves inside its package.
func find(name string, pkgs []Package) (FirmwareFile, error) {
	for _, p := range pkgs {
		for _, root := range []string{"lib/firmware", "usr/lib/firmware"} {
			base := filepath.Join(p.Dir, root)
			src, err := filepath.EvalSymlinks(filepath.Join(base, name))
			if err != nil {
				continue
			}
			if rel, err := filepath.Rel(base, src); err != nil || strings.HasPrefix(rel, "..") {
				// A link out of the firmware tree would ship a file of the
				// build host.
				return FirmwareFile{}, fmt.Errorf("firmware %s in %s links outside the package's firmware: %s", name, p.Name, src)
			}
			st, err := os.Stat(src)
			if err != nil || !st.Mode().IsRegular() {
				continue
			}
			return FirmwareFile{Name: name, Src: src, Package: p.Name, Size: st.Size()}, nil
		}
	}
	return FirmwareFile{}, nil
}

var dotted = regexp.MustCompile(`\d+(\.\d+)+`)

// newest returns the firmware names with, among names that differ only in
// a dotted version ("bnx2x-e1-7.13.15.0.fw", "bnx2x-e1-7.13.21.0.fw"), only
// the highest version.
func newest(names []string) []string {
	best := map[string]string{}
	var order []string
	for _, n := range names {
		key := dotted.ReplaceAllString(n, "#")
		cur, ok := best[key]
		if !ok {
			order = append(order, key)
			best[key] = n
			continue
		}
		if compareVersions(dotted.FindString(n), dotted.FindString(cur)) > 0 {
			best[key] = n
		}
	}
	out := make([]string, len(order))
	for i, k := range order {
		out[i] = best[k]
	}
	return out
}

// compareVersions compares dotted numbers part by part.
func compareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(pa), len(pb)); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x - y
		}
	}
	return 0
}
