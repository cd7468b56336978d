// Command echoinit is the /init of the guest that proves typing on the
// serial console: it says ECHOINIT READY, answers each line read from
// /dev/console with "ECHO:" and the line, and powers the machine off when
// told "off" (or when its console closes, so that a broken guest ends the
// test at once instead of panicking the kernel into a reboot loop).
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

func main() {
	// The terminal's own echo of a burst interleaves, byte by byte, with
	// the answers written meanwhile; the answers alone say what was read.
	if t, err := unix.IoctlGetTermios(0, unix.TCGETS); err == nil {
		t.Lflag &^= unix.ECHO
		unix.IoctlSetTermios(0, unix.TCSETS, t)
	}
	fmt.Println("ECHOINIT READY")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "off" {
			break
		}
		fmt.Printf("ECHO:%s\n", line)
	}
	fmt.Printf("ECHOINIT OFF (read error %v)\n", sc.Err())
	syscall.Sync()
	if err := syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Println("power off:", err)
	}
	select {}
}
