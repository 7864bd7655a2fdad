package apiserver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-project/skiff/pkg/storage"
)

// startAuthTestServer runs a Server over a fresh embedded etcd, configured by
// cfg (its Store is set here), until the test ends.
func startAuthTestServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	emb, err := storage.StartEmbedded(ctx, storage.EmbeddedConfig{DataDir: t.TempDir()})
	if err != nil {
		cancel()
		t.Fatalf("start etcd: %v", err)
	}
	cfg.Store = storage.New(emb.Client(), storage.Options{})
	t.Cleanup(func() {
		cancel()
		cfg.Store.Close()
		_ = emb.Close()
	})
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// mustCreate stores obj through the server's create path.
func mustCreate(t *testing.T, s *Server, gvr schema.GroupVersionResource, obj runtime.Object) runtime.Object {
	t.Helper()
	ep, ok := s.lookup(gvr)
	if !ok {
		t.Fatalf("no endpoint for %s", gvr)
	}
	out, err := s.create(context.Background(), ep, obj.(metav1.Object).GetNamespace(), obj, requestOptions{fieldManager: "test"})
	if err != nil {
		t.Fatalf("create %s: %v", gvr.Resource, err)
	}
	return out
}

// legacyToken signs the token a kubernetes.io/service-account-token Secret
// holds (upstream's tokens controller writes these).
func legacyToken(t *testing.T, ts *tokenService, sa *corev1.ServiceAccount, secretName string) string {
	t.Helper()
	token, err := ts.signer.sign(&tokenClaims{Issuer: legacyIssuer, LegacyNamespace: sa.Namespace, LegacySecretName: secretName,
		LegacySAName: sa.Name, LegacySAUID: string(sa.UID), Subject: serviceAccountUser(sa.Namespace, sa.Name)})
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func decodePayload(t *testing.T, token string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

type tokenFixture struct {
	s      *Server
	sa     *corev1.ServiceAccount
	pod    *corev1.Pod
	node   *corev1.Node
	secret *corev1.Secret
	now    time.Time
}

func newTokenFixture(t *testing.T) *tokenFixture {
	s := startAuthTestServer(t, Config{ServiceAccountSigningKey: mustKey(t, "ES256"), DisabledAdmissionPlugins: []string{AdmissionServiceAccount}})
	f := &tokenFixture{s: s, now: time.Unix(1_800_000_000, 0)}
	s.tokens.now = func() time.Time { return f.now }
	f.sa = mustCreate(t, s, coreServiceAccounts, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "app"}}).(*corev1.ServiceAccount)
	f.node = mustCreate(t, s, coreNodes, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}).(*corev1.Node)
	f.pod = mustCreate(t, s, corePods, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: corev1.PodSpec{ServiceAccountName: "app", NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "i"}}}}).(*corev1.Pod)
	f.secret = mustCreate(t, s, coreSecrets, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "s"}}).(*corev1.Secret)
	return f
}

// request asks for a token like kubectl create token / the kubelet.
func (f *tokenFixture) request(t *testing.T, sa string, exp int64, auds []string, bound *authenticationv1.BoundObjectReference) (*authenticationv1.TokenRequest, error) {
	t.Helper()
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: auds, BoundObjectRef: bound}}
	if exp != 0 {
		req.Spec.ExpirationSeconds = &exp
	}
	return f.s.tokens.tokenRequest(context.Background(), "default", sa, req)
}

