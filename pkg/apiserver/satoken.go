package apiserver

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/klog/v2"
)

// DefaultServiceAccountIssuer is the "iss" of ServiceAccount tokens (and,
// by default, their only audience) unless Config.ServiceAccountIssuer says
// otherwise: the in-cluster name of the API server, as kubeadm configures.
const DefaultServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

// Constants of upstream's token issuance.
const (
	// legacyIssuer is the "iss" of the tokens kept in
	// kubernetes.io/service-account-token Secrets.
	legacyIssuer = "kubernetes/serviceaccount"
	// warnOnlyExpirationSeconds is the lifetime the ServiceAccount admission
	// plugin asks for in the projected token volume; a pod-bound token
	// requested with it is valid for a year but marked stale after it.
	warnOnlyExpirationSeconds = 60*60 + 7
	// expirationExtensionSeconds is the extended lifetime of such tokens.
	expirationExtensionSeconds = 365 * 24 * 60 * 60
	// defaultTokenExpirationSeconds is TokenRequest's default lifetime.
	defaultTokenExpirationSeconds = 60 * 60
	// jwtLeeway is the clock skew tolerated on exp/nbf/iat and on objects
	// deleted just now, as go-jose's DefaultLeeway.
	jwtLeeway = time.Minute
)

// Keys of the extra user information of ServiceAccount users.
const (
	extraPodName      = "authentication.kubernetes.io/pod-name"
	extraPodUID       = "authentication.kubernetes.io/pod-uid"
	extraNodeName     = "authentication.kubernetes.io/node-name"
	extraNodeUID      = "authentication.kubernetes.io/node-uid"
	extraCredentialID = "authentication.kubernetes.io/credential-id"
)

// serviceAccountUserPrefix starts every ServiceAccount's user name.
const serviceAccountUserPrefix = "system:serviceaccount:"

// serviceAccountUser returns the user name of a ServiceAccount.
func serviceAccountUser(ns, name string) string { return serviceAccountUserPrefix + ns + ":" + name }

// splitServiceAccountUser is the inverse of serviceAccountUser.
func splitServiceAccountUser(user string) (ns, name string, ok bool) {
	rest, found := strings.CutPrefix(user, serviceAccountUserPrefix)
	if !found {
		return "", "", false
	}
	ns, name, ok = strings.Cut(rest, ":")
	if !ok || ns == "" || name == "" || strings.Contains(name, ":") {
		return "", "", false
	}
	return ns, name, true
}

// serviceAccountGroups are the groups of every ServiceAccount of ns.
func serviceAccountGroups(ns string) []string {
	return []string{"system:serviceaccounts", "system:serviceaccounts:" + ns}
}

// audiences is a JWT "aud": a string or an array of strings on the wire.
type audiences []string

func (a *audiences) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audiences{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("aud: %w", err)
	}
	*a = many
	return nil
}

// claimRef names an object a token is bound to.
type claimRef struct {
	Name string `json:"name,omitempty"`
	UID  string `json:"uid,omitempty"`
}

// kubernetesClaims is the private "kubernetes.io" claim. Fields are in key
// order, as upstream's tokens (go-jose sorts them) carry them.
type kubernetesClaims struct {
	Namespace      string    `json:"namespace,omitempty"`
	Node           *claimRef `json:"node,omitempty"`
	Pod            *claimRef `json:"pod,omitempty"`
	Secret         *claimRef `json:"secret,omitempty"`
	ServiceAccount claimRef  `json:"serviceaccount"`
	WarnAfter      int64     `json:"warnafter,omitempty"`
}

// tokenClaims is a ServiceAccount token's payload: bound tokens use the
// registered claims and "kubernetes.io"; legacy Secret tokens use the
// kubernetes.io/serviceaccount/* claims. Fields are in key order.
type tokenClaims struct {
	Audience         audiences         `json:"aud,omitempty"`
	Expiry           int64             `json:"exp,omitempty"`
	IssuedAt         int64             `json:"iat,omitempty"`
	Issuer           string            `json:"iss,omitempty"`
	ID               string            `json:"jti,omitempty"`
	Kubernetes       *kubernetesClaims `json:"kubernetes.io,omitempty"`
	LegacyNamespace  string            `json:"kubernetes.io/serviceaccount/namespace,omitempty"`
	LegacySecretName string            `json:"kubernetes.io/serviceaccount/secret.name,omitempty"`
	LegacySAName     string            `json:"kubernetes.io/serviceaccount/service-account.name,omitempty"`
	LegacySAUID      string            `json:"kubernetes.io/serviceaccount/service-account.uid,omitempty"`
	NotBefore        int64             `json:"nbf,omitempty"`
	Subject          string            `json:"sub,omitempty"`
}

