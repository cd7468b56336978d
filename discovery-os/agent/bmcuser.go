package agent

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/foundry-appliance/foundry/agentwire"
)

// The appliance's BMC user, created in band: approval asks for it with a
// wait decision that carries bmc_user; the agent creates (or resets) the
// user over the system interface (/dev/ipmi0, KCS or SSIF) with a
// password of its own drawing, and reports it over its signed session.
// IPMI 2.0 commands, network function App (0x06) and Transport (0x0c).

// IPMI is what creating a BMC user needs of the system interface:
// u-root's *ipmi.IPMI (SendRecv, whose answer starts with the completion
// code) satisfies it through ipmiDev.
type IPMI interface {
	Send(netfn, cmd byte, data []byte) ([]byte, error)
}

const (
	netfnApp       = 0x06
	netfnTransport = 0x0c

	cmdGetChannelInfo  = 0x42
	cmdSetUserAccess   = 0x43
	cmdGetUserAccess   = 0x44
	cmdSetUserName     = 0x45
	cmdGetUserName     = 0x46
	cmdSetUserPassword = 0x47
	cmdGetLANConfig    = 0x02

	mediumLAN   = 0x04 // 802.3 LAN (Get Channel Info, medium type)
	privAdmin   = 0x04
	pwSet       = 0x02
	pwEnable    = 0x01
	ipmiNameLen = 16
	ipmiPassLen = 16
)

// BMCPasswordLength is the length of the password the agent draws: the
// 16 bytes every IPMI BMC accepts.
const BMCPasswordLength = ipmiPassLen

// CreateBMCUser gives user a slot on the BMC (the one already named so,
// else the first free one from 2), sets password, administrator
// privilege and IPMI messaging on the first LAN channel, enables it, and
// reads the channel's IPv4 address and MAC.
func CreateBMCUser(dev IPMI, user, password string) (agentwire.AgentBMC, error) {
	out := agentwire.AgentBMC{Protocol: "ipmi", Username: user}
	if user == "" || len(user) > ipmiNameLen || len(password) == 0 || len(password) > ipmiPassLen {
		return out, fmt.Errorf("BMC user %q or its password does not fit IPMI's 16 bytes", user)
	}
	ch := lanChannel(dev)
	out.Channel = int(ch)
	r, err := call(dev, netfnApp, cmdGetUserAccess, ch, 1)
	if err != nil {
		return out, fmt.Errorf("get user access: %w", err)
	}
	if len(r) < 2 {
		return out, errors.New("get user access: short answer")
	}
	maxID := int(r[1] & 0x3f)
	id, free := 0, 0
	for u := 2; u <= maxID && id == 0; u++ {
		r, err := call(dev, netfnApp, cmdGetUserName, byte(u))
		if err != nil {
			continue // some BMCs answer an unused slot with an error
		}
		name := strings.TrimRight(string(r[1:]), "\x00 ")
		switch {
		case name == user:
			id = u
		case name == "" && free == 0:
			free = u
		}
	}
	if id == 0 {
		if free == 0 {
			return out, fmt.Errorf("the BMC has no free user slot (of %d)", maxID)
		}
		id = free
		name := make([]byte, ipmiNameLen)
		copy(name, user)
		if _, err := call(dev, netfnApp, cmdSetUserName, append([]byte{byte(id)}, name...)...); err != nil {
			return out, fmt.Errorf("set user name of slot %d: %w", id, err)
		}
	}
	out.UserID = id
	pw := make([]byte, ipmiPassLen)
	copy(pw, password)
	if _, err := call(dev, netfnApp, cmdSetUserPassword, append([]byte{byte(id), pwSet}, pw...)...); err != nil {
		return out, fmt.Errorf("set password of user %d: %w", id, err)
	}
	// Change bits (7), link authentication (5), IPMI messaging (4), the
	// channel; administrator, which password rotation over LAN needs.
	if _, err := call(dev, netfnApp, cmdSetUserAccess, 0x80|0x20|0x10|ch, byte(id), privAdmin); err != nil {
		return out, fmt.Errorf("set access of user %d on channel %d: %w", id, ch, err)
	}
	if _, err := call(dev, netfnApp, cmdSetUserPassword, byte(id), pwEnable); err != nil {
		return out, fmt.Errorf("enable user %d: %w", id, err)
	}
	if r, err := call(dev, netfnTransport, cmdGetLANConfig, ch, 3, 0, 0); err == nil && len(r) >= 6 {
		if a := netip.AddrFrom4([4]byte(r[2:6])); !a.IsUnspecified() {
			out.Address = a.String()
		}
	}
	if r, err := call(dev, netfnTransport, cmdGetLANConfig, ch, 5, 0, 0); err == nil && len(r) >= 8 {
		out.MAC = net.HardwareAddr(r[2:8]).String()
	}
	out.Password = password
	return out, nil
}

