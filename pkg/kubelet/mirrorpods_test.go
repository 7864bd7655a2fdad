package kubelet

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

// staticKubelet is a Kubelet with a manifest directory, run by a test
// against a fake API server whose Node "node-1" has UID "node-uid".
type staticKubelet struct {
	k      *Kubelet
	client *fake.Clientset
	clock  *clocktesting.FakeClock
	rt     *fakeRuntime
	dir    string
	// down makes every API request fail while set.
	down atomic.Bool
}

func newStaticKubelet(t *testing.T, objs ...runtime.Object) *staticKubelet {
	t.Helper()
	objs = append(objs, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1", UID: "node-uid"}})
	s := &staticKubelet{
		client: fake.NewClientset(objs...),
		clock:  clocktesting.NewFakeClock(t0),
		dir:    t.TempDir(),
	}
	s.client.PrependReactor("*", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
		if s.down.Load() {
			return true, nil, errors.New("connection refused")
		}
		return false, nil, nil
	})
	s.client.PrependWatchReactor("*", func(k8stesting.Action) (bool, watch.Interface, error) {
		if s.down.Load() {
			return true, nil, errors.New("connection refused")
		}
		return false, nil, nil
	})
	s.rt = &fakeRuntime{clock: s.clock, pods: map[types.UID]*fakePod{}}
	var err error
	s.k, err = New(Config{
		NodeName: "node-1", Client: s.client, Runtime: s.rt, Clock: s.clock, Recorder: &recorder{},
		Capacity:      capacity(),
		Addresses:     []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.1.10"}},
		Workers:       1,
		StaticPodPath: s.dir,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// run runs the kubelet until the test ends or stop is called; stop
// returns once Run did.
func (s *staticKubelet) run(t *testing.T) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.k.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Run did not return within 10s of its context ending")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// write writes a manifest into the static pod directory.
func (s *staticKubelet) write(t *testing.T, name, content string) {
	t.Helper()
	writeFile(t, filepath.Join(s.dir, name), content)
}

// mirror returns the API pod default/web-node-1, or nil.
func (s *staticKubelet) mirror() *corev1.Pod {
	p, err := s.client.Tracker().Get(corev1.SchemeGroupVersion.WithResource("pods"), "default", "web-node-1")
	if err != nil {
		return nil
	}
	return p.(*corev1.Pod)
}

// runtimeUIDs returns the UIDs of the pods the runtime runs.
func (s *staticKubelet) runtimeUIDs() []types.UID {
	pods, _ := s.rt.ListPods(context.Background())
	var uids []types.UID
	for _, p := range pods {
		uids = append(uids, p.UID)
	}
	return uids
}

// pollUntil polls cond every few milliseconds, failing the test after
// ten seconds; each poll first runs tick (to advance a fake clock), when
// given.
func pollUntil(t *testing.T, what string, tick func(), cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		if tick != nil {
			tick()
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func runningMirror(s *staticKubelet) func() bool {
	return func() bool {
		m := s.mirror()
		return m != nil && m.Status.Phase == corev1.PodRunning
	}
}

// TestStaticPodRunsWithMirrorPod: a manifest in the directory runs as a
// static pod, and its mirror pod appears in the API with upstream's name,
// annotations and owner, and the static pod's real status.
func TestStaticPodRunsWithMirrorPod(t *testing.T) {
	s := newStaticKubelet(t)
	s.write(t, "web.yaml", webManifest)
	s.write(t, ".hidden.yaml", "not a manifest")
	s.write(t, "broken.yaml", "kind: Pod\n")
	s.run(t)
	pollUntil(t, "a Running mirror pod", nil, runningMirror(s))

	static, ok := s.k.static.get("default/web-node-1")
	if !ok {
		t.Fatal("no static pod default/web-node-1")
	}
	if diff := cmp.Diff([]types.UID{static.UID}, s.runtimeUIDs()); diff != "" {
		t.Errorf("runtime pods (-want +got):\n%s", diff)
	}
	m := s.mirror()
	wantAnnotations := map[string]string{
		ConfigSourceAnnotationKey: "file",
		ConfigHashAnnotationKey:   string(static.UID),
		ConfigMirrorAnnotationKey: string(static.UID),
		ConfigSeenAnnotationKey:   t0.Format(time.RFC3339Nano),
	}
	if diff := cmp.Diff(wantAnnotations, m.Annotations); diff != "" {
		t.Errorf("mirror annotations (-want +got):\n%s", diff)
	}
	wantOwners := []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: "node-1", UID: "node-uid", Controller: new(true)}}
	if diff := cmp.Diff(wantOwners, m.OwnerReferences); diff != "" {
		t.Errorf("mirror owners (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(static.Spec, m.Spec); diff != "" {
		t.Errorf("mirror spec differs from the static pod's (-static +mirror):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"app": "web"}, m.Labels); diff != "" {
		t.Errorf("mirror labels (-want +got):\n%s", diff)
	}
	st := m.Status
	if st.PodIP != "10.244.1.2" || st.HostIP != "192.168.1.10" || len(st.ContainerStatuses) != 1 || !st.ContainerStatuses[0].Ready ||
		st.ContainerStatuses[0].ContainerID != "fake://"+string(static.UID)+"/nginx" {
		t.Errorf("mirror status does not show the running static pod: %+v", st)
	}
}

// TestStaticPodRunsWithoutAPIServer: static pods start while the API
// server cannot be reached, and get their mirror once it can.
func TestStaticPodRunsWithoutAPIServer(t *testing.T) {
	s := newStaticKubelet(t)
	s.down.Store(true)
	s.write(t, "web.yaml", webManifest)
	s.run(t)
	pollUntil(t, "the static pod running", nil, func() bool { return len(s.runtimeUIDs()) == 1 })
	if m := s.mirror(); m != nil {
		t.Fatalf("a mirror pod exists while the API server is down: %+v", m)
	}

	s.down.Store(false)
	// The registration retries on the kubelet's (fake) clock.
	pollUntil(t, "a Running mirror pod once the API server is back",
		func() { s.clock.Step(100 * time.Millisecond) }, runningMirror(s))
	// Its status kept the start time of the pod that ran without it.
	if got := s.mirror().Status.StartTime; got == nil || !got.Equal(new(mt(0))) {
		t.Errorf("mirror startTime %v, want %v (when the static pod started)", got, mt(0))
	}
}

// TestMirrorPodRecreatedAfterDeletion: a user deleting the mirror pod
// deletes nothing that runs; the kubelet creates the mirror again.
func TestMirrorPodRecreatedAfterDeletion(t *testing.T) {
	s := newStaticKubelet(t)
	s.write(t, "web.yaml", webManifest)
	s.run(t)
	pollUntil(t, "a Running mirror pod", nil, runningMirror(s))
	before := s.runtimeUIDs()

	// Mark the first mirror so that its successor can be told apart.
	m := s.mirror()
	m.Labels["generation"] = "first"
	if err := s.client.Tracker().Update(corev1.SchemeGroupVersion.WithResource("pods"), m, "default"); err != nil {
		t.Fatal(err)
	}
	if err := s.client.CoreV1().Pods("default").Delete(context.Background(), "web-node-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "a new Running mirror pod", nil, func() bool {
		m := s.mirror()
		return m != nil && m.Labels["generation"] == "" && m.Status.Phase == corev1.PodRunning
	})
	if diff := cmp.Diff(before, s.runtimeUIDs()); diff != "" {
		t.Errorf("runtime pods changed when the mirror was deleted (-before +after):\n%s", diff)
	}
}

// TestRemovedManifestStopsPodAndDeletesMirror: removing the manifest stops
// the static pod's containers and deletes its mirror.
func TestRemovedManifestStopsPodAndDeletesMirror(t *testing.T) {
	s := newStaticKubelet(t)
	s.write(t, "web.yaml", webManifest)
	s.run(t)
	pollUntil(t, "a Running mirror pod", nil, runningMirror(s))

	if err := os.Remove(filepath.Join(s.dir, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "the pod stopped and its mirror deleted", func() { s.clock.Step(DefaultFileCheckFrequency) }, func() bool {
		return len(s.runtimeUIDs()) == 0 && s.mirror() == nil
	})
}

// TestChangedManifestReplacesPodAndMirror: a changed manifest is a new
// static pod (new UID): the old one is stopped and the mirror replaced.
func TestChangedManifestReplacesPodAndMirror(t *testing.T) {
	s := newStaticKubelet(t)
	s.write(t, "web.yaml", webManifest)
	s.run(t)
	pollUntil(t, "a Running mirror pod", nil, runningMirror(s))
	old := s.mirror().Annotations[ConfigMirrorAnnotationKey]

	path := filepath.Join(s.dir, "web.yaml")
	s.write(t, "web.yaml", strings.Replace(webManifest, "nginx:1.25", "nginx:1.26", 1))
	if err := os.Chtimes(path, t0, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var uid types.UID
	pollUntil(t, "the new version running with its mirror", func() { s.clock.Step(DefaultFileCheckFrequency) }, func() bool {
		static, ok := s.k.static.get("default/web-node-1")
		if !ok || string(static.UID) == old {
			return false
		}
		uid = static.UID
		m := s.mirror()
		return m != nil && m.Annotations[ConfigMirrorAnnotationKey] == string(uid) &&
			m.Spec.Containers[0].Image == "nginx:1.26" && m.Status.Phase == corev1.PodRunning
	})
	if diff := cmp.Diff([]types.UID{uid}, s.runtimeUIDs()); diff != "" {
		t.Errorf("runtime pods (-want +got):\n%s", diff)
	}
}

// TestMirrorStatusFollowsStaticPod: the mirror's status follows what the
// runtime reports: a static pod that exits shows Succeeded.
func TestMirrorStatusFollowsStaticPod(t *testing.T) {
	s := newStaticKubelet(t)
	s.write(t, "job.yaml", strings.Replace(webManifest, "spec:\n", "spec:\n  restartPolicy: Never\n", 1))
	s.run(t)
	pollUntil(t, "a Running mirror pod", nil, runningMirror(s))
	// The fake runtime's containers of non-restarting pods exit 0 after
	// two seconds; the kubelet syncs when the runtime says they will.
	pollUntil(t, "a Succeeded mirror pod", func() { s.clock.Step(time.Second) }, func() bool {
		m := s.mirror()
		return m != nil && m.Status.Phase == corev1.PodSucceeded
	})
	cs := s.mirror().Status.ContainerStatuses
	if len(cs) != 1 || cs[0].State.Terminated == nil || cs[0].State.Terminated.Reason != "Completed" {
		t.Errorf("container statuses %+v, want nginx terminated (Completed)", cs)
	}
}

func mirrorPod(ns, name, source string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(name + "-uid"),
			Annotations: map[string]string{ConfigMirrorAnnotationKey: "abc", ConfigSourceAnnotationKey: source}},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
}

// TestOrphanedMirrorPods: a mirror pod without a static pod is deleted and
// never run, except the control-plane mirrors `skiff server` keeps, which
// are left entirely alone.
func TestOrphanedMirrorPods(t *testing.T) {
	ctx := context.Background()
	orphan := mirrorPod("default", "gone-node-1", FileSource)
	server := mirrorPod("kube-system", "kube-apiserver-node-1", ServerSource)
	h := newHarness(t, orphan, server)
	podsCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go h.k.pods.Run(podsCtx)
	pollUntil(t, "the pod cache synced", nil, h.k.pods.HasSynced)
	h.k.noteNode(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1", UID: "node-uid"}})
	h.client.ClearActions()

	if err := h.k.syncPod(ctx, "kube-system/kube-apiserver-node-1"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string(nil), h.writes()); diff != "" {
		t.Errorf("skiff-server mirror: writes (-want +got):\n%s", diff)
	}
	if err := h.k.syncPod(ctx, "default/gone-node-1"); err != nil {
		t.Fatal(err)
	}
	var deletes []k8stesting.DeleteActionImpl
	for _, a := range h.client.Actions() {
		if d, ok := a.(k8stesting.DeleteActionImpl); ok {
			deletes = append(deletes, d)
		}
	}
	if len(deletes) != 1 || deletes[0].Name != "gone-node-1" {
		t.Fatalf("deletes %+v, want one of gone-node-1", deletes)
	}
	wantOpts := metav1.DeleteOptions{GracePeriodSeconds: new(int64(0)), Preconditions: &metav1.Preconditions{UID: new(types.UID("gone-node-1-uid"))}}
	if diff := cmp.Diff(wantOpts, deletes[0].DeleteOptions); diff != "" {
		t.Errorf("delete options (-want +got):\n%s", diff)
	}
	if _, err := h.client.CoreV1().Pods("kube-system").Get(ctx, "kube-apiserver-node-1", metav1.GetOptions{}); err != nil {
		t.Errorf("skiff-server mirror: %v", err)
	}
	if _, err := h.client.CoreV1().Pods("default").Get(ctx, "gone-node-1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("orphaned mirror: got %v, want NotFound", err)
	}
	if pods, _ := h.rt.ListPods(ctx); len(pods) != 0 {
		t.Errorf("the runtime runs mirror pods: %v", pods)
	}
}

// TestConvergedStaticPodWritesNothing: once the mirror shows the static
// pod's status, further syncs write nothing.
func TestConvergedStaticPodWritesNothing(t *testing.T) {
	s := newStaticKubelet(t)
	s.write(t, "web.yaml", webManifest)
	stop := s.run(t)
	pollUntil(t, "a Running mirror pod", nil, runningMirror(s))
	pollUntil(t, "the cached mirror up to date", nil, func() bool {
		p, ok := s.k.pods.get("default/web-node-1")
		return ok && p.Status.Phase == corev1.PodRunning
	})
	// Stopped, the kubelet keeps its caches: its syncs can be called
	// directly, with no worker racing them.
	stop()
	s.client.ClearActions()
	for range 3 {
		s.clock.Step(time.Minute)
		if err := s.k.syncPod(context.Background(), "default/web-node-1"); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range s.client.Actions() {
		if v := a.GetVerb(); v != "get" && v != "list" && v != "watch" {
			t.Errorf("converged static pod: unexpected write %s %s %s", v, a.GetResource().Resource, a.GetSubresource())
		}
	}
}