// tokenService issues and verifies ServiceAccount tokens. Immutable after
// construction; safe for concurrent use.
type tokenService struct {
	s         *Server
	signer    *jwtSigner // nil: the server verifies but does not issue tokens
	keys      []jwtKey   // verification keys; never empty
	issuer    string     // "iss" of issued tokens
	issuers   map[string]bool
	audiences []string // the API server's audiences; never empty
	now       func() time.Time
}

// newTokenService builds the token service from cfg; nil when the config
// has no ServiceAccount keys at all.
func newTokenService(s *Server, cfg Config) (*tokenService, error) {
	if cfg.ServiceAccountSigningKey == nil && len(cfg.ServiceAccountPublicKeys) == 0 {
		return nil, nil
	}
	t := &tokenService{s: s, issuer: cfg.ServiceAccountIssuer, audiences: cfg.APIAudiences, now: time.Now}
	if t.issuer == "" {
		t.issuer = DefaultServiceAccountIssuer
	}
	if len(t.audiences) == 0 {
		t.audiences = []string{t.issuer}
	}
	t.issuers = map[string]bool{t.issuer: true, legacyIssuer: true}
	pubs := slices.Clone(cfg.ServiceAccountPublicKeys)
	if cfg.ServiceAccountSigningKey != nil {
		signer, err := newJWTSigner(cfg.ServiceAccountSigningKey)
		if err != nil {
			return nil, fmt.Errorf("service account signing key: %w", err)
		}
		t.signer = signer
		pubs = append([]crypto.PublicKey{cfg.ServiceAccountSigningKey.Public()}, pubs...)
	}
	for _, pub := range pubs {
		k, err := newJWTKey(pub)
		if err != nil {
			return nil, fmt.Errorf("service account public key: %w", err)
		}
		t.keys = append(t.keys, k)
	}
	return t, nil
}

// issue signs a bound token for sa, bound to at most one of pod (with its
// node, when known) / secret / node, valid for expSeconds from now; a
// positive warnAfter marks it stale after that many seconds.
func (t *tokenService) issue(sa *corev1.ServiceAccount, pod *corev1.Pod, secret *corev1.Secret, node *corev1.Node, expSeconds, warnAfter int64, auds []string, now time.Time) (string, error) {
	k := &kubernetesClaims{Namespace: sa.Namespace, ServiceAccount: claimRef{Name: sa.Name, UID: string(sa.UID)}}
	switch {
	case pod != nil:
		k.Pod = &claimRef{Name: pod.Name, UID: string(pod.UID)}
		if node != nil {
			k.Node = &claimRef{Name: node.Name, UID: string(node.UID)}
		}
	case secret != nil:
		k.Secret = &claimRef{Name: secret.Name, UID: string(secret.UID)}
	case node != nil:
		k.Node = &claimRef{Name: node.Name, UID: string(node.UID)}
	}
	if warnAfter > 0 {
		k.WarnAfter = now.Add(time.Duration(warnAfter) * time.Second).Unix()
	}
	return t.signer.sign(&tokenClaims{
		Audience:   audiences(auds),
		Expiry:     now.Add(time.Duration(expSeconds) * time.Second).Unix(),
		IssuedAt:   now.Unix(),
		Issuer:     t.issuer,
		ID:         uuid.NewString(),
		Kubernetes: k,
		NotBefore:  now.Unix(),
		Subject:    serviceAccountUser(sa.Namespace, sa.Name),
	})
}

