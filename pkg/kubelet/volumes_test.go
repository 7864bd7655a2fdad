package kubelet

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// fakeVolumes is a VolumeManager whose SetUp returns ready and err.
type fakeVolumes struct {
	mu       sync.Mutex
	ready    bool
	err      error
	setUps   int
	tornDown []types.UID
}

func (f *fakeVolumes) SetUp(context.Context, *corev1.Pod) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setUps++
	return f.ready, f.err
}

func (f *fakeVolumes) TearDown(uid types.UID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tornDown = append(f.tornDown, uid)
	return nil
}

func TestFailedMountKeepsContainersCreatingThenStartsThem(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	vols := &fakeVolumes{err: errors.New(`MountVolume.SetUp failed for volume "cfg" : configmap "cfg" not found`)}
	h.k.cfg.Volumes = vols
	h.seedPod(t, nginxPod(corev1.RestartPolicyAlways))

	if err := h.k.syncPod(ctx, "default/web"); err == nil {
		t.Fatal("syncPod with a missing volume succeeded, want an error to retry")
	}
	if diff := cmp.Diff([]string{`Pod/web FailedMount: MountVolume.SetUp failed for volume "cfg" : configmap "cfg" not found`}, h.rec.take()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if got := h.rt.lastSynced("pod-uid"); got != nil {
		t.Errorf("runtime synced the pod before its volumes were ready")
	}
	got := h.refreshCache(t, "default", "web")
	if w := got.Status.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != ReasonContainerCreating {
		t.Errorf("container state = %+v, want waiting ContainerCreating", got.Status.ContainerStatuses[0].State)
	}

	vols.mu.Lock()
	vols.ready, vols.err = true, nil
	vols.mu.Unlock()
	if err := h.k.syncPod(ctx, "default/web"); err != nil {
		t.Fatal(err)
	}
	if h.rt.lastSynced("pod-uid") == nil {
		t.Error("runtime did not sync the pod once its volumes were ready")
	}
}

func TestDeletionTearsDownVolumes(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	vols := &fakeVolumes{ready: true}
	h.k.cfg.Volumes = vols
	h.seedPod(t, nginxPod(corev1.RestartPolicyAlways))
	if err := h.k.syncPod(ctx, "default/web"); err != nil {
		t.Fatal(err)
	}
	terminating := h.refreshCache(t, "default", "web").DeepCopy()
	terminating.DeletionTimestamp = new(mt(time.Minute))
	if err := h.k.pods.informer.GetIndexer().Update(terminating); err != nil {
		t.Fatal(err)
	}
	if err := h.k.syncPod(ctx, "default/web"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]types.UID{"pod-uid"}, vols.tornDown); diff != "" {
		t.Errorf("torn down (-want +got):\n%s", diff)
	}
}
