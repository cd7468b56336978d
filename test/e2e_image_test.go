package test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	diskfs "github.com/diskfs/go-diskfs"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/test/vm"
)

const (
	imageBytes  = 4 << 20 // the test image: 4 MiB
	sectorBytes = 512
	// The image's one partition: from 1 MiB to the end of the image.
	imagePartStart   = 2048
	imagePartSectors = imageBytes/sectorBytes - imagePartStart
	// mbrTable is where the four 16-byte partition entries start.
	mbrTable = 446
)

// testImage is a 4 MiB raw disk image: an MBR whose boot code prints msg,
// and one bootable Linux partition (type 0x83) filling the rest, with a
// recognisable pattern in it.
func testImage(t *testing.T, msg string) []byte {
	t.Helper()
	img := make([]byte, imageBytes)
	code, err := vm.BootCode("\r\n" + msg + "\r\n")
	must(t, err)
	copy(img, code)
	e := img[mbrTable : mbrTable+16]
	e[0] = 0x80                            // active
	copy(e[1:4], []byte{0xFE, 0xFF, 0xFF}) // CHS start: "use LBA"
	e[4] = 0x83                            // Linux
	copy(e[5:8], []byte{0xFE, 0xFF, 0xFF}) // CHS end: "use LBA"
	binary.LittleEndian.PutUint32(e[8:], imagePartStart)
	binary.LittleEndian.PutUint32(e[12:], imagePartSectors)
	img[510], img[511] = 0x55, 0xAA
	for i := imagePartStart * sectorBytes; i < len(img); i += sectorBytes {
		copy(img[i:], fmt.Sprintf("foundry e2e image sector %d", i/sectorBytes))
	}
	return img
}