// Authenticate implements Authenticator for bearer ServiceAccount tokens.
// Tokens that are not JWTs of one of its issuers are not its business (ok
// false, no error).
func (t *tokenService) Authenticate(r *http.Request) (*UserInfo, bool, error) {
	h := r.Header.Get("Authorization")
	if !strings.HasPrefix(h, "Bearer ") {
		return nil, false, nil
	}
	u, _, ok, err := t.authenticateToken(r.Context(), strings.TrimSpace(strings.TrimPrefix(h, "Bearer ")), nil)
	if err != nil {
		klog.V(4).InfoS("service account token rejected", "err", err)
	}
	return u, ok, err
}

// authenticateToken verifies token for the audiences want (the API
// server's when empty) and returns its user and the audiences it is valid
// for. ok is false, without error, for tokens of other issuers.
func (t *tokenService) authenticateToken(ctx context.Context, token string, want []string) (*UserInfo, []string, bool, error) {
	_, unverified, err := jwtParts(token)
	if err != nil {
		return nil, nil, false, nil
	}
	var iss struct {
		Issuer string `json:"iss"`
	}
	if json.Unmarshal(unverified, &iss) != nil || !t.issuers[iss.Issuer] {
		return nil, nil, false, nil
	}
	payload, err := verifyJWT(token, t.keys)
	if err != nil {
		return nil, nil, false, err
	}
	var c tokenClaims
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&c); err != nil {
		return nil, nil, false, fmt.Errorf("decode token claims: %w", err)
	}
	if !t.issuers[c.Issuer] {
		return nil, nil, false, fmt.Errorf("token issuer %q is invalid", c.Issuer)
	}
	tokenAuds := []string(c.Audience)
	if len(tokenAuds) == 0 {
		// Legacy tokens have no audience: only the API server's own.
		tokenAuds = t.audiences
	}
	if len(want) == 0 {
		want = t.audiences
	}
	var auds []string
	for _, a := range tokenAuds {
		if slices.Contains(want, a) {
			auds = append(auds, a)
		}
	}
	if len(auds) == 0 {
		return nil, nil, false, fmt.Errorf("token audiences %q is invalid for the target audiences %q", tokenAuds, want)
	}
	var u *UserInfo
	if c.Issuer == legacyIssuer {
		u, err = t.validateLegacy(ctx, token, &c)
	} else {
		u, err = t.validateBound(ctx, &c)
	}
	if err != nil {
		return nil, nil, false, err
	}
	return u, auds, true, nil
}

