package bmc

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParsePowerState(t *testing.T) {
	for in, want := range map[string]PowerState{
		"Chassis Power is on\n":  PowerOn,
		"Chassis Power is off\n": PowerOff,
		"On":                     PowerOn,
		"Off":                    PowerOff,
		"PoweringOn":             PowerOn,
		"PoweringOff":            PowerOff,
		"":                       PowerUnknown,
		"Unable to get status":   PowerUnknown,
	} {
		if got := ParsePowerState(in); got != want {
			t.Errorf("ParsePowerState(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestEndpointValidate(t *testing.T) {
	ok := Endpoint{Protocol: IPMI, Host: "10.0.0.5", Username: "foundry", Password: "abcDEF123"}
	for _, c := range []struct {
		name string
		edit func(*Endpoint)
		ok   bool
	}{
		{"good", func(*Endpoint) {}, true},
		{"host name", func(e *Endpoint) { e.Host = "bmc-1.rack.example" }, true},
		{"ipv6", func(e *Endpoint) { e.Host = "fd00::5" }, true},
		{"redfish long password", func(e *Endpoint) { e.Protocol, e.Password = Redfish, strings.Repeat("x", 40) }, true},
		{"no protocol", func(e *Endpoint) { e.Protocol = "" }, false},
		{"option as host", func(e *Endpoint) { e.Host = "-oProxyCommand=x" }, false},
		{"url as host", func(e *Endpoint) { e.Host = "http://x" }, false},
		{"empty host", func(e *Endpoint) { e.Host = "" }, false},
		// The one host-name rule (names.Hostname), not a looser copy.
		{"upper-case host name", func(e *Endpoint) { e.Host = "BMC-1.Rack.Example" }, true},
		{"empty label", func(e *Endpoint) { e.Host = "bmc..example" }, false},
		{"label ending in '-'", func(e *Endpoint) { e.Host = "bmc-.example" }, false},
		{"trailing dot", func(e *Endpoint) { e.Host = "bmc.example." }, false},
		{"label of 64", func(e *Endpoint) { e.Host = strings.Repeat("b", 64) + ".example" }, false},
		{"underscore", func(e *Endpoint) { e.Host = "bmc_1.example" }, false},
		{"port", func(e *Endpoint) { e.Port = 70000 }, false},
		{"no user", func(e *Endpoint) { e.Username = "" }, false},
		{"ipmi user too long", func(e *Endpoint) { e.Username = strings.Repeat("u", 17) }, false},
		{"user with blank", func(e *Endpoint) { e.Protocol, e.Username = Redfish, "a b" }, false},
		{"ipmi password too long", func(e *Endpoint) { e.Password = strings.Repeat("p", 21) }, false},
		{"password with newline", func(e *Endpoint) { e.Password = "a\nuser set password 2 x" }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := ok
			c.edit(&e)
			if err := e.Validate(); (err == nil) != c.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, c.ok)
			}
		})
	}
}

func TestEndpointStringHasNoPassword(t *testing.T) {
	e := Endpoint{Protocol: Redfish, Host: "fd00::5", Username: "foundry", Password: "s3cret"}
	if s := e.String(); strings.Contains(s, "s3cret") || s != "redfish://foundry@[fd00::5]:443" {
		t.Fatalf("String() = %q", s)
	}
}

func TestGeneratePassword(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		p, err := GeneratePassword()
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != PasswordLength || seen[p] {
			t.Fatalf("password %q: wrong length or repeated", p)
		}
		seen[p] = true
		for _, r := range p {
			if !strings.ContainsRune(passwordAlphabet, r) {
				t.Fatalf("password %q has %q outside the alphabet", p, r)
			}
		}
		if e := (Endpoint{Protocol: IPMI, Host: "h", Username: "u", Password: p}); e.Validate() != nil {
			t.Fatalf("generated password %q is not a valid IPMI password", p)
		}
	}
}

// A BMC that refuses is reported with its own words: here ipmitool is a
// stand-in that prints what a real one prints for a wrong password.
func TestErrorCarriesTheBMCsMessage(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "ipmitool")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho 'Error: Unable to establish IPMI v2 / RMCP+ session' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	c := &Client{Ipmitool: fake, Timeout: 5 * time.Second}
	ep := Endpoint{Protocol: IPMI, Host: "127.0.0.1", Port: 9, Username: "u", Password: "p"}
	_, err := c.PowerState(context.Background(), ep)
	var be *Error
	if !errors.As(err, &be) {
		t.Fatalf("error %v is not a *bmc.Error", err)
	}
	if !strings.Contains(be.Msg, "Unable to establish IPMI v2 / RMCP+ session") || strings.Contains(be.Msg, "\n") {
		t.Fatalf("message %q does not carry the BMC's words on one line", be.Msg)
	}
	if strings.Contains(err.Error(), "p@") || !strings.Contains(err.Error(), "ipmi://u@127.0.0.1:9") {
		t.Fatalf("error %q should name the endpoint without the password", err)
	}
}

func TestTimeoutIsReported(t *testing.T) {
	slow := filepath.Join(t.TempDir(), "ipmitool")
	if err := os.WriteFile(slow, []byte("#!/bin/sh\nexec sleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	c := &Client{Ipmitool: slow, Timeout: 300 * time.Millisecond}
	start := time.Now()
	err := c.Power(context.Background(), Endpoint{Protocol: IPMI, Host: "127.0.0.1", Username: "u"}, ActionOn)
	if time.Since(start) > 5*time.Second {
		t.Fatalf("a hung BMC held the call for %v", time.Since(start))
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no answer in time") {
		t.Fatalf("err = %v, want a deadline with 'no answer in time'", err)
	}
}

func TestParseAction(t *testing.T) {
	for _, s := range []string{"on", "OFF", " cycle "} {
		if _, err := ParseAction(s); err != nil {
			t.Errorf("ParseAction(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "reset", "soft", "on;reboot"} {
		if _, err := ParseAction(s); err == nil {
			t.Errorf("ParseAction(%q) accepted", s)
		}
	}
}

func TestRedfishMessage(t *testing.T) {
	for in, want := range map[string]string{
		`401: {"error":{"code":"Base.1.8.NoValidSession","message":"There is no valid session."}}`: "401: There is no valid session. (Base.1.8.NoValidSession)",
		`plain failure`:          "plain failure",
		`400: {"error": broken`:  `400: {"error": broken`,
		`{"error":{"code":"X"}}`: `{"error":{"code":"X"}}`,
	} {
		if got := redfishMessage(in); got != want {
			t.Errorf("redfishMessage(%q) = %q, want %q", in, got, want)
		}
	}
}
