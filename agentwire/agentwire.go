// Package agentwire is the wire format of the agent API: the JSON bodies
// that the discovery agent (discovery-os/agent) and the appliance (api)
// exchange under /api/v1/agent/, and the header that carries the boot
// nonce. Both programs import these types, so the protocol is defined once;
// api/contract_test.go runs the real agent client against the real server.
//
// The package depends only on the standard library, package lifecycle
// (where the decision kinds are defined) and discovery-os/token (the token
// hash), both themselves dependency-free, so that the agent, a static binary
// in a small initramfs, pulls in no server code.
//
// Type names are part of the contract: package api uses these types through
// aliases, and huma names the OpenAPI schemas after them (components
// AgentRegister, Decision, …), which the dashboard's generated TypeScript
// types refer to. The struct tags besides json (doc, example, enum,
// minLength, …) are huma's schema annotations; they are plain strings here
// and cost the agent nothing.
package agentwire

import (
	"time"

	"github.com/foundry-appliance/foundry/discovery-os/token"
	"github.com/foundry-appliance/foundry/lifecycle"
)

// NonceHeader carries the boot nonce (foundry.nonce= on the discovery
// kernel's command line) on the registration (PathRegister). The nonce is
// bound to one MAC, is used once, and never authorises an admin endpoint.
// Every agent call, the registration included, is signed with the boot's
// key (package agentsig).
const NonceHeader = "X-Foundry-Nonce"

// Paths of the agent API, relative to the appliance URL (foundry.url=).
const (
	PathRegister = "/api/v1/agent/register" // POST AgentRegister → AgentState
	PathToken    = "/api/v1/agent/token"    // POST AgentToken → AgentState
	PathDecision = "/api/v1/agent/decision" // GET ?wait=<seconds> → Decision
	PathProgress = "/api/v1/agent/progress" // POST AgentProgress → AgentState
	PathResult   = "/api/v1/agent/result"   // POST AgentResult → AgentState
	PathBMC      = "/api/v1/agent/bmc"      // POST AgentBMC → AgentState
)

// Decision kinds: the values of Decision.Decision.
const (
	// KindWait: nothing decided yet; ask again.
	KindWait = string(lifecycle.AgentWait)
	// KindNetboot: reboot; the next PXE boot gets the production boot.
	KindNetboot = string(lifecycle.AgentNetboot)
	// KindImage: write Decision.Image, report progress and the result,
	// then reboot to the local disk.
	KindImage = string(lifecycle.AgentImage)
	// KindReject: power off.
	KindReject = string(lifecycle.AgentReject)
	// KindWipe: wipe the machine's disks as Decision.Wipe says (a
	// release), report the result, then ask again.
	KindWipe = string(lifecycle.AgentWipe)
)

// AgentToken is the salted hash of the registration token shown on the
// machine's console: the body of PathToken and part of AgentRegister.
// Hash is PBKDF2-SHA256(token, Salt, Iterations, 32 bytes), as
// discovery-os/token computes it (NewAgentToken); both byte fields are
// base64 in JSON. Agents before the count was sent omit it: their hashes
// were made with token.LegacyIterations.
type AgentToken struct {
	Salt       []byte    `json:"salt" minLength:"1" doc:"Random salt, base64 (16 bytes)"`
	Hash       []byte    `json:"hash" minLength:"1" doc:"PBKDF2-SHA256(token, salt, iterations, 32), base64"`
	Iterations int       `json:"iterations,omitempty" minimum:"10000" maximum:"100000" doc:"PBKDF2 iteration count of hash (agents send 10000); absent: 100000, as agents made it before the count was sent"`
	ExpiresAt  time.Time `json:"expires_at" doc:"The agent's expiry; the appliance counts the token's hour from when it receives the hash"`
}

// NewAgentToken hashes t with salt as agents do (token.Hash) and names the
// count it used.
func NewAgentToken(t token.Token, salt []byte) AgentToken {
	return AgentToken{Salt: salt, Hash: token.Hash(t.Value, salt), Iterations: token.Iterations, ExpiresAt: t.ExpiresAt}
}

// AgentRegister is the body of PathRegister: the boot's public key, the
// machine's inventory and its first token hash.
type AgentRegister struct {
	MAC string `json:"mac" maxLength:"64" example:"52:54:00:12:34:56"`
	// PublicKey is the boot's Ed25519 public key (32 bytes, base64 in
	// JSON); the registration and every later call are signed with it.
	PublicKey []byte       `json:"public_key" doc:"Ed25519 public key of this boot (32 bytes, base64); every call is signed with it (RFC 9421)"`
	Inventory RawInventory `json:"inventory"`
	Token     AgentToken   `json:"token"`
}

// AgentState is the answer to every agent call but PathDecision: the
// machine's lifecycle state after the call.
type AgentState struct {
	State string `json:"state" enum:"discovered,inventoried,approved,provisioning,ready,failed,rejected" example:"inventoried"`
}

// Decision is the answer of PathDecision.
type Decision struct {
	Decision string         `json:"decision" enum:"wait,netboot,image,reject,wipe" example:"image" doc:"wait: ask again; netboot: reboot (the next PXE boot gets this machine's production boot); image: write the image, then report the result; reject: power off; wipe: wipe the disks, report the result, then ask again"`
	State    string         `json:"state" example:"approved"`
	Hostname string         `json:"hostname,omitempty" example:"node-01"`
	Image    *DecisionImage `json:"image,omitempty"`
	SSHKeys  []string       `json:"ssh_keys,omitempty"`
	Network  *Network       `json:"network,omitempty"`
	// Wipe says how to wipe the disks; with a wipe decision only.
	Wipe *DecisionWipe `json:"wipe,omitempty"`
	// FirstBootURL is where the installed system reports its first boot
	// (cloud-init phone_home, in the seed the agent writes); with an image
	// decision only. It carries a one-time secret.
	FirstBootURL string `json:"first_boot_url,omitempty" doc:"Where the installed system reports its first boot (cloud-init phone_home); image decisions only"`
	// Message explains a wait that approval will not end, for the console.
	Message string `json:"message,omitempty" example:"this machine was approved in another boot session"`
	// BMCUser asks the agent, with a wait decision, to create the
	// appliance's BMC user in band and report it (PathBMC) before it asks
	// again.
	BMCUser *DecisionBMCUser `json:"bmc_user,omitempty" doc:"With a wait decision: create this BMC user in band (over /dev/ipmi0) with a password of the agent's drawing, report it (POST /api/v1/agent/bmc), then ask again"`
}

