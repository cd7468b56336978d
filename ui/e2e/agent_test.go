package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/agentsig"
	"github.com/foundry-appliance/foundry/agentwire"
	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/discovery-os/inventory"
	"github.com/foundry-appliance/foundry/discovery-os/token"
)

// agent plays the discovery OS of one boot of a machine: it holds the
// boot nonce, the boot's key that signs every call, and the registration
// token shown on the console.
type agent struct {
	mac   string
	nonce string
	token string // what the console shows
	key   ed25519.PrivateKey
	seq   uint64 // the last call number used
	// client sends the calls; its source address is the boot's.
	client *http.Client
}

// from is an HTTP client whose connections come from ip, a loopback
// address (all of 127.0.0.0/8 is local): two simulated hosts that claim
// one MAC register from different addresses, as on a real segment.
func from(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 30 * time.Second}
}

// call sends a call of the agent API, signed with the boot's key and its
// next call number; the registration also carries the boot nonce. It
// decodes the answer into out when it is not nil and returns the status.
func (ag *agent) call(t *testing.T, a *appliance, method, path string, body, out any) int {
	t.Helper()
	req := a.request(t, method, path, body)
	if path == "/api/v1/agent/register" {
		req.Header.Set(api.NonceHeader, ag.nonce)
	}
	ag.seq++
	if err := agentsig.Sign(req, ag.key, ag.seq); err != nil {
		t.Fatal(err)
	}
	c := ag.client
	if c == nil {
		c = http.DefaultClient
	}
	return a.send(t, c, req, out)
}

// must is call that fails the test unless the status is want.
func (ag *agent) must(t *testing.T, a *appliance, want int, method, path string, body, out any) {
	t.Helper()
	if got := ag.call(t, a, method, path, body, out); got != want {
		t.Fatalf("agent %s: %s %s: status %d, want %d", ag.mac, method, path, got, want)
	}
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
// concerned: with the nonce its iPXE script carried, it makes the boot's
// key, draws a console token and posts the inventory with the token's
// salted hash and the public key.
func register(t *testing.T, a *appliance, mac string) *agent {
	t.Helper()
	return registerBoot(t, a, &agent{mac: mac, nonce: a.bootNonce(t, mac)}, sampleInventory(mac))
}

// registerBoot registers one boot (ag with its nonce and, optionally, its
// client) with inv.
func registerBoot(t *testing.T, a *appliance, ag *agent, inv inventory.Inventory) *agent {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ag.key = key
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
		"mac":        ag.mac,
		"inventory":  inv,
		"token":      agentwire.NewAgentToken(tok, salt),
		"public_key": key.Public(), // []byte: base64 in JSON
	}
	var out struct{ State string }
	ag.must(t, a, http.StatusOK, "POST", "/api/v1/agent/register", body, &out)
	if out.State != "inventoried" {
		t.Fatalf("register %s: state %q, want inventoried", ag.mac, out.State)
	}
	return ag
}

// progress and result report provisioning as the agent does.
func (ag *agent) progress(t *testing.T, a *appliance, percent int, msg string) {
	t.Helper()
	ag.must(t, a, http.StatusOK, "POST", "/api/v1/agent/progress", map[string]any{"percent": percent, "message": msg}, nil)
}

func (ag *agent) result(t *testing.T, a *appliance, ok bool, msg string) {
	t.Helper()
	ag.must(t, a, http.StatusOK, "POST", "/api/v1/agent/result", map[string]any{"success": ok, "message": msg}, nil)
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
