package ipxe

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/foundry-appliance/foundry/store"
)

// initrdName is the name the initrd is registered under and named on the
// kernel line. The packaged (2019) iPXE under UEFI hands the initrd to the
// kernel's EFI stub only as a file the command line names
// ("initrd=initrd"); BIOS kernels get it from the boot protocol and ignore
// the argument. kernel → initrd → boot works for both: kernel selects the
// image that boot starts, and initrd only registers a file.
const initrdName = "initrd"

func header(kind Kind, mac string) *strings.Builder {
	b := &strings.Builder{}
	fmt.Fprintf(b, "#!ipxe\n# Foundry %s script for %s\n", kind, mac)
	return b
}

func unknownScript(in Input) string {
	b := header(KindUnknown, in.MAC)
	fmt.Fprintf(b, "echo Foundry: machine %s is not known to this appliance, not booting it.\n", in.MAC)
	b.WriteString("exit 1\n")
	return b.String()
}

func rejectedScript(in Input) string {
	b := header(KindRejected, in.MAC)
	fmt.Fprintf(b, "echo Foundry: machine %s was rejected by an administrator, not booting it.\n", in.MAC)
	b.WriteString("exit 1\n")
	return b.String()
}

func heldScript(in Input) string {
	b := header(KindHeld, in.MAC)
	fmt.Fprintf(b, "echo Foundry: machine %s waits for approval, but its segment does not allow discovery; not booting it.\n", in.MAC)
	b.WriteString("exit 1\n")
	return b.String()
}

// regrantScript answers a discovery request that holds no DHCP grant: the
// machine repeats its DHCP exchange (which grants it a nonce) and asks
// again; anyone else learns nothing. mac and url are the server's own.
func regrantScript(mac, url string) string {
	b := header(KindDiscovery, mac)
	b.WriteString("echo Foundry: no fresh DHCP exchange for this machine from this address; asking DHCP again.\n")
	b.WriteString("sleep 3\n")
	fmt.Fprintf(b, "dhcp && chain --replace %s || exit 1\n", url)
	return b.String()
}

// ErrorScript is served (with status 500) when no script could be rendered:
// the machine is told, nothing is booted, and the reason stays in the
// appliance's log. mac must already be canonical; anything else is left out.
func ErrorScript(mac string) string {
	if checkMAC(mac) != nil {
		mac = "this machine"
	}
	return "#!ipxe\n# Foundry error\n" +
		"echo Foundry: no boot script for " + mac + " (see the appliance log), not booting.\n" +
		"exit 1\n"
}

func discoveryScript(in Input) (string, error) {
	kernel, err := resolve("discovery kernel", in.DiscoveryKernel, in.BaseURL)
	if err != nil {
		return "", err
	}
	initrd, err := resolve("discovery initrd", in.DiscoveryInitrd, in.BaseURL)
	if err != nil {
		return "", err
	}
	if err := checkCmdline("extra discovery arguments", in.ExtraDiscoveryArgs); err != nil {
		return "", err
	}
	nonce := PreviewNonce
	if in.Nonce != nil {
		if nonce, err = in.Nonce(); err != nil {
			return "", fmt.Errorf("issue boot nonce: %w", err)
		}
	}
	if err := checkToken("boot nonce", nonce); err != nil {
		return "", err
	}
	b := header(KindDiscovery, in.MAC)
	fmt.Fprintf(b, "echo Foundry: discovery boot for %s\n", in.MAC)
	// The agent parses these from /proc/cmdline (docs/architecture.md).
	fmt.Fprintf(b, "kernel %s initrd=%s foundry.url=%s foundry.mac=%s foundry.nonce=%s %s\n",
		kernel, initrdName, in.BaseURL, in.MAC, nonce, in.ExtraDiscoveryArgs)
	fmt.Fprintf(b, "initrd --name %s %s\n", initrdName, initrd)
	b.WriteString("boot\n")
	return b.String(), nil
}

// TemplateData is what a profile's Script template sees. Every field is
// validated before the template runs, so none can inject a command.
type TemplateData struct {
	MAC      string // canonical, 52:54:00:12:34:56
	Hostname string // RFC 1123, may be empty
	IP       string // canonical IP address, may be empty
	Cluster  string // store name alphabet, may be empty
	Profile  string // store name alphabet
	BaseURL  string // appliance URL without a trailing slash
}

func templateData(in Input) (TemplateData, error) {
	m := in.Machine
	d := TemplateData{MAC: in.MAC, Hostname: m.Hostname, IP: m.IP, Cluster: m.Cluster, Profile: m.Profile, BaseURL: in.BaseURL}
	return d, errors.Join(checkHostname(d.Hostname), checkIP(d.IP), checkName("cluster", d.Cluster), checkName("profile", d.Profile))
}

