package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/foundry-appliance/foundry/names"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"

	"github.com/foundry-appliance/foundry/agentwire"
)

// The cloud-init seed is a NoCloud data source: a FAT file system labelled
// CIDATA holding meta-data, user-data and network-config. cloud-init finds
// it by label on any block device, so the agent appends a small partition
// for it at the end of the target disk, after the image's own partitions.
// The image's root partition can still grow into the space in between.

// ErrNoPartitionTable is returned by WriteSeed when the image brought no
// partition table to add the seed partition to.
var ErrNoPartitionTable = errors.New("the image has no partition table to add the cloud-init seed to")

// SeedSize is the size of the CIDATA partition.
const SeedSize = 64 << 20

// NoCloudFiles renders the seed files for a machine. Every file is JSON
// (which YAML reads as it is), so no value from the appliance can inject
// YAML structure. Bad values are refused with an error naming them.
func NoCloudFiles(instanceID, mac string, d agentwire.Decision) (map[string][]byte, error) {
	host, err := names.Hostname(d.Hostname)
	if err != nil {
		return nil, fmt.Errorf("hostname %q: %w", printable(d.Hostname), err)
	}
	for i, k := range d.SSHKeys {
		if !names.OneLine(k) || len(strings.Fields(k)) < 2 {
			return nil, fmt.Errorf("ssh key %d is not one authorized_keys line", i+1)
		}
	}
	meta, _ := json.Marshal(map[string]string{"instance-id": instanceID, "local-hostname": host})
	cfg := map[string]any{
		"hostname": strings.SplitN(host, ".", 2)[0],
		"fqdn":     host,
		// Without an /etc/hosts line for the name, `hostname -f` fails
		// and sudo warns on every call (seen on Debian 12's cloud-init,
		// which leaves /etc/hosts alone by default).
		"manage_etc_hosts":    true,
		"ssh_authorized_keys": append([]string{}, d.SSHKeys...),
	}
	if d.FirstBootURL != "" {
		u, err := url.Parse(d.FirstBootURL)
		// cloud-init substitutes $INSTANCE_ID and the like in the URL, so
		// a "$" would not reach the appliance as written.
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			!names.Printable(d.FirstBootURL) || strings.ContainsAny(d.FirstBootURL, "$ ") {
			return nil, fmt.Errorf("first boot URL %q is not a plain http(s) URL", printable(d.FirstBootURL))
		}
		// phone_home runs last in the first boot and posts a form with
		// the instance ID, the host names and the new host keys; the
		// appliance marks the machine ready when it arrives. Its tries
		// are 3 s apart.
		cfg["phone_home"] = map[string]any{"url": d.FirstBootURL, "post": "all", "tries": 20}
	}
	user, _ := json.Marshal(cfg)
	eth := map[string]any{"match": map[string]string{"macaddress": mac}}
	nw := d.Network
	if nw == nil || nw.Mode == "" || nw.Mode == "dhcp" {
		eth["dhcp4"] = true
	} else if nw.Mode == "static" {
		pfx, err := netip.ParsePrefix(nw.Address)
		if err != nil {
			return nil, fmt.Errorf("network address %q: %w", printable(nw.Address), err)
		}
		eth["addresses"] = []string{pfx.String()}
		if nw.Gateway != "" {
			gw, err := netip.ParseAddr(nw.Gateway)
			if err == nil && !gw.Is4() {
				err = errors.New("not an IPv4 address") // gateway4
			}
			if err != nil {
				return nil, fmt.Errorf("network gateway %q: %w", printable(nw.Gateway), err)
			}
			// gateway4, not a route "to: default": cloud-init 22.4
			// (Debian 12) rejects "default" as an address and fails the
			// whole network configuration, and its ifupdown renderer
			// turns routes into `route add` lines that need net-tools.
			// gateway4 is read by every cloud-init release and renderer
			// (netplan only warns that it is deprecated).
			eth["gateway4"] = gw.String()
		}
		var dns []string
		for _, s := range nw.DNS {
			a, err := netip.ParseAddr(s)
			if err == nil && a.Zone() != "" {
				err = errors.New("a nameserver has no zone")
			}
			if err != nil {
				return nil, fmt.Errorf("network dns %q: %w", printable(s), err)
			}
			dns = append(dns, a.String())
		}
		if len(dns) > 0 {
			eth["nameservers"] = map[string]any{"addresses": dns}
		}
	} else {
		return nil, fmt.Errorf("network mode %q is neither dhcp nor static", printable(nw.Mode))
	}
	netcfg, _ := json.Marshal(map[string]any{"version": 2, "ethernets": map[string]any{"primary": eth}})
	return map[string][]byte{
		"meta-data":      append(meta, '\n'),
		"user-data":      append([]byte("#cloud-config\n"), append(user, '\n')...),
		"network-config": append(netcfg, '\n'),
	}, nil
}

