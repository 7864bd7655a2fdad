package apiserver

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

func mustKey(t testing.TB, kind string) crypto.Signer {
	t.Helper()
	var key crypto.Signer
	var err error
	switch kind {
	case "ES256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "RS256":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func verificationKeys(t testing.TB, keys ...crypto.Signer) []jwtKey {
	t.Helper()
	var out []jwtKey
	for _, k := range keys {
		jk, err := newJWTKey(k.Public())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, jk)
	}
	return out
}

func TestJWTSignVerify(t *testing.T) {
	for _, alg := range []string{"ES256", "ES384", "RS256"} {
		t.Run(alg, func(t *testing.T) {
			key, other := mustKey(t, alg), mustKey(t, alg)
			signer, err := newJWTSigner(key)
			if err != nil {
				t.Fatal(err)
			}
			token, err := signer.sign(map[string]string{"sub": "me"})
			if err != nil {
				t.Fatal(err)
			}
			// The header is upstream's: alg and the key's ID, nothing else.
			hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
			kid, _ := keyID(key.Public())
			if want := `{"alg":"` + alg + `","kid":"` + kid + `"}`; string(hdr) != want {
				t.Errorf("header = %s, want %s", hdr, want)
			}
			payload, err := verifyJWT(token, verificationKeys(t, other, key))
			if err != nil || string(payload) != `{"sub":"me"}` {
				t.Fatalf("verify with the right key among others = %q, %v", payload, err)
			}
			if _, err := verifyJWT(token, verificationKeys(t, other)); err == nil || !strings.Contains(err.Error(), "invalid signature") {
				t.Errorf("verify with the wrong key = %v, want invalid signature", err)
			}
			parts := strings.Split(token, ".")
			forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"admin"}`)) + "." + parts[2]
			if _, err := verifyJWT(forged, verificationKeys(t, key)); err == nil {
				t.Error("a changed payload verified")
			}
		})
	}
}

func TestJWTRejectsOtherAlgorithms(t *testing.T) {
	key := mustKey(t, "ES256")
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	payload := enc(map[string]string{"sub": "me"})
	for name, token := range map[string]string{
		"alg none":             enc(map[string]string{"alg": "none"}) + "." + payload + ".",
		"HS256 with anything":  enc(map[string]string{"alg": "HS256"}) + "." + payload + "." + enc("sig"),
		"RS256 header, EC key": enc(map[string]string{"alg": "RS256"}) + "." + payload + "." + enc("sig"),
		"two parts":            enc(map[string]string{"alg": "ES256"}) + "." + payload,
		"json, not a JWT":      `{"alg":"ES256"}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := verifyJWT(token, verificationKeys(t, key)); err == nil {
				t.Error("verified")
			}
		})
	}
}

func BenchmarkJWTVerifyES256(b *testing.B) {
	key := mustKey(b, "ES256")
	signer, err := newJWTSigner(key)
	if err != nil {
		b.Fatal(err)
	}
	token, err := signer.sign(map[string]string{"sub": "me"})
	if err != nil {
		b.Fatal(err)
	}
	keys := verificationKeys(b, key)
	for b.Loop() {
		if _, err := verifyJWT(token, keys); err != nil {
			b.Fatal(err)
		}
	}
}
