package criruntime

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	testingclock "k8s.io/utils/clock/testing"
)

// fakeImages is an image service holding images by reference. A pull
// succeeds when allow accepts its credentials ("user:pass", "" for an
// anonymous pull).
type fakeImages struct {
	internalapi.ImageManagerService                   // unused methods panic
	images                          map[string]string // reference -> image ID
	allow                           func(ref, login string) error
	pulls                           []string // "ref login" of every pull
}

func (f *fakeImages) ImageStatus(_ context.Context, spec *runtimeapi.ImageSpec, _ bool) (*runtimeapi.ImageStatusResponse, error) {
	id, ok := f.images[spec.Image]
	if !ok {
		for _, v := range f.images {
			if v == spec.Image {
				id, ok = v, true
			}
		}
	}
	if !ok {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	return &runtimeapi.ImageStatusResponse{Image: &runtimeapi.Image{Id: id, Size: 1234}}, nil
}

func (f *fakeImages) PullImage(_ context.Context, spec *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig, _ *runtimeapi.PodSandboxConfig) (string, error) {
	login := ""
	if auth != nil {
		login = auth.Username + ":" + auth.Password
	}
	f.pulls = append(f.pulls, strings.TrimSpace(spec.Image+" "+login))
	if err := f.allow(spec.Image, login); err != nil {
		return "", err
	}
	id := "sha256:" + strings.Repeat("a", 8) + spec.Image
	f.images[spec.Image] = id
	return id, nil
}

// pullEnv is a Runtime over fakeImages with a fake clock and secrets.
type pullEnv struct {
	r       *Runtime
	images  *fakeImages
	clock   *testingclock.FakeClock
	secrets map[string]*corev1.Secret // by name, namespace "default"
}

func newPullEnv() *pullEnv {
	e := &pullEnv{
		images:  &fakeImages{images: map[string]string{}, allow: func(string, string) error { return nil }},
		clock:   testingclock.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
		secrets: map[string]*corev1.Secret{},
	}
	e.r = &Runtime{
		cfg: Config{Clock: e.clock, PollInterval: time.Second, Secrets: func(_ context.Context, ns, name string) (*corev1.Secret, error) {
			if s, ok := e.secrets[name]; ok && ns == "default" {
				return s, nil
			}
			return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
		}},
		is:    e.images,
		pulls: newPullState(e.clock),
	}
	return e
}

// ensure runs ensureImage for the pod's first container and returns its
// result, the events as "Reason: message" and the requested resync.
func (e *pullEnv) ensure(pod *corev1.Pod) (ref, reason, msg string, events []string, requeue time.Duration) {
	s := &syncState{pod: pod, sbConfig: &runtimeapi.PodSandboxConfig{}}
	ref, reason, msg = e.r.ensureImage(context.Background(), s, &pod.Spec.Containers[0], "spec.containers{main}")
	for _, ev := range s.rs.Events {
		events = append(events, ev.Reason+": "+ev.Message)
	}
	return ref, reason, msg, events, s.rs.NextSyncAfter
}

func pullPod(name, image string, policy corev1.PullPolicy, secrets ...string) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: image, ImagePullPolicy: policy}}},
	}
	for _, s := range secrets {
		pod.Spec.ImagePullSecrets = append(pod.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s})
	}
	return pod
}

func loginSecret(name, registry, user, pass string) *corev1.Secret {
	return dockerConfigJSONSecret(name, fmt.Sprintf(`{"auths": {%q: {"username": %q, "password": %q}}}`, registry, user, pass))
}

var pulledRE = regexp.MustCompile(`^Pulled: Successfully pulled image "([^"]+)" in [0-9.]+[mµn]?s \([0-9.]+[mµn]?s including waiting\)\. Image size: 1234 bytes\.$`)

