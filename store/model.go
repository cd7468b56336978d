package store

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/foundry-appliance/foundry/lifecycle"
)

// State is where a machine is in its life; the states and the moves
// between them are package lifecycle's, named here for the store's users.
type State = lifecycle.State

// Machine states (lifecycle's).
const (
	StateDiscovered   = lifecycle.Discovered
	StateInventoried  = lifecycle.Inventoried
	StateApproved     = lifecycle.Approved
	StateProvisioning = lifecycle.Provisioning
	StateReady        = lifecycle.Ready
	StateFailed       = lifecycle.Failed
	StateRejected     = lifecycle.Rejected
)

// States lists every state in life-cycle order.
func States() []State { return lifecycle.States() }

// ParseState is the inverse of State.String.
func ParseState(s string) (State, error) { return lifecycle.ParseState(s) }

// Network is the production network configuration chosen at approval.
type Network struct {
	// Mode is "dhcp" or "static".
	Mode    string       `json:"mode"`
	Address netip.Prefix `json:"address,omitzero"`
	Gateway netip.Addr   `json:"gateway,omitzero"`
	DNS     []netip.Addr `json:"dns,omitempty"`
}

// Approval records what an administrator decided for a machine.
type Approval struct {
	Disk       string    `json:"disk"`
	SSHKeys    []string  `json:"ssh_keys,omitempty"`
	Network    Network   `json:"network"`
	ApprovedBy string    `json:"approved_by"`
	ApprovedAt time.Time `json:"approved_at"`
	// TokenBypassed is set when approval used the lab switch that skips the
	// console token.
	TokenBypassed bool `json:"token_bypassed,omitempty"`
}

// RegToken is the salted hash of the registration token shown on the
// machine's console, kept per boot session. The appliance never sees the
// token itself.
type RegToken struct {
	Salt []byte `json:"salt"`
	Hash []byte `json:"hash"`
	// Iterations is the PBKDF2 count Hash was made with; 0 in a record
	// stored before the count was kept, whose hash has the legacy count
	// (discovery-os/token.Derive reads 0 so).
	Iterations int       `json:"iterations,omitempty"`
	ExpiresAt  time.Time `json:"expires_at"`
	// Failures counts wrong approval attempts compared against this token;
	// at the limit it is not compared again until the agent sends a new one.
	Failures int `json:"failures"`
}

