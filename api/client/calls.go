package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/foundry-appliance/foundry/api"
)

// ListOptions filter and page the machine list; zero fields are omitted.
type ListOptions struct {
	State   []string
	Cluster string
	Segment string
	Q       string
	Sort    string
	Limit   int
	Cursor  string
}

// ListMachines returns one page of machines.
func (c *Client) ListMachines(ctx context.Context, o ListOptions) (api.MachineList, error) {
	q := url.Values{}
	if len(o.State) > 0 {
		q.Set("state", strings.Join(o.State, ","))
	}
	set(q, "cluster", o.Cluster)
	set(q, "segment", o.Segment)
	set(q, "q", o.Q)
	set(q, "sort", o.Sort)
	set(q, "cursor", o.Cursor)
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	var out api.MachineList
	return out, c.do(ctx, http.MethodGet, "/machines", q, nil, &out)
}

func set(q url.Values, k, v string) {
	if v != "" {
		q.Set(k, v)
	}
}

// GetMachine returns a machine with its inventory.
func (c *Client) GetMachine(ctx context.Context, mac string) (api.Machine, error) {
	var out api.Machine
	return out, c.do(ctx, http.MethodGet, "/machines/"+esc(mac), nil, nil, &out)
}

// BootScript previews the iPXE script the machine would get now (no boot
// nonce is issued or revoked).
func (c *Client) BootScript(ctx context.Context, mac string) (api.BootScript, error) {
	var out api.BootScript
	return out, c.do(ctx, http.MethodGet, "/machines/"+esc(mac)+"/boot-script", nil, nil, &out)
}

// ExportTinkerbell returns Tinkerbell Hardware YAML: of one approved
// machine, or of every approved machine when mac is "". namespace ("" for
// none) goes into metadata.namespace.
func (c *Client) ExportTinkerbell(ctx context.Context, mac, namespace string) ([]byte, error) {
	q := url.Values{}
	set(q, "namespace", namespace)
	path := "/export/tinkerbell"
	if mac != "" {
		path = "/machines/" + esc(mac) + "/export/tinkerbell"
	}
	return c.raw(ctx, path, q, api.YAMLContentType)
}

// WhoAmI returns the name and role of the client's token.
func (c *Client) WhoAmI(ctx context.Context) (api.WhoAmI, error) {
	var out api.WhoAmI
	return out, c.do(ctx, http.MethodGet, "/whoami", nil, nil, &out)
}

// About returns the appliance's version and database schema.
func (c *Client) About(ctx context.Context) (api.About, error) {
	var out api.About
	err := c.do(ctx, http.MethodGet, "/about", nil, nil, &out)
	return out, err
}

// Approve approves an inventoried machine.
func (c *Client) Approve(ctx context.Context, mac string, req api.ApproveRequest) (api.Machine, error) {
	var out api.Machine
	return out, c.do(ctx, http.MethodPost, "/machines/"+esc(mac)+"/approve", nil, req, &out)
}

// SetBoot replaces a machine's boot settings (menu and UEFI binary).
func (c *Client) SetBoot(ctx context.Context, mac string, b api.BootSettings) (api.Machine, error) {
	var out api.Machine
	return out, c.do(ctx, http.MethodPut, "/machines/"+esc(mac)+"/boot", nil, b, &out)
}

// VerifyToken checks a console token (a wrong one counts as a failure).
func (c *Client) VerifyToken(ctx context.Context, mac, token string) (api.TokenCheck, error) {
	var out api.TokenCheck
	return out, c.do(ctx, http.MethodPost, "/machines/"+esc(mac)+"/verify-token", nil, map[string]string{"token": token}, &out)
}

// Reject rejects an inventoried machine.
func (c *Client) Reject(ctx context.Context, mac, reason string) (api.Machine, error) {
	var out api.Machine
	return out, c.do(ctx, http.MethodPost, "/machines/"+esc(mac)+"/reject", nil, map[string]string{"reason": reason}, &out)
}

// Rediscover sends a machine back to discovery.
func (c *Client) Rediscover(ctx context.Context, mac string) (api.Machine, error) {
	var out api.Machine
	return out, c.do(ctx, http.MethodPost, "/machines/"+esc(mac)+"/rediscover", nil, nil, &out)
}

// Release ends the machine's sessions and sends it back to discovery,
// where every boot wipes its disks (full: every byte) before it can be
// approved again.
func (c *Client) Release(ctx context.Context, mac string, full bool) (api.Machine, error) {
	return c.ReleaseWith(ctx, mac, api.ReleaseRequest{Full: full})
}

// ReleaseWith releases a machine with the wipe that r asks for (its
// drives' own secure erase, say).
func (c *Client) ReleaseWith(ctx context.Context, mac string, r api.ReleaseRequest) (api.Machine, error) {
	var out api.Machine
	return out, c.do(ctx, http.MethodPost, "/machines/"+esc(mac)+"/release", nil, r, &out)
}

// Redeploy installs a ready machine again with its approval, with profile
// ("" for its current one). A netboot profile is ready at once; an image
// profile waits for a discovery boot to be bound (Bind).
func (c *Client) Redeploy(ctx context.Context, mac, profile string) (api.Machine, error) {
	var out api.Machine
	return out, c.do(ctx, http.MethodPost, "/machines/"+esc(mac)+"/redeploy", nil, api.RedeployRequest{Profile: profile}, &out)
}

