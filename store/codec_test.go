package store

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/foundry-appliance/foundry/discovery-os/inventory"
)

// codecRecords are records of each kind the store reads, filled the way
// the appliance fills them.
func codecRecords(tb testing.TB) [][]byte {
	tb.Helper()
	at := time.Date(2026, 11, 30, 9, 45, 0, 123456789, time.UTC)
	records := []any{
		Machine{
			MAC: "52:54:00:12:34:56", State: StateReady, Hostname: "node-010946", Segment: "seg3",
			Arch: "uefi-x64", Client: "ipxe", IP: "10.66.42.194", FirstSeen: at, LastSeen: at.Add(time.Hour),
			Summary: InventorySummary{Vendor: "Supermicro", Model: "SYS-1029U", Serial: "SN00010946",
				CPUModel: "Intel(R) Xeon(R) Gold 6230", Cores: 40, Threads: 80, MemoryBytes: 1 << 38,
				Disks: 2, DiskBytes: 2 << 40, NICs: 4, GPUs: 0, Sum: 8822785663846498209},
			Session: "O8t0VHwBnHbgqasEb9oUeRhJkJki9egk4AWXgeE7wAc", Cluster: "prod-7", Profile: "ubuntu-24.04",
			Approval: &Approval{Disk: "/dev/disk/by-id/nvme-eui.0001", SSHKeys: []string{"ssh-ed25519 AAAAC3Nza admin@x"},
				Network: Network{Mode: "static", Address: netip.MustParsePrefix("10.66.42.194/16"),
					Gateway: netip.MustParseAddr("10.66.0.1"), DNS: []netip.Addr{netip.MustParseAddr("10.66.0.2")}},
				ApprovedBy: "admin", ApprovedAt: at},
			Installed: true, FirstBoot: &FirstBoot{At: at, Hostname: "node-010946", SSHHostKeys: []string{"ssh-ed25519 AAAA"}},
			ReadyAt: at, Progress: 100, Menu: BootMenu{Enabled: true, TimeoutSeconds: 5, Default: MenuLocal},
			BMC:      &BMC{Protocol: "ipmi", Address: "10.1.0.7", Port: 623, Username: "foundry", Secret: []byte{1, 2, 3}},
			Revision: 12,
		},
		Machine{MAC: "02:00:00:01:15:07", State: StateDiscovered, Hostname: "discovered-011507", Temporary: true,
			ExpiresAt: at, Segment: "seg4", FirstSeen: at, LastSeen: at},
		Session{ID: "--JD-gBq-llaD_LPOniD6-XpPY1YVIHXmK3J6M3eKRo", MAC: "02:00:2c:3c:b4:8f",
			PublicKey: make([]byte, 32), Nonce: "fbe243fa006afa595a0ff2cf3a7883ebe5e93d8d585481d798adc9e8cdde291a",
			Token:  RegToken{Salt: []byte("salt"), Hash: make([]byte, 32), Iterations: 10000, ExpiresAt: at, Failures: 2},
			Remote: "10.67.98.63:40000", OpenedAt: at, LastSeen: at, ExpiresAt: at.Add(time.Hour), Seq: 7},
		Lease{Segment: "seg1", MAC: "02:00:00:00:00:01", IP: netip.MustParseAddr("10.64.0.9"), Expires: at},
		AuditEntry{ID: "0000000000000042", Time: at, MAC: "02:00:00:00:00:01", Revision: 4,
			Audit: Audit{Actor: "admin", Action: "approve", Detail: "state inventoried -> approved"}},
		codecInventory(at),
	}
	var out [][]byte
	for _, r := range records {
		b, err := json.Marshal(r)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// codecInventory is an agent's inventory of a two-socket server, as a
// registration and a machine keep it (ParseInventory reads it).
func codecInventory(at time.Time) inventory.Inventory {
	inv := inventory.Inventory{
		SchemaVersion: inventory.SchemaVersion, CollectedAt: at,
		System:    inventory.System{Vendor: "Supermicro", Product: "SYS-1029U", Serial: "SN00010946", UUID: "00000000-0000-0000-0000-0cc47a000001"},
		Baseboard: inventory.Baseboard{Vendor: "Supermicro", Product: "X11DPU", Serial: "ZM1234"},
		BIOS:      inventory.BIOS{Vendor: "American Megatrends Inc.", Version: "3.4", Date: "10/09/2020"},
		Chassis:   inventory.Chassis{Vendor: "Supermicro", Type: "Rack Mount Chassis"},
		CPU: inventory.CPU{Model: "Intel(R) Xeon(R) Gold 6230", Vendor: "GenuineIntel", Sockets: 2, Cores: 40, Threads: 80,
			Flags: []string{"fpu", "vme", "sse4_2", "avx2", "avx512f"}},
		Memory: inventory.Memory{TotalBytes: 1 << 38, UsableBytes: 1<<38 - 1<<30,
			DIMMs: []inventory.DIMM{{Locator: "P1-DIMMA1", SizeBytes: 1 << 35, Type: "DDR4", FormFactor: "DIMM", SpeedMTs: 2933}}},
		Warnings: []string{"lldp: no neighbour on eno2"},
	}
	for i := range 4 {
		inv.Disks = append(inv.Disks, inventory.Disk{Name: fmt.Sprintf("nvme%dn1", i), Path: fmt.Sprintf("/dev/nvme%dn1", i),
			SizeBytes: 1 << 41, Model: "SAMSUNG MZQL21T9", Serial: fmt.Sprintf("S64GNE0R%04d", i), WWN: "eui.0025388b1234",
			ByPath: fmt.Sprintf("pci-0000:%02x:00.0-nvme-1", 0x5e+i), Driver: "nvme"})
		inv.NICs = append(inv.NICs, inventory.NIC{Name: fmt.Sprintf("eno%d", i+1), MAC: fmt.Sprintf("0c:c4:7a:00:00:%02x", i),
			Driver: "ixgbe", SpeedMbps: 10000, Link: i == 0, OperState: "up"})
	}
	inv.Disks = append(inv.Disks, inventory.Disk{Name: "sr0", Path: "/dev/sr0", Removable: true, ReadOnly: true})
	return inv
}

// decodeTargets are fresh values of the record types, for each decode.
var decodeTargets = []func() any{
	func() any { return new(Machine) },
	func() any { return new(Session) },
	func() any { return new(Lease) },
	func() any { return new(AuditEntry) },
	func() any { return new(Image) },
	func() any { return new(inventory.Inventory) },
}

// sameAsStd fails when decodeJSON and encoding/json.Unmarshal make anything
// different of b: the error (text, not only its presence) or the value.
func sameAsStd(t *testing.T, b []byte) {
	t.Helper()
	for _, target := range decodeTargets {
		want, got := target(), target()
		errWant, errGot := json.Unmarshal(b, want), decodeJSON(b, got)
		if (errWant == nil) != (errGot == nil) || errWant != nil && errWant.Error() != errGot.Error() {
			t.Fatalf("%T from %q: encoding/json says %v, decodeJSON %v", want, b, errWant, errGot)
		}
		if errWant == nil && !reflect.DeepEqual(want, got) {
			t.Fatalf("%T from %q:\nencoding/json %+v\ndecodeJSON    %+v", want, b, want, got)
		}
	}
}

func TestDecodeRecordAgrees(t *testing.T) {
	cases := map[string][]byte{
		// segmentio refuses this time; encoding/json reads it. decodeJSON
		// must too, and with nothing segmentio set before it stopped.
		"lenient time":      []byte(`{"mac":"x","state":"ready","hostname":"h","expires_at":"0000-01-01T0:00:00,0Z","revision":3}`),
		"20-digit overflow": []byte(`{"summary":{"cores":20700000000000000000}}`),
		"19-digit overflow": []byte(`{"progress":9223372036854775808}`),
		"2^64":              []byte(`{"summary":{"sum":18446744073709551616}}`),
		"2^64-1":            []byte(`{"summary":{"sum":18446744073709551615,"cores":18446744073709551615}}`),
		"21 digits":         []byte(`{"revision":184467440737095516160}`),
		"negative 20":       []byte(`{"progress":-20700000000000000000}`),
		"digits in string":  []byte(`{"nonce":"123456789012345678901234","mac":"a"}`),
		"trailing bytes":    []byte(`{"mac":"a"} x`),
		"truncated":         []byte(`{"mac":"a","approval":{"disk":`),
		"wrong type":        []byte(`{"mac":1}`),
		"not an object":     []byte(`[1,2]`),
		"null":              []byte(`null`),
		"empty":             nil,
		"bad base64":        []byte(`{"public_key":"!!!"}`),
		"schema-1 menu":     []byte(`{"menu":true}`),
		"bad menu":          []byte(`{"menu":"yes"}`),
		"case-folded keys":  []byte(`{"MAC":"a","Mac":"b","STATE":"ready"}`),
		"duplicate pointer": []byte(`{"approval":{"disk":"a"},"approval":null}`),
		"invalid utf-8":     []byte("{\"hostname\":\"\xff\xfe\"}"),
	}
	for i, r := range codecRecords(t) {
		cases["record "+string(rune('0'+i))] = r
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) { sameAsStd(t, b) })
	}
}