// validateBound checks a bound token's times and that the objects it
// names still exist with the same UIDs and are not being deleted.
func (t *tokenService) validateBound(ctx context.Context, c *tokenClaims) (*UserInfo, error) {
	now := t.now()
	switch {
	case c.Kubernetes == nil:
		return nil, errors.New("service account token claims could not be validated: missing kubernetes.io claim")
	case c.Expiry != 0 && now.After(time.Unix(c.Expiry, 0).Add(jwtLeeway)):
		return nil, errors.New("service account token has expired")
	case c.NotBefore != 0 && now.Add(jwtLeeway).Before(time.Unix(c.NotBefore, 0)):
		return nil, errors.New("service account token is not valid yet")
	case c.IssuedAt != 0 && now.Add(jwtLeeway).Before(time.Unix(c.IssuedAt, 0)):
		return nil, errors.New("service account token is issued in the future")
	}
	k := c.Kubernetes
	deletedBefore := now.Add(-jwtLeeway)
	deleted := func(ts *metav1.Time) bool { return ts != nil && ts.Time.Before(deletedBefore) }
	ns := k.Namespace
	sa, err := t.serviceAccount(ctx, ns, k.ServiceAccount.Name)
	if err != nil {
		return nil, err
	}
	if string(sa.UID) != k.ServiceAccount.UID {
		return nil, fmt.Errorf("service account UID (%s) does not match claim (%s)", sa.UID, k.ServiceAccount.UID)
	}
	if deleted(sa.DeletionTimestamp) {
		return nil, fmt.Errorf("service account %s/%s has been deleted", ns, sa.Name)
	}
	invalidated := errors.New("service account token has been invalidated")
	if ref := k.Secret; ref != nil {
		obj, err := t.s.getStored(ctx, coreSecrets, ns, ref.Name)
		if err != nil {
			return nil, invalidated
		}
		secret := obj.(*corev1.Secret)
		if string(secret.UID) != ref.UID {
			return nil, fmt.Errorf("secret UID (%s) does not match service account secret ref claim (%s)", secret.UID, ref.UID)
		}
		if deleted(secret.DeletionTimestamp) {
			return nil, invalidated
		}
	}
	u := &UserInfo{Name: serviceAccountUser(ns, sa.Name), UID: string(sa.UID),
		Groups: append(serviceAccountGroups(ns), "system:authenticated"), Extra: map[string][]string{}}
	if ref := k.Pod; ref != nil {
		obj, err := t.s.getStored(ctx, corePods, ns, ref.Name)
		if err != nil {
			return nil, invalidated
		}
		pod := obj.(*corev1.Pod)
		if string(pod.UID) != ref.UID {
			return nil, fmt.Errorf("pod UID (%s) does not match service account pod ref claim (%s)", pod.UID, ref.UID)
		}
		if deleted(pod.DeletionTimestamp) {
			return nil, invalidated
		}
		u.Extra[extraPodName], u.Extra[extraPodUID] = []string{ref.Name}, []string{ref.UID}
	}
	if ref := k.Node; ref != nil {
		if k.Pod == nil {
			obj, err := t.s.getStored(ctx, coreNodes, "", ref.Name)
			if err != nil {
				return nil, invalidated
			}
			node := obj.(*corev1.Node)
			if string(node.UID) != ref.UID {
				return nil, fmt.Errorf("node UID (%s) does not match service account node ref claim (%s)", node.UID, ref.UID)
			}
			if deleted(node.DeletionTimestamp) {
				return nil, invalidated
			}
		}
		u.Extra[extraNodeName] = []string{ref.Name}
		if ref.UID != "" {
			u.Extra[extraNodeUID] = []string{ref.UID}
		}
	}
	if c.ID != "" {
		u.Extra[extraCredentialID] = []string{"JTI=" + c.ID}
	}
	if len(u.Extra) == 0 {
		u.Extra = nil
	}
	return u, nil
}

// validateLegacy checks a Secret-held token: the Secret still exists and
// holds exactly this token, and its ServiceAccount still exists with the
// same UID.
func (t *tokenService) validateLegacy(ctx context.Context, token string, c *tokenClaims) (*UserInfo, error) {
	switch {
	case c.Subject == "":
		return nil, errors.New("sub claim is missing")
	case c.LegacyNamespace == "":
		return nil, errors.New("namespace claim is missing")
	case c.LegacySecretName == "":
		return nil, errors.New("secretName claim is missing")
	case c.LegacySAName == "":
		return nil, errors.New("serviceAccountName claim is missing")
	case c.LegacySAUID == "":
		return nil, errors.New("serviceAccountUID claim is missing")
	}
	if ns, name, ok := splitServiceAccountUser(c.Subject); !ok || ns != c.LegacyNamespace || name != c.LegacySAName {
		return nil, errors.New("sub claim is invalid")
	}
	obj, err := t.s.getStored(ctx, coreSecrets, c.LegacyNamespace, c.LegacySecretName)
	if err != nil {
		return nil, errors.New("token has been invalidated")
	}
	secret := obj.(*corev1.Secret)
	if secret.DeletionTimestamp != nil {
		return nil, errors.New("token has been invalidated")
	}
	if !bytes.Equal(secret.Data[corev1.ServiceAccountTokenKey], []byte(token)) {
		return nil, errors.New("token does not match server's copy")
	}
	sa, err := t.serviceAccount(ctx, c.LegacyNamespace, c.LegacySAName)
	if err != nil {
		return nil, err
	}
	if sa.DeletionTimestamp != nil {
		return nil, fmt.Errorf("service account %s/%s has been deleted", sa.Namespace, sa.Name)
	}
	if string(sa.UID) != c.LegacySAUID {
		return nil, fmt.Errorf("service account UID (%s) does not match claim (%s)", sa.UID, c.LegacySAUID)
	}
	return &UserInfo{Name: c.Subject, UID: string(sa.UID), Groups: append(serviceAccountGroups(sa.Namespace), "system:authenticated")}, nil
}

