package api

import (
	"encoding/json"
	"net/netip"
	"time"

	"github.com/foundry-appliance/foundry/agentwire"
	"github.com/foundry-appliance/foundry/store"
)

// Machine is a machine as the API shows it. Lists leave out the inventory;
// GET /api/v1/machines/{mac} includes it.
type Machine struct {
	MAC       string     `json:"mac" example:"52:54:00:12:34:56" doc:"Boot MAC, canonical lower-case colon form"`
	State     string     `json:"state" enum:"discovered,inventoried,approved,provisioning,ready,failed,rejected" example:"inventoried"`
	Hostname  string     `json:"hostname" example:"discovered-123456"`
	Temporary bool       `json:"temporary" doc:"Temporary records are deleted at expires_at unless approved"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Segment   string     `json:"segment,omitempty" example:"lab"`
	Arch      string     `json:"arch,omitempty" example:"bios"`
	IP        string     `json:"ip,omitempty" example:"10.77.0.100"`
	FirstSeen time.Time  `json:"first_seen"`
	LastSeen  time.Time  `json:"last_seen"`
	Cluster   string     `json:"cluster,omitempty" example:"rack1"`
	Profile   string     `json:"profile,omitempty" example:"debian-netboot"`
	Approval  *Approval  `json:"approval,omitempty"`
	Progress  int        `json:"progress" minimum:"0" maximum:"100" doc:"Provisioning progress in percent"`
	// ProgressDetail is shown while provisioning and after a failure; an
	// approval, a retry and a rediscovery clear it.
	ProgressDetail *ProgressDetail `json:"progress_detail,omitempty" doc:"The image download as the agent last reported it: bytes, rate and time left (provisioning and failed machines only)"`
	// Installed, ReadyAt and DeploySeconds follow an image install to the
	// installed system's first boot.
	Installed     bool       `json:"installed" doc:"The image is written; the machine boots its disk and becomes ready when the installed system reports its first boot"`
	ReadyAt       *time.Time `json:"ready_at,omitempty"`
	DeploySeconds *float64   `json:"deploy_seconds,omitempty" doc:"Seconds from approval to ready"`
	FirstBoot     *FirstBoot `json:"first_boot,omitempty" doc:"What the installed system reported at its first boot"`
	// Wipe is a release's pending wipe: every boot into discovery wipes
	// the disks before one of its registrations can be approved.
	Wipe     *Wipe    `json:"wipe,omitempty" doc:"A release's wipe, pending until a registration is approved (each registration's wiped_at says whether its agent has wiped)"`
	Message  string   `json:"message,omitempty" doc:"Last status, failure or rejection reason"`
	Revision uint64   `json:"revision" doc:"Increases on every change"`
	Client   string   `json:"client,omitempty" enum:"pxe,ipxe,http" doc:"Network-boot client seen last: firmware PXE, iPXE or UEFI HTTP boot"`
	Actions  []string `json:"actions" doc:"What an administrator may do to the machine in its state (docs/lifecycle.md); the dashboard shows exactly these"`

	// Boot settings, set by PUT /api/v1/machines/{mac}/boot.
	Menu       BootMenu `json:"menu" doc:"The iPXE boot menu"`
	UEFIBinary string   `json:"uefi_binary" enum:",ipxe.efi,snponly.efi" doc:"x86-64 UEFI iPXE binary for this machine; empty: the segment's choice"`
	// BMC is the machine's BMC, never its password (bmc.go).
	BMC *BMCInfo `json:"bmc,omitempty" doc:"The machine's BMC and whether the appliance holds a credential for it (never the password)"`
	// Token describes the newest registration's token without revealing
	// its hash.
	Token *TokenStatus `json:"token,omitempty"`
	// Registrations are the machine's live boot sessions, oldest first.
	Registrations []Registration `json:"registrations" doc:"Live registrations (discovery boot sessions) of this MAC, oldest first"`
	// MACConflict says that more than one registration is active: two
	// hosts answer for this MAC, or one rebooted less than a minute or two
	// ago.
	MACConflict bool `json:"mac_conflict" doc:"More than one registration of this MAC is active (its agent called within the last 150 s): possible MAC spoofing. Approval binds to the registration whose console token is typed."`
	// Declared is the machine's declaration in the GitOps repository
	// while it waits for approval (docs/gitops.md).
	Declared *Declared `json:"declared,omitempty" doc:"What a Hardware file in the GitOps repository declares for this machine; an approval takes what it leaves out from here"`
	Summary  Summary   `json:"summary"`
	// Inventory is the agent's report exactly as received (docs/inventory.md).
	Inventory json.RawMessage `json:"inventory,omitempty" doc:"Hardware inventory as reported by the discovery agent (schema in docs/inventory.md); only in single-machine responses"`
}

// ProgressDetail is how far a machine's image download has come.
type ProgressDetail struct {
	BytesDone  int64     `json:"bytes_done" minimum:"0" example:"734003200" doc:"Bytes of the image file received and written"`
	BytesTotal int64     `json:"bytes_total" minimum:"0" example:"1747838976" doc:"The image file's size; 0 when unknown"`
	RateBps    int64     `json:"rate_bps" minimum:"0" example:"52428800" doc:"Download rate, bytes per second; 0 when unknown"`
	ETASeconds int64     `json:"eta_seconds" minimum:"0" example:"19" doc:"Seconds left at that rate, counted from at; 0 when unknown"`
	At         time.Time `json:"at" doc:"When the agent's report arrived"`
}

// Wipe is how a released machine's disks are wiped.
type Wipe struct {
	Full        bool `json:"full" doc:"Every byte of every fixed disk, not only partition tables, signatures and the first and last MiB"`
	SecureErase bool `json:"secure_erase,omitempty" doc:"Each fixed disk's own secure erase (every byte overwritten where there is none)"`
}

// FirstBoot is the installed system's first-boot report.
type FirstBoot struct {
	At          time.Time `json:"at"`
	Hostname    string    `json:"hostname,omitempty"`
	SSHHostKeys []string  `json:"ssh_host_keys,omitempty" doc:"Public SSH host keys, for known_hosts"`
}

// Approval is what an administrator decided.
type Approval struct {
	Disk          string    `json:"disk,omitempty" example:"/dev/disk/by-path/pci-0000:00:1f.2-ata-1" doc:"Target disk by its stable path"`
	SSHKeys       []string  `json:"ssh_keys,omitempty"`
	Network       Network   `json:"network"`
	ApprovedBy    string    `json:"approved_by" example:"token:admin"`
	ApprovedAt    time.Time `json:"approved_at"`
	TokenBypassed bool      `json:"token_bypassed,omitempty" doc:"Approved without the console token (lab switch)"`
}

// Network is a machine's production network configuration: what the
// administrator approves and what the agent receives in its decision, so
// it is defined once, in the agent protocol.
type Network = agentwire.Network

// TokenStatus tells whether the machine's registration token can be used.
type TokenStatus struct {
	ExpiresAt time.Time `json:"expires_at"`
	Expired   bool      `json:"expired"`
	Failures  int       `json:"failures" doc:"Wrong approval attempts against this token"`
	Locked    bool      `json:"locked" doc:"Approval is locked until the machine registers a new token"`
}

// Summary is the part of the inventory a list shows.
type Summary struct {
	Vendor      string `json:"vendor,omitempty" example:"QEMU"`
	Model       string `json:"model,omitempty" example:"Standard PC (i440FX + PIIX, 1996)"`
	Serial      string `json:"serial,omitempty"`
	CPUModel    string `json:"cpu_model,omitempty"`
	Cores       int    `json:"cores,omitempty"`
	Threads     int    `json:"threads,omitempty"`
	MemoryBytes uint64 `json:"memory_bytes,omitempty"`
	Disks       int    `json:"disks,omitempty"`
	DiskBytes   uint64 `json:"disk_bytes,omitempty" doc:"Total size of the fixed, writable disks (not removable media or CD-ROM drives)"`
	NICs        int    `json:"nics,omitempty"`
	GPUs        int    `json:"gpus,omitempty"`
}

// Registration is one discovery boot session of a machine, as the API
// shows it.
type Registration struct {
	ID           string      `json:"id" example:"q3Zq0Jm7S0nM2s8yYl8yQ0b9vHq6S3hC1xJr2mR9f3E" doc:"The boot key's ID"`
	IP           string      `json:"ip,omitempty" example:"10.77.0.100" doc:"Address the registration came from"`
	RegisteredAt time.Time   `json:"registered_at"`
	LastSeen     time.Time   `json:"last_seen" doc:"Last signed call of its agent"`
	Active       bool        `json:"active" doc:"Its agent called within the last 150 s"`
	Bound        bool        `json:"bound" doc:"Approval bound the machine to this registration: only its agent is told the decision and may report"`
	WipedAt      *time.Time  `json:"wiped_at,omitempty" doc:"When its agent reported the disks of a released machine wiped; only such a registration can be approved"`
	Token        TokenStatus `json:"token"`
	Summary      *Summary    `json:"summary,omitempty" doc:"Its inventory's summary; only in single-machine responses"`
}

// maxFailures is how many wrong tokens lock approval.
const maxFailures = 5

// activeWithin is how recently a registration's agent must have called
// to count as active: agents long-poll for at most maxWait seconds.
const activeWithin = (maxWait + 30) * time.Second

// registrationViews shows a machine's live sessions; invs, when not nil,
// holds each session's inventory by ID for its summary.
func registrationViews(m store.Machine, sessions []store.Session, invs map[string]json.RawMessage, now time.Time) ([]Registration, bool) {
	out := make([]Registration, 0, len(sessions))
	active := 0
	for _, se := range sessions {
		r := Registration{
			ID: se.ID, IP: se.Remote, RegisteredAt: se.OpenedAt, LastSeen: se.LastSeen,
			Active: now.Sub(se.LastSeen) < activeWithin, Bound: se.ID == m.Session,
			Token: tokenStatus(se.Token, now),
		}
		if !se.Wiped.IsZero() {
			t := se.Wiped
			r.WipedAt = &t
		}
		if inv, ok := invs[se.ID]; ok && len(inv) > 0 {
			is, _ := store.SummaryOf(inv, m.Summary)
			sum := summaryView(is)
			r.Summary = &sum
		}
		if r.Active {
			active++
		}
		out = append(out, r)
	}
	return out, active > 1
}

func tokenStatus(t store.RegToken, now time.Time) TokenStatus {
	return TokenStatus{
		ExpiresAt: t.ExpiresAt, Expired: !now.Before(t.ExpiresAt),
		Failures: t.Failures, Locked: t.Failures >= maxFailures,
	}
}

// machineView converts a stored machine with its live sessions;
// withInventory adds the inventory and each registration's summary.
func (s *Server) machineView(m store.Machine, withInventory bool) Machine {
	sessions, err := s.Store.MachineSessions(m.MAC)
	if err != nil {
		s.log.Error("list sessions", "mac", m.MAC, "err", err)
	}
	var invs map[string]json.RawMessage
	if withInventory {
		invs = map[string]json.RawMessage{}
		for _, se := range sessions {
			if inv, err := s.Store.SessionInventory(se.ID); err == nil {
				invs[se.ID] = inv
			}
		}
	}
	v := machineView(m, sessions, invs, s.now(), withInventory)
	if s.GitOps != nil && m.State.Pending() {
		if d, origin, ok := s.GitOps.Declaration(m.MAC); ok {
			v.Declared = &Declared{Cluster: d.Cluster, Profile: d.Profile, Hostname: d.Hostname, Disk: d.Disk,
				Network: d.Network, Address: d.Address, Origin: origin}
		}
	}
	return v
}

// Declared is a machine's declaration in Git, as the dashboard shows it.
type Declared struct {
	Cluster  string `json:"cluster" example:"rack1"`
	Profile  string `json:"profile" example:"debian"`
	Hostname string `json:"hostname" example:"node-07"`
	Disk     string `json:"disk,omitempty" example:"/dev/disk/by-path/pci-0000:00:1f.2-ata-1"`
	Network  string `json:"network" enum:"dhcp,static" example:"static"`
	Address  string `json:"address,omitempty" example:"10.77.0.50/24"`
	Origin   string `json:"origin" doc:"The file, the person and the commit" example:"declared in hardware/node-07.yaml by Dana Ops <dana@example.org> (commit 0123456789ab)"`
}

// machineView converts a stored machine with its live sessions (see
// registrationViews for invs); withInventory adds the inventory.
func machineView(m store.Machine, sessions []store.Session, invs map[string]json.RawMessage, now time.Time, withInventory bool) Machine {
	v := Machine{
		MAC: m.MAC, State: m.State.String(), Hostname: m.Hostname, Temporary: m.Temporary,
		Segment: m.Segment, Arch: m.Arch, IP: m.IP, FirstSeen: m.FirstSeen, LastSeen: m.LastSeen,
		Cluster: m.Cluster, Profile: m.Profile, Progress: m.Progress, Message: m.Message,
		Revision: m.Revision, Client: m.Client, Actions: adminActions(m.State),
		Menu: bootMenuView(m.Menu), UEFIBinary: m.UEFIBinary, BMC: bmcView(m),
	}
	if !m.ExpiresAt.IsZero() {
		t := m.ExpiresAt
		v.ExpiresAt = &t
	}
	v.Installed = m.Installed
	if !m.ReadyAt.IsZero() {
		t := m.ReadyAt
		v.ReadyAt = &t
		if m.Approval != nil && !m.Approval.ApprovedAt.IsZero() {
			d := m.ReadyAt.Sub(m.Approval.ApprovedAt).Seconds()
			v.DeploySeconds = &d
		}
	}
	if d := m.ProgressDetail; d != nil && (m.State == store.StateProvisioning || m.State == store.StateFailed) {
		v.ProgressDetail = &ProgressDetail{BytesDone: d.BytesDone, BytesTotal: d.BytesTotal, RateBps: d.RateBps, ETASeconds: d.ETASeconds, At: d.At}
	}
	if m.Wipe {
		v.Wipe = &Wipe{Full: m.WipeFull, SecureErase: m.WipeSecure}
	}
	if fb := m.FirstBoot; fb != nil {
		v.FirstBoot = &FirstBoot{At: fb.At, Hostname: fb.Hostname, SSHHostKeys: fb.SSHHostKeys}
	}
	if a := m.Approval; a != nil {
		v.Approval = &Approval{
			Disk: a.Disk, SSHKeys: a.SSHKeys, Network: networkView(a.Network),
			ApprovedBy: a.ApprovedBy, ApprovedAt: a.ApprovedAt, TokenBypassed: a.TokenBypassed,
		}
	}
	v.Registrations, v.MACConflict = registrationViews(m, sessions, invs, now)
	if n := len(sessions); n > 0 {
		t := tokenStatus(sessions[n-1].Token, now)
		v.Token = &t
	}
	v.Summary = summaryView(m.Summary)
	if withInventory && len(m.Inventory) > 0 {
		v.Inventory = m.Inventory
	}
	return v
}

func networkView(n store.Network) Network {
	out := Network{Mode: n.Mode}
	if n.Address.IsValid() {
		out.Address = n.Address.String()
	}
	if n.Gateway.IsValid() {
		out.Gateway = n.Gateway.String()
	}
	for _, d := range n.DNS {
		out.DNS = append(out.DNS, d.String())
	}
	return out
}

// summaryView shows the summary the store keeps of a machine's inventory.
func summaryView(s store.InventorySummary) Summary {
	return Summary{
		Vendor: s.Vendor, Model: s.Model, Serial: s.Serial, CPUModel: s.CPUModel, Cores: s.Cores, Threads: s.Threads,
		MemoryBytes: s.MemoryBytes, Disks: s.Disks, DiskBytes: s.DiskBytes, NICs: s.NICs, GPUs: s.GPUs,
	}
}

// Cluster groups machines and carries their defaults.
type Cluster struct {
	Name           string    `json:"name" example:"rack1"`
	Description    string    `json:"description,omitempty" example:"Rack 1, row B"`
	DefaultProfile string    `json:"default_profile,omitempty" example:"debian-netboot"`
	BMCUser        bool      `json:"bmc_user,omitempty" doc:"Approvals into this cluster have the discovery OS create a BMC user for the appliance"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// Profile is a production workflow.
type Profile struct {
	Name        string    `json:"name" example:"debian-netboot"`
	Kind        string    `json:"kind" enum:"netboot,image" example:"netboot"`
	Description string    `json:"description,omitempty"`
	Kernel      string    `json:"kernel,omitempty" example:"http://10.77.0.1:8080/images/debian/vmlinuz"`
	Initrd      string    `json:"initrd,omitempty" example:"http://10.77.0.1:8080/images/debian/initrd.gz"`
	Cmdline     string    `json:"cmdline,omitempty" example:"console=ttyS0,115200"`
	Script      string    `json:"script,omitempty" doc:"A whole iPXE script instead of kernel/initrd/cmdline"`
	ImageURL    string    `json:"image_url,omitempty" example:"http://10.77.0.1:8080/images/debian-12.raw.zst"`
	ImageSHA256 string    `json:"image_sha256,omitempty" example:"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"`
	Image       string    `json:"image,omitempty" example:"debian-12" doc:"The library image the profile installs (instead of image_url)"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func clusterView(c store.Cluster) Cluster {
	return Cluster{Name: c.Name, Description: c.Description, DefaultProfile: c.DefaultProfile, BMCUser: c.BMCUser, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
}

func profileView(p store.Profile) Profile {
	return Profile{
		Name: p.Name, Kind: string(p.Kind), Description: p.Description,
		Kernel: p.Kernel, Initrd: p.Initrd, Cmdline: p.Cmdline, Script: p.Script,
		ImageURL: p.ImageURL, ImageSHA256: p.ImageSHA256, Image: p.Image, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
}

// AuditEntry is one audit log record.
type AuditEntry struct {
	ID     string    `json:"id" example:"0000018f2a3b4c5d00000001" doc:"Sorts by time; use as cursor"`
	Time   time.Time `json:"time"`
	MAC    string    `json:"mac,omitempty" example:"52:54:00:12:34:56"`
	Actor  string    `json:"actor" example:"token:admin"`
	Action string    `json:"action" example:"approve"`
	Detail string    `json:"detail,omitempty"`
}

// APIToken is an admin API token without its secret.
type APIToken struct {
	ID        string    `json:"id" example:"3f2a9c1e5b7d4a60"`
	Name      string    `json:"name" example:"ci"`
	Role      string    `json:"role" enum:"admin,viewer" example:"viewer"`
	CreatedAt time.Time `json:"created_at"`
}

// Lease is a DHCP lease on a segment.
type Lease struct {
	Segment  string    `json:"segment" example:"lab"`
	MAC      string    `json:"mac" example:"52:54:00:12:34:56"`
	IP       string    `json:"ip" example:"10.77.0.100"`
	Hostname string    `json:"hostname,omitempty"`
	Expires  time.Time `json:"expires"`
	Declined bool      `json:"declined,omitempty"`
}

// MachineEvent is one change on the event stream.
type MachineEvent struct {
	Type    string  `json:"type" enum:"created,updated,deleted"`
	Machine Machine `json:"machine"`
}

// Ping keeps an idle event stream open through proxies.
type Ping struct {
	Time time.Time `json:"time"`
}

// Resync tells a client that it missed events and must reload the list.
type Resync struct {
	Reason string `json:"reason"`
}

// Segment is a configured network segment.
type Segment struct {
	Name         string   `json:"name" example:"lab"`
	Interface    string   `json:"interface,omitempty" example:"br0" doc:"Interface the segment is served on (empty for relayed segments)"`
	Relayed      bool     `json:"relayed,omitempty" doc:"Reached through a DHCP relay"`
	Subnet       string   `json:"subnet" example:"10.77.0.0/24"`
	RangeStart   string   `json:"range_start,omitempty" example:"10.77.0.100"`
	RangeEnd     string   `json:"range_end,omitempty" example:"10.77.0.200"`
	Router       string   `json:"router,omitempty" example:"10.77.0.1"`
	DNS          []string `json:"dns,omitempty" example:"[\"10.77.0.1\"]"`
	LeaseSeconds int64    `json:"lease_seconds,omitempty" example:"3600"`
	Mode         string   `json:"mode" enum:"dhcp,proxy" example:"dhcp" doc:"dhcp: Foundry allocates addresses; proxy: boot information only"`
	Discovery    bool     `json:"discovery" doc:"Unknown machines are discovered on this segment"`
}

func segmentView(s SegmentInfo) Segment {
	v := Segment{Name: s.Name, Interface: s.Interface, Relayed: s.Relayed, Subnet: s.Subnet.String(),
		LeaseSeconds: int64(s.LeaseTime.Seconds()), Mode: s.Mode, Discovery: s.Discovery}
	for _, p := range []struct {
		dst *string
		a   netip.Addr
	}{{&v.RangeStart, s.RangeStart}, {&v.RangeEnd, s.RangeEnd}, {&v.Router, s.Router}} {
		if p.a.IsValid() {
			*p.dst = p.a.String()
		}
	}
	for _, d := range s.DNS {
		v.DNS = append(v.DNS, d.String())
	}
	return v
}
