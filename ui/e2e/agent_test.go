package e2e

import (
	"crypto/rand"
	"net/http"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/discovery-os/inventory"
	"github.com/foundry-appliance/foundry/discovery-os/token"
)

// agent plays the discovery OS of one machine: it holds the boot nonce and
// the registration token shown on the console.
type agent struct {
	mac   string
	nonce string
	token string // what the console shows
}

// sampleInventory is a small server with every section the dashboard shows.
func sampleInventory(mac string) inventory.Inventory {
	return inventory.Inventory{
		SchemaVersion: inventory.SchemaVersion,
		CollectedAt:   time.Now().UTC(),
		System:        inventory.System{Vendor: "Supermicro", Product: "SYS-1029P-WTR", Serial: "S314159", UUID: "4c4c4544-0042-3510-8056-b4c04f4d3232"},
		Baseboard:     inventory.Baseboard{Vendor: "Supermicro", Product: "X11DDW-L"},
		BIOS:          inventory.BIOS{Vendor: "American Megatrends Inc.", Version: "3.4", Date: "10/05/2020"},
		Chassis:       inventory.Chassis{Type: "Rack Mount Chassis", Serial: "C0815"},
		CPU: inventory.CPU{Model: "Intel(R) Xeon(R) Silver 4214 CPU @ 2.20GHz", Vendor: "GenuineIntel",
			Sockets: 2, Cores: 24, Threads: 48, Flags: []string{"fpu", "vme", "sse4_2", "avx2", "avx512f"}},
		Memory: inventory.Memory{TotalBytes: 192 << 30, UsableBytes: 187 << 30, DIMMs: []inventory.DIMM{
			{Locator: "P1-DIMMA1", SizeBytes: 32 << 30, Type: "DDR4", FormFactor: "RDIMM", SpeedMTs: 2400, Manufacturer: "Samsung"},
			{Locator: "P2-DIMMA1", SizeBytes: 32 << 30, Type: "DDR4", FormFactor: "RDIMM", SpeedMTs: 2400, Manufacturer: "Samsung"},
		}},
		Disks: []inventory.Disk{
			{Name: "nvme0n1", Path: "/dev/nvme0n1", SizeBytes: 960 << 30, Model: "SAMSUNG MZ1LB960HAJQ", Serial: "S435NA0M", WWN: "eui.0025388b91b0c4e1",
				ByPath: "pci-0000:5e:00.0-nvme-1", Driver: "nvme"},
			{Name: "sda", Path: "/dev/sda", SizeBytes: 4000 << 30, Model: "ST4000NM0035", Serial: "ZC1A2B3C", Rotational: true,
				ByPath: "pci-0000:00:17.0-ata-1.0", Driver: "ahci"},
			{Name: "sdb", Path: "/dev/sdb", SizeBytes: 16 << 30, Model: "Cruzer Blade", Removable: true,
				ByPath: "pci-0000:00:14.0-usb-0:3:1.0-scsi-0:0:0:0", Driver: "xhci_hcd"},
		},
		NICs: []inventory.NIC{
			{Name: "eno1", MAC: mac, Driver: "ixgbe", SpeedMbps: 10000, Link: true, OperState: "up", PCIAddress: "0000:3d:00.0",
				LLDP: &inventory.LLDPNeighbor{ChassisID: "00:1c:73:aa:bb:cc", PortID: "Ethernet12", PortDesc: "rack4-u17", SystemName: "tor-rack4", VLAN: 77}},
			{Name: "eno2", MAC: "0c:c4:7a:00:00:02", Driver: "ixgbe", OperState: "down", PCIAddress: "0000:3d:00.1"},
		},
		GPUs: []inventory.PCIDevice{{Address: "0000:af:00.0", VendorID: "10de", DeviceID: "1eb8", Vendor: "NVIDIA Corporation", Device: "TU104GL [Tesla T4]", Class: "030200", Driver: "nvidia"}},
		PCI: []inventory.PCIDevice{
			{Address: "0000:3d:00.0", VendorID: "8086", DeviceID: "1563", Vendor: "Intel Corporation", Device: "Ethernet Controller X550", Class: "020000", ClassName: "Ethernet controller", Driver: "ixgbe"},
			{Address: "0000:af:00.0", VendorID: "10de", DeviceID: "1eb8", Vendor: "NVIDIA Corporation", Device: "TU104GL [Tesla T4]", Class: "030200", ClassName: "3D controller", Driver: "nvidia"},
		},
		BMC:           &inventory.BMC{Interface: "ipmi", Type: "KCS", Address: "10.1.4.17"},
		NFSMounts:     []inventory.NFSMount{{Server: "10.1.0.5", Export: "/srv/scratch", MountPoint: "/mnt/scratch", FSType: "nfs4", Options: "rw,vers=4.2"}},
		ISCSISessions: []inventory.ISCSISession{{Session: "session1", TargetName: "iqn.2001-05.com.example:storage.lun1", Portal: "10.1.0.6:3260"}},
	}
}

// register boots the machine into discovery as far as the agent API is
// concerned: it reads the nonce from the iPXE script, draws a console
// token and posts the inventory with the token's salted hash.
func register(t *testing.T, a *appliance, mac string) *agent {
	t.Helper()
	ag := &agent{mac: mac, nonce: a.bootNonce(t, mac)}
	tok, err := token.New(rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	salt, err := token.NewSalt(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ag.token = tok.Value
	body := map[string]any{
		"mac":       mac,
		"inventory": sampleInventory(mac),
		"token":     map[string]any{"salt": salt, "hash": token.Hash(tok.Value, salt), "expires_at": tok.ExpiresAt},
	}
	var out struct{ State string }
	a.must(t, http.StatusOK, "POST", "/api/v1/agent/register", "", ag.nonce, body, &out)
	if out.State != "inventoried" {
		t.Fatalf("register %s: state %q, want inventoried", mac, out.State)
	}
	return ag
}

// progress and result report provisioning as the agent does.
func (ag *agent) progress(t *testing.T, a *appliance, percent int, msg string) {
	t.Helper()
	a.must(t, http.StatusOK, "POST", "/api/v1/agent/progress", "", ag.nonce, map[string]any{"percent": percent, "message": msg}, nil)
}

func (ag *agent) result(t *testing.T, a *appliance, ok bool, msg string) {
	t.Helper()
	a.must(t, http.StatusOK, "POST", "/api/v1/agent/result", "", ag.nonce, map[string]any{"success": ok, "message": msg}, nil)
}

// wrongToken is a well-formed token that is not the machine's.
func wrongToken(t *testing.T, right string) string {
	t.Helper()
	for {
		tok, err := token.New(rand.Reader, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if tok.Value != right {
			return tok.Value
		}
	}
}
