package agent

import (
	"fmt"
	"net"

	"github.com/u-root/u-root/pkg/ipmi"
)

// OpenIPMI opens the BMC's system interface, /dev/ipmi0 (the kernel's
// ipmi_si and ipmi_devintf, which LoadModules loads when a BMC is there).
func OpenIPMI() (IPMICloser, error) {
	d, err := ipmi.Open(0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/ipmi0: %w", err)
	}
	return ipmiDev{d}, nil
}

type ipmiDev struct{ *ipmi.IPMI }

// Send is SendRecv with plain bytes; data is never empty here (u-root
// takes the address of its first byte).
func (d ipmiDev) Send(netfn, cmd byte, data []byte) ([]byte, error) {
	return d.SendRecv(ipmi.NetFn(netfn), ipmi.Command(cmd), data)
}

// BMCMAC asks the BMC over /dev/ipmi0 for the MAC of its first LAN
// channel (LAN configuration parameter 5).
func BMCMAC() (string, error) {
	dev, err := OpenIPMI()
	if err != nil {
		return "", err
	}
	defer dev.Close()
	r, err := call(dev, netfnTransport, cmdGetLANConfig, lanChannel(dev), 5, 0, 0)
	if err != nil {
		return "", fmt.Errorf("get LAN MAC: %w", err)
	}
	if len(r) < 8 {
		return "", fmt.Errorf("get LAN MAC: short answer of %d bytes", len(r))
	}
	return net.HardwareAddr(r[2:8]).String(), nil
}
