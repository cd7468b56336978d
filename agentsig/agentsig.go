// Package agentsig signs and verifies the discovery agent's calls with
// HTTP Message Signatures (RFC 9421, through github.com/yaronf/httpsign).
//
// Each discovery boot makes an Ed25519 key pair. The agent registers the
// public key with its one-time boot nonce, and signs that call and every
// later one with the private key: the signature covers the method, the
// authority, the path, the query and the body's Content-Digest (RFC 9530),
// and carries the key's ID (KeyID, a thumbprint of the public key) and a
// sequence number in the nonce parameter that grows with every call of the
// boot. The appliance keeps the highest sequence number it has accepted per
// session and refuses any other that is not above it, so a request seen on
// the wire can be neither altered nor sent again. The "created" parameter
// is signed but not checked: a discovery OS may run with a wrong clock.
//
// Both the agent (a small static binary) and the appliance import this
// package, so the rule is written once.
package agentsig

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/dunglas/httpsfv"
	"github.com/yaronf/httpsign"
)

// Label is the signature's name in the Signature and Signature-Input
// headers.
const Label = "foundry"

// Tag is the signature's application tag: a signature made for another
// protocol with the same key is refused.
const Tag = "foundry-agent"

// KeyIDLen is the length of a KeyID: unpadded base64url of 32 bytes.
const KeyIDLen = 43

// ErrUnsigned is returned for a request that carries no Foundry signature.
var ErrUnsigned = errors.New("the request is not signed")

// KeyID is the session identifier of a public key: the unpadded base64url
// SHA-256 of its 32 bytes.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// fields lists the components a signature must cover; withBody adds the
// body's digest.
func fields(withBody bool) httpsign.Fields {
	f := httpsign.NewFields().AddHeaders("@method", "@authority", "@path", "@query")
	if withBody {
		f.AddHeader("content-digest")
	}
	return *f
}

// Sign adds Content-Digest (when the request has a body), Signature-Input
// and Signature to req, signed with key as call number seq of the boot.
// The body is read and replaced.
func Sign(req *http.Request, key ed25519.PrivateKey, seq uint64) error {
	withBody := req.Body != nil && req.Body != http.NoBody
	if withBody {
		digest, err := httpsign.GenerateContentDigestHeader(&req.Body, []string{httpsign.DigestSha256})
		if err != nil {
			return fmt.Errorf("sign request: digest body: %w", err)
		}
		req.Header.Set("Content-Digest", digest)
	}
	pub, _ := key.Public().(ed25519.PublicKey)
	cfg := httpsign.NewSignConfig().SetKeyID(KeyID(pub)).SetNonce(strconv.FormatUint(seq, 10)).SetTag(Tag)
	signer, err := httpsign.NewEd25519Signer(key, cfg, fields(withBody))
	if err != nil {
		return fmt.Errorf("sign request: %w", err)
	}
	input, sig, err := httpsign.SignRequest(Label, *signer, req)
	if err != nil {
		return fmt.Errorf("sign request: %w", err)
	}
	req.Header.Set("Signature-Input", input)
	req.Header.Set("Signature", sig)
	return nil
}

// Params are the signature parameters Verify needs before it can check a
// signature: whose key, and which call of the boot.
type Params struct {
	KeyID string
	Seq   uint64
}

// maxHeader bounds the signature headers this package parses.
const maxHeader = 4096

