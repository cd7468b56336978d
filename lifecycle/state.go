// Package lifecycle is the one place that says what happens to a machine:
// its states (docs/spec.md §1), the actions that move it between them and who may
// take each, and Decide, the pure function that tells the DHCP server, the
// iPXE script server and the agent API what a machine gets at every step of
// its boot. Those packages are thin adapters around it; the dashboard reads
// the same facts from the API (a machine's allowed actions), and
// docs/lifecycle.md is generated from Table.
//
// The package has no dependencies and does no I/O, so that every rule can be
// tested exhaustively (fate_test.go walks every combination).
package lifecycle

import (
	"errors"
	"fmt"
)

// State is where a machine is in its life (docs/spec.md §1).
type State int

// Machine states. The zero value is Discovered so that a new record starts
// at the beginning of the life cycle.
const (
	Discovered State = iota
	Inventoried
	Approved
	Provisioning
	Ready
	Failed
	Rejected
)

var stateNames = [...]string{"discovered", "inventoried", "approved", "provisioning", "ready", "failed", "rejected"}

// String returns the lower-case name used in the API, CLI and logs.
func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("state(%d)", int(s))
	}
	return stateNames[s]
}

// States lists every state in life-cycle order.
func States() []State {
	out := make([]State, len(stateNames))
	for i := range out {
		out[i] = State(i)
	}
	return out
}

// ParseState is the inverse of String.
func ParseState(s string) (State, error) {
	for i, n := range stateNames {
		if n == s {
			return State(i), nil
		}
	}
	return 0, fmt.Errorf("unknown machine state %q", s)
}