// DecisionBMCUser names the BMC user the appliance wants.
type DecisionBMCUser struct {
	Username string `json:"username" maxLength:"16" example:"foundry"`
}

// AgentBMC is the body of PathBMC: the BMC user the agent created in band
// and where the BMC listens, or, with Error, why it could not.
type AgentBMC struct {
	Protocol string `json:"protocol,omitempty" enum:"ipmi" example:"ipmi"`
	// Address is the BMC's LAN IPv4 address as the BMC reports it; empty
	// when it has none (0.0.0.0).
	Address  string `json:"address,omitempty" maxLength:"64" example:"10.77.1.21"`
	MAC      string `json:"mac,omitempty" maxLength:"64" example:"52:54:00:ba:5e:01"`
	Channel  int    `json:"channel,omitempty" minimum:"0" maximum:"15" doc:"The LAN channel the user was given access to"`
	UserID   int    `json:"user_id,omitempty" minimum:"0" maximum:"63" doc:"The user's slot on the BMC"`
	Username string `json:"username,omitempty" maxLength:"16" example:"foundry"`
	Password string `json:"password,omitempty" maxLength:"20" doc:"The password the agent drew (sent once, over the signed session; stored encrypted)"`
	Error    string `json:"error,omitempty" maxLength:"4096" doc:"Why no user could be created; the appliance stops asking"`
}

// DecisionImage tells the agent what to write where.
type DecisionImage struct {
	URL    string `json:"url" example:"http://10.77.0.1:8080/images/debian-12.raw.zst"`
	SHA256 string `json:"sha256" example:"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"`
	// Disk is the approved disk as the administrator chose it from the
	// inventory frozen at approval: its stable path (by-path, else the
	// path the inventory named). The agent resolves it on its own
	// hardware; the appliance never names a device node of some boot.
	Disk string `json:"disk" example:"/dev/disk/by-path/pci-0000:00:1f.2-ata-1" doc:"The approved disk's stable path; the agent resolves it on its own hardware"`
	// DiskByPath repeats Disk when it is a /dev/disk/by-path/ name.
	DiskByPath string `json:"disk_by_path,omitempty" example:"/dev/disk/by-path/pci-0000:00:1f.2-ata-1"`
}

// DecisionWipe tells the agent how to wipe the machine's fixed disks: by
// default their partition tables and signatures (the first and last MiB
// of each and of each partition, which hold the GPT and its backup and
// the superblocks of LVM, md and the common file systems); Full
// overwrites every byte; Secure has each drive erase itself (NVMe Format
// with user-data erase), overwriting every byte of a disk that cannot.
type DecisionWipe struct {
	Full   bool `json:"full,omitempty" doc:"Overwrite every byte of every fixed disk, not only the first and last MiB"`
	Secure bool `json:"secure,omitempty" doc:"Each fixed disk's own secure erase (NVMe Format with user-data erase); a disk without one is overwritten in full"`
}

// Network is a machine's production network configuration, as approved:
// Mode "dhcp", or "static" with Address as a prefix ("10.77.0.50/24").
type Network struct {
	Mode    string   `json:"mode" enum:"dhcp,static" example:"static"`
	Address string   `json:"address,omitempty" example:"10.77.0.50/24" doc:"Static address with prefix length"`
	Gateway string   `json:"gateway,omitempty" example:"10.77.0.1"`
	DNS     []string `json:"dns,omitempty" example:"[\"10.77.0.1\"]"`
}

// AgentProgress is the body of PathProgress. The byte counts, rate and
// time left describe an image download (the file as published, compressed
// or not); an agent that does not know them leaves them out.
type AgentProgress struct {
	Percent int    `json:"percent" minimum:"0" maximum:"100" example:"42"`
	Message string `json:"message,omitempty" maxLength:"4096" example:"writing image"`
	// BytesDone is at most BytesTotal when BytesTotal is known.
	BytesDone  int64 `json:"bytes_done,omitempty" minimum:"0" example:"734003200" doc:"Bytes of the image file received and written"`
	BytesTotal int64 `json:"bytes_total,omitempty" minimum:"0" example:"1747838976" doc:"The image file's size; 0 when unknown"`
	RateBps    int64 `json:"rate_bps,omitempty" minimum:"0" example:"52428800" doc:"Download rate over the last seconds, in bytes per second"`
	// ETASeconds is bounded by MaxETASeconds.
	ETASeconds int64 `json:"eta_seconds,omitempty" minimum:"0" maximum:"604800" example:"19" doc:"Seconds left at that rate; 0 when unknown"`
}

// MaxETASeconds bounds AgentProgress.ETASeconds (a week): a longer time
// left is no estimate, and the agent reports it as unknown (0).
const MaxETASeconds = 7 * 24 * 3600

// AgentResult is the body of PathResult: how carrying out the decision
// ended.
type AgentResult struct {
	Success bool   `json:"success" example:"true"`
	Message string `json:"message,omitempty" maxLength:"4096" example:"image written and verified"`
}
