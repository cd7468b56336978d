package lifecycle

import (
	"fmt"
	"strings"
)

// Markdown renders the life cycle as the tables of docs/lifecycle.md. Every
// cell is computed by Next, Allowed or Decide, so the document cannot drift
// from the code: a test compares the file with this output.
func Markdown() string {
	b := &strings.Builder{}
	b.WriteString("# Machine life cycle\n\n")
	b.WriteString("Generated from package `lifecycle` by `go test ./lifecycle -update`; do not edit.\n")
	b.WriteString("Every row is what `lifecycle.Decide`, `Next` and `Allowed` return, so DHCP, the iPXE\n")
	b.WriteString("script server, the agent API and the dashboard all follow these tables.\n\n")

	b.WriteString("## Actions\n\n| action | from | to | by | why |\n| --- | --- | --- | --- | --- |\n")
	for _, r := range rules {
		from := "(no record)"
		if r.From != nil {
			from = join(r.From)
		}
		to := r.To.String()
		if r.To == Gone {
			to = "(deleted)"
		}
		by := make([]string, len(r.By))
		for i, x := range r.By {
			by[i] = string(x)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", r.Action, from, to, strings.Join(by, ", "), r.Why)
	}

	b.WriteString("\n## What an administrator may do, by state\n\n| state | actions |\n| --- | --- |\n")
	for _, s := range States() {
		acts := Allowed(s, RoleAdmin)
		names := make([]string, len(acts))
		for i, a := range acts {
			names[i] = string(a)
		}
		fmt.Fprintf(b, "| %s | %s |\n", s, strings.Join(names, ", "))
	}

	b.WriteString("\n## DHCP answer (firmware PXE, x86 BIOS)\n\n")
	b.WriteString("| machine | dhcp, discovery | dhcp, no discovery | dhcp, no discovery, allow unknown | proxy, discovery | proxy, no discovery |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- |\n")
	segs := []Segment{{Discovery: true}, {}, {AllowUnknown: true}, {Proxy: true, Discovery: true}, {Proxy: true}}
	for _, m := range sampleMachines(false) {
		fmt.Fprintf(b, "| %s |", machineLabel(m))
		for _, seg := range segs {
			f := Decide(Query{Machine: m, Segment: seg, Client: Client{FirmwarePXE, ArchBIOS}})
			fmt.Fprintf(b, " %s |", dhcpCell(f))
		}
		b.WriteString("\n")
	}

	b.WriteString("\n## Boot file by client (a machine that may boot; segment binary ipxe.efi)\n\n")
	b.WriteString("| firmware | bios | x86-64 uefi | x86-64 uefi, machine says snponly.efi | arm64 (binary present) | arm64 (absent) | unknown | other |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, fw := range []Firmware{FirmwarePXE, FirmwareIPXE, FirmwareHTTP, FirmwareNone} {
		fmt.Fprintf(b, "| %s |", fw)
		cases := []struct {
			arch  Arch
			snp   bool
			arm64 bool
		}{{ArchBIOS, false, true}, {ArchX64, false, true}, {ArchX64, true, true}, {ArchARM64, false, true},
			{ArchARM64, false, false}, {ArchUnknown, false, true}, {ArchOther, false, true}}
		for _, c := range cases {
			m := &Machine{State: Ready, Profile: Netboot}
			if c.snp {
				m.UEFIBinary = BinarySNP
			}
			f := Decide(Query{Machine: m, Segment: Segment{Discovery: true}, Client: Client{fw, c.arch}, HaveARM64: c.arm64})
			fmt.Fprintf(b, " %s |", bootCell(f))
		}
		b.WriteString("\n")
	}

	b.WriteString("\n## iPXE script and agent decision\n\n")
	b.WriteString("The agent's decision depends on its boot session: \"bound\" is the session approval bound the machine to, \"other\" any other session of the same MAC (an earlier boot's, or a spoofer's). Only the bound session is given the approval's details (host name, SSH keys, network, image).\n\n")
	b.WriteString("| machine | script (discovery segment) | script (other segment) | menu item rediscover | menu item production | agent (bound) | agent (other) |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, m := range sampleMachines(true) {
		on := Decide(Query{Machine: m, Segment: Segment{Discovery: true}, Bound: true})
		other := Decide(Query{Machine: m, Segment: Segment{Discovery: true}})
		off := Decide(Query{Machine: m})
		disc := Decide(Query{Machine: m, Segment: Segment{Discovery: true}, Mode: ModeDiscovery})
		prod := Decide(Query{Machine: m, Segment: Segment{Discovery: true}, Mode: ModeProduction})
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s |\n", machineLabel(m), on.Script, off.Script, disc.Script, prod.Script, on.Agent, other.Agent)
	}
	return b.String()
}

// sampleMachines is no record, then every state with every profile kind
// where the kind matters (accepted states), with and without a menu.
func sampleMachines(menus bool) []*Machine {
	out := []*Machine{nil}
	for _, s := range States() {
		if !s.Accepted() {
			out = append(out, &Machine{State: s})
			if s.Pending() {
				out = append(out, &Machine{State: s, Wipe: true})
			}
			continue
		}
		for _, p := range []ProfileKind{Netboot, Image, ""} {
			out = append(out, &Machine{State: s, Profile: p})
			if menus && p != "" {
				out = append(out, &Machine{State: s, Profile: p, Menu: true})
			}
			if s == Provisioning && p == Image {
				out = append(out, &Machine{State: s, Profile: p, Installed: true})
			}
		}
	}
	return out
}

func machineLabel(m *Machine) string {
	if m == nil {
		return "(no record)"
	}
	s := m.State.String()
	if m.State.Accepted() {
		switch m.Profile {
		case "":
			s += ", profile missing"
		default:
			s += ", " + string(m.Profile)
		}
	}
	if m.awaitingFirstBoot() {
		s += ", installed"
	}
	if m.WipePending() {
		s += ", released (wipe)"
	}
	if m.Menu {
		s += ", menu"
	}
	return s
}

func dhcpCell(f Fate) string {
	if !f.Reply {
		return "no reply"
	}
	var parts []string
	if f.Address {
		parts = append(parts, "address")
	}
	if f.Boot != BootNone {
		parts = append(parts, bootCell(f))
	}
	if f.Record {
		parts = append(parts, "creates record")
	}
	return strings.Join(parts, " + ")
}

func bootCell(f Fate) string {
	switch f.Boot {
	case BootTFTP:
		return "tftp " + f.File
	case BootHTTP:
		return "http " + f.File
	case BootScript:
		return "script URL"
	}
	return "no boot"
}

func join(states []State) string {
	names := make([]string, len(states))
	for i, s := range states {
		names[i] = s.String()
	}
	return strings.Join(names, ", ")
}

// AdminActions is, for every state by name, what an administrator may do
// (Allowed for RoleAdmin). The dashboard's test data is generated from it
// (ui/src/lib/lifecycle.json), so that tests shape machines as the API does.
func AdminActions() map[string][]string {
	out := make(map[string][]string, len(stateNames))
	for _, s := range States() {
		acts := []string{}
		for _, a := range Allowed(s, RoleAdmin) {
			acts = append(acts, string(a))
		}
		out[s.String()] = acts
	}
	return out
}