// Machine is one physical machine, keyed by its boot MAC.
type Machine struct {
	// MAC is the canonical lower-case colon form, e.g. "52:54:00:12:34:56".
	MAC      string `json:"mac"`
	State    State  `json:"state"`
	Hostname string `json:"hostname"`
	// Temporary records are deleted at ExpiresAt unless approved.
	Temporary bool      `json:"temporary"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	Segment   string    `json:"segment"`
	// Arch is the firmware seen in the last PXE request ("bios", "uefi-x64", …).
	Arch string `json:"arch,omitempty"`
	// Client is the kind of network-boot client seen last ("pxe", "ipxe",
	// "http"; lifecycle.Firmware's names).
	Client string `json:"client,omitempty"`
	// IP is the address DHCP last leased to the machine (or, in proxy mode,
	// the address it asked from).
	IP        string    `json:"ip,omitempty"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Inventory is the discovery agent's report, stored exactly as received
	// (under its own key, mi/<mac>: lists never read it). Before approval
	// it is the latest registration's; approval freezes the bound
	// session's. ListMachines and ListMachinePage leave it out.
	Inventory json.RawMessage `json:"inventory,omitempty"`
	// Summary is derived from Inventory by the store on every write that
	// changes it; what a caller sets here is ignored.
	Summary InventorySummary `json:"summary,omitzero"`
	// Session is the ID of the boot session approval bound the machine to
	// (Session.ID): only its agent is told the decision and may report.
	Session  string    `json:"session,omitempty"`
	Cluster  string    `json:"cluster,omitempty"`
	Profile  string    `json:"profile,omitempty"`
	Approval *Approval `json:"approval,omitempty"`
	// Installed says that the agent wrote the image; the machine boots its
	// disk until the installed system reports its first boot.
	Installed bool `json:"installed,omitempty"`
	// FirstBootSecret is what the installed system presents to report its
	// first boot (in the first-boot URL of its cloud-init seed). It is
	// drawn at approval and cleared by the report; the API never shows it.
	FirstBootSecret string `json:"first_boot_secret,omitempty"`
	// Wipe is a release's request that every boot session wipe the disks
	// before one of them is approved (WipeFull: the whole disk, not only
	// its partition tables, signatures and first and last MiB).
	// WipeSecure: each drive's own secure erase.
	Wipe       bool `json:"wipe,omitempty"`
	WipeFull   bool `json:"wipe_full,omitempty"`
	WipeSecure bool `json:"wipe_secure,omitempty"`
	// FirstBoot is the installed system's report, and ReadyAt when the
	// machine became ready.
	FirstBoot *FirstBoot `json:"first_boot,omitempty"`
	ReadyAt   time.Time  `json:"ready_at,omitzero"`
	// Progress is the provisioning percentage (0–100) and Message the last
	// status or failure reason reported by the agent.
	Progress int    `json:"progress"`
	Message  string `json:"message,omitempty"`
	// ProgressDetail is the agent's last account of the image download;
	// nil when its last report had none.
	ProgressDetail *ProgressDetail `json:"progress_detail,omitempty"`
	// Menu makes the production boot an iPXE menu instead of a direct boot.
	Menu BootMenu `json:"menu,omitzero"`
	// UEFIBinary overrides the segment's choice of x86-64 UEFI iPXE binary
	// ("ipxe.efi" or "snponly.efi"); empty means the segment's.
	UEFIBinary string `json:"uefi_binary,omitempty"`
	// BMC is the machine's BMC and the appliance's credential on it
	// (bmc.go); nil when none is known.
	BMC *BMC `json:"bmc,omitempty"`
	// BMCUser is the BMC user approval asked the discovery OS to create
	// in band ("" when none is pending); its report clears it.
	BMCUser string `json:"bmc_user,omitempty"`
	// Revision increases on every write; the API uses it for ETags and the
	// event stream.
	Revision uint64 `json:"revision"`
}

// ProgressDetail is how far an image download has come, as the agent
// reported it (agentwire.AgentProgress; the API bounds it).
type ProgressDetail struct {
	// BytesDone of BytesTotal (0: unknown) bytes of the image file.
	BytesDone  int64 `json:"bytes_done"`
	BytesTotal int64 `json:"bytes_total,omitempty"`
	// RateBps is bytes per second; ETASeconds the time left at that rate
	// (0: unknown).
	RateBps    int64 `json:"rate_bps,omitempty"`
	ETASeconds int64 `json:"eta_seconds,omitempty"`
	// At is when the appliance received the report.
	At time.Time `json:"at"`
}

// FirstBoot is what the installed system reported at its first boot.
type FirstBoot struct {
	At       time.Time `json:"at"`
	Hostname string    `json:"hostname,omitempty"`
	// SSHHostKeys are the installed system's public host keys, for the
	// administrator's known_hosts.
	SSHHostKeys []string `json:"ssh_host_keys,omitempty"`
}

// Boot menu items, in the order the menu shows them.
const (
	MenuProduction = "production"
	MenuRediscover = "rediscover"
	MenuLocal      = "local"
	MenuShell      = "shell"
)

// MenuItems lists the boot menu's items in display order.
func MenuItems() []string { return []string{MenuProduction, MenuRediscover, MenuLocal, MenuShell} }

// BootMenu is the iPXE menu an accepted machine gets instead of its direct
// production or local-disk boot (docs/spec.md §2).
type BootMenu struct {
	Enabled bool `json:"enabled"`
	// TimeoutSeconds is how long the menu waits before booting Default; 0
	// means the appliance's default (ipxe.DefaultMenuTimeout).
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
	// Default is the item booted when the timeout runs out (one of
	// MenuItems); "" means MenuProduction.
	Default string `json:"default,omitempty"`
}

// UnmarshalJSON also reads the plain boolean that schema-1 records stored
// ("menu": true), so that upgrading keeps a machine's menu.
func (b *BootMenu) UnmarshalJSON(data []byte) error {
	switch string(data) {
	case "true", "false":
		*b = BootMenu{Enabled: string(data) == "true"}
		return nil
	}
	type plain BootMenu
	var p plain
	if err := json.Unmarshal(data, &p); err != nil {
		return fmt.Errorf("decode boot menu: %w", err)
	}
	*b = BootMenu(p)
	return nil
}

