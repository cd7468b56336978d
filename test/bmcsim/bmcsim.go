// Package bmcsim runs a real IPMI BMC for tests: OpenIPMI's ipmi_sim
// (Debian package openipmi), serving IPMI 2.0 over LAN on loopback, whose
// chassis power and boot-device commands start and stop a real QEMU
// process. The QEMU machine connects back to the simulator as its BMC
// (ipmi-bmc-extern), and with KCS (isa-ipmi-kcs) its guest sees that BMC
// in band, as /dev/ipmi0.
//
// ipmi_sim carries out chassis power itself only through "startcmd", and
// the boot device (IPMI's "next boot from PXE") not at all unless a
// chassis_control program is configured; with one, power goes through it
// too. So the chassis is a small shell program written here: power on
// starts QEMU (with -boot once=n when the next boot was set to PXE, which
// is what a one-time boot override does on a real machine), power off
// kills it, and the power state is whether that process lives.
//
// Run it in a network namespace of the test's own (test/nstest): the
// simulator listens on 127.0.0.1 only, on free ports.
package bmcsim

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/test/syncbuf"
)

// Sim is a running ipmi_sim with its chassis.
type Sim struct {
	// Port is the simulator's IPMI LAN port on 127.0.0.1 (UDP).
	Port int
	// User and Password are the administrator the simulator starts with
	// (IPMI user 2).
	User, Password string
	// Dir holds the configuration, state, chassis log and QEMU's pid file.
	Dir string

	cmd *exec.Cmd
	out *syncbuf.Buffer
}

// Options configure Start.
type Options struct {
	// QEMU is the machine's command line after the program name; the
	// BMC devices (chardev, ipmi-bmc-extern, isa-ipmi-kcs), -pidfile and
	// -daemonize are added. Default: a paused machine with no devices,
	// which costs no CPU (enough to prove power control).
	QEMU []string
	// LANAddress is what the BMC reports in band as its LAN IPv4 address
	// (LAN configuration parameter 3); default 127.0.0.1.
	LANAddress string
	// Port is the IPMI LAN port on 127.0.0.1; 0 picks a free one. 623,
	// IPMI's own, is what a BMC found in band is reached at: use it only
	// in a network namespace of the test's own.
	Port int
}

// Need skips the test when ipmi_sim, ipmitool or QEMU is missing.
func Need(t testing.TB) {
	t.Helper()
	for _, p := range []string{"ipmi_sim", "ipmitool", "qemu-system-x86_64"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("%s not installed (make deps installs openipmi, ipmitool and qemu-system-x86)", p)
		}
	}
}

// Start runs ipmi_sim with a chassis for the machine o describes; it is
// stopped, with the machine, when the test ends.
func Start(t testing.TB, o Options) *Sim {
	t.Helper()
	Need(t)
	dir := t.TempDir()
	s := &Sim{Port: o.Port, User: "admin", Password: "simpass", Dir: dir, out: &syncbuf.Buffer{}}
	if s.Port == 0 {
		s.Port = freeUDPPort(t)
	}
	vmPort := freeTCPPort(t)
	if o.LANAddress == "" {
		o.LANAddress = "127.0.0.1"
	}
	args := o.QEMU
	if len(args) == 0 {
		args = []string{"-accel", "tcg", "-m", "64", "-nodefaults", "-display", "none", "-S"}
	}
	args = append(append([]string{}, args...),
		"-chardev", fmt.Sprintf("socket,id=ipmi0,host=127.0.0.1,port=%d,reconnect=1", vmPort),
		"-device", "ipmi-bmc-extern,id=bmc0,chardev=ipmi0",
		"-device", "isa-ipmi-kcs,bmc=bmc0",
		"-pidfile", filepath.Join(dir, "qemu.pid"), "-daemonize")
	write(t, filepath.Join(dir, "chassis"), 0o755, chassisScript(dir, args))
	write(t, filepath.Join(dir, "lancontrol"), 0o755, lanScript(o.LANAddress))
	write(t, filepath.Join(dir, "lan.conf"), 0o644, fmt.Sprintf(`name "foundry-sim"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 %d
    priv_limit admin
    allowed_auths_callback md5
    allowed_auths_user md5
    allowed_auths_operator md5
    allowed_auths_admin md5
    guid a123456789abcdefa123456789abcdef
    lan_config_program "%s/lancontrol lan0"
  endlan
  chassis_control "%s/chassis 0x20"
  serial 15 127.0.0.1 %d codec VM
  user 2 true "%s" "%s" admin 10 md5
`, s.Port, dir, dir, vmPort, s.User, s.Password))
	// mc_enable must come last: without it no LAN port opens at all.
	write(t, filepath.Join(dir, "sim.emu"), 0o644, `mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
sel_enable 0x20 1000 0x0a
mc_enable 0x20
`)
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command("ipmi_sim", "-n", "-c", filepath.Join(dir, "lan.conf"), "-f", filepath.Join(dir, "sim.emu"), "-s", state)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start ipmi_sim: %v", err)
	}
	t.Cleanup(s.stop)
	// Ready when it answers an authenticated status.
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := s.Ipmitool(context.Background(), s.User, s.Password, "chassis", "power", "status")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ipmi_sim never answered: %v: %s\nsimulator: %s", err, out, s.out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	return s
}