// TestDecodeNotAPointer: a target that is no pointer, or a nil one, gets
// encoding/json's error, not a panic.
func TestDecodeNotAPointer(t *testing.T) {
	b := codecRecords(t)[0]
	for _, v := range []any{Machine{}, (*Machine)(nil), nil} {
		want, got := json.Unmarshal(b, v), decodeJSON(b, v)
		if want == nil || got == nil || want.Error() != got.Error() {
			t.Errorf("decode into %T: %v, encoding/json says %v", v, got, want)
		}
	}
}

// FuzzDecodeRecord holds the store's record decoder to encoding/json's
// result, error text included, for any bytes and every record type: a
// record is worth what encoding/json makes of it (codec.go).
func FuzzDecodeRecord(f *testing.F) {
	for _, r := range codecRecords(f) {
		f.Add(r)
	}
	f.Fuzz(func(t *testing.T, b []byte) { sameAsStd(t, b) })
}

// BenchmarkDecodeRecord compares encoding/json with decodeJSON on a
// ready machine's record, a session's and an inventory.
func BenchmarkDecodeRecord(b *testing.B) {
	rs := codecRecords(b)
	for _, c := range []struct {
		name   string
		record []byte
		target func() any
	}{{"machine", rs[0], decodeTargets[0]}, {"session", rs[2], decodeTargets[1]}, {"inventory", rs[5], decodeTargets[5]}} {
		for _, d := range []struct {
			name string
			fn   func([]byte, any) error
		}{{"encoding-json", json.Unmarshal}, {"decodeJSON", decodeJSON}} {
			b.Run(c.name+"/"+d.name, func(b *testing.B) {
				for b.Loop() {
					if err := d.fn(c.record, c.target()); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func TestHugeNumber(t *testing.T) {
	for in, want := range map[string]bool{
		`{"sum":18446744073709551615}`:          false, // 2^64-1: segmentio's own path
		`{"sum":9999999999999999999}`:           false,
		`{"sum":18446744073709551616}`:          true, // 2^64
		`{"sum":20700000000000000000}`:          true,
		`{"sum":100000000000000000000}`:         true, // 21 digits
		`{"a":1,"b":"12345678901234567890123"}`: true,
		`{"a":1234567890,"b":1234567890}`:       false,
		``:                                      false,
		`99999999999999999999`:                  true,
	} {
		if got := hugeNumber([]byte(in)); got != want {
			t.Errorf("hugeNumber(%s) = %v, want %v", in, got, want)
		}
	}
}

// TestHugeNumberAnywhere puts a number at every offset of a record-sized
// value: looking at one position in 20 must find it wherever it is.
func TestHugeNumberAnywhere(t *testing.T) {
	for _, c := range []struct {
		num  string
		want bool
	}{{"18446744073709551616", true}, {"18446744073709551615", false}, {"123456789012345678901", true}} {
		for pad := 0; pad < 60; pad++ {
			b := []byte(strings.Repeat("x", pad) + c.num + strings.Repeat("y", 60-pad))
			if got := hugeNumber(b); got != c.want {
				t.Fatalf("%s after %d bytes: hugeNumber = %v", c.num, pad, got)
			}
			if got := hugeNumber(b[pad:][:len(c.num)]); got != c.want {
				t.Fatalf("%s alone: hugeNumber = %v", c.num, got)
			}
		}
	}
}
