package kubelet

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// fakeRuntime is a scripted Runtime for the kubelet's own tests (the
// simulated runtime would be an import cycle): containers start at the
// first SyncPod, every pod gets IP 10.244.1.2, and containers of pods that
// do not restart always exit 0 after two seconds.
type fakeRuntime struct {
	clock clock.PassiveClock

	mu   sync.Mutex
	pods map[types.UID]*fakePod // guarded by mu
	cidr string                 // guarded by mu
	// last is the pod each UID was last synced as; guarded by mu.
	last map[types.UID]*corev1.Pod
}

type fakePod struct {
	RunningPod
	started time.Time
}

const fakeJobDuration = 2 * time.Second

func (f *fakeRuntime) Version(context.Context) (RuntimeVersion, error) {
	return RuntimeVersion{Name: "sim", Version: "1.0.0"}, nil
}

func (f *fakeRuntime) UpdatePodCIDR(_ context.Context, cidr string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cidr = cidr
	return nil
}

func (f *fakeRuntime) podCIDR() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cidr
}

func (f *fakeRuntime) SyncPod(_ context.Context, pod *corev1.Pod) (PodRuntimeStatus, error) {
	now := f.clock.Now()
	f.mu.Lock()
	p, ok := f.pods[pod.UID]
	if !ok {
		p = &fakePod{RunningPod: RunningPod{UID: pod.UID, Namespace: pod.Namespace, Name: pod.Name}, started: now}
		f.pods[pod.UID] = p
	}
	if f.last == nil {
		f.last = map[types.UID]*corev1.Pod{}
	}
	f.last[pod.UID] = pod.DeepCopy()
	f.mu.Unlock()

	rs := PodRuntimeStatus{SandboxReady: true, PodIPs: []string{"10.244.1.2"}}
	exits := pod.Spec.RestartPolicy != corev1.RestartPolicyAlways
	end := p.started.Add(fakeJobDuration)
	for _, c := range pod.Spec.Containers {
		id := "fake://" + string(pod.UID) + "/" + c.Name
		if needsResolution(&c) {
			// Like the CRI runtime: references reaching the runtime
			// cannot be resolved there.
			rs.Containers = append(rs.Containers, ContainerStatus{Name: c.Name, State: corev1.ContainerState{
				Waiting: &corev1.ContainerStateWaiting{Reason: ReasonCreateContainerConfigError, Message: "unresolved reference"}}})
			rs.Events = append(rs.Events, Event{Type: corev1.EventTypeWarning, Reason: "Failed", FieldPath: ContainerFieldPath(false, c.Name), Message: "Error: unresolved reference"})
			continue
		}
		cs := ContainerStatus{Name: c.Name, ID: id, ImageID: strings.Replace(c.Image, ":", "@sha256:", 1)}
		if exits && !now.Before(end) {
			cs.State.Terminated = &corev1.ContainerStateTerminated{Reason: "Completed", ContainerID: id,
				StartedAt: metav1.NewTime(p.started), FinishedAt: metav1.NewTime(end)}
		} else {
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(p.started)}
		}
		rs.Containers = append(rs.Containers, cs)
		if !ok {
			fp := ContainerFieldPath(false, c.Name)
			rs.Events = append(rs.Events,
				Event{Type: corev1.EventTypeNormal, Reason: "Pulled", FieldPath: fp, Message: `Container image "` + c.Image + `" already present on machine and can be accessed by the pod`},
				Event{Type: corev1.EventTypeNormal, Reason: "Created", FieldPath: fp, Message: "Container created"},
				Event{Type: corev1.EventTypeNormal, Reason: "Started", FieldPath: fp, Message: "Container started"})
		}
	}
	if exits && now.Before(end) {
		rs.NextSyncAfter = end.Sub(now)
	}
	return rs, nil
}

// lastSynced returns the pod with uid as SyncPod last received it.
func (f *fakeRuntime) lastSynced(uid types.UID) *corev1.Pod {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last[uid]
}

func (f *fakeRuntime) KillPod(_ context.Context, pod *corev1.Pod, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.pods, pod.UID)
	return nil
}

func (f *fakeRuntime) ListPods(context.Context) ([]RunningPod, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []RunningPod
	for _, p := range f.pods {
		out = append(out, p.RunningPod)
	}
	slices.SortFunc(out, func(a, b RunningPod) int { return strings.Compare(string(a.UID), string(b.UID)) })
	return out, nil
}