func (t *tokenService) serviceAccount(ctx context.Context, ns, name string) (*corev1.ServiceAccount, error) {
	obj, err := t.s.getStored(ctx, coreServiceAccounts, ns, name)
	if err != nil {
		return nil, err
	}
	return obj.(*corev1.ServiceAccount), nil
}

var (
	coreServiceAccounts = schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}
	coreSecrets         = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	corePods            = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	coreNodes           = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}
)

// getStored reads one object of gvr with a consistent read, as the
// handlers do. The object is the caller's own; errors are API errors
// (NotFound for a missing object).
func (s *Server) getStored(ctx context.Context, gvr schema.GroupVersionResource, ns, name string) (runtime.Object, error) {
	ep, ok := s.lookup(gvr)
	if !ok {
		return nil, fmt.Errorf("no endpoint for %s", gvr)
	}
	obj, err := ep.store.Get(ctx, ep.key(ns, name))
	if err != nil {
		return nil, storageError(err, ep.groupResource(), name)
	}
	return obj, nil
}

// decodeRequestBody decodes r's body (JSON, YAML or protobuf by its
// Content-Type; JSON when absent) into into, an object of kind gvk.
func (s *Server) decodeRequestBody(r *http.Request, gvk schema.GroupVersionKind, into runtime.Object) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/json"
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return unsupportedMediaType(ct)
	}
	info, ok := runtime.SerializerInfoForMediaType(s.codecs.SupportedMediaTypes(), mt)
	if !ok {
		return unsupportedMediaType(ct)
	}
	_, got, err := info.Serializer.Decode(body, &gvk, into)
	if err != nil {
		return apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v", gvk.Kind, gvk.Version, gvk.Kind, err))
	}
	if got != nil && (got.Group != gvk.Group || got.Kind != gvk.Kind) {
		return apierrors.NewBadRequest(fmt.Sprintf("the kind in the data (%s) does not match the expected kind (%s)", got.GroupKind(), gvk.GroupKind()))
	}
	into.GetObjectKind().SetGroupVersionKind(gvk)
	return nil
}

var tokenRequestGVK = authenticationv1.SchemeGroupVersion.WithKind("TokenRequest")

// serveToken answers POST .../serviceaccounts/{name}/token, upstream's
// TokenRequest: a token for the ServiceAccount, optionally bound to a Pod,
// Secret or Node of its namespace whose UID (when given) must match.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request, info *requestInfo) {
	gr := schema.GroupResource{Resource: "serviceaccounts/token"}
	if info.Verb != "create" {
		s.writeError(w, r, apierrors.NewMethodNotSupported(gr, info.Verb))
		return
	}
	if s.tokens == nil || s.tokens.signer == nil {
		// Upstream does not install the subresource without a signing key.
		s.writeError(w, r, notFoundPath())
		return
	}
	req := &authenticationv1.TokenRequest{}
	if err := s.decodeRequestBody(r, tokenRequestGVK, req); err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := withTimeout(r.Context(), r)
	defer cancel()
	out, err := s.tokens.tokenRequest(ctx, info.Namespace, info.Name, req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	mt, err := s.negotiate(r, nil)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeObject(w, r, http.StatusCreated, mt, out)
}