// Issue 4, c: a machine approved with an image profile gets a raw image the
// test built written to its disk. A wrong SHA-256 in the profile fails the
// installation and wipes the disk; with the right one, after a retry, the
// image is written (progress 100) and the machine boots from its local
// disk: the boot sector's marker appears on its serial console. The disk
// file then holds the image, plus the cloud-init seed partition (CIDATA)
// the agent adds at the end of the disk, whose phone_home URL makes the
// machine ready. Released, its next discovery boot wipes the disk's first
// and last MiB, the ends of the image's partition and the whole seed, and
// it is inventoried again.
func TestE2EImageToLocalBoot(t *testing.T) {
	l := newE2ELab(t)
	const mac = "52:54:00:e2:e0:03"
	marker := randomMarker(t, "FOUNDRY-E2E-LOCAL-DISK-")
	img := testImage(t, marker)
	sum := sha256.Sum256(img)
	must(t, os.WriteFile(filepath.Join(l.images, "e2e-disk.raw"), img, 0o644))

	disk := rawDisk(t, e2eDiskBytes)
	poweredOn := time.Now()
	m := bootBIOSMachine(t, l.lab.tap(), mac, disk)
	rec, tok := l.registered(t, m, mac)
	t.Logf("image machine: power-on to registered in %v", time.Since(poweredOn).Round(100*time.Millisecond))
	if tok == "" {
		t.Fatalf("no registration token on the console")
	}

	// First the profile names a checksum the image does not have: the agent
	// writes, finds the mismatch, wipes the start of the disk and reports
	// the failure.
	other := sha256.Sum256([]byte("not the image"))
	fields := api.ProfileFields{Kind: "image", ImageURL: e2eBase + "/images/e2e-disk.raw", ImageSHA256: hex.EncodeToString(other[:])}
	l.setupCluster(t, "rack2", api.ProfileCreate{Name: "image-e2e", ProfileFields: fields})
	approved, err := l.approve(mac, tok, "rack2", "image-e2e")
	if err != nil {
		t.Fatalf("approve with the console token: %v", err)
	}
	if approved.State != "approved" || approved.Approval == nil || approved.Approval.Disk == "" {
		t.Fatalf("after approval: state %s, approval %+v; want approved with a target disk", approved.State, approved.Approval)
	}
	t.Logf("approved %s (was %s): target disk %s", mac, rec.State, approved.Approval.Disk)
	failed, ok := l.waitState(t, mac, "failed", bootTimeout)
	if !ok || !strings.Contains(failed.Message, "checksum") {
		t.Fatalf("with a wrong checksum: state %s, message %q; want failed on the checksum", failed.State, failed.Message)
	}
	t.Logf("wrong checksum: %s: %q", failed.State, failed.Message)
	if head := readHead(t, disk, sectorBytes); !bytes.Equal(head, make([]byte, sectorBytes)) {
		t.Errorf("after the checksum failure the disk still starts with %x…, want zeros (wiped)", head[:16])
	}

	// Then the right checksum, and a retry: the agent asks again after its
	// failure delay.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fields.ImageSHA256 = hex.EncodeToString(sum[:])
	if _, err := l.api.UpdateProfile(ctx, "image-e2e", fields); err != nil {
		t.Fatalf("fix the profile's checksum: %v", err)
	}
	if _, err := l.api.Retry(ctx, mac); err != nil {
		t.Fatalf("retry: %v", err)
	}
	approvedAt := time.Now()

	// Written: the machine boots its disk and is ready only once the
	// installed system reports its first boot.
	installed, ok := l.waitFor(t, mac, func(m api.Machine) bool { return m.Installed }, bootTimeout)
	if !ok {
		t.Fatalf("image never written: state %s, progress %d, message %q", installed.State, installed.Progress, installed.Message)
	}
	t.Logf("retry to image written and verified in %v; message %q",
		time.Since(approvedAt).Round(100*time.Millisecond), installed.Message)
	if installed.State != "provisioning" || installed.Progress != 100 {
		t.Errorf("installed machine is %s with progress %d, want provisioning at 100", installed.State, installed.Progress)
	}
	if _, ok := l.app.waitLog(time.Second, "GET", "/images/e2e-disk.raw"); !ok {
		t.Errorf("the appliance log shows no download of the image")
	}

	if !m.waitConsole(bootTimeout, marker) {
		t.Fatalf("the local disk's boot sector (marker %s) never ran", marker)
	}
	t.Logf("retry to local-disk boot in %v", time.Since(approvedAt).Round(100*time.Millisecond))
	if !bytes.Contains([]byte(m.text()), []byte("from its local disk")) {
		t.Errorf("iPXE never announced the local-disk script")
	}

	m.powerOff()
	checkWrittenDisk(t, disk, img)
	report := checkSeed(t, disk, installed.Hostname, mac)

	// The boot sector is no operating system: the test reports its first
	// boot as cloud-init's phone_home would, to the URL the seed carries
	// (images/osimage's boot test has real cloud-init do it).
	if !strings.HasPrefix(report, l.app.base+"/api/v1/first-boot/"+mac+"/") {
		t.Fatalf("seed phone_home URL %q", report)
	}
	resp, err := http.Post(report, "application/x-www-form-urlencoded", strings.NewReader("instance_id=i-e2e&hostname="+installed.Hostname))
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("first-boot report: %s", resp.Status)
	}
	ready, ok := l.waitState(t, mac, "ready", 10*time.Second)
	if !ok || ready.DeploySeconds == nil {
		t.Fatalf("after the first-boot report: %s, deploy seconds %v", ready.State, ready.DeploySeconds)
	}
	t.Logf("approval (retry) to ready: %.1f s", *ready.DeploySeconds)

	// Release: the machine's next boot into discovery wipes its disk, and
	// it is inventoried again, to be approved anew.
	req, err := http.NewRequest(http.MethodPost, l.app.base+"/api/v1/machines/"+mac+"/release", nil)
	must(t, err)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err = http.DefaultClient.Do(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("release: %s", resp.Status)
	}
	releasedAt := time.Now()
	again := bootBIOSMachine(t, l.lab.tap(), mac, disk)
	wiped, ok := l.waitFor(t, mac, func(m api.Machine) bool { return strings.HasPrefix(m.Message, "disks wiped") }, bootTimeout)
	if !ok || wiped.State != "inventoried" {
		t.Fatalf("after the release: %s %q", wiped.State, wiped.Message)
	}
	t.Logf("release to disks wiped and inventoried in %v", time.Since(releasedAt).Round(100*time.Millisecond))
	again.powerOff()
	f, err := os.Open(disk)
	must(t, err)
	defer f.Close()
	st, err := f.Stat()
	must(t, err)
	// The disk's first and last MiB (its tables), the first and last MiB
	// of the image's partition (its file system's signatures), and the
	// whole cloud-init seed in the last 65 MiB (the last install's host
	// name, keys and first-boot URL).
	const mib = 1 << 20
	for _, r := range []struct {
		what     string
		off, len int64
	}{
		{"the disk's first MiB", 0, mib},
		{"the image partition's first MiB", imagePartStart * sectorBytes, mib},
		{"the image partition's last MiB", imageBytes - mib, mib},
		{"the seed partition", st.Size() - 65*mib, 65 * mib},
	} {
		got := make([]byte, r.len)
		_, err := f.ReadAt(got, r.off)
		must(t, err)
		if i := bytes.IndexFunc(got, func(c rune) bool { return c != 0 }); i >= 0 {
			t.Errorf("%s of the released disk is not wiped: byte %d is %#x", r.what, r.off+int64(i), got[i])
		}
	}
}

