package volume

import (
	"context"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// Token refresh policy, upstream's kubelet token manager without its
// jitter: a token is renewed once 80% of its lifetime has passed, and at
// least every maxTokenAge, whichever comes first.
const (
	refreshAfterFraction = 0.8
	maxTokenAge          = 24 * time.Hour
	// defaultTokenExpirationSeconds is the projection's default lifetime.
	defaultTokenExpirationSeconds = 60 * 60
)

// tokenKey names one token the kubelet keeps: one per pod, account,
// audience and lifetime, as the TokenRequest is bound to the pod.
type tokenKey struct {
	namespace, serviceAccount, audience string
	expirationSeconds                   int64
	podName                             string
	podUID                              types.UID
}

// cachedToken is a token as the TokenRequest returned it.
type cachedToken struct {
	token   string
	issued  time.Time // expires minus the requested lifetime
	expires time.Time // status.expirationTimestamp
}

// refreshAt is when t must be renewed.
func (t cachedToken) refreshAt() time.Time {
	ttl := t.expires.Sub(t.issued)
	at := t.issued.Add(time.Duration(float64(ttl) * refreshAfterFraction))
	if limit := t.issued.Add(maxTokenAge); limit.Before(at) {
		at = limit
	}
	return at
}

// serviceAccountToken returns the token for a serviceAccountToken
// projection of pod: the kept one until it is due for renewal, otherwise a
// new one from a TokenRequest bound to the pod. A renewal that fails while
// the kept token is still valid keeps serving the kept token.
func (m *Manager) serviceAccountToken(ctx context.Context, pod *corev1.Pod, src *corev1.ServiceAccountTokenProjection) ([]byte, error) {
	exp := int64(defaultTokenExpirationSeconds)
	if src.ExpirationSeconds != nil {
		exp = *src.ExpirationSeconds
	}
	key := tokenKey{namespace: pod.Namespace, serviceAccount: pod.Spec.ServiceAccountName, audience: src.Audience,
		expirationSeconds: exp, podName: pod.Name, podUID: pod.UID}
	now := m.clock.Now()
	m.mu.Lock()
	kept, ok := m.tokens[key]
	m.mu.Unlock()
	if ok && now.Before(kept.refreshAt()) {
		return []byte(kept.token), nil
	}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &exp,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID},
	}}
	if src.Audience != "" {
		tr.Spec.Audiences = []string{src.Audience}
	}
	out, err := m.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, key.serviceAccount, tr, metav1.CreateOptions{})
	if err == nil && out.Status.Token == "" {
		err = fmt.Errorf("the TokenRequest for %s/%s returned no token", pod.Namespace, key.serviceAccount)
	}
	if err != nil {
		if ok && now.Before(kept.expires) {
			klog.FromContext(ctx).Error(err, "renewing a service account token failed; the current one stays until it expires",
				"pod", klog.KObj(pod), "expires", kept.expires)
			return []byte(kept.token), nil
		}
		return nil, fmt.Errorf("failed to fetch token: %w", err)
	}
	expires := out.Status.ExpirationTimestamp.Time
	issued := expires.Add(-time.Duration(exp) * time.Second)
	if out.Spec.ExpirationSeconds != nil {
		issued = expires.Add(-time.Duration(*out.Spec.ExpirationSeconds) * time.Second)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, t := range m.tokens {
		if !now.Before(t.expires) {
			delete(m.tokens, k)
		}
	}
	m.tokens[key] = cachedToken{token: out.Status.Token, issued: issued, expires: expires}
	return []byte(out.Status.Token), nil
}

// forgetTokens drops the tokens kept for the pod with uid.
func (m *Manager) forgetTokens(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.tokens {
		if k.podUID == uid {
			delete(m.tokens, k)
		}
	}
}
