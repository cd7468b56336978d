package client_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/foundry-appliance/foundry/api"
	"github.com/foundry-appliance/foundry/api/client"
)

// Release, Redeploy and Bind send what the API documents (path, JSON
// body, bearer token) and hand back its machine or its problem.
func TestReleaseRedeployBindRequests(t *testing.T) {
	type seen struct{ method, path, auth, ctype, body string }
	var got seen
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = seen{r.Method, r.URL.EscapedPath(), r.Header.Get("Authorization"), r.Header.Get("Content-Type"), string(b)}
		if string(b) == `{"token":"FOUNDRY-AAAA-AAAA-AAAA"}` {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnprocessableEntity)
			io.WriteString(w, `{"status":422,"detail":"bind refused: the token does not match"}`)
			return
		}
		json.NewEncoder(w).Encode(api.Machine{MAC: "52:54:00:12:34:56", State: "discovered"})
	}))
	defer ts.Close()
	c := &client.Client{BaseURL: ts.URL, Token: "fdy_x"}
	ctx := context.Background()
	const mac = "52:54:00:12:34:56"
	for _, tc := range []struct {
		name     string
		call     func() (api.Machine, error)
		path     string
		body     string
		wantCode int
	}{
		{"release", func() (api.Machine, error) { return c.Release(ctx, mac, false) }, "/release", `{}`, 0},
		{"release full", func() (api.Machine, error) { return c.Release(ctx, mac, true) }, "/release", `{"full":true}`, 0},
		{"redeploy current profile", func() (api.Machine, error) { return c.Redeploy(ctx, mac, "") }, "/redeploy", `{}`, 0},
		{"redeploy another profile", func() (api.Machine, error) { return c.Redeploy(ctx, mac, "debian-12") }, "/redeploy", `{"profile":"debian-12"}`, 0},
		{"bind", func() (api.Machine, error) { return c.Bind(ctx, mac, "FOUNDRY-ABCD-EFGH-JKLM") }, "/bind", `{"token":"FOUNDRY-ABCD-EFGH-JKLM"}`, 0},
		{"bind refused", func() (api.Machine, error) { return c.Bind(ctx, mac, "FOUNDRY-AAAA-AAAA-AAAA") }, "/bind", `{"token":"FOUNDRY-AAAA-AAAA-AAAA"}`, 422},
	} {
		m, err := tc.call()
		want := seen{http.MethodPost, api.Prefix + "/machines/" + mac + tc.path, "Bearer fdy_x", "application/json", tc.body}
		if got != want {
			t.Errorf("%s: sent %+v, want %+v", tc.name, got, want)
		}
		if code := client.StatusOf(err); code != tc.wantCode {
			t.Errorf("%s: status %d (%v), want %d", tc.name, code, err, tc.wantCode)
		}
		if tc.wantCode == 0 && m.State != "discovered" {
			t.Errorf("%s: answer %+v", tc.name, m)
		}
	}
}
