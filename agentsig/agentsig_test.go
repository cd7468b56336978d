package agentsig_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/yaronf/httpsign"

	"github.com/foundry-appliance/foundry/agentsig"
)

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// signed is a request as the agent sends it, turned into what a server
// receives (no scheme or host in the URL, Host set).
func signed(t *testing.T, key ed25519.PrivateKey, method, target, body string, seq uint64) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://10.77.0.1:8080"+target, rd)
	if err != nil {
		t.Fatal(err)
	}
	if err := agentsig.Sign(req, key, seq); err != nil {
		t.Fatal(err)
	}
	var b []byte
	if req.Body != nil {
		b, _ = io.ReadAll(req.Body)
	}
	in := httptest.NewRequest(method, target, bytes.NewReader(b))
	in.Host = "10.77.0.1:8080"
	in.Header = req.Header.Clone()
	if len(b) == 0 {
		in.Body = http.NoBody
	}
	return in
}

func TestSignVerify(t *testing.T) {
	key, other := newKey(t), newKey(t)
	for _, tc := range []struct {
		name   string
		req    func() *http.Request
		key    ed25519.PublicKey
		wantOK bool
	}{
		{"post with body", func() *http.Request {
			return signed(t, key, http.MethodPost, "/api/v1/agent/progress", `{"percent":42}`, 7)
		}, pub(key), true},
		{"get with query", func() *http.Request {
			return signed(t, key, http.MethodGet, "/api/v1/agent/decision?wait=60", "", 8)
		}, pub(key), true},
		{"other key", func() *http.Request {
			return signed(t, key, http.MethodGet, "/api/v1/agent/decision", "", 1)
		}, pub(other), false},
		{"body altered", func() *http.Request {
			r := signed(t, key, http.MethodPost, "/api/v1/agent/result", `{"success":false}`, 2)
			r.Body = io.NopCloser(strings.NewReader(`{"success":true}`))
			return r
		}, pub(key), false},
		{"body altered with its digest", func() *http.Request {
			r := signed(t, key, http.MethodPost, "/api/v1/agent/result", `{"success":false}`, 2)
			body := `{"success":true}`
			rc := io.NopCloser(strings.NewReader(body))
			d, _ := httpsign.GenerateContentDigestHeader(&rc, []string{httpsign.DigestSha256})
			r.Header.Set("Content-Digest", d)
			r.Body = io.NopCloser(strings.NewReader(body))
			return r
		}, pub(key), false},
		{"body removed", func() *http.Request {
			r := signed(t, key, http.MethodPost, "/api/v1/agent/result", `{"success":false}`, 2)
			r.Body = http.NoBody
			return r
		}, pub(key), false},
		{"path altered", func() *http.Request {
			r := signed(t, key, http.MethodPost, "/api/v1/agent/progress", `{"percent":1}`, 3)
			r.URL.Path = "/api/v1/agent/result"
			return r
		}, pub(key), false},
		{"query altered", func() *http.Request {
			r := signed(t, key, http.MethodGet, "/api/v1/agent/decision?wait=60", "", 3)
			r.URL.RawQuery = "wait=0"
			return r
		}, pub(key), false},
		{"method altered", func() *http.Request {
			r := signed(t, key, http.MethodGet, "/api/v1/agent/decision", "", 3)
			r.Method = http.MethodDelete
			return r
		}, pub(key), false},
		{"sequence number altered", func() *http.Request {
			r := signed(t, key, http.MethodGet, "/api/v1/agent/decision", "", 3)
			r.Header.Set("Signature-Input", strings.Replace(r.Header.Get("Signature-Input"), `nonce="3"`, `nonce="4"`, 1))
			return r
		}, pub(key), false},
		{"unsigned", func() *http.Request {
			return httptest.NewRequest(http.MethodGet, "/api/v1/agent/decision", nil)
		}, pub(key), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req()
			_, err := agentsig.Verify(req, tc.key, readBody(t, req))
			if (err == nil) != tc.wantOK {
				t.Fatalf("verify: %v, want ok=%v", err, tc.wantOK)
			}
		})
	}
}

