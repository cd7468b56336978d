package agent

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"

	"github.com/foundry-appliance/foundry/agentwire"
)

func TestNoCloudFiles(t *testing.T) {
	d := agentwire.Decision{Hostname: "Web1.lab", SSHKeys: []string{`ssh-ed25519 AAAA admin@lab "quoted"`},
		Network:      &agentwire.Network{Mode: "static", Address: "10.77.0.50/24", Gateway: "10.77.0.1", DNS: []string{"10.77.0.1"}},
		FirstBootURL: "http://10.77.0.1:8080/api/v1/first-boot/52:54:00:12:34:56/c2VjcmV0LXNlY3JldA"}
	files, err := NoCloudFiles("foundry-525400123456-1", "52:54:00:12:34:56", d)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(files["user-data"]), "#cloud-config\n{") {
		t.Errorf("user-data: %s", files["user-data"])
	}
	var user struct {
		Hostname  string   `json:"hostname"`
		FQDN      string   `json:"fqdn"`
		EtcHosts  bool     `json:"manage_etc_hosts"`
		Keys      []string `json:"ssh_authorized_keys"`
		PhoneHome *struct {
			URL   string `json:"url"`
			Post  string `json:"post"`
			Tries int    `json:"tries"`
		} `json:"phone_home"`
	}
	json.Unmarshal(files["user-data"][len("#cloud-config\n"):], &user)
	if user.Hostname != "web1" || user.FQDN != "web1.lab" || !user.EtcHosts || user.Keys[0] != d.SSHKeys[0] {
		t.Errorf("user-data %+v", user)
	}
	if p := user.PhoneHome; p == nil || p.URL != d.FirstBootURL || p.Post != "all" || p.Tries < 10 {
		t.Errorf("phone_home %+v, want the first boot URL, posting everything", p)
	}
	without := d
	without.FirstBootURL = ""
	if files, _ := NoCloudFiles("i", "52:54:00:12:34:56", without); strings.Contains(string(files["user-data"]), "phone_home") {
		t.Errorf("phone_home without a first boot URL: %s", files["user-data"])
	}
	const wantNet = `{"ethernets":{"primary":{"addresses":["10.77.0.50/24"],"gateway4":"10.77.0.1","match":{"macaddress":"52:54:00:12:34:56"},"nameservers":{"addresses":["10.77.0.1"]}}},"version":2}` + "\n"
	if string(files["network-config"]) != wantNet {
		t.Errorf("network-config:\n%s\nwant\n%s", files["network-config"], wantNet)
	}
	if string(files["meta-data"]) != `{"instance-id":"foundry-525400123456-1","local-hostname":"web1.lab"}`+"\n" {
		t.Errorf("meta-data %s", files["meta-data"])
	}

	bad := []struct {
		name string
		d    agentwire.Decision
		want string
	}{
		{"hostname with newline", agentwire.Decision{Hostname: "a\nruncmd: [reboot]"}, "RFC 1123"},
		{"empty hostname", agentwire.Decision{}, "RFC 1123"},
		{"key with newline", agentwire.Decision{Hostname: "a", SSHKeys: []string{"ssh-rsa AAA\nssh-rsa BBB"}}, "ssh key 1"},
		{"bad address", agentwire.Decision{Hostname: "a", Network: &agentwire.Network{Mode: "static", Address: "10.0.0.300/24"}}, "network address"},
		{"bad mode", agentwire.Decision{Hostname: "a", Network: &agentwire.Network{Mode: "magic"}}, "neither dhcp nor static"},
		{"first boot URL not http", agentwire.Decision{Hostname: "a", FirstBootURL: "file:///etc/shadow"}, "first boot URL"},
		{"first boot URL relative", agentwire.Decision{Hostname: "a", FirstBootURL: "/api/v1/first-boot/x/y"}, "first boot URL"},
		{"first boot URL with a template", agentwire.Decision{Hostname: "a", FirstBootURL: "http://h/$INSTANCE_ID"}, "first boot URL"},
		{"first boot URL with a newline", agentwire.Decision{Hostname: "a", FirstBootURL: "http://h/x\nruncmd: [reboot]"}, "first boot URL"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NoCloudFiles("i", "52:54:00:12:34:56", tt.d); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// imageOnDisk makes a disk file of diskMB whose first imageMB hold a disk
// image with table tbl, as if the image had been written to a larger disk.
func imageOnDisk(t *testing.T, imageMB, diskMB int64, tbl partition.Table) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	d, err := diskfs.Create(p, imageMB<<20, diskfs.SectorSize512)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Partition(tbl); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if err := os.Truncate(p, diskMB<<20); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWriteSeed(t *testing.T) {
	files := map[string][]byte{"meta-data": []byte("{\"instance-id\":\"x\"}\n"), "user-data": []byte("#cloud-config\n{}\n"), "network-config": []byte("{}\n")}
	tests := []struct {
		name    string
		path    func(t *testing.T) string
		wantErr string
	}{
		{"gpt image on a larger disk", func(t *testing.T) string {
			return imageOnDisk(t, 40, 200, &gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true,
				Partitions: []*gpt.Partition{{Index: 1, Start: 2048, End: 40000, Type: gpt.LinuxFilesystem, Name: "root"}}})
		}, ""},
		{"mbr image on a larger disk", func(t *testing.T) string {
			return imageOnDisk(t, 40, 200, &mbr.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512,
				Partitions: []*mbr.Partition{{Index: 1, Type: mbr.Linux, Start: 2048, Size: 60000, Bootable: true}}})
		}, ""},
		{"image fills the disk", func(t *testing.T) string {
			return imageOnDisk(t, 100, 100, &gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true,
				Partitions: []*gpt.Partition{{Index: 1, Start: 2048, End: 190000, Type: gpt.LinuxFilesystem}}})
		}, "no room"},
		{"no partition table", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "raw.img")
			os.WriteFile(p, make([]byte, 100<<20), 0o644)
			return p
		}, "no partition table"},
		{"no partition table is ErrNoPartitionTable", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "raw.img")
			os.WriteFile(p, make([]byte, 100<<20), 0o644)
			return p
		}, ErrNoPartitionTable.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.path(t)
			err := WriteSeed(p, files)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(tt.name, "no partition table") && !errors.Is(err, ErrNoPartitionTable) {
					t.Fatalf("err = %v, want ErrNoPartitionTable", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			d, err := diskfs.Open(p, diskfs.WithOpenMode(diskfs.ReadOnly))
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			parts := d.Table.GetPartitions()
			var seed int
			for _, part := range parts {
				if part.GetSize() > 0 && part.GetIndex() > 1 {
					seed = part.GetIndex()
					if end := part.GetStart() + part.GetSize(); end > 200<<20 || end < 199<<20 {
						t.Errorf("seed partition ends at %d, not at the end of the disk", end)
					}
				}
			}
			if seed == 0 {
				t.Fatalf("no seed partition in %+v", parts)
			}
			fs, err := d.GetFilesystem(seed)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(fs.Label()); got != "CIDATA" {
				t.Errorf("label %q", got)
			}
			for name, want := range files {
				f, err := fs.OpenFile("/"+name, os.O_RDONLY)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				got, _ := io.ReadAll(f)
				if string(got) != string(want) {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
		})
	}
}