// WriteSeed adds a SeedSize CIDATA partition at the end of the disk (or
// disk image file) at path, after the partition table the image brought
// (GPT, whose backup header it moves to the real end of the disk, or MBR),
// and writes files into a FAT32 file system on it.
func WriteSeed(path string, files map[string][]byte) error {
	d, err := diskfs.Open(path, diskfs.WithOpenMode(diskfs.ReadWrite))
	if err != nil {
		return fmt.Errorf("open %s for the seed: %w", path, err)
	}
	defer d.Close()
	tbl, err := d.GetPartitionTable()
	if err != nil {
		return fmt.Errorf("%s: %w (%v)", path, ErrNoPartitionTable, err)
	}
	index, err := addSeedPartition(tbl, d.Size)
	if err != nil {
		return fmt.Errorf("add seed partition on %s: %w", path, err)
	}
	if err := d.Partition(tbl); err != nil {
		return fmt.Errorf("write partition table on %s: %w", path, err)
	}
	fs, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: index, FSType: filesystem.TypeFat32, VolumeLabel: "CIDATA"})
	if err != nil {
		return fmt.Errorf("create seed file system: %w", err)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		f, err := fs.OpenFile("/"+n, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return fmt.Errorf("create seed file %s: %w", n, err)
		}
		if _, err := f.Write(files[n]); err != nil {
			f.Close()
			return fmt.Errorf("write seed file %s: %w", n, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("write seed file %s: %w", n, err)
		}
	}
	return nil
}

// addSeedPartition appends the seed partition to tbl for a disk of size
// bytes and returns its index.
func addSeedPartition(tbl any, size int64) (int, error) {
	const align = 1 << 20
	switch t := tbl.(type) {
	case *gpt.Table:
		t.Resize(uint64(size))
		ss := uint64(t.LogicalSectorSize)
		last := t.LastDataSector()
		start := (last + 1 - SeedSize/ss) / (align / ss) * (align / ss)
		index := 1
		for _, p := range t.Partitions {
			if p.Type == gpt.Unused {
				continue
			}
			if p.End >= start {
				return 0, errors.New("no room after the image's partitions")
			}
			index = max(index, p.Index+1)
		}
		t.Partitions = append(t.Partitions, &gpt.Partition{Index: index, Start: start, End: last,
			Size: (last - start + 1) * ss, Type: gpt.MicrosoftBasicData, Name: "cidata"})
		return index, nil
	case *mbr.Table:
		ss := int64(t.LogicalSectorSize)
		if ss == 0 {
			ss = 512
		}
		total := size / ss
		if total > 1<<32-1 {
			total = 1<<32 - 1 // MBR addresses at most 2 TiB
		}
		start := (total - SeedSize/ss) / (align / ss) * (align / ss)
		slot := -1
		for i, p := range t.Partitions {
			if p.Type == mbr.Empty {
				if slot < 0 {
					slot = i
				}
				continue
			}
			if int64(p.Start)+int64(p.Size) > start {
				return 0, errors.New("no room after the image's partitions")
			}
		}
		if slot < 0 && len(t.Partitions) < 4 {
			t.Partitions = append(t.Partitions, &mbr.Partition{})
			slot = len(t.Partitions) - 1
		}
		if slot < 0 {
			return 0, errors.New("all four MBR partition slots are used")
		}
		t.Partitions[slot] = &mbr.Partition{Index: slot + 1, Type: mbr.Fat32LBA,
			Start: uint32(start), Size: uint32(total - start)}
		return slot + 1, nil
	}
	return 0, fmt.Errorf("unsupported partition table %T", tbl)
}
