package agentsig

import (
	"crypto/sha256"
	"encoding/base64"
	"testing"
)

func TestCheckDigest(t *testing.T) {
	body := []byte(`{"percent":42}`)
	sum := sha256.Sum256(body)
	good := "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
	for _, tc := range []struct {
		name   string
		values []string
		ok     bool
	}{
		{"match", []string{good}, true},
		{"match among others", []string{"sha-512=:AAAA:, " + good}, true},
		{"none", nil, false},
		{"other body", []string{"sha-256=:" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + ":"}, false},
		{"only sha-512", []string{"sha-512=:AAAA:"}, false},
		{"not bytes", []string{`sha-256="abc"`}, false},
		{"inner list", []string{`sha-256=(1 2)`}, false},
		{"garbage", []string{"sha-256=:%%%:"}, false},
	} {
		if err := checkDigest(tc.values, body); (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// FuzzCheckDigest: the Content-Digest header comes from the network; only
// the body's own SHA-256 passes.
func FuzzCheckDigest(f *testing.F) {
	f.Add("sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:", []byte(""))
	f.Add("sha-512=:AAAA:, sha-256=:AAAA:", []byte("x"))
	f.Add(`sha-256=?1;a="b"`, []byte("{}"))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		if checkDigest([]string{header}, body) == nil {
			sum := sha256.Sum256(body)
			want := base64.StdEncoding.EncodeToString(sum[:])
			if len(header) < len(want) {
				t.Fatalf("accepted %q for a body whose digest is %s", header, want)
			}
		}
	})
}
