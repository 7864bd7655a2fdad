package volume

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

// tokenServer makes client answer TokenRequests like the API server: token
// "token-N" (N counting from 1) expiring the requested lifetime after
// clk's now. It records each request's service account and spec; fail
// makes the next requests fail.
type tokenServer struct {
	n        atomic.Int32
	fail     atomic.Bool
	requests []string
}

func serveTokens(client *fake.Clientset, clk *clocktesting.FakeClock) *tokenServer {
	ts := &tokenServer{}
	client.PrependReactor("create", "serviceaccounts", func(a clienttesting.Action) (bool, runtime.Object, error) {
		ca := a.(clienttesting.CreateAction)
		if ca.GetSubresource() != "token" {
			return false, nil, nil
		}
		if ts.fail.Load() {
			return true, nil, errors.New("apiserver unreachable")
		}
		tr := ca.GetObject().(*authenticationv1.TokenRequest).DeepCopy()
		ref := tr.Spec.BoundObjectRef
		ts.requests = append(ts.requests, fmt.Sprintf("%s/%s exp=%d aud=%v bound=%s/%s/%s/%s", a.GetNamespace(),
			a.(clienttesting.CreateActionImpl).Name, *tr.Spec.ExpirationSeconds, tr.Spec.Audiences, ref.APIVersion, ref.Kind, ref.Name, ref.UID))
		tr.Status = authenticationv1.TokenRequestStatus{Token: fmt.Sprintf("token-%d", ts.n.Add(1)),
			ExpirationTimestamp: metav1.NewTime(clk.Now().Add(time.Duration(*tr.Spec.ExpirationSeconds) * time.Second))}
		return true, tr, nil
	})
	return ts
}

func tokenPod(sources ...corev1.VolumeProjection) *corev1.Pod {
	pod := testPod(corev1.Volume{Name: "kube-api-access-abcde", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		DefaultMode: new(int32(0o644)), Sources: sources}}})
	pod.Spec.ServiceAccountName = "default"
	return pod
}

func TestServiceAccountTokenProjection(t *testing.T) {
	needRoot(t)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "kube-root-ca.crt"}, Data: map[string]string{"ca.crt": "CA"}}
	m, client, clk := newManager(t, cm)
	ts := serveTokens(client, clk)
	// The volume the ServiceAccount admission plugin adds.
	pod := tokenPod(
		corev1.VolumeProjection{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: new(int64(3607))}},
		corev1.VolumeProjection{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
			Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
		corev1.VolumeProjection{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace",
			FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
	)
	setUp(t, m, pod)
	want := map[string]string{"token": "-rw-r--r-- token-1", "ca.crt": "-rw-r--r-- CA", "namespace": "-rw-r--r-- ns"}
	if diff := cmp.Diff(want, mountFiles(t, m, pod, "kube-api-access-abcde")); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"ns/default exp=3607 aud=[] bound=v1/Pod/web/uid-1"}, ts.requests); diff != "" {
		t.Errorf("TokenRequests (-want +got):\n%s", diff)
	}

	// Until 80% of the lifetime has passed the token is kept.
	lifetime := 3607 * time.Second
	clk.Step(lifetime*8/10 - time.Second)
	setUp(t, m, pod)
	if got := mountFiles(t, m, pod, "kube-api-access-abcde")["token"]; got != "-rw-r--r-- token-1" || len(ts.requests) != 1 {
		t.Errorf("token before 80%% of its lifetime = %q after %d requests, want token-1 after 1", got, len(ts.requests))
	}
	// Then the next sync renews it.
	clk.Step(2 * time.Second)
	setUp(t, m, pod)
	if got := mountFiles(t, m, pod, "kube-api-access-abcde")["token"]; got != "-rw-r--r-- token-2" {
		t.Errorf("token after 80%% of its lifetime = %q, want token-2", got)
	}
	// A failed renewal keeps the still valid token.
	ts.fail.Store(true)
	clk.Step(lifetime * 9 / 10)
	setUp(t, m, pod)
	if got := mountFiles(t, m, pod, "kube-api-access-abcde")["token"]; got != "-rw-r--r-- token-2" {
		t.Errorf("token after a failed renewal = %q, want token-2 kept", got)
	}
	// Once it expired, the failure surfaces and the file keeps its last
	// content (the volume stays ready).
	clk.Step(time.Hour)
	ready, err := m.SetUp(context.Background(), pod)
	if !ready || err == nil || !strings.Contains(err.Error(), "failed to fetch token: apiserver unreachable") {
		t.Errorf("SetUp with an expired token and no API = %v, %v; want ready with a failed to fetch token error", ready, err)
	}
}

func TestServiceAccountTokenAudienceAndMaxAge(t *testing.T) {
	needRoot(t)
	m, client, clk := newManager(t)
	ts := serveTokens(client, clk)
	pod := tokenPod(corev1.VolumeProjection{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
		Path: "vault-token", Audience: "vault", ExpirationSeconds: new(int64(7 * 24 * 3600))}})
	setUp(t, m, pod)
	// A week-long token is still renewed daily.
	clk.Step(24*time.Hour + time.Second)
	setUp(t, m, pod)
	want := []string{
		"ns/default exp=604800 aud=[vault] bound=v1/Pod/web/uid-1",
		"ns/default exp=604800 aud=[vault] bound=v1/Pod/web/uid-1",
	}
	if diff := cmp.Diff(want, ts.requests); diff != "" {
		t.Errorf("TokenRequests (-want +got):\n%s", diff)
	}
	if got := mountFiles(t, m, pod, "kube-api-access-abcde")["vault-token"]; got != "-rw-r--r-- token-2" {
		t.Errorf("vault-token = %q, want token-2", got)
	}
	// Tearing the pod down forgets its tokens: a new pod with the same
	// name gets its own.
	if err := m.TearDown(pod.UID); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	n := len(m.tokens)
	m.mu.Unlock()
	if n != 0 {
		t.Errorf("%d tokens kept after TearDown, want 0", n)
	}
}

func TestServiceAccountTokenFailureBlocksFirstSetUp(t *testing.T) {
	needRoot(t)
	m, client, clk := newManager(t)
	ts := serveTokens(client, clk)
	ts.fail.Store(true)
	pod := tokenPod(corev1.VolumeProjection{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}})
	t.Cleanup(func() { _ = m.TearDown(pod.UID) })
	ready, err := m.SetUp(context.Background(), pod)
	var setUpErr *SetUpError
	if ready || !errors.As(err, &setUpErr) || setUpErr.Volume != "kube-api-access-abcde" ||
		!strings.Contains(err.Error(), `MountVolume.SetUp failed for volume "kube-api-access-abcde" : failed to fetch token`) {
		t.Fatalf("SetUp = %v, %v; want not ready with upstream's FailedMount message", ready, err)
	}
}