// A signature that covers less than Sign covers, or carries no tag, is
// refused although it is a valid RFC 9421 signature by the right key.
func TestVerifyRefusesWeakerSignatures(t *testing.T) {
	key := newKey(t)
	for _, tc := range []struct {
		name   string
		fields *httpsign.Fields
		tag    string
	}{
		{"no path", httpsign.NewFields().AddHeaders("@method", "@authority", "@query"), agentsig.Tag},
		{"no digest", httpsign.NewFields().AddHeaders("@method", "@authority", "@path", "@query"), agentsig.Tag},
		{"no tag", httpsign.NewFields().AddHeaders("@method", "@authority", "@path", "@query", "content-digest"), ""},
		{"other tag", httpsign.NewFields().AddHeaders("@method", "@authority", "@path", "@query", "content-digest"), "other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"percent":5}`
			req := httptest.NewRequest(http.MethodPost, "/api/v1/agent/progress", strings.NewReader(body))
			req.Host = "10.77.0.1:8080"
			rc := io.NopCloser(strings.NewReader(body))
			d, _ := httpsign.GenerateContentDigestHeader(&rc, []string{httpsign.DigestSha256})
			req.Header.Set("Content-Digest", d)
			cfg := httpsign.NewSignConfig().SetKeyID(agentsig.KeyID(pub(key))).SetNonce("9")
			if tc.tag != "" {
				cfg.SetTag(tc.tag)
			}
			s, err := httpsign.NewEd25519Signer(key, cfg, *tc.fields)
			if err != nil {
				t.Fatal(err)
			}
			in, sig, err := httpsign.SignRequest(agentsig.Label, *s, req)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Signature-Input", in)
			req.Header.Set("Signature", sig)
			if _, err := agentsig.Verify(req, pub(key), readBody(t, req)); err == nil {
				t.Fatal("verified")
			}
		})
	}
}

func TestParse(t *testing.T) {
	key := newKey(t)
	r := signed(t, key, http.MethodGet, "/api/v1/agent/decision", "", 42)
	p, err := agentsig.Parse(r)
	if err != nil || p.Seq != 42 || p.KeyID != agentsig.KeyID(pub(key)) {
		t.Fatalf("%+v %v", p, err)
	}
	if _, err := agentsig.Parse(httptest.NewRequest(http.MethodGet, "/", nil)); !errors.Is(err, agentsig.ErrUnsigned) {
		t.Fatalf("unsigned: %v", err)
	}
	for _, bad := range []string{
		`foundry=();keyid="x";nonce="1"`,
		`foundry=();keyid="` + agentsig.KeyID(pub(key)) + `";nonce="0"`,
		`foundry=();keyid="` + agentsig.KeyID(pub(key)) + `";nonce="-1"`,
		`foundry=();keyid="` + agentsig.KeyID(pub(key)) + `"`,
		`foundry="text"`,
		`foundry=(`,
		strings.Repeat("a", 5000),
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Signature-Input", bad)
		if _, err := agentsig.Parse(r); err == nil {
			t.Errorf("parsed %.40q", bad)
		}
	}
}

func readBody(t *testing.T, r *http.Request) []byte {
	t.Helper()
	if r.Body == nil {
		return nil
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzParse: the Signature-Input header comes from the network.
func FuzzParse(f *testing.F) {
	f.Add(`foundry=("@method" "@path");created=1;keyid="abc";nonce="1";tag="foundry-agent"`)
	f.Add(`foundry=();nonce="18446744073709551615"`)
	f.Add(`a=1, foundry=?0`)
	f.Fuzz(func(t *testing.T, v string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Signature-Input", v)
		p, err := agentsig.Parse(r)
		if err == nil && (len(p.KeyID) != agentsig.KeyIDLen || p.Seq == 0) {
			t.Fatalf("accepted %+v", p)
		}
	})
}
