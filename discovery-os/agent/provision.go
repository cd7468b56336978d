package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/foundry-appliance/foundry/agentwire"
)

// progressStep is how often (in percent) progress goes to the appliance.
const progressStep = 5

// provision writes the image of an image decision and its cloud-init seed.
// Everything from the appliance is validated before the disk is touched.
func (a *Agent) provision(ctx context.Context, d agentwire.Decision) error {
	if d.Image == nil || d.Image.URL == "" {
		return errors.New("image decision without an image URL")
	}
	dev, err := ResolveDisk(d.Image.Disk, a.Inventory)
	if err != nil {
		return err
	}
	instanceID := "foundry-" + strings.ReplaceAll(a.MAC, ":", "") + "-" + strconv.FormatInt(a.now().Unix(), 10)
	files, err := NoCloudFiles(instanceID, a.MAC, d)
	if err != nil {
		return fmt.Errorf("cloud-init seed: %w", err)
	}
	open := a.Disks
	if open == nil {
		open = OpenDisk
	}
	disk, err := open(dev)
	if err != nil {
		return fmt.Errorf("open %s: %w", dev, err)
	}
	defer disk.Close()
	a.status("writing image to %s", dev)
	a.progress(ctx, 0, "writing image to "+dev)
	last := 0
	hc := a.Download
	if hc == nil {
		hc = http.DefaultClient
	}
	n, err := WriteImage(ctx, hc, d.Image.URL, d.Image.SHA256, disk, func(pct int) {
		if pct >= last+progressStep && pct < 100 {
			last = pct - pct%progressStep
			a.status("writing image to %s: %d%%", dev, last)
			a.progress(ctx, last, fmt.Sprintf("writing image to %s", dev))
		}
	})
	if err != nil {
		return err
	}
	if err := disk.Close(); err != nil {
		return fmt.Errorf("close %s: %w", dev, err)
	}
	a.status("image verified (%d bytes written): writing the cloud-init seed", n)
	seed := a.Seed
	if seed == nil {
		seed = WriteSeed
	}
	switch err := seed(dev, files); {
	case errors.Is(err, ErrNoPartitionTable):
		// A bare file system or data image: nothing to put a seed beside,
		// and nothing cloud-init-driven to boot. The image stands.
		a.log().Warn("no cloud-init seed written", "err", err)
		a.progress(ctx, 100, "image written; no cloud-init seed: the image has no partition table")
	case err != nil:
		return fmt.Errorf("cloud-init seed: %w", err)
	default:
		a.progress(ctx, 100, "image and cloud-init seed written")
	}
	return nil
}

// progress reports to the appliance; a lost report is not worth failing
// the installation for.
func (a *Agent) progress(ctx context.Context, pct int, msg string) {
	if err := a.API.Progress(ctx, pct, msg); err != nil {
		a.log().Warn("report progress", "percent", pct, "err", err)
	}
}
