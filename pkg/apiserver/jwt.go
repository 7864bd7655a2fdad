package apiserver

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// This file is a minimal JWS (RFC 7515) compact serialization for the
// algorithms ServiceAccount tokens use: ES256/ES384/ES512 for ECDSA keys
// and RS256 for RSA keys, as upstream's token generator. Nothing else is
// accepted, in particular never "none".

// jwtKey is one verification key.
type jwtKey struct {
	kid string
	alg string
	pub crypto.PublicKey
}

// jwtSigner signs JWTs with one private key. Immutable; safe for
// concurrent use.
type jwtSigner struct {
	key    crypto.Signer
	header string // base64url of the JSON header, precomputed
	alg    string
}

// jwsAlgorithm is the JWS algorithm upstream uses for pub.
func jwsAlgorithm(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "ES256", nil
		case elliptic.P384():
			return "ES384", nil
		case elliptic.P521():
			return "ES512", nil
		}
		return "", fmt.Errorf("unsupported ECDSA curve %s; use P-256, P-384 or P-521", k.Curve.Params().Name)
	case *rsa.PublicKey:
		return "RS256", nil
	}
	return "", fmt.Errorf("unsupported service account key type %T; use an ECDSA or RSA key", pub)
}

// keyID derives upstream's key ID: the unpadded base64url SHA-256 of the
// public key's PKIX DER encoding. It is not reversible into the key.
func keyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encode public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// newJWTKey describes pub as a verification key.
func newJWTKey(pub crypto.PublicKey) (jwtKey, error) {
	alg, err := jwsAlgorithm(pub)
	if err != nil {
		return jwtKey{}, err
	}
	kid, err := keyID(pub)
	if err != nil {
		return jwtKey{}, err
	}
	return jwtKey{kid: kid, alg: alg, pub: pub}, nil
}

// newJWTSigner returns a signer for key, whose tokens carry the header
// {"alg":...,"kid":...} upstream's tokens carry.
func newJWTSigner(key crypto.Signer) (*jwtSigner, error) {
	k, err := newJWTKey(key.Public())
	if err != nil {
		return nil, err
	}
	h, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}{k.alg, k.kid})
	if err != nil {
		return nil, fmt.Errorf("encode JWS header: %w", err)
	}
	return &jwtSigner{key: key, header: base64.RawURLEncoding.EncodeToString(h), alg: k.alg}, nil
}

// sign returns the compact JWS of claims (marshalled as JSON).
func (s *jwtSigner) sign(claims any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encode JWT claims: %w", err)
	}
	input := s.header + "." + base64.RawURLEncoding.EncodeToString(payload)
	h, digest := jwsDigest(s.alg, input)
	sig, err := s.key.Sign(rand.Reader, digest, h)
	if err != nil {
		return "", fmt.Errorf("sign JWT: %w", err)
	}
	if pub, ok := s.key.Public().(*ecdsa.PublicKey); ok {
		// crypto.Signer returns ASN.1 for ECDSA; JWS wants the fixed-size
		// big-endian r || s.
		if sig, err = ecdsaRaw(sig, pub.Curve); err != nil {
			return "", fmt.Errorf("sign JWT: %w", err)
		}
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// jwsDigest hashes a JWS signing input for alg.
func jwsDigest(alg, input string) (crypto.Hash, []byte) {
	switch alg {
	case "ES384":
		sum := sha512.Sum384([]byte(input))
		return crypto.SHA384, sum[:]
	case "ES512":
		sum := sha512.Sum512([]byte(input))
		return crypto.SHA512, sum[:]
	}
	sum := sha256.Sum256([]byte(input))
	return crypto.SHA256, sum[:]
}

func curveBytes(c elliptic.Curve) int { return (c.Params().BitSize + 7) / 8 }

// ecdsaRaw converts an ASN.1 ECDSA signature into JWS's r || s form.
func ecdsaRaw(der []byte, c elliptic.Curve) ([]byte, error) {
	var v struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &v); err != nil {
		return nil, fmt.Errorf("decode ECDSA signature: %w", err)
	}
	n := curveBytes(c)
	out := make([]byte, 2*n)
	v.R.FillBytes(out[:n])
	v.S.FillBytes(out[n:])
	return out, nil
}

// errNotJWT marks input that is not a compact JWS at all (so another
// authenticator may own it).
var errNotJWT = errors.New("not a JWT")

// jwtParts splits a compact JWS and decodes its header and payload without
// verifying anything.
func jwtParts(token string) (header struct{ Alg, Kid string }, payload []byte, err error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || strings.HasPrefix(strings.TrimSpace(token), "{") {
		return header, nil, errNotJWT
	}
	h, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return header, nil, errNotJWT
	}
	var hdr struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(h, &hdr); err != nil {
		return header, nil, errNotJWT
	}
	payload, err = base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return header, nil, errNotJWT
	}
	header.Alg, header.Kid = hdr.Alg, hdr.Kid
	return header, payload, nil
}

// verifyJWT checks the signature of token with the keys whose algorithm
// matches its header (preferring the header's kid) and returns the
// payload. Only the signature is checked; claims are the caller's job.
func verifyJWT(token string, keys []jwtKey) ([]byte, error) {
	hdr, payload, err := jwtParts(token)
	if err != nil {
		return nil, err
	}
	i := strings.LastIndexByte(token, '.')
	input := token[:i]
	sig, err := base64.RawURLEncoding.DecodeString(token[i+1:])
	if err != nil {
		return nil, errors.New("invalid signature encoding")
	}
	var candidates []jwtKey
	for _, k := range keys {
		if k.alg == hdr.Alg && (hdr.Kid == "" || k.kid == hdr.Kid) {
			candidates = append(candidates, k)
		}
	}
	if len(candidates) == 0 {
		// A kid that matches nothing may still be one of ours under a
		// different derivation; try every key of the algorithm.
		for _, k := range keys {
			if k.alg == hdr.Alg {
				candidates = append(candidates, k)
			}
		}
	}
	if len(candidates) == 0 {
		return nil, fmt.Errorf("invalid signature, no keys found for algorithm %q", hdr.Alg)
	}
	h, digest := jwsDigest(hdr.Alg, input)
	for _, k := range candidates {
		switch pub := k.pub.(type) {
		case *ecdsa.PublicKey:
			n := curveBytes(pub.Curve)
			if len(sig) != 2*n {
				continue
			}
			r, s := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
			if ecdsa.Verify(pub, digest, r, s) {
				return payload, nil
			}
		case *rsa.PublicKey:
			if rsa.VerifyPKCS1v15(pub, h, digest, sig) == nil {
				return payload, nil
			}
		}
	}
	return nil, errors.New("invalid signature")
}