func TestTokenRequestClaims(t *testing.T) {
	f := newTokenFixture(t)
	out, err := f.request(t, "app", 0, nil, &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "web", UID: f.pod.UID})
	if err != nil {
		t.Fatal(err)
	}
	if *out.Spec.ExpirationSeconds != 3600 || !cmp.Equal(out.Spec.Audiences, []string{DefaultServiceAccountIssuer}) ||
		!out.Status.ExpirationTimestamp.Time.Equal(f.now.Add(time.Hour)) || out.Name != "app" || out.Namespace != "default" {
		t.Errorf("TokenRequest = spec %+v, status expiry %v, %s/%s; want the defaults filled in", out.Spec, out.Status.ExpirationTimestamp, out.Namespace, out.Name)
	}
	claims := decodePayload(t, out.Status.Token)
	jti, _ := claims["jti"].(string)
	if jti == "" {
		t.Errorf("no jti in %v", claims)
	}
	delete(claims, "jti")
	now := float64(f.now.Unix())
	want := map[string]any{
		"aud": []any{DefaultServiceAccountIssuer},
		"exp": now + 3600, "iat": now, "nbf": now,
		"iss": DefaultServiceAccountIssuer,
		"sub": "system:serviceaccount:default:app",
		"kubernetes.io": map[string]any{
			"namespace":      "default",
			"serviceaccount": map[string]any{"name": "app", "uid": string(f.sa.UID)},
			"pod":            map[string]any{"name": "web", "uid": string(f.pod.UID)},
			"node":           map[string]any{"name": "n1", "uid": string(f.node.UID)},
		},
	}
	if diff := cmp.Diff(want, claims); diff != "" {
		t.Errorf("claims (-want +got):\n%s", diff)
	}

	// The projected volume's 3607 s token lasts a year with a warnafter.
	out, err = f.request(t, "app", 3607, nil, &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	claims = decodePayload(t, out.Status.Token)
	k := claims["kubernetes.io"].(map[string]any)
	if claims["exp"] != now+365*24*3600 || k["warnafter"] != now+3607 || !out.Status.ExpirationTimestamp.Time.Equal(f.now.Add(3607*time.Second)) {
		t.Errorf("extended token: exp %v warnafter %v status expiry %v", claims["exp"], k["warnafter"], out.Status.ExpirationTimestamp)
	}
	// ... but not for another audience.
	out, err = f.request(t, "app", 3607, []string{"vault"}, &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if claims = decodePayload(t, out.Status.Token); claims["exp"] != now+3607 {
		t.Errorf("vault token exp = %v, want %v", claims["exp"], now+3607)
	}
}

func TestTokenRequestErrors(t *testing.T) {
	f := newTokenFixture(t)
	pod := func(name string, uid string) *authenticationv1.BoundObjectReference {
		return &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: name, UID: typesUID(uid)}
	}
	tests := []struct {
		name    string
		sa      string
		exp     int64
		bound   *authenticationv1.BoundObjectReference
		code    int32
		message string
	}{
		{"missing service account", "nope", 0, nil, 404, `serviceaccounts "nope" not found`},
		{"too short", "app", 599, nil, 422, `TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 10 minutes`},
		{"too long", "app", 1<<32 + 1, nil, 422, "may not specify a duration larger than 2^32 seconds"},
		{"missing pod", "app", 0, pod("nope", ""), 404, `pods "nope" not found`},
		{"recreated pod", "app", 0, pod("web", "old-uid"), 409, "the UID in the bound object reference (old-uid) does not match the UID in record. The object might have been deleted and then recreated"},
		{"pod of another account", "default-sa", 0, pod("web", ""), 400, `cannot bind token for serviceaccount "default-sa" to pod running with different serviceaccount name.`},
		{"unsupported kind", "app", 0, &authenticationv1.BoundObjectReference{Kind: "ConfigMap", APIVersion: "v1", Name: "x"}, 400, "cannot bind token to object of type /v1, Kind=ConfigMap"},
	}
	mustCreate(t, f.s, coreServiceAccounts, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "default-sa"}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.request(t, tt.sa, tt.exp, nil, tt.bound)
			st, ok := err.(apierrors.APIStatus)
			if !ok || st.Status().Code != tt.code || !strings.Contains(st.Status().Message, tt.message) {
				t.Fatalf("error = %v, want %d %q", err, tt.code, tt.message)
			}
		})
	}
}