// tokenRequest fills in req (a TokenRequest for the ServiceAccount ns/name)
// with a new token, in upstream's order of checks: names, the
// ServiceAccount (404), validation (422), the bound object (404, 400, 409).
func (t *tokenService) tokenRequest(ctx context.Context, ns, name string, req *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
	gk := tokenRequestGVK.GroupKind()
	if req.Name != "" && req.Name != name {
		return nil, apierrors.NewInvalid(gk, name, field.ErrorList{field.Invalid(field.NewPath("metadata", "name"), req.Name, "must match the service account name if specified")})
	}
	if req.Namespace != "" && req.Namespace != ns {
		return nil, apierrors.NewInvalid(gk, name, field.ErrorList{field.Invalid(field.NewPath("metadata", "namespace"), req.Namespace, "must match the service account namespace if specified")})
	}
	sa, err := t.serviceAccount(ctx, ns, name)
	if err != nil {
		return nil, err
	}
	if len(req.Spec.Audiences) == 0 {
		req.Spec.Audiences = slices.Clone(t.audiences)
	}
	if req.Spec.ExpirationSeconds == nil {
		req.Spec.ExpirationSeconds = new(int64(defaultTokenExpirationSeconds))
	}
	expSeconds := *req.Spec.ExpirationSeconds
	req.Name, req.Namespace = sa.Name, sa.Namespace
	now := t.now()
	req.CreationTimestamp = metav1.NewTime(now)
	req.Status = authenticationv1.TokenRequestStatus{}
	var errs field.ErrorList
	exp := field.NewPath("spec", "expirationSeconds")
	if expSeconds < 600 {
		errs = append(errs, field.Invalid(exp, expSeconds, "may not specify a duration less than 10 minutes"))
	}
	if expSeconds > 1<<32 {
		errs = append(errs, field.Invalid(exp, expSeconds, "may not specify a duration larger than 2^32 seconds"))
	}
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(gk, "", errs)
	}
	var (
		pod    *corev1.Pod
		secret *corev1.Secret
		node   *corev1.Node
	)
	if ref := req.Spec.BoundObjectRef; ref != nil {
		var uid types.UID
		gvk := schema.FromAPIVersionAndKind(ref.APIVersion, ref.Kind)
		switch {
		case gvk.Group == "" && gvk.Kind == "Pod":
			obj, err := t.s.getStored(ctx, corePods, ns, ref.Name)
			if err != nil {
				return nil, err
			}
			pod = obj.(*corev1.Pod)
			if name != pod.Spec.ServiceAccountName {
				return nil, apierrors.NewBadRequest(fmt.Sprintf("cannot bind token for serviceaccount %q to pod running with different serviceaccount name.", name))
			}
			uid = pod.UID
			if pod.Spec.NodeName != "" {
				obj, err := t.s.getStored(ctx, coreNodes, "", pod.Spec.NodeName)
				switch {
				case apierrors.IsNotFound(err):
					// The name alone still tells where the pod runs.
					node = &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: pod.Spec.NodeName}}
				case err != nil:
					return nil, apierrors.NewInternalError(err)
				default:
					node = obj.(*corev1.Node)
				}
			}
		case gvk.Group == "" && gvk.Kind == "Node":
			obj, err := t.s.getStored(ctx, coreNodes, "", ref.Name)
			if err != nil {
				return nil, err
			}
			node = obj.(*corev1.Node)
			uid = node.UID
		case gvk.Group == "" && gvk.Kind == "Secret":
			obj, err := t.s.getStored(ctx, coreSecrets, ns, ref.Name)
			if err != nil {
				return nil, err
			}
			secret = obj.(*corev1.Secret)
			uid = secret.UID
		default:
			return nil, apierrors.NewBadRequest(fmt.Sprintf("cannot bind token to object of type %s", gvk.String()))
		}
		if ref.UID != "" && uid != ref.UID {
			return nil, apierrors.NewConflict(schema.GroupResource{Group: gvk.Group, Resource: gvk.Kind}, ref.Name,
				fmt.Errorf("the UID in the bound object reference (%s) does not match the UID in record. The object might have been deleted and then recreated", ref.UID))
		}
	}
	// Projected volume tokens (3607 s, pod-bound, for the API server) last
	// a year but carry warnafter, so a kubelet that falls behind on
	// rotation does not break its pods, as upstream.
	exp2, warnAfter := expSeconds, int64(0)
	if pod != nil && exp2 == warnOnlyExpirationSeconds && subset(req.Spec.Audiences, t.audiences) {
		warnAfter, exp2 = exp2, expirationExtensionSeconds
	}
	token, err := t.issue(sa, pod, secret, node, exp2, warnAfter, req.Spec.Audiences, now)
	if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("failed to generate token: %w", err))
	}
	out := req.DeepCopy()
	out.TypeMeta = metav1.TypeMeta{APIVersion: tokenRequestGVK.GroupVersion().String(), Kind: tokenRequestGVK.Kind}
	out.Status = authenticationv1.TokenRequestStatus{
		Token:               token,
		ExpirationTimestamp: metav1.NewTime(now.Add(time.Duration(expSeconds) * time.Second)),
	}
	return out, nil
}

// subset reports whether every element of a is in b.
func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}
