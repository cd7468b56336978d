package agent

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/foundry-appliance/foundry/discovery-os/inventory"
)

// nvmePassthru is the kernel's struct nvme_passthru_cmd (linux/nvme_ioctl.h).
type nvmePassthru struct {
	opcode      uint8
	flags       uint8
	rsvd1       uint16
	nsid        uint32
	cdw2, cdw3  uint32
	metadata    uint64
	addr        uint64
	metadataLen uint32
	dataLen     uint32
	cdw10       uint32
	cdw11       uint32
	cdw12       uint32
	cdw13       uint32
	cdw14       uint32
	cdw15       uint32
	timeoutMs   uint32
	result      uint32
}

const (
	nvmeIoctlID       = 0x4E40     // _IO('N', 0x40): the namespace ID of a block device
	nvmeIoctlAdminCmd = 0xC0484E41 // _IOWR('N', 0x41, struct nvme_passthru_cmd)
	// nvmeFormatTimeout bounds a Format NVM: a user-data erase of a large
	// drive takes minutes; the kernel's default admin timeout is 60 s.
	nvmeFormatTimeoutMs = 4 * 3600 * 1000
)

// SecureErase has disk d erase itself: an NVMe namespace gets Format NVM
// with user-data erase, keeping its LBA format. Any other disk is
// ErrNoSecureErase: ATA's SECURITY ERASE UNIT needs a password set first
// and a drive that firmware has not frozen, which the agent does not
// attempt.
func SecureErase(ctx context.Context, d inventory.Disk) error {
	if !strings.HasPrefix(d.Name, "nvme") {
		return fmt.Errorf("%w: %s is not an NVMe namespace (driver %s)", ErrNoSecureErase, d.Path, d.Driver)
	}
	f, err := os.OpenFile(d.Path, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	nsid, err := unix.IoctlRetInt(int(f.Fd()), nvmeIoctlID)
	if err != nil {
		return fmt.Errorf("%s: namespace ID: %w", d.Path, err)
	}
	idCtrl := make([]byte, 4096)
	if err := nvmeAdmin(f, &nvmePassthru{opcode: nvmeAdminIdentify, cdw10: nvmeCNSController}, idCtrl); err != nil {
		return fmt.Errorf("%s: identify controller: %w", d.Path, err)
	}
	if oacs := uint16(idCtrl[256]) | uint16(idCtrl[257])<<8; oacs&nvmeOACSFormat == 0 {
		return fmt.Errorf("%w: %s's controller has no Format NVM", ErrNoSecureErase, d.Path)
	}
	idNS := make([]byte, 4096)
	if err := nvmeAdmin(f, &nvmePassthru{opcode: nvmeAdminIdentify, nsid: uint32(nsid), cdw10: nvmeCNSNamespace}, idNS); err != nil {
		return fmt.Errorf("%s: identify namespace %d: %w", d.Path, nsid, err)
	}
	cdw10, err := formatCDW10(idNS)
	if err != nil {
		return fmt.Errorf("%s: %w", d.Path, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	cmd := nvmePassthru{opcode: nvmeAdminFormatNVM, nsid: uint32(nsid), cdw10: cdw10, timeoutMs: nvmeFormatTimeoutMs}
	if err := nvmeAdmin(f, &cmd, nil); err != nil {
		return fmt.Errorf("%s: format with user-data erase: %w", d.Path, err)
	}
	return nil
}

// nvmeAdmin sends an admin command through f, with buf as its data (read
// from the controller); a status the controller returns is an error.
func nvmeAdmin(f *os.File, cmd *nvmePassthru, buf []byte) error {
	if len(buf) > 0 {
		cmd.addr = uint64(uintptr(unsafe.Pointer(&buf[0])))
		cmd.dataLen = uint32(len(buf))
	}
	status, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), nvmeIoctlAdminCmd, uintptr(unsafe.Pointer(cmd)))
	runtime.KeepAlive(buf)
	if errno != 0 {
		return errno
	}
	if status != 0 {
		return fmt.Errorf("the controller answered status %#x", status)
	}
	return nil
}