// MarshalText makes states appear by name in JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses a state name.
func (s *State) UnmarshalText(b []byte) error {
	v, err := ParseState(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Valid reports whether s is one of the states.
func (s State) Valid() bool { return s >= 0 && int(s) < len(stateNames) }

// Accepted reports whether an administrator has approved the machine and
// not sent it back: only such a machine has a cluster, a profile and the
// host name, disk and network chosen at approval.
func (s State) Accepted() bool {
	return s == Approved || s == Provisioning || s == Ready || s == Failed
}

// Pending reports whether the machine is waiting in discovery (not yet
// approved or rejected).
func (s State) Pending() bool { return s == Discovered || s == Inventoried }

// ProfileKind says how a profile puts a machine into production.
type ProfileKind string

// Profile kinds.
const (
	Netboot ProfileKind = "netboot" // every PXE boot gets the production script
	Image   ProfileKind = "image"   // an image is written to disk, then local boot
)

// Role is who takes an action.
type Role string

// Roles.
const (
	// RoleDHCP is the DHCP server, which creates records for unknown MACs.
	RoleDHCP Role = "dhcp"
	// RoleAgent is the discovery OS agent of the machine's own boot session.
	RoleAgent Role = "agent"
	// RoleAdmin is an administrator through the API, CLI or dashboard.
	RoleAdmin Role = "admin"
	// RoleSystem is the appliance itself (expiry, netboot readiness).
	RoleSystem Role = "system"
	// RoleOS is the installed operating system, reporting its first boot
	// with the secret its seed carries.
	RoleOS Role = "os"
	// RoleGit is a person's declaration of the machine in the GitOps
	// repository, applied when the machine registers (docs/gitops.md).
	RoleGit Role = "git"
)

// Action is a named move of the life cycle; the audit log records it.
type Action string

// Actions.
const (
	ActDiscover   Action = "discover"   // DHCP sees an unknown MAC on a discovery segment
	ActRegister   Action = "register"   // the agent posts inventory and token
	ActApprove    Action = "approve"    // an administrator approves with the console token
	ActReject     Action = "reject"     // an administrator rejects: a permanent deny entry
	ActNetbootOK  Action = "ready"      // a netboot approval needs nothing more
	ActProgress   Action = "progress"   // the agent reports image progress
	ActSucceed    Action = "succeed"    // the agent reports the image written
	ActFirstBoot  Action = "first-boot" // the installed system reports its first boot
	ActFail       Action = "fail"       // the agent reports a failed install
	ActRetry      Action = "retry"      // an administrator retries a failed install
	ActRediscover Action = "rediscover" // an administrator sends the machine back to discovery
	ActRelease    Action = "release"    // an administrator releases the machine: discovery, disks wiped, approval again
	ActRedeploy   Action = "redeploy"   // an administrator installs a ready machine again (same or another profile)
	ActBind       Action = "bind"       // an administrator binds a new boot of an approved machine with its console token
	ActExpire     Action = "expire"     // a temporary record outlived its TTL (deleted)
	ActDelete     Action = "delete"     // an administrator deletes the record
)

// Gone is the pseudo-state after ActExpire and ActDelete: no record.
const Gone State = -1

// rule is one row of the state machine.
type rule struct {
	Action Action
	From   []State
	To     State // Gone for deletions
	By     []Role
	Why    string
}

var anyState = []State{Discovered, Inventoried, Approved, Provisioning, Ready, Failed, Rejected}

// rules is the state machine of docs/spec.md §1. Every state change anywhere in
// Foundry is one of these rows.
var rules = []rule{
	{ActDiscover, nil, Discovered, []Role{RoleDHCP}, "first DHCP request of an unknown MAC on a discovery segment"},
	{ActRegister, []State{Discovered, Inventoried}, Inventoried, []Role{RoleAgent}, "inventory and token hash posted by the agent"},
	{ActApprove, []State{Inventoried}, Approved, []Role{RoleAdmin, RoleGit}, "console token (or a Git declaration, when gitops allows approval without it), cluster and profile checked"},
	{ActReject, []State{Inventoried}, Rejected, []Role{RoleAdmin}, "kept as a deny entry until deleted"},
	{ActNetbootOK, []State{Approved}, Ready, []Role{RoleSystem}, "a netboot profile needs no install"},
	{ActProgress, []State{Approved, Provisioning}, Provisioning, []Role{RoleAgent}, "image download and write progress"},
	{ActSucceed, []State{Approved, Provisioning}, Provisioning, []Role{RoleAgent}, "the image is written; the machine boots its disk"},
	{ActFirstBoot, []State{Provisioning}, Ready, []Role{RoleOS, RoleSystem}, "the installed system reported its first boot (the appliance itself for a profile that expects no report)"},
	{ActFail, []State{Approved, Provisioning}, Failed, []Role{RoleAgent}, "the install failed; the reason is kept"},
	{ActRetry, []State{Failed}, Provisioning, []Role{RoleAdmin}, "the agent tries the install again"},
	{ActRediscover, []State{Approved, Provisioning, Ready, Failed}, Discovered, []Role{RoleAdmin}, "discovery on the next boot; approval needed again"},
	{ActRelease, []State{Approved, Provisioning, Ready, Failed}, Discovered, []Role{RoleAdmin}, "discovery on the next boot wipes the disks; approval needed again"},
	{ActRedeploy, []State{Ready}, Approved, []Role{RoleAdmin}, "the approval stays; the next discovery boot is bound with its console token"},
	{ActBind, []State{Approved, Provisioning, Failed}, Approved, []Role{RoleAdmin}, "a new boot (its console token) takes over the install"},
	{ActExpire, []State{Discovered, Inventoried}, Gone, []Role{RoleSystem}, "temporary record past its TTL"},
	{ActDelete, anyState, Gone, []Role{RoleAdmin}, "the audit history stays"},
}

// Errors of Next.
var (
	// ErrTransition: the action is not allowed in the machine's state.
	ErrTransition = errors.New("not allowed in this state")
	// ErrRole: the action exists but this role may not take it.
	ErrRole = errors.New("not allowed for this role")
)

// Next returns the state that action a, taken by role by, moves a machine
// in state from to. Discover has no from state: pass Gone.
func Next(a Action, by Role, from State) (State, error) {
	for _, r := range rules {
		if r.Action != a {
			continue
		}
		if !contains(r.By, by) {
			return from, fmt.Errorf("%s by %s: %w", a, by, ErrRole)
		}
		if r.From == nil && from == Gone || contains(r.From, from) {
			return r.To, nil
		}
		return from, fmt.Errorf("%s a machine that is %s: %w", a, from, ErrTransition)
	}
	return from, fmt.Errorf("unknown action %q: %w", a, ErrTransition)
}

// Why says what action a means, from the table (a commit message or a log
// line says it with the action); "" for an action the table does not have.
func Why(a Action) string {
	for _, r := range rules {
		if r.Action == a {
			return r.Why
		}
	}
	return ""
}

// CanTransition reports whether some action moves a machine from s to to.
// The store checks every write with it, so that no code path can invent a
// move the table does not have.
func (s State) CanTransition(to State) bool {
	for _, r := range rules {
		if r.To == to && contains(r.From, s) {
			return true
		}
	}
	return false
}

// EndsSession reports whether action a ends the machine's boot session:
// its agent may make no further call. A rediscovered, installed or deleted
// machine has nothing left to ask in this boot; a failed one waits in it
// for a retry. A rejected or netboot-approved machine must still be told
// (power off, reboot): its session ends once that decision is delivered.
func EndsSession(a Action) bool {
	switch a {
	case ActRediscover, ActRelease, ActRedeploy, ActSucceed, ActExpire, ActDelete:
		return true
	}
	return false
}

// FinalDecision reports whether telling the agent a (for machine m) is the
// last thing its boot session can do: it powers off (reject) or reboots
// into production or its disk (a ready machine's netboot, or an installed
// one's first boot). The session ends as the answer goes out.
func FinalDecision(m *Machine, a Agent) bool {
	return a == AgentReject || a == AgentNetboot && (m.State == Ready || m.awaitingFirstBoot())
}

// Allowed lists the actions role by may take on a machine in state s, in
// table order. The API reports it per machine so that the dashboard shows
// exactly the buttons the life cycle allows.
func Allowed(s State, by Role) []Action {
	var out []Action
	for _, r := range rules {
		if contains(r.By, by) && contains(r.From, s) {
			out = append(out, r.Action)
		}
	}
	return out
}

func contains[T comparable](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
