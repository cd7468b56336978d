package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/foundry-appliance/foundry/api"
)

// ListImages lists the image library.
func (c *Client) ListImages(ctx context.Context) ([]api.Image, error) {
	var out []api.Image
	return out, c.do(ctx, http.MethodGet, "/images", nil, nil, &out)
}

// GetImage returns one library image, with its import's progress.
func (c *Client) GetImage(ctx context.Context, name string) (api.Image, error) {
	var out api.Image
	return out, c.do(ctx, http.MethodGet, "/images/"+esc(name), nil, nil, &out)
}

// ImportImage starts importing an image from a URL; the answer is the
// image in state importing.
func (c *Client) ImportImage(ctx context.Context, in api.ImageImport) (api.Image, error) {
	var out api.Image
	return out, c.do(ctx, http.MethodPost, "/images", nil, in, &out)
}

// DeleteImage deletes an image that no profile uses.
func (c *Client) DeleteImage(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/images/"+esc(name), nil, nil, nil)
}

// UploadImage streams body (size bytes; -1 when unknown) as image name and
// returns the ready image. sha256, when not empty, is checked by the
// appliance. The request has no timeout beyond ctx: an upload of gigabytes
// takes as long as it takes.
func (c *Client) UploadImage(ctx context.Context, name string, body io.Reader, size int64, sha256 string) (api.Image, error) {
	var out api.Image
	q := url.Values{}
	set(q, "sha256", sha256)
	req, err := c.newRequest(ctx, http.MethodPut, "/images/"+esc(name), q, nil)
	if err != nil {
		return out, err
	}
	req.Body = io.NopCloser(body)
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.httpClient(true).Do(req)
	if err != nil {
		return out, fmt.Errorf("PUT %s: %w", req.URL.Path, err)
	}
	defer resp.Body.Close()
	if err := checkStatus(resp); err != nil {
		return out, err
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return out, fmt.Errorf("decode answer of PUT %s: %w", req.URL.Path, err)
	}
	return out, nil
}