// readHead returns the first n bytes of a file.
func readHead(t *testing.T, path string, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	b := make([]byte, n)
	_, err = io.ReadFull(f, b)
	must(t, err)
	return b
}

// checkSeed reads the cloud-init NoCloud seed the agent wrote: a FAT file
// system labelled CIDATA on the disk's second partition, naming the
// machine's host name and MAC.
// checkSeed checks the CIDATA partition the agent wrote and returns the
// phone_home URL of its user-data.
func checkSeed(t *testing.T, disk, hostname, mac string) string {
	t.Helper()
	d, err := diskfs.Open(disk, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatalf("open the machine's disk: %v", err)
	}
	defer d.Close()
	fs, err := d.GetFilesystem(2)
	if err != nil {
		t.Fatalf("no file system on the seed partition: %v", err)
	}
	if label := strings.TrimSpace(fs.Label()); label != "CIDATA" {
		t.Errorf("seed file system is labelled %q, want CIDATA", label)
	}
	want := map[string]string{"meta-data": `"local-hostname":"` + hostname + `"`, "network-config": mac, "user-data": "#cloud-config"}
	var userData []byte
	for name, s := range want {
		f, err := fs.OpenFile("/"+name, os.O_RDONLY)
		if err != nil {
			t.Errorf("seed file %s: %v", name, err)
			continue
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil || !strings.Contains(string(b), s) {
			t.Errorf("seed file %s (%v) lacks %q:\n%s", name, err, s, b)
		}
		if name == "user-data" {
			userData = b
		}
	}
	var cfg struct {
		PhoneHome struct {
			URL string `json:"url"`
		} `json:"phone_home"`
	}
	if err := json.Unmarshal(bytes.TrimPrefix(userData, []byte("#cloud-config\n")), &cfg); err != nil {
		t.Fatalf("user-data is not JSON after its header: %v\n%s", err, userData)
	}
	return cfg.PhoneHome.URL
}

// checkWrittenDisk compares the machine's disk with the image: boot code,
// the image's partition entry and every byte after the MBR are the image's;
// the agent may only have added its CIDATA partition entry, pointing past
// the image, near the end of the disk.
func checkWrittenDisk(t *testing.T, disk string, img []byte) {
	t.Helper()
	f, err := os.Open(disk)
	must(t, err)
	defer f.Close()
	got := make([]byte, len(img))
	_, err = io.ReadFull(f, got)
	must(t, err)
	if !bytes.Equal(got[:mbrTable+16], img[:mbrTable+16]) {
		t.Errorf("the disk's boot code or first partition entry differs from the image")
	}
	if !bytes.Equal(got[510:], img[510:]) {
		t.Errorf("the disk differs from the image after the partition table")
	}
	for i := 1; i < 4; i++ {
		e := got[mbrTable+16*i : mbrTable+16*(i+1)]
		if e[4] == 0 {
			continue
		}
		start := int64(binary.LittleEndian.Uint32(e[8:]))
		size := int64(binary.LittleEndian.Uint32(e[12:]))
		t.Logf("partition %d added on the disk: type %#02x, sectors %d-%d (%d MiB)", i+1, e[4], start, start+size-1, size*sectorBytes>>20)
		if start < imageBytes/sectorBytes || (start+size)*sectorBytes > e2eDiskBytes {
			t.Errorf("partition %d (sectors %d+%d) overlaps the image or leaves the disk", i+1, start, size)
		}
	}
}
