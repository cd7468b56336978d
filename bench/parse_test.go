package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The reports in testdata are perfdhcp 2.2.0's real output, captured from
// runs against `foundry serve` on this project's machines.
func TestParsePerfdhcp(t *testing.T) {
	tests := []struct {
		file            string
		rate            float64
		do, ra          exchange
		clients, resent int
		took            time.Duration
		delays          int
	}{
		{
			file: "perfdhcp-basic.txt", rate: 3160.42,
			do: exchange{Sent: 34999, Received: 21835, Drops: 13164,
				Min: 434 * time.Microsecond, Avg: 118056 * time.Microsecond, Max: 361465 * time.Microsecond},
			ra: exchange{Sent: 21835, Received: 15805, Drops: 6030,
				Min: 1931 * time.Microsecond, Avg: 376087 * time.Microsecond, Max: 708085 * time.Microsecond},
		},
		{
			file: "perfdhcp-avalanche.txt", rate: 59.2713,
			do:      exchange{Sent: 12, Received: 12},
			ra:      exchange{Sent: 12, Received: 12},
			clients: 12, took: 201471 * time.Microsecond, delays: 12,
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			r, err := parsePerfdhcp(string(raw))
			if err != nil {
				t.Fatal(err)
			}
			if r.Rate != tt.rate || r.Clients != tt.clients || r.Took != tt.took || r.Resent != tt.resent {
				t.Errorf("rate %v clients %d took %v resent %d, want %v %d %v %d",
					r.Rate, r.Clients, r.Took, r.Resent, tt.rate, tt.clients, tt.took, tt.resent)
			}
			for _, c := range []struct {
				name      string
				got, want exchange
			}{{"DO", r.DO, tt.do}, {"RA", r.RA, tt.ra}} {
				if c.got.Sent != c.want.Sent || c.got.Received != c.want.Received || c.got.Drops != c.want.Drops {
					t.Errorf("%s counts %d/%d/%d, want %d/%d/%d", c.name,
						c.got.Sent, c.got.Received, c.got.Drops, c.want.Sent, c.want.Received, c.want.Drops)
				}
				if c.want.Max != 0 && (c.got.Min != c.want.Min || c.got.Avg != c.want.Avg || c.got.Max != c.want.Max) {
					t.Errorf("%s delays %v/%v/%v, want %v/%v/%v", c.name,
						c.got.Min, c.got.Avg, c.got.Max, c.want.Min, c.want.Avg, c.want.Max)
				}
				if len(c.got.Delays) != tt.delays {
					t.Errorf("%s: %d per-packet delays, want %d", c.name, len(c.got.Delays), tt.delays)
				}
			}
		})
	}
}

func TestParseStamp(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{in: "000000.002295", want: 2295 * time.Microsecond},
		{in: "000105.5", want: time.Minute + 5500*time.Millisecond},
		{in: "1020304.000001", want: 102*time.Hour + 3*time.Minute + 4*time.Second + time.Microsecond},
		{in: "12.5", bad: true},
		{in: "00x000.1", bad: true},
		{in: "", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseStamp(tt.in)
			if tt.bad {
				if err == nil {
					t.Fatalf("parseStamp(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseStamp(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParsePerfdhcpRefusesTruncatedReport(t *testing.T) {
	if _, err := parsePerfdhcp("Running: perfdhcp\nError running perfdhcp: no such interface\n"); err == nil {
		t.Fatal("a report without statistics parsed without error")
	}
}

// strace-kea.txt is a full `strace -f -c` of kea-dhcp4 answering 999
// DORAs (trimmed to its first rows); strace-foundry.txt is
// `strace -f -c -e trace=…` of `foundry serve` answering 399.
func TestReadStraceSummary(t *testing.T) {
	tests := []struct {
		file string
		want map[string]int
	}{
		{"strace-kea.txt", map[string]int{"futex": 28, "sendmsg": 1998, "write": 1017, "openat": 60, "read": 55}},
		{"strace-foundry.txt", map[string]int{"msync": 798, "write": 112}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := readStraceSummary(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			for name, n := range tt.want {
				if got[name] != n {
					t.Errorf("%s: %d calls, want %d", name, got[name], n)
				}
			}
			if got["total"] != 0 || got["fsync"] != 0 {
				t.Errorf("total row or absent call counted: %v", got)
			}
		})
	}
	if _, err := readStraceSummary(filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Error("a missing summary read without error")
	}
}

// TestParseUDPCounters reads a real /proc/net/snmp (captured on this
// project's machine) and refuses files whose Udp counters cannot be read,
// which would otherwise be reported as no drops.
func TestParseUDPCounters(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "proc-net-snmp.txt"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseUDPCounters(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 9 || got["InDatagrams"] != 512075 || got["RcvbufErrors"] != 5235 || got["MemErrors"] != 0 {
		t.Errorf("parsed %v", got)
	}
	for name, bad := range map[string]string{
		"no Udp lines":     "Ip: Forwarding\nIp: 1\n",
		"names only":       "Udp: InDatagrams RcvbufErrors\n",
		"a value missing":  "Udp: InDatagrams RcvbufErrors\nUdp: 5\n",
		"a value too many": "Udp: InDatagrams\nUdp: 5 6\n",
		"not a number":     "Udp: InDatagrams RcvbufErrors\nUdp: 5 x\n",
		"beyond int64":     "Udp: RcvbufErrors\nUdp: 99999999999999999999\n",
		"exponent":         "Udp: RcvbufErrors\nUdp: 1e3\n",
		"a sign":           "Udp: RcvbufErrors\nUdp: -1\n",
	} {
		if c, err := parseUDPCounters([]byte(bad)); err == nil {
			t.Errorf("%s: accepted as %v", name, c)
		}
	}
}

// FuzzParseUDPCounters: any input is read or refused, never half read:
// what is accepted has one counter, not negative, for each name of the
// header and none other.
func FuzzParseUDPCounters(f *testing.F) {
	if raw, err := os.ReadFile(filepath.Join("testdata", "proc-net-snmp.txt")); err == nil {
		f.Add(raw)
	}
	f.Add([]byte("Udp: a b\nUdp: 1 2\n"))
	f.Add([]byte("Udp: a\nUdp: -1\nUdp: 2\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := parseUDPCounters(raw)
		if err != nil {
			return
		}
		var header []string
		for _, line := range strings.Split(string(raw), "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] == "Udp:" {
				header = f[1:]
				break
			}
		}
		names := map[string]bool{}
		for _, n := range header {
			names[n] = true
		}
		if len(got) != len(names) {
			t.Fatalf("%d counters for the names %q", len(got), header)
		}
		for n, v := range got {
			if !names[n] || v < 0 {
				t.Fatalf("counter %q = %d; the header is %q", n, v, header)
			}
		}
	})
}
