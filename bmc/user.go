package bmc

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"

	bmclib "github.com/bmc-toolbox/bmclib/v2"
)

// PasswordLength is the length of the passwords GeneratePassword draws:
// IPMI 1.5 user passwords hold at most 16 bytes, and every BMC accepts
// that many.
const PasswordLength = 16

const passwordAlphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// GeneratePassword draws a password of PasswordLength characters from an
// alphabet without look-alikes (about 93 bits), with at least one lower-
// case letter, one upper-case letter and one digit, which BMCs with a
// password policy ask for.
func GeneratePassword() (string, error) {
	for {
		b := make([]byte, PasswordLength)
		if _, err := rand.Read(b); err != nil {
			return "", fmt.Errorf("draw password: %w", err)
		}
		// 256 is not a multiple of the alphabet's size: reject the bytes
		// that would favour its first letters.
		limit := byte(256 - 256%len(passwordAlphabet))
		out := make([]byte, 0, PasswordLength)
		for _, x := range b {
			if x < limit {
				out = append(out, passwordAlphabet[int(x)%len(passwordAlphabet)])
			}
		}
		p := string(out)
		if len(p) == PasswordLength && strings.ContainsAny(p, "abcdefghijkmnopqrstuvwxyz") &&
			strings.ContainsAny(p, "ABCDEFGHJKLMNPQRSTUVWXYZ") && strings.ContainsAny(p, "23456789") {
			return p, nil
		}
	}
}

// SetPassword gives ep's own user the password next, then checks that
// next opens a session. Redfish goes through bmclib's account service;
// for IPMI, bmclib reads the user table (to find the user's slot) but has
// no call to change a password, so the same ipmitool it runs does that
// from a command file, which keeps the new password out of the process
// list.
func (c *Client) SetPassword(ctx context.Context, ep Endpoint, next string) error {
	nep := ep
	nep.Password = next
	if err := nep.Validate(); err != nil {
		return &Error{Op: "set password", Endpoint: ep.String(), Msg: err.Error(), Err: err}
	}
	err := c.session(ctx, ep, "set password", func(ctx context.Context, cl *bmclib.Client) error {
		if ep.Protocol == Redfish {
			ok, err := cl.UpdateUser(ctx, ep.Username, next, "Administrator")
			if err == nil && !ok {
				err = errors.New("the BMC did not confirm the new password")
			}
			return err
		}
		users, err := cl.ReadUsers(ctx)
		if err != nil {
			return err
		}
		id := 0
		for _, u := range users {
			if u["Name"] == ep.Username {
				id, _ = strconv.Atoi(u["ID"])
			}
		}
		if id < 2 || id > 63 {
			return fmt.Errorf("user %q is not in the BMC's user table", ep.Username)
		}
		return c.ipmitoolExec(ctx, ep, fmt.Sprintf("user set password %d %s\n", id, next))
	})
	if err != nil {
		return err
	}
	_, err = c.PowerState(ctx, nep)
	if err != nil {
		return fmt.Errorf("the new password does not open a session: %w", err)
	}
	return nil
}

// ipmitoolExec runs the commands in script (one a line) in one ipmitool
// session, as bmclib runs it: lanplus, the password in the environment.
func (c *Client) ipmitoolExec(ctx context.Context, ep Endpoint, script string) error {
	prog := c.Ipmitool
	if prog == "" {
		var err error
		if prog, err = exec.LookPath("ipmitool"); err != nil {
			return err
		}
	}
	f, err := os.CreateTemp("", "foundry-ipmi-*")
	if err != nil {
		return fmt.Errorf("command file: %w", err)
	}
	defer os.Remove(f.Name())
	_, werr := f.WriteString(script)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("command file: %w", werr)
	}
	var last error
	for _, cipher := range []string{"3", "17"} {
		args := []string{"-I", "lanplus", "-H", ep.Host, "-p", strconv.Itoa(ep.port()), "-U", ep.Username, "-E", "-N", "5", "-C", cipher, "exec", f.Name()}
		cmd := exec.CommandContext(ctx, prog, args...)
		cmd.Env = []string{"IPMITOOL_PASSWORD=" + ep.Password}
		out, err := cmd.CombinedOutput()
		if err == nil {
			return nil
		}
		last = fmt.Errorf("%s: %w", oneLine(string(out)), err)
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("ipmitool at %s: %w", net.JoinHostPort(ep.Host, strconv.Itoa(ep.port())), last)
}
