package store

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var garbageMACs = []string{
	"", " ", "ff", "52:54:00:12:34:56 ", " 52:54:00:12:34:56", "52:54:00:12:34:56\x00",
	"52:54:00:12:34:56/../x", "52:54:00:AB:CD:EF", "52-54-00-ab-cd-ef", "5254.00ab.cdef",
	"52:54:00:ab:cd", "52:54:00:ab:cd:ef:01:02", "52:54:00:ab:cd:eg", "\xff\xfe\xfd",
	"00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00", // IPoIB, 20 bytes
	"m/52:54:00:ab:cd:ef", strings.Repeat("5", 1<<20),
}

// TestHostileMACs sends every garbage MAC to every method that takes one:
// each must refuse with ErrInvalid, write nothing and keep its error short.
func TestHostileMACs(t *testing.T) {
	db, _, _ := openTest(t)
	ip := netip.MustParseAddr("10.0.0.1")
	calls := map[string]func(string) error{
		"CreateMachine": func(m string) error { _, err := db.CreateMachine(Machine{MAC: m}, admin); return err },
		"GetMachine":    func(m string) error { _, err := db.GetMachine(m); return err },
		"UpdateMachine": func(m string) error {
			_, err := db.UpdateMachine(m, admin, func(*Machine) error { return nil })
			return err
		},
		"DeleteMachine": func(m string) error { return db.DeleteMachine(m, admin) },
		"PutLease":      func(m string) error { return db.PutLease(Lease{Segment: "lab", MAC: m, IP: ip}) },
		"DeleteLease":   func(m string) error { return db.DeleteLease("lab", m) },
		"IssueNonce":    func(m string) error { _, err := db.IssueNonce(m, time.Hour); return err },
		"AppendAudit":   func(m string) error { return db.AppendAudit(m+"x", admin) },
		"ListAudit":     func(m string) error { _, err := db.ListAudit(AuditFilter{MAC: m + "x"}); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			for _, m := range garbageMACs {
				err := call(m)
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("%.30q: %v, want ErrInvalid", m, err)
				}
				if err != nil && len(err.Error()) > 500 {
					t.Errorf("%.30q: error message of %d bytes", m, len(err.Error()))
				}
			}
		})
	}
	ms, _ := db.ListMachines()
	ls, _ := db.ListLeases("")
	as, _ := db.ListAudit(AuditFilter{})
	if len(ms)+len(ls)+len(as) != 0 {
		t.Errorf("garbage was stored: %d machines, %d leases, %d audit entries", len(ms), len(ls), len(as))
	}
}

func TestHostileNames(t *testing.T) {
	db, _, _ := openTest(t)
	names := []string{"", " ", "-lead", ".", "a b", "a/b", "../x", "é", "a\x00", "a\n", strings.Repeat("a", maxName+1)}
	for _, n := range names {
		if _, err := db.CreateCluster(Cluster{Name: n}, admin); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateCluster(%q) = %v", n, err)
		}
		if _, err := db.CreateProfile(Profile{Name: n, Kind: ProfileNetboot}, admin); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateProfile(%q) = %v", n, err)
		}
		if err := db.CreateAPIToken(APIToken{ID: n, Role: RoleAdmin, Hash: hashOf(n)}); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateAPIToken(%q) = %v", n, err)
		}
		if _, err := db.GetCluster(n); !errors.Is(err, ErrInvalid) {
			t.Errorf("GetCluster(%q) = %v", n, err)
		}
		if err := db.DeleteProfile(n, admin); !errors.Is(err, ErrInvalid) {
			t.Errorf("DeleteProfile(%q) = %v", n, err)
		}
	}
	for _, s := range []string{"", "a/b", "a\x00", "\xff", strings.Repeat("s", maxName+1)} {
		if err := db.PutLease(Lease{Segment: s, MAC: mac(1), IP: netip.MustParseAddr("10.0.0.1")}); !errors.Is(err, ErrInvalid) {
			t.Errorf("PutLease(segment %q) = %v", s, err)
		}
	}
	// Names that are fine: the rule is not stricter than documented.
	for _, n := range []string{"a", "Prod-1", "rack_2.eu", strings.Repeat("z", maxName)} {
		if _, err := db.CreateCluster(Cluster{Name: n}, admin); err != nil {
			t.Errorf("CreateCluster(%q) = %v", n, err)
		}
	}
}

func TestHugeInputs(t *testing.T) {
	db, _, _ := openTest(t)
	mustCreate(t, db, Machine{MAC: mac(1), Hostname: "keep"})

	// A huge or malformed audit detail is kept, truncated, as valid UTF-8.
	huge := strings.Repeat("é", 5<<20) + "\xff"
	if err := db.AppendAudit(mac(1), Audit{Actor: "agent", Action: "report", Detail: huge}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateMachine(mac(1), Audit{Actor: "agent", Detail: "x\xffy" + huge}, func(*Machine) error { return nil }); err != nil {
		t.Fatal(err)
	}
	es, err := db.ListAudit(AuditFilter{MAC: mac(1), Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if len(e.Detail) > maxDetail || !utf8.ValidString(e.Detail) || !strings.HasSuffix(e.Detail, "…") {
			t.Errorf("stored detail: %d bytes, valid UTF-8 %v", len(e.Detail), utf8.ValidString(e.Detail))
		}
	}

	big := json.RawMessage(`"` + strings.Repeat("a", 2<<20) + `"`)
	for name, fn := range map[string]func(*Machine) error{
		"inventory": func(m *Machine) error { m.Inventory = big; return nil },
		"hostname":  func(m *Machine) error { m.Hostname = strings.Repeat("h", 1<<20); return nil },
		"message":   func(m *Machine) error { m.Message = strings.Repeat("m", maxText+1); return nil },
		"progress":  func(m *Machine) error { m.Progress = -1; return nil },
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := db.UpdateMachine(mac(1), admin, fn); !errors.Is(err, ErrInvalid) {
				t.Errorf("UpdateMachine = %v, want ErrInvalid", err)
			}
			if m, _ := db.GetMachine(mac(1)); m.Hostname != "keep" || m.Revision != 2 {
				t.Errorf("machine changed: revision %d", m.Revision)
			}
		})
	}
	if _, err := db.CreateMachine(Machine{MAC: mac(2), Inventory: big}, admin); !errors.Is(err, ErrInvalid) {
		t.Errorf("CreateMachine with a 2 MiB inventory = %v, want ErrInvalid", err)
	}
	if _, err := db.CreateProfile(Profile{Name: "p", Kind: ProfileNetboot, Script: string(big)}, admin); !errors.Is(err, ErrInvalid) {
		t.Errorf("CreateProfile with a 2 MiB script = %v, want ErrInvalid", err)
	}
	if _, err := db.GetProfile("p"); !errors.Is(err, ErrNotFound) {
		t.Errorf("refused profile stored: %v", err)
	}
}
