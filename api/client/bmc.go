package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/foundry-appliance/foundry/api"
)

// SetBMC enters a machine's BMC by hand (the password is stored
// encrypted and never shown again).
func (c *Client) SetBMC(ctx context.Context, mac string, req api.BMCRequest) (api.Machine, error) {
	var out api.Machine
	return out, c.do(ctx, http.MethodPut, "/machines/"+esc(mac)+"/bmc", nil, req, &out)
}

// DeleteBMC forgets a machine's BMC and its credential.
func (c *Client) DeleteBMC(ctx context.Context, mac string) (api.Machine, error) {
	var out api.Machine
	return out, c.do(ctx, http.MethodDelete, "/machines/"+esc(mac)+"/bmc", nil, nil, &out)
}

// RotateBMC gives the appliance's BMC user of a machine a new password.
func (c *Client) RotateBMC(ctx context.Context, mac string) (api.Machine, error) {
	var out api.Machine
	return out, c.do(ctx, http.MethodPost, "/machines/"+esc(mac)+"/bmc/rotate", nil, nil, &out)
}

// Power reads a machine's power state: the last reading, or with refresh
// a new one from the BMC.
func (c *Client) Power(ctx context.Context, mac string, refresh bool) (api.PowerStatus, error) {
	var out api.PowerStatus
	var q url.Values
	if refresh {
		q = url.Values{"refresh": {"true"}}
	}
	return out, c.do(ctx, http.MethodGet, "/machines/"+esc(mac)+"/power", q, nil, &out)
}

// SetPower powers a machine on or off or cycles it ("on", "off", "cycle").
func (c *Client) SetPower(ctx context.Context, mac, action string) (api.PowerStatus, error) {
	var out api.PowerStatus
	return out, c.do(ctx, http.MethodPost, "/machines/"+esc(mac)+"/power", nil, api.PowerRequest{Action: action}, &out)
}

// PXENext makes a machine's next boot a network boot.
func (c *Client) PXENext(ctx context.Context, mac string) (api.PowerStatus, error) {
	var out api.PowerStatus
	return out, c.do(ctx, http.MethodPost, "/machines/"+esc(mac)+"/pxe-next", nil, nil, &out)
}