func (s *Sim) stop() {
	s.KillMachine()
	if s.cmd.Process != nil {
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		s.cmd.Wait()
	}
}

// Ipmitool runs ipmitool against the simulator as user (the password in
// the environment, as bmclib passes it) and returns its output.
func (s *Sim) Ipmitool(ctx context.Context, user, password string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	base := []string{"-I", "lanplus", "-H", "127.0.0.1", "-p", strconv.Itoa(s.Port), "-U", user, "-E", "-N", "1", "-R", "2"}
	cmd := exec.CommandContext(ctx, "ipmitool", append(base, args...)...)
	cmd.Env = []string{"IPMITOOL_PASSWORD=" + password}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// MachinePID is the QEMU process's ID, 0 when the machine is off.
func (s *Sim) MachinePID() int {
	b, err := os.ReadFile(filepath.Join(s.Dir, "qemu.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

// KillMachine stops the QEMU process, if any, as a pulled plug would.
func (s *Sim) KillMachine() {
	if pid := s.MachinePID(); pid != 0 {
		syscall.Kill(pid, syscall.SIGKILL)
		for i := 0; i < 50 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// ChassisLog is what the chassis program was asked to do, one "set"
// a line ("set power 1", "set boot pxe", …), and each QEMU start with
// its boot order ("start once=n").
func (s *Sim) ChassisLog() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "chassis.log"))
	return string(b)
}

// Output is what ipmi_sim printed.
func (s *Sim) Output() string { return s.out.String() }

// chassisScript is the chassis_control program (ipmi_sim passes the MC
// address, then "get NAME…" or "set NAME VALUE…", as upstream's
// ipmi_sim_chassiscontrol shows).
func chassisScript(dir string, qemu []string) string {
	var q []string
	for _, a := range qemu {
		q = append(q, shellQuote(a))
	}
	return fmt.Sprintf(`#!/bin/sh
d=%s
shift
op=$1; shift
alive() { [ -f "$d/qemu.pid" ] && kill -0 "$(cat "$d/qemu.pid")" 2>/dev/null; }
case $op in
get)
  for p in "$@"; do
    case $p in
    power) if alive; then echo "power:1"; else echo "power:0"; fi ;;
    boot) echo "boot:$(cat "$d/boot" 2>/dev/null || echo default)" ;;
    *) echo "Invalid parameter: $p"; exit 1 ;;
    esac
  done ;;
set)
  while [ $# -ge 2 ]; do
    p=$1; v=$2; shift 2
    echo "set $p $v" >> "$d/chassis.log"
    case $p in
    power)
      if [ "$v" = 1 ]; then
        if ! alive; then
          once=
          if [ "$(cat "$d/boot" 2>/dev/null)" = pxe ]; then once="-boot once=n"; echo default > "$d/boot"; echo "start once=n" >> "$d/chassis.log"; else echo "start" >> "$d/chassis.log"; fi
          rm -f "$d/qemu.pid"
          qemu-system-x86_64 %s $once >> "$d/qemu.log" 2>&1 || exit 1
        fi
      else
        if alive; then
          pid=$(cat "$d/qemu.pid"); kill -9 "$pid"
          while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
        fi
        rm -f "$d/qemu.pid"
      fi ;;
    reset) ;;
    boot) echo "$v" > "$d/boot" ;;
    identify) shift ;;
    *) echo "Invalid parameter: $p"; exit 1 ;;
    esac
  done ;;
*) exit 1 ;;
esac
`, shellQuote(dir), strings.Join(q, " "))
}

// lanScript answers ipmi_sim's questions about the LAN interface, so the
// BMC reports an address in band (get) and accepts changes (set).
func lanScript(addr string) string {
	return fmt.Sprintf(`#!/bin/sh
shift
op=$1; shift
[ "$op" = get ] || exit 0
for p in "$@"; do
  case $p in
  ip_addr) echo "ip_addr:%s" ;;
  ip_addr_src) echo "ip_addr_src:static" ;;
  mac_addr) echo "mac_addr:52:54:00:ba:5e:01" ;;
  subnet_mask) echo "subnet_mask:255.0.0.0" ;;
  default_gw_ip_addr|backup_gw_ip_addr) echo "$p:0.0.0.0" ;;
  default_gw_mac_addr|backup_gw_mac_addr) echo "$p:00:00:00:00:00:00" ;;
  *) echo "$p:0" ;;
  esac
done
`, addr)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func write(t testing.TB, path string, mode os.FileMode, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), mode); err != nil {
		t.Fatal(err)
	}
}

func freeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func freeTCPPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