func TestAuthenticateToken(t *testing.T) {
	f := newTokenFixture(t)
	ctx := context.Background()
	ts := f.s.tokens
	issue := func(bound *authenticationv1.BoundObjectReference, auds ...string) string {
		out, err := f.request(t, "app", 0, auds, bound)
		if err != nil {
			t.Fatal(err)
		}
		return out.Status.Token
	}
	podBound := issue(&authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "web"})
	plain := issue(nil)
	secretBound := issue(&authenticationv1.BoundObjectReference{Kind: "Secret", APIVersion: "v1", Name: "s"})
	nodeBound := issue(&authenticationv1.BoundObjectReference{Kind: "Node", APIVersion: "v1", Name: "n1"})
	vault := issue(nil, "vault")

	u, auds, ok, err := ts.authenticateToken(ctx, podBound, nil)
	if err != nil || !ok {
		t.Fatalf("pod-bound token: %v, %v", ok, err)
	}
	wantUser := &UserInfo{Name: "system:serviceaccount:default:app", UID: string(f.sa.UID),
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"},
		Extra: map[string][]string{
			extraPodName: {"web"}, extraPodUID: {string(f.pod.UID)}, extraNodeName: {"n1"}, extraNodeUID: {string(f.node.UID)},
			extraCredentialID: u.Extra[extraCredentialID],
		}}
	if diff := cmp.Diff(wantUser, u); diff != "" || !cmp.Equal(auds, []string{DefaultServiceAccountIssuer}) || !strings.HasPrefix(u.Extra[extraCredentialID][0], "JTI=") {
		t.Errorf("user (-want +got):\n%s\naudiences %v", diff, auds)
	}

	for _, tok := range []string{plain, secretBound, nodeBound} {
		if _, _, ok, err := ts.authenticateToken(ctx, tok, nil); !ok || err != nil {
			t.Errorf("valid token rejected: %v", err)
		}
	}
	if _, _, ok, err := ts.authenticateToken(ctx, vault, []string{"vault"}); !ok || err != nil {
		t.Errorf("vault token for vault rejected: %v", err)
	}

	other := &tokenService{s: f.s, issuer: ts.issuer, issuers: ts.issuers, audiences: ts.audiences, now: ts.now}
	otherSigner, err := newJWTSigner(mustKey(t, "ES256"))
	if err != nil {
		t.Fatal(err)
	}
	other.signer = otherSigner
	forged, err := other.issue(f.sa, nil, nil, nil, 3600, 0, ts.audiences, f.now)
	if err != nil {
		t.Fatal(err)
	}
	foreign := &tokenService{s: f.s, signer: otherSigner, issuer: "https://elsewhere", audiences: ts.audiences}
	foreignToken, err := foreign.issue(f.sa, nil, nil, nil, 3600, 0, ts.audiences, f.now)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		token   string
		want    []string
		advance time.Duration
		wantOK  bool
		wantErr string
	}{
		{name: "wrong audience", token: vault, wantErr: `token audiences ["vault"] is invalid for the target audiences ["` + DefaultServiceAccountIssuer + `"]`},
		{name: "wrong key", token: forged, wantErr: "invalid signature"},
		{name: "other issuer is not ours", token: foreignToken},
		{name: "static token is not ours", token: "abcdef"},
		{name: "within leeway after expiry", token: plain, advance: time.Hour + 59*time.Second, wantOK: true},
		{name: "expired", token: plain, advance: time.Hour + 61*time.Second, wantErr: "service account token has expired"},
		{name: "not yet valid", token: plain, advance: -2 * time.Minute, wantErr: "service account token is not valid yet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			saved := f.now
			f.now = f.now.Add(tt.advance)
			defer func() { f.now = saved }()
			_, _, ok, err := ts.authenticateToken(ctx, tt.token, tt.want)
			if ok != tt.wantOK || (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("authenticate = %v, %v; want %v, %q", ok, err, tt.wantOK, tt.wantErr)
			}
		})
	}

	// Deleting the bound objects invalidates their tokens.
	deleteObj := func(gvr schema.GroupVersionResource, ns, name string) {
		ep, _ := f.s.lookup(gvr)
		if _, _, err := f.s.delete(ctx, ep, ns, name, &metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))}); err != nil {
			t.Fatal(err)
		}
	}
	deleteObj(coreSecrets, "default", "s")
	if _, _, _, err := ts.authenticateToken(ctx, secretBound, nil); err == nil || err.Error() != "service account token has been invalidated" {
		t.Errorf("token of a deleted secret: %v", err)
	}
	deleteObj(corePods, "default", "web")
	if _, _, _, err := ts.authenticateToken(ctx, podBound, nil); err == nil || err.Error() != "service account token has been invalidated" {
		t.Errorf("token of a deleted pod: %v", err)
	}
	// A recreated ServiceAccount of the same name is another identity.
	deleteObj(coreServiceAccounts, "default", "app")
	mustCreate(t, f.s, coreServiceAccounts, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "app"}})
	if _, _, _, err := ts.authenticateToken(ctx, plain, nil); err == nil || !strings.Contains(err.Error(), "does not match claim") {
		t.Errorf("token of a recreated service account: %v", err)
	}
}

func TestAuthenticateLegacyToken(t *testing.T) {
	f := newTokenFixture(t)
	ctx := context.Background()
	token := legacyToken(t, f.s.tokens, f.sa, "app-token")
	mustCreate(t, f.s, coreSecrets, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "app-token",
		Annotations: map[string]string{corev1.ServiceAccountNameKey: "app"}}, Type: corev1.SecretTypeServiceAccountToken,
		Data: map[string][]byte{corev1.ServiceAccountTokenKey: []byte(token)}})
	u, _, ok, err := f.s.tokens.authenticateToken(ctx, token, nil)
	if err != nil || !ok || u.Name != "system:serviceaccount:default:app" || u.UID != string(f.sa.UID) {
		t.Fatalf("legacy token = %+v, %v, %v", u, ok, err)
	}
	// A token for a Secret that does not hold it is refused.
	stray := legacyToken(t, f.s.tokens, f.sa, "s")
	if _, _, _, err := f.s.tokens.authenticateToken(ctx, stray, nil); err == nil || err.Error() != "token does not match server's copy" {
		t.Errorf("token not in its secret: %v", err)
	}
	gone := legacyToken(t, f.s.tokens, f.sa, "nope")
	if _, _, _, err := f.s.tokens.authenticateToken(ctx, gone, nil); err == nil || err.Error() != "token has been invalidated" {
		t.Errorf("token of a missing secret: %v", err)
	}
}

func typesUID(s string) types.UID { return types.UID(s) }
