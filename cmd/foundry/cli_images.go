package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/api/client"
)

// imagePoll is how often `images import --wait` asks for progress, and
// how often an upload prints it.
const imagePoll = time.Second

func imagesCmd(o *cliOptions) *cobra.Command {
	c := &cobra.Command{Use: "images", Short: "Manage the image library (OS images that image profiles install)",
		Long: "Images are imported from an http(s) URL or uploaded, checked against their SHA-256 and served to machines " +
			"from the appliance. raw, .gz, .zst and .xz images are kept as they are; qcow2 is converted to raw. " +
			"An image that a profile uses cannot be deleted."}
	print := func(cmd *cobra.Command, img api.Image) error {
		if o.json() {
			return writeJSON(cmd.OutOrStdout(), img)
		}
		return fields2(cmd, [][2]string{{"Name", img.Name}, {"State", imageState(img)}, {"Format", img.Format},
			{"Size", byteSize(img.Size)}, {"SHA-256", img.SHA256}, {"Source", img.Source}, {"URL", img.URL},
			{"Error", img.Error}, {"Created", img.CreatedAt.Format(time.RFC3339)}, {"Updated", img.UpdatedAt.Format(time.RFC3339)}})
	}
	rm := &cobra.Command{Use: "rm NAME", Aliases: []string{"delete"}, Short: "Delete an image no profile uses (and its file)",
		Args: args(1, "NAME"), RunE: func(cmd *cobra.Command, a []string) error {
			if err := o.client().DeleteImage(cmd.Context(), a[0]); err != nil {
				return apiErr(err)
			}
			if o.json() {
				return writeJSON(cmd.OutOrStdout(), map[string]string{"deleted": a[0]})
			}
			_, err := textf(cmd.OutOrStdout(), "deleted image %s\n", a[0])
			return err
		}}
	c.AddCommand(
		listCmd(o, "List images", (*client.Client).ListImages, []string{"NAME", "STATE", "FORMAT", "SIZE", "SHA-256", "SOURCE"},
			func(img api.Image) []string {
				sum := img.SHA256
				if len(sum) > 16 {
					sum = sum[:16] + "…"
				}
				return []string{img.Name, imageState(img), img.Format, byteSize(img.Size), sum, img.Source}
			}),
		showCmd(o, "Show an image", (*client.Client).GetImage, print),
		imageImportCmd(o, print),
		imageUploadCmd(o, print),
		rm,
	)
	return c
}

func imageImportCmd(o *cliOptions, print func(*cobra.Command, api.Image) error) *cobra.Command {
	var in api.ImageImport
	var wait bool
	cmd := &cobra.Command{Use: "import NAME --url URL", Short: "Import an image from an http(s) URL",
		Long: "The appliance fetches the URL itself. Without --wait the command returns once the import has started; " +
			"`foundry images show NAME` shows its progress. With --wait it prints the progress and fails when the import fails.",
		Args: args(1, "NAME"), RunE: func(cmd *cobra.Command, a []string) error {
			if in.URL == "" {
				return usageErr("--url is required")
			}
			in.Name = a[0]
			c := o.client()
			img, err := c.ImportImage(cmd.Context(), in)
			if err != nil {
				return apiErr(err)
			}
			if wait {
				if img, err = waitImport(cmd.Context(), c, cmd.ErrOrStderr(), img); err != nil {
					return err
				}
			}
			return print(cmd, img)
		}}
	cmd.Flags().StringVar(&in.URL, "url", "", "http or https URL of the image (raw, .gz, .zst, .xz or qcow2)")
	cmd.Flags().StringVar(&in.SHA256, "sha256", "", "SHA-256 of the file at the URL; a mismatch fails the import")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the import to end, showing its progress")
	return cmd
}

// waitImport polls an import until it ends, printing progress to w; a
// failed import is an error (exit 4).
func waitImport(ctx context.Context, c *client.Client, w io.Writer, img api.Image) (api.Image, error) {
	tick := time.NewTicker(imagePoll)
	defer tick.Stop()
	var last int64 = -1
	for img.State == "importing" {
		select {
		case <-ctx.Done():
			return img, ctx.Err()
		case <-tick.C:
		}
		var err error
		if img, err = c.GetImage(ctx, img.Name); err != nil {
			return img, apiErr(err)
		}
		if img.State == "importing" && img.BytesDone != last {
			last = img.BytesDone
			textf(w, "%s: %s\n", img.Name, transferred(img.BytesDone, img.BytesTotal))
		}
	}
	if img.State == "failed" {
		return img, exitError{code: exitRefused, err: fmt.Errorf("import of %s failed: %s", img.Name, img.Error)}
	}
	return img, nil
}

func imageUploadCmd(o *cliOptions, print func(*cobra.Command, api.Image) error) *cobra.Command {
	var sum string
	cmd := &cobra.Command{Use: "upload NAME FILE", Short: "Upload an image file (streamed; progress on stderr)",
		Args: args(2, "NAME", "FILE"), RunE: func(cmd *cobra.Command, a []string) error {
			f, err := os.Open(a[1])
			if err != nil {
				return usageErr("%v", err)
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil || !st.Mode().IsRegular() {
				return usageErr("%s is not a regular file", a[1])
			}
			cr := &countReader{r: f}
			stop := showUpload(cmd.ErrOrStderr(), a[0], cr, st.Size())
			img, err := o.client().UploadImage(cmd.Context(), a[0], cr, st.Size(), sum)
			stop()
			if err != nil {
				return apiErr(err)
			}
			return print(cmd, img)
		}}
	cmd.Flags().StringVar(&sum, "sha256", "", "SHA-256 of the file; the appliance checks it")
	return cmd
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// showUpload prints how much of an upload has been sent, every imagePoll
// and once at the end (when stop is called).
func showUpload(w io.Writer, name string, cr *countReader, total int64) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(imagePoll)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				textf(w, "%s: sent %s\n", name, transferred(cr.n.Load(), total))
				return
			case <-tick.C:
				textf(w, "%s: sent %s\n", name, transferred(cr.n.Load(), total))
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

// imageState is the state, with progress while importing.
func imageState(img api.Image) string {
	if img.State == "importing" {
		return "importing " + transferred(img.BytesDone, img.BytesTotal)
	}
	return img.State
}

// transferred is "12.0 MiB of 200.0 MiB (6%)", or "12.0 MiB" without a total.
func transferred(done, total int64) string {
	if total <= 0 {
		return byteSize(done)
	}
	return fmt.Sprintf("%s of %s (%d%%)", byteSize(done), byteSize(total), done*100/total)
}

// byteSize renders n bytes in binary units.
func byteSize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, unit := float64(n)/1024, "KiB"
	for _, u := range []string{"MiB", "GiB", "TiB"} {
		if v < 1024 {
			break
		}
		v, unit = v/1024, u
	}
	return fmt.Sprintf("%.1f %s", v, unit)
}