// Parse reads the Foundry signature's key ID and sequence number from
// req's Signature-Input header, without verifying anything: the caller
// looks the key up by KeyID, then calls Verify.
func Parse(req *http.Request) (Params, error) {
	values := req.Header.Values("Signature-Input")
	if len(values) == 0 {
		return Params{}, ErrUnsigned
	}
	n := 0
	for _, v := range values {
		n += len(v)
	}
	if n > maxHeader {
		return Params{}, fmt.Errorf("Signature-Input is longer than %d bytes", maxHeader)
	}
	dict, err := httpsfv.UnmarshalDictionary(values)
	if err != nil {
		return Params{}, fmt.Errorf("parse Signature-Input: %w", err)
	}
	member, ok := dict.Get(Label)
	if !ok {
		return Params{}, ErrUnsigned
	}
	list, ok := member.(httpsfv.InnerList)
	if !ok {
		return Params{}, fmt.Errorf("Signature-Input %s is not an inner list", Label)
	}
	keyID, _ := param[string](list.Params, "keyid")
	if len(keyID) != KeyIDLen {
		return Params{}, errors.New("the signature has no valid keyid")
	}
	nonce, _ := param[string](list.Params, "nonce")
	seq, err := strconv.ParseUint(nonce, 10, 64)
	if err != nil || seq == 0 {
		return Params{}, errors.New("the signature's nonce is not a call number")
	}
	return Params{KeyID: keyID, Seq: seq}, nil
}

func param[T any](p *httpsfv.Params, name string) (T, bool) {
	var zero T
	v, ok := p.Get(name)
	if !ok {
		return zero, false
	}
	t, ok := v.(T)
	return t, ok
}

// Verify checks req's Foundry signature with pub: it must cover every
// component Sign covers, carry the Tag and pub's KeyID, and body (req's
// body, which the caller has read, bounded) must match its Content-Digest.
// It returns the signature's parameters; checking the sequence number
// against the session's is the caller's.
func Verify(req *http.Request, pub ed25519.PublicKey, body []byte) (Params, error) {
	p, err := Parse(req)
	if err != nil {
		return Params{}, err
	}
	if p.KeyID != KeyID(pub) {
		return Params{}, errors.New("the signature's keyid is not this session's")
	}
	// A digest is checked whenever there is a body or a digest: a signed
	// body that was stripped must not pass as a request without one.
	withBody := len(body) > 0 || len(req.Header.Values("Content-Digest")) > 0
	if withBody {
		if err := checkDigest(req.Header.Values("Content-Digest"), body); err != nil {
			return Params{}, err
		}
	}
	cfg := httpsign.NewVerifyConfig().SetVerifyCreated(false).SetKeyID(p.KeyID).
		SetAllowedAlgs([]string{"ed25519"}).SetAllowedTags([]string{Tag})
	verifier, err := httpsign.NewEd25519Verifier(pub, cfg, fields(withBody))
	if err != nil {
		return Params{}, fmt.Errorf("verify signature: %w", err)
	}
	if err := httpsign.VerifyRequest(Label, *verifier, req); err != nil {
		return Params{}, fmt.Errorf("verify signature: %w", err)
	}
	return p, nil
}

// checkDigest compares body with the sha-256 member of a Content-Digest
// header (RFC 9530). It hashes the bytes the caller already holds rather
// than reading the body again, as httpsign's validator would.
func checkDigest(values []string, body []byte) error {
	if len(values) == 0 {
		return errors.New("the body has no Content-Digest")
	}
	n := 0
	for _, v := range values {
		n += len(v)
	}
	if n > maxHeader {
		return fmt.Errorf("Content-Digest is longer than %d bytes", maxHeader)
	}
	dict, err := httpsfv.UnmarshalDictionary(values)
	if err != nil {
		return fmt.Errorf("parse Content-Digest: %w", err)
	}
	member, ok := dict.Get(httpsign.DigestSha256)
	if !ok {
		return errors.New("Content-Digest has no sha-256 digest")
	}
	item, ok := member.(httpsfv.Item)
	if !ok {
		return errors.New("Content-Digest sha-256 is not a byte sequence")
	}
	want, ok := item.Value.([]byte)
	if !ok {
		return errors.New("Content-Digest sha-256 is not a byte sequence")
	}
	got := sha256.Sum256(body)
	if !bytes.Equal(got[:], want) {
		return errors.New("the body does not match its Content-Digest")
	}
	return nil
}