func TestPullPolicies(t *testing.T) {
	e := newPullEnv()
	e.images.images["docker.io/library/busybox:1.36"] = "sha256:busybox"

	// Never, missing.
	_, reason, msg, events, _ := e.ensure(pullPod("never", "nginx:1.25", corev1.PullNever))
	wantMsg := `Container image "nginx:1.25" is not present with pull policy of Never`
	if reason != "ErrImageNeverPull" || msg != wantMsg {
		t.Errorf("Never, missing: %q %q", reason, msg)
	}
	if diff := cmp.Diff([]string{"ErrImageNeverPull: " + wantMsg, "Failed: Error: ErrImageNeverPull"}, events); diff != "" {
		t.Errorf("Never, missing: events (-want +got):\n%s", diff)
	}

	// IfNotPresent and Never, present: no pull.
	for _, policy := range []corev1.PullPolicy{corev1.PullIfNotPresent, corev1.PullNever} {
		ref, reason, _, events, _ := e.ensure(pullPod("present", "docker.io/library/busybox:1.36", policy))
		want := []string{`Pulled: Container image "docker.io/library/busybox:1.36" already present on machine and can be accessed by the pod`}
		if ref != "sha256:busybox" || reason != "" || !cmp.Equal(want, events) {
			t.Errorf("%s, present: %q %q %q", policy, ref, reason, events)
		}
	}
	if len(e.images.pulls) != 0 {
		t.Errorf("pulls without need: %q", e.images.pulls)
	}

	// Always pulls even a present image; a missing tag means :latest for
	// the runtime, while events name the image as written.
	for _, image := range []string{"docker.io/library/busybox:1.36", "busybox"} {
		ref, reason, _, events, _ := e.ensure(pullPod("always", image, corev1.PullAlways))
		if reason != "" || ref == "" || len(events) != 2 || events[0] != `Pulling: Pulling image "`+image+`"` ||
			!pulledRE.MatchString(events[1]) || pulledRE.FindStringSubmatch(events[1])[1] != image {
			t.Errorf("Always %s: %q %q %q", image, ref, reason, events)
		}
	}
	if diff := cmp.Diff([]string{"docker.io/library/busybox:1.36", "busybox:latest"}, e.images.pulls); diff != "" {
		t.Errorf("pulls (-want +got):\n%s", diff)
	}

	// An empty policy defaults like the API server: Always for no tag.
	if p := pullPolicy(&corev1.Container{Image: "localhost:5000/app"}); p != corev1.PullAlways {
		t.Errorf("default policy of an untagged image = %s", p)
	}
	if p := pullPolicy(&corev1.Container{Image: "localhost:5000/app:1"}); p != corev1.PullIfNotPresent {
		t.Errorf("default policy of a tagged image = %s", p)
	}

	// A malformed name never reaches the runtime.
	_, reason, _, events, _ = e.ensure(pullPod("bad", "Bad/Name", corev1.PullIfNotPresent))
	if reason != "InvalidImageName" || len(events) != 2 || !strings.HasPrefix(events[0], `InspectFailed: Failed to apply default image tag "Bad/Name"`) {
		t.Errorf("bad name: %q %q", reason, events)
	}
}

func TestPullBackoff(t *testing.T) {
	e := newPullEnv()
	pullErr := errors.New(`failed to pull and unpack image "127.0.0.1:5000/app:1": 401 Unauthorized`)
	e.images.allow = func(string, string) error { return pullErr }
	pod := pullPod("app", "127.0.0.1:5000/app:1", corev1.PullIfNotPresent)

	// Each failure doubles the back-off: 10s, 20s, ... up to 5m.
	for i, delay := range []time.Duration{10, 20, 40, 80, 160, 300, 300} {
		delay *= time.Second
		pulls := len(e.images.pulls)
		_, reason, msg, events, requeue := e.ensure(pod)
		want := []string{
			`Pulling: Pulling image "127.0.0.1:5000/app:1"`,
			`Failed: Failed to pull image "127.0.0.1:5000/app:1": ` + pullErr.Error(),
			`Failed: Error: ErrImagePull`,
		}
		if reason != "ErrImagePull" || msg != pullErr.Error() || requeue != delay || len(e.images.pulls) != pulls+1 || !cmp.Equal(want, events) {
			t.Fatalf("failure %d: reason %q msg %q requeue %v pulls %d events %q; want ErrImagePull, requeue %v", i, reason, msg, requeue, len(e.images.pulls)-pulls, events, delay)
		}
		// In back-off: no pull, ImagePullBackOff with the last error.
		e.clock.Step(delay - time.Second)
		_, reason, msg, events, requeue = e.ensure(pod)
		want = []string{`BackOff: Back-off pulling image "127.0.0.1:5000/app:1"`, `Failed: Error: ImagePullBackOff`}
		wantMsg := `Back-off pulling image "127.0.0.1:5000/app:1": ErrImagePull: ` + pullErr.Error()
		if reason != "ImagePullBackOff" || msg != wantMsg || requeue != time.Second || len(e.images.pulls) != pulls+1 || !cmp.Equal(want, events) {
			t.Fatalf("back-off %d: reason %q msg %q requeue %v events %q", i, reason, msg, requeue, events)
		}
		e.clock.Step(time.Second)
	}

	// Success clears the error; a killed pod forgets its back-off.
	e.images.allow = func(string, string) error { return nil }
	e.clock.Step(5 * time.Minute)
	if ref, reason, _, _, _ := e.ensure(pod); ref == "" || reason != "" {
		t.Fatalf("after the back-off: %q %q", ref, reason)
	}
	e.r.pulls.backoff.next("uid-app/image/x", e.clock.Now())
	e.r.pulls.forget("uid-app")
	if left := e.r.pulls.backoff.sinceUpdate("uid-app/image/x"); left != 0 || len(e.r.pulls.lastErr) != 0 {
		t.Errorf("after forget: back-off %v, errors %v", left, e.r.pulls.lastErr)
	}
}

