package vm

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
)

// muxEscape is Ctrl-A, the escape of the -nographic multiplexer that
// shares standard input between the serial port and QEMU's monitor:
// "Ctrl-A c" would hand the keyboard to the monitor, "Ctrl-A x" quit QEMU.
const muxEscape = "\x01"

// Type sends s to the guest's serial console, as if typed on a terminal
// ("\n" or "\r" ends a line). The machine needs Input. Type only once the
// guest shows that it reads (its prompt): a UART without a driver holds a
// byte or two, and QEMU's multiplexer only a little more, before the guest
// runs. Text with Ctrl-A is refused, since QEMU would take it as a
// command.
func (in *Instance) Type(s string) error {
	if in.stdin == nil {
		return errors.New("vm: type on the serial console: the machine has no Input")
	}
	if strings.Contains(s, muxEscape) {
		return errors.New("vm: type on the serial console: Ctrl-A is QEMU's escape, not text")
	}
	in.typing.Lock()
	defer in.typing.Unlock()
	if _, err := in.stdin.Write([]byte(s)); err != nil {
		return fmt.Errorf("vm: type on the serial console: %w", err)
	}
	return nil
}

// qmpTimeout bounds one QMP exchange, connection included.
const qmpTimeout = 10 * time.Second

// PowerButton presses the machine's ACPI power button (QMP
// system_powerdown). QEMU only signals the guest: whether and when the
// guest powers off is its own business (see WaitExit); a guest with no
// ACPI driver ignores it. An error when QEMU has exited or does not
// accept the command.
func (in *Instance) PowerButton() error {
	if err := in.command("system_powerdown", qmpTimeout); err != nil {
		return fmt.Errorf("vm: press the power button: %w", err)
	}
	return nil
}

// command runs one argument-less QMP command and checks that it returned.
func (in *Instance) command(execute string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var mon *qmp.SocketMonitor
	for {
		// QEMU creates the socket a moment after it starts.
		m, err := qmp.NewSocketMonitor("unix", in.qmp, time.Until(deadline))
		if err == nil {
			mon = m
			break
		}
		select {
		case <-in.done:
			return errors.New("qemu has exited")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("connect to qmp: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	result := make(chan error, 1)
	// The library sets no deadline on its connection: the exchange runs
	// in a goroutine that owns mon, and if QEMU never answers it lingers
	// until QEMU exits and the connection closes.
	go func() {
		defer mon.Disconnect()
		if err := mon.Connect(); err != nil {
			result <- fmt.Errorf("qmp handshake: %w", err)
			return
		}
		cmd, _ := json.Marshal(qmp.Command{Execute: execute})
		raw, err := mon.Run(cmd)
		if err != nil {
			result <- fmt.Errorf("qmp %s: %w", execute, err)
			return
		}
		var r struct {
			Return *json.RawMessage `json:"return"`
		}
		if err := json.Unmarshal(raw, &r); err != nil || r.Return == nil {
			result <- fmt.Errorf("qmp %s: no return in %s", execute, raw)
			return
		}
		result <- nil
	}()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	// No case for QEMU's exit: that closes the connection, which ends
	// the exchange, and a command that QEMU answered before it exited
	// (a guest quick to power off) still counts as done.
	select {
	case err := <-result:
		return err
	case <-t.C:
		return fmt.Errorf("qmp %s: no answer within %s", execute, timeout)
	}
}