// lanChannel is the first channel whose medium is 802.3 LAN; 1 (the usual
// one) when the BMC does not say.
func lanChannel(dev IPMI) byte {
	for ch := byte(1); ch <= 11; ch++ {
		r, err := call(dev, netfnApp, cmdGetChannelInfo, ch)
		if err == nil && len(r) >= 3 && r[2]&0x7f == mediumLAN {
			return ch
		}
	}
	return 1
}

// call sends one command and checks the completion code.
func call(dev IPMI, netfn, cmd byte, data ...byte) ([]byte, error) {
	r, err := dev.Send(netfn, cmd, data)
	if err != nil {
		return nil, err
	}
	if len(r) == 0 {
		return nil, errors.New("empty answer")
	}
	if r[0] != 0 {
		return nil, fmt.Errorf("completion code %#02x", r[0])
	}
	return r, nil
}

// newBMCPassword draws a password from rnd: letters and digits without
// look-alikes, at least one lower-case, one upper-case and one digit.
func newBMCPassword(rnd io.Reader) (string, error) {
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	limit := byte(256 - 256%len(alphabet))
	for {
		b := make([]byte, 64)
		if _, err := io.ReadFull(rnd, b); err != nil {
			return "", err
		}
		var out []byte
		for _, x := range b {
			if x < limit && len(out) < BMCPasswordLength {
				out = append(out, alphabet[int(x)%len(alphabet)])
			}
		}
		p := string(out)
		if len(p) == BMCPasswordLength && strings.ContainsAny(p, "abcdefghijkmnopqrstuvwxyz") &&
			strings.ContainsAny(p, "ABCDEFGHJKLMNPQRSTUVWXYZ") && strings.ContainsAny(p, "23456789") {
			return p, nil
		}
	}
}

// BMCReporter is the appliance call that takes the BMC user (Client has
// it; an API without it cannot be asked for a BMC user).
type BMCReporter interface {
	ReportBMC(ctx context.Context, b agentwire.AgentBMC) error
}

// ReportBMC reports the BMC user created in band, or why none could be.
func (c *Client) ReportBMC(ctx context.Context, b agentwire.AgentBMC) error {
	return c.do(ctx, http.MethodPost, agentwire.PathBMC, "", b, nil)
}

// createBMCUser carries out a decision's bmc_user: the user is created
// over the system interface and reported; a failure is reported too,
// so that the appliance stops asking. The decision's wait goes on either
// way.
func (a *Agent) createBMCUser(ctx context.Context, want agentwire.DecisionBMCUser) {
	rep, ok := a.API.(BMCReporter)
	if !ok {
		return
	}
	a.status("creating the appliance's BMC user %s in band", printable(want.Username))
	res, err := a.bmcUser(want.Username)
	if err != nil {
		a.fail(fmt.Errorf("create the BMC user: %w", err))
		res = agentwire.AgentBMC{Error: err.Error()}
	}
	if err := rep.ReportBMC(ctx, res); err != nil {
		a.fail(fmt.Errorf("report the BMC user: %w", err))
		return
	}
	if res.Error == "" {
		a.status("BMC user %s created (slot %d, BMC at %s)", res.Username, res.UserID, orNone(res.Address))
	}
}

func (a *Agent) bmcUser(user string) (agentwire.AgentBMC, error) {
	rnd := a.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	pw, err := newBMCPassword(rnd)
	if err != nil {
		return agentwire.AgentBMC{}, fmt.Errorf("draw password: %w", err)
	}
	open := a.OpenIPMI
	if open == nil {
		open = OpenIPMI
	}
	dev, err := open()
	if err != nil {
		return agentwire.AgentBMC{}, err
	}
	defer dev.Close()
	return CreateBMCUser(dev, user, pw)
}

func orNone(s string) string {
	if s == "" {
		return "no LAN address"
	}
	return s
}

// IPMICloser is an open system interface.
type IPMICloser interface {
	IPMI
	Close() error
}