func TestPullSecrets(t *testing.T) {
	e := newPullEnv()
	e.secrets["reg"] = loginSecret("reg", "127.0.0.1:5000", "alice", "right")
	e.secrets["stale"] = loginSecret("stale", "127.0.0.1:5000", "alice", "old")
	e.secrets["other"] = loginSecret("other", "quay.io", "bob", "x")
	e.images.allow = func(ref, login string) error {
		if login != "alice:right" {
			return fmt.Errorf("401 Unauthorized (%s)", login)
		}
		return nil
	}
	const image = "127.0.0.1:5000/private:1"

	// No matching secret: one anonymous pull, which fails.
	_, reason, msg, _, _ := e.ensure(pullPod("anon", image, corev1.PullIfNotPresent, "other"))
	if reason != "ErrImagePull" || msg != "401 Unauthorized ()" {
		t.Errorf("without credentials: %q %q", reason, msg)
	}
	// A missing secret is reported and skipped.
	_, _, _, events, _ := e.ensure(pullPod("missing", image, corev1.PullIfNotPresent, "nope", "other"))
	if want := "FailedToRetrieveImagePullSecret: Unable to retrieve some image pull secrets (nope); attempting to pull the image may not succeed."; events[0] != want {
		t.Errorf("missing secret: events %q, want first %q", events, want)
	}
	// Every matching credential in turn, with no anonymous attempt after
	// them (upstream's PullImage); all failures in the message.
	e.images.pulls = nil
	_, reason, msg, _, _ = e.ensure(pullPod("stale", image, corev1.PullIfNotPresent, "stale", "stale"))
	if reason != "ErrImagePull" || msg != "401 Unauthorized (alice:old)" || len(e.images.pulls) != 2 {
		t.Errorf("stale credentials: %q %q pulls %q", reason, msg, e.images.pulls)
	}
	e.images.pulls = nil
	ref, reason, _, events, _ := e.ensure(pullPod("good", image, corev1.PullIfNotPresent, "stale", "reg"))
	if ref == "" || reason != "" || len(events) != 2 || !pulledRE.MatchString(events[1]) {
		t.Errorf("with the secret: %q %q %q", ref, reason, events)
	}
	if diff := cmp.Diff([]string{image + " alice:old", image + " alice:right"}, e.images.pulls); diff != "" {
		t.Errorf("pulls (-want +got):\n%s", diff)
	}

	// The image is now present, but was pulled with credentials: a pod
	// with them uses it, a pod without must pull (and fails), and Never
	// reports it as absent.
	e.images.pulls = nil
	if ref, reason, _, events, _ := e.ensure(pullPod("again", image, corev1.PullIfNotPresent, "reg")); ref == "" || reason != "" ||
		events[0] != `Pulled: Container image "`+image+`" already present on machine and can be accessed by the pod` {
		t.Errorf("same credentials: %q %q %q", ref, reason, events)
	}
	if _, reason, _, _, _ := e.ensure(pullPod("sneaky", image, corev1.PullIfNotPresent)); reason != "ErrImagePull" {
		t.Errorf("no credentials, image present: reason %q, want ErrImagePull", reason)
	}
	if _, reason, _, _, _ := e.ensure(pullPod("sneaky-never", image, corev1.PullNever)); reason != "ErrImageNeverPull" {
		t.Errorf("no credentials, Never: reason %q, want ErrImageNeverPull", reason)
	}
	if diff := cmp.Diff([]string{image}, e.images.pulls); diff != "" {
		t.Errorf("pulls (-want +got):\n%s", diff)
	}

	// An anonymous pull of the image makes it free for every pod.
	e.images.allow = func(string, string) error { return nil }
	if _, reason, _, _, _ := e.ensure(pullPod("public", image, corev1.PullAlways)); reason != "" {
		t.Fatalf("anonymous pull: %q", reason)
	}
	if _, reason, _, _, _ := e.ensure(pullPod("anyone", image, corev1.PullNever)); reason != "" {
		t.Errorf("after an anonymous pull, Never without credentials: %q", reason)
	}
}