// Lease is a DHCP address binding on a dhcp-mode segment.
type Lease struct {
	Segment  string     `json:"segment"`
	MAC      string     `json:"mac"`
	IP       netip.Addr `json:"ip"`
	Hostname string     `json:"hostname,omitempty"`
	Expires  time.Time  `json:"expires"`
	// Declined marks an address a client reported in use (DHCPDECLINE); it is
	// not handed out again until Expires.
	Declined bool `json:"declined,omitempty"`
}

// Audit describes who did what; every state change carries one.
type Audit struct {
	Actor  string `json:"actor"`
	Action string `json:"action"`
	Detail string `json:"detail,omitempty"`
}

// AuditEntry is a stored audit record. IDs sort by time.
type AuditEntry struct {
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
	MAC  string    `json:"mac,omitempty"`
	// Revision is the machine's revision that this entry's change made
	// (Machine.Revision; for a deletion, the deleted record's plus one),
	// so that a follower of the log can pair the entry with the machine
	// as it was then (the Event of that revision); 0 when the entry
	// changed no machine record.
	Revision uint64 `json:"revision,omitempty"`
	Audit
}

// AuditFilter selects audit entries; zero fields match everything.
type AuditFilter struct {
	MAC    string
	Actor  string
	Action string
	Since  time.Time
	Until  time.Time
	// After is an exclusive cursor (an AuditEntry.ID); Limit 0 means 100.
	After string
	Limit int
}

// Nonce is the boot credential placed in the discovery script's kernel
// line. It is bound to one MAC and used once: the agent registers its
// session's public key with it.
type Nonce struct {
	MAC       string    `json:"mac"`
	ExpiresAt time.Time `json:"expires_at"`
	// Session is the ID of the session that used the nonce ("" while unused).
	Session string `json:"session,omitempty"`
}

// Cluster groups machines and carries their defaults.
type Cluster struct {
	Name           string    `json:"name"`
	Description    string    `json:"description,omitempty"`
	DefaultProfile string    `json:"default_profile,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	// BMCUser makes every approval into the cluster ask the discovery OS
	// to create a BMC user for the appliance in band.
	BMCUser bool `json:"bmc_user,omitempty"`
}

// ProfileKind says how a profile puts a machine into production.
type ProfileKind = lifecycle.ProfileKind

// Profile kinds.
const (
	ProfileNetboot = lifecycle.Netboot // every PXE boot gets the production script
	ProfileImage   = lifecycle.Image   // an image is written to disk, then local boot
)

// Profile is a production workflow.
type Profile struct {
	Name        string      `json:"name"`
	Kind        ProfileKind `json:"kind"`
	Description string      `json:"description,omitempty"`
	// Netboot: kernel, initrd and command line, or a whole iPXE Script.
	Kernel  string `json:"kernel,omitempty"`
	Initrd  string `json:"initrd,omitempty"`
	Cmdline string `json:"cmdline,omitempty"`
	Script  string `json:"script,omitempty"`
	// Image: where the agent fetches the image and its checksum.
	ImageURL    string `json:"image_url,omitempty"`
	ImageSHA256 string `json:"image_sha256,omitempty"`
	// Image names a ready library image instead of ImageURL (images.go).
	Image     string    `json:"image,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Role is an admin API token's permission.
type Role string

// Roles.
const (
	RoleAdmin  Role = "admin"
	RoleViewer Role = "viewer"
)

// APIToken is an administrator bearer token, stored hashed.
type APIToken struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	Hash      []byte    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
}

// Event is published after every committed machine change.
type Event struct {
	// Type is "created", "updated" or "deleted".
	Type    string  `json:"type"`
	Machine Machine `json:"machine"`
}

// Lifecycle is what lifecycle.Decide needs of m; kind is the kind of m's
// profile ("" when it has none, or when the caller's step does not depend
// on it, as DHCP's answer does not).
func (m *Machine) Lifecycle(kind ProfileKind) *lifecycle.Machine {
	return &lifecycle.Machine{State: m.State, Profile: kind, Menu: m.Menu.Enabled, UEFIBinary: m.UEFIBinary, Installed: m.Installed, Wipe: m.Wipe}
}