func productionScript(in Input) (string, error) {
	d, err := templateData(in)
	if err != nil {
		return "", err
	}
	p := in.Profile
	if p.Script != "" {
		return runTemplate(p.Name, p.Script, d)
	}
	if p.Kernel == "" {
		return "", fmt.Errorf("%w: netboot profile %s has neither kernel nor script", ErrNoProfile, quote(p.Name))
	}
	kernel, err := resolve("profile kernel", p.Kernel, in.BaseURL)
	if err != nil {
		return "", err
	}
	if err := checkCmdline("profile cmdline", p.Cmdline); err != nil {
		return "", err
	}
	args := []string{kernel}
	var initrd string
	if p.Initrd != "" {
		if initrd, err = resolve("profile initrd", p.Initrd, in.BaseURL); err != nil {
			return "", err
		}
		args = append(args, "initrd="+initrdName)
	}
	if c := strings.Join(strings.Fields(p.Cmdline), " "); c != "" {
		args = append(args, c)
	}
	b := header(KindProduction, in.MAC)
	fmt.Fprintf(b, "echo Foundry: production boot of %s (profile %s)\n", text(name(d)), p.Name)
	fmt.Fprintf(b, "kernel %s\n", strings.Join(args, " "))
	if initrd != "" {
		fmt.Fprintf(b, "initrd --name %s %s\n", initrdName, initrd)
	}
	b.WriteString("boot\n")
	return b.String(), nil
}

// name is how a machine is announced: its hostname, or its MAC.
func name(d TemplateData) string {
	if d.Hostname != "" {
		return d.Hostname
	}
	return d.MAC
}

// localBoot hands the machine back to its first disk: on BIOS iPXE boots
// drive 0x80 itself; on UEFI iPXE exits so the firmware tries its next boot
// option (the disk). It exits with a failure: on success OVMF stops at its
// boot manager menu instead of trying the next option (seen with
// snponly.efi; Debian's 2019 ipxe.efi hangs on exit either way). One
// script serves both, chosen by ${platform} at run time ("pcbios" or "efi").
const localBoot = "iseq ${platform} efi && exit 1 ||\nsanboot --no-describe --drive 0x80\n"

func localScript(in Input) (string, error) {
	d, err := templateData(in)
	if err != nil {
		return "", err
	}
	b := header(KindLocal, in.MAC)
	fmt.Fprintf(b, "echo Foundry: booting %s from its local disk\n", text(name(d)))
	b.WriteString(localBoot)
	return b.String(), nil
}

// menuScript offers production, rediscover, local disk and the iPXE shell.
// Production and rediscover chain back to this server with a one-boot Mode
// rather than inlining those scripts: a profile's own script template can
// then be used unchanged (its labels cannot clash with the menu's), and the
// discovery nonce is only issued when rediscover is actually chosen.
func menuScript(in Input) (string, error) {
	d, err := templateData(in)
	if err != nil {
		return "", err
	}
	production := "Production boot (profile " + in.Profile.Name + ")"
	if in.Profile.Kind == store.ProfileImage {
		production = "Production: installed system on the local disk"
	}
	self := in.BaseURL + "/boot/" + in.MAC
	b := header(KindMenu, in.MAC)
	b.WriteString(":start\n")
	fmt.Fprintf(b, "menu Foundry: %s (%s)\n", text(name(d)), in.MAC)
	fmt.Fprintf(b, "item production %s\n", text(production))
	b.WriteString("item rediscover Rediscover (refresh inventory)\n")
	b.WriteString("item local Boot from local disk\n")
	b.WriteString("item shell iPXE shell\n")
	timeout, def := in.MenuTimeout, store.MenuProduction
	if m := in.Machine.Menu; m.TimeoutSeconds > 0 {
		timeout = time.Duration(m.TimeoutSeconds) * time.Second
	}
	if d := in.Machine.Menu.Default; d != "" {
		if !slices.Contains(store.MenuItems(), d) {
			return "", fmt.Errorf("boot menu default %s is not one of %v", quote(d), store.MenuItems())
		}
		def = d
	}
	// Escape (choose fails) means "no change": boot the default.
	fmt.Fprintf(b, "choose --timeout %d --default %s selected || goto %s\n", timeout.Milliseconds(), def, def)
	b.WriteString("goto ${selected}\n")
	fmt.Fprintf(b, "\n:production\nchain %s?mode=%s\nexit\n", self, ModeProduction)
	fmt.Fprintf(b, "\n:rediscover\nchain %s?mode=%s\nexit\n", self, ModeDiscovery)
	b.WriteString("\n:local\n" + localBoot + "exit\n")
	b.WriteString("\n:shell\nshell\ngoto start\n")
	return b.String(), nil
}