// Bind hands an approved machine's install to the boot whose console
// shows token (a wrong one counts as at approval).
func (c *Client) Bind(ctx context.Context, mac, token string) (api.Machine, error) {
	var out api.Machine
	return out, c.do(ctx, http.MethodPost, "/machines/"+esc(mac)+"/bind", nil, map[string]string{"token": token}, &out)
}

// EndRegistration ends one registration (boot session) of a machine.
func (c *Client) EndRegistration(ctx context.Context, mac, id string) (api.Machine, error) {
	var out api.Machine
	return out, c.do(ctx, http.MethodDelete, "/machines/"+esc(mac)+"/registrations/"+esc(id), nil, nil, &out)
}

// Retry moves a failed machine back to provisioning.
func (c *Client) Retry(ctx context.Context, mac string) (api.Machine, error) {
	var out api.Machine
	return out, c.do(ctx, http.MethodPost, "/machines/"+esc(mac)+"/retry", nil, nil, &out)
}

// DeleteMachine deletes a machine record.
func (c *Client) DeleteMachine(ctx context.Context, mac string) error {
	return c.do(ctx, http.MethodDelete, "/machines/"+esc(mac), nil, nil, nil)
}

// ListClusters lists clusters.
func (c *Client) ListClusters(ctx context.Context) ([]api.Cluster, error) {
	var out []api.Cluster
	return out, c.do(ctx, http.MethodGet, "/clusters", nil, nil, &out)
}

// GetCluster returns one cluster.
func (c *Client) GetCluster(ctx context.Context, name string) (api.Cluster, error) {
	var out api.Cluster
	return out, c.do(ctx, http.MethodGet, "/clusters/"+esc(name), nil, nil, &out)
}

// CreateCluster creates a cluster.
func (c *Client) CreateCluster(ctx context.Context, in api.ClusterCreate) (api.Cluster, error) {
	var out api.Cluster
	return out, c.do(ctx, http.MethodPost, "/clusters", nil, in, &out)
}

// UpdateCluster replaces a cluster's settings.
func (c *Client) UpdateCluster(ctx context.Context, name string, in api.ClusterFields) (api.Cluster, error) {
	var out api.Cluster
	return out, c.do(ctx, http.MethodPut, "/clusters/"+esc(name), nil, in, &out)
}

// DeleteCluster deletes an unused cluster.
func (c *Client) DeleteCluster(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/clusters/"+esc(name), nil, nil, nil)
}

// ListProfiles lists profiles.
func (c *Client) ListProfiles(ctx context.Context) ([]api.Profile, error) {
	var out []api.Profile
	return out, c.do(ctx, http.MethodGet, "/profiles", nil, nil, &out)
}

// GetProfile returns one profile.
func (c *Client) GetProfile(ctx context.Context, name string) (api.Profile, error) {
	var out api.Profile
	return out, c.do(ctx, http.MethodGet, "/profiles/"+esc(name), nil, nil, &out)
}

// CreateProfile creates a profile.
func (c *Client) CreateProfile(ctx context.Context, in api.ProfileCreate) (api.Profile, error) {
	var out api.Profile
	return out, c.do(ctx, http.MethodPost, "/profiles", nil, in, &out)
}

// UpdateProfile replaces a profile's settings.
func (c *Client) UpdateProfile(ctx context.Context, name string, in api.ProfileFields) (api.Profile, error) {
	var out api.Profile
	return out, c.do(ctx, http.MethodPut, "/profiles/"+esc(name), nil, in, &out)
}

// DeleteProfile deletes an unused profile.
func (c *Client) DeleteProfile(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/profiles/"+esc(name), nil, nil, nil)
}

// ListSegments lists the configured segments.
func (c *Client) ListSegments(ctx context.Context) ([]api.Segment, error) {
	var out []api.Segment
	return out, c.do(ctx, http.MethodGet, "/segments", nil, nil, &out)
}

// ListLeases lists a segment's leases.
func (c *Client) ListLeases(ctx context.Context, segment string) ([]api.Lease, error) {
	var out []api.Lease
	return out, c.do(ctx, http.MethodGet, "/segments/"+esc(segment)+"/leases", nil, nil, &out)
}

// AuditOptions filter the audit log; zero fields are omitted.
type AuditOptions struct {
	MAC, Actor, Action string
	Since, Until       time.Time
	Cursor             string
	Limit              int
}

// ListAudit returns one page of audit entries, newest first.
func (c *Client) ListAudit(ctx context.Context, o AuditOptions) (api.AuditList, error) {
	q := url.Values{}
	set(q, "mac", o.MAC)
	set(q, "actor", o.Actor)
	set(q, "action", o.Action)
	set(q, "cursor", o.Cursor)
	if !o.Since.IsZero() {
		q.Set("since", o.Since.Format(time.RFC3339Nano))
	}
	if !o.Until.IsZero() {
		q.Set("until", o.Until.Format(time.RFC3339Nano))
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	var out api.AuditList
	return out, c.do(ctx, http.MethodGet, "/audit", q, nil, &out)
}

// ListTokens lists admin API tokens (admin only).
func (c *Client) ListTokens(ctx context.Context) ([]api.APIToken, error) {
	var out []api.APIToken
	return out, c.do(ctx, http.MethodGet, "/tokens", nil, nil, &out)
}

// CreateToken creates a token; the answer carries the secret, once.
func (c *Client) CreateToken(ctx context.Context, name, role string) (api.NewToken, error) {
	var out api.NewToken
	return out, c.do(ctx, http.MethodPost, "/tokens", nil, api.TokenCreate{Name: name, Role: role}, &out)
}

// RevokeToken deletes a token by id.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/tokens/"+esc(id), nil, nil, nil)
}
