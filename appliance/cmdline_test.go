package appliance

import (
	"strings"
	"testing"
	"time"
)

func TestParseCmdline(t *testing.T) {
	base := "BOOT_IMAGE=/boot/vmlinuz console=tty0 console=ttyS0,115200 panic=10 "
	cases := []struct {
		name, line string
		check      func(t *testing.T, c Cmdline)
		wantErr    string
	}{
		{name: "nothing set", line: base, check: func(t *testing.T, c Cmdline) {
			if c.Plan != nil || c.Format || c.RAM || c.Setup || c.SetupTimeout != DefaultSetupTimeout || c.LogConsole {
				t.Errorf("%+v", c)
			}
		}},
		{name: "network", line: base + "foundry.iface=52:54:00:aa:00:01 foundry.ip=10.9.0.1/16 foundry.gw=10.9.0.254 foundry.mgmt=none",
			check: func(t *testing.T, c Cmdline) {
				p := c.Plan.Provisioning
				if p.Interface != "52:54:00:aa:00:01" || p.Address.String() != "10.9.0.1/16" || p.Router.String() != "10.9.0.254" || !c.Plan.NoManagement {
					t.Errorf("%+v %+v", c.Plan, p)
				}
				if p.RangeStart.String() != "10.9.100.0" || p.RangeEnd.String() != "10.9.200.0" {
					t.Errorf("default range %v-%v", p.RangeStart, p.RangeEnd)
				}
			}},
		{name: "switches", line: base + "foundry.format=yes foundry.data=ram foundry.setup foundry.setup_timeout=0 foundry.log=console",
			check: func(t *testing.T, c Cmdline) {
				if !c.Format || !c.RAM || !c.Setup || c.SetupTimeout != 0 || !c.LogConsole {
					t.Errorf("%+v", c)
				}
			}},
		{name: "timeout", line: "foundry.setup_timeout=90s", check: func(t *testing.T, c Cmdline) {
			if c.SetupTimeout != 90*time.Second {
				t.Errorf("%v", c.SetupTimeout)
			}
		}},
		{name: "address without interface", line: "foundry.ip=10.9.0.1/24", wantErr: "go together"},
		{name: "bad address", line: "foundry.iface=eth0 foundry.ip=10.9.0.1", wantErr: "prefix length"},
		{name: "range outside", line: "foundry.iface=eth0 foundry.ip=10.9.0.1/24 foundry.range=10.8.0.1-10.8.0.9", wantErr: "outside the subnet"},
		{name: "typo", line: "foundry.fromat=yes", wantErr: "foundry.fromat: unknown parameter"},
		{name: "bad yes", line: "foundry.format=sure", wantErr: "want yes or no"},
		{name: "bad data", line: "foundry.data=usb", wantErr: "want ram or disk"},
		{name: "negative timeout", line: "foundry.setup_timeout=-1s", wantErr: "duration"},
		{name: "bad mgmt", line: "foundry.iface=eth0 foundry.ip=10.9.0.1/24 foundry.mgmt=static", wantErr: "want dhcp or none"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseCmdline(c.line)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, got)
		})
	}
}

// FuzzParseCmdline: the kernel line can be edited by anyone at the GRUB
// prompt. Whatever it says, the init gets an error or a plan that passes
// every rule.
func FuzzParseCmdline(f *testing.F) {
	f.Add("console=ttyS0 foundry.iface=eth0 foundry.ip=10.77.0.1/24 foundry.range=10.77.0.10-10.77.0.20 foundry.format=yes")
	f.Add("foundry.setup_timeout=1h foundry.data=ram foundry.dns=1.1.1.1,8.8.8.8 foundry.gw=10.0.0.1")
	f.Fuzz(func(t *testing.T, line string) {
		c, err := ParseCmdline(line)
		if err != nil || c.Plan == nil || c.Plan.Provisioning == nil {
			return
		}
		if err := c.Plan.Provisioning.Check(); err != nil {
			t.Fatalf("accepted a plan that fails Check: %v\n%q", err, line)
		}
	})
}
