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
	hc := a.Download
	if hc == nil {
		hc = http.DefaultClient
	}
	rep := startReporter(a.sendProgress(ctx))
	// Closed before provision returns: the result is reported after it,
	// and calls are made one at a time.
	defer rep.close()
	m := newMeter()
	var last agentwire.AgentProgress
	w := ImageWriter{HTTP: hc, Sleep: a.sleep, Log: a.Log, Progress: func(t Transfer) {
		p, due := m.observe(t, a.now())
		if !due {
			return
		}
		p.Message = phaseMessage(t, dev)
		a.status("%s", progressText(p.Message, p))
		rep.post(t.Phase, p)
		last = p
	}}
	n, err := w.Write(ctx, d.Image.URL, d.Image.SHA256, disk)
	if err != nil {
		return err
	}
	if err := disk.Close(); err != nil {
		return fmt.Errorf("close %s: %w", dev, err)
	}
	a.status("image verified (%d bytes written): writing the cloud-init seed", n)
	// The seed and the end keep the download's size, without a rate.
	last.RateBps, last.ETASeconds = 0, 0
	last.Percent, last.Message = 99, "writing the cloud-init seed to "+dev
	rep.post(PhaseSeed, last)
	seed := a.Seed
	if seed == nil {
		seed = WriteSeed
	}
	switch err := seed(dev, files); {
	case errors.Is(err, ErrNoPartitionTable):
		// A bare file system or data image: nothing to put a seed beside,
		// and nothing cloud-init-driven to boot. The image stands.
		a.log().Warn("no cloud-init seed written", "err", err)
		last.Message = "image written; no cloud-init seed: the image has no partition table"
	case err != nil:
		return fmt.Errorf("cloud-init seed: %w", err)
	default:
		last.Message = "image and cloud-init seed written"
	}
	last.Percent = 100
	rep.post(phaseDone, last)
	return nil
}

// phaseMessage says what the install is doing, for the appliance and the
// console.
func phaseMessage(t Transfer, dev string) string {
	switch t.Phase {
	case PhaseDownloading:
		return "downloading the image for " + dev
	case PhaseVerifying:
		return "verifying the image written to " + dev
	}
	msg := "writing image to " + dev
	if t.Resumes > 0 {
		msg += fmt.Sprintf(" (download resumed %d×)", t.Resumes)
	}
	return msg
}
