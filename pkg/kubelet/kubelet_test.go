package kubelet

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

// apiNoise ignores what the fake API server adds to stored objects.
var apiNoise = cmp.Options{
	cmpopts.IgnoreTypes(metav1.TypeMeta{}),
	cmpopts.IgnoreFields(metav1.ObjectMeta{}, "ManagedFields", "ResourceVersion"),
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func mt(d time.Duration) metav1.Time { return metav1.NewTime(t0.Add(d)) }

// recorder captures events as "reason fieldPath: message" lines.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) Event(obj runtime.Object, _, reason, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ref, _ := obj.(*corev1.ObjectReference)
	line := ref.Kind + "/" + ref.Name + " " + reason
	if ref.FieldPath != "" {
		line += " " + ref.FieldPath
	}
	r.events = append(r.events, line+": "+msg)
}

func (r *recorder) Eventf(obj runtime.Object, typ, reason, format string, args ...interface{}) {
	r.Event(obj, typ, reason, fmt.Sprintf(format, args...))
}

func (r *recorder) AnnotatedEventf(obj runtime.Object, _ map[string]string, typ, reason, format string, args ...interface{}) {
	r.Eventf(obj, typ, reason, format, args...)
}

// take returns and clears the recorded events.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.events
	r.events = nil
	return e
}

type harness struct {
	k      *Kubelet
	client *fake.Clientset
	clock  *clocktesting.FakeClock
	rt     *fakeRuntime
	rec    *recorder
}

func capacity() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("4"),
		corev1.ResourceMemory:           resource.MustParse("8Gi"),
		corev1.ResourcePods:             resource.MustParse("110"),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
}

func newHarness(t testing.TB, objs ...runtime.Object) *harness {
	t.Helper()
	h := &harness{
		client: fake.NewClientset(objs...),
		clock:  clocktesting.NewFakeClock(t0),
		rec:    &recorder{},
	}
	h.rt = &fakeRuntime{clock: h.clock, pods: map[types.UID]*fakePod{}}
	var err error
	h.k, err = New(Config{
		NodeName: "node-1", Client: h.client, Runtime: h.rt, Clock: h.clock, Recorder: h.rec,
		Capacity:   capacity(),
		Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.1.10"}, {Type: corev1.NodeHostName, Address: "node-1"}},
		SystemInfo: corev1.NodeSystemInfo{MachineID: "m", SystemUUID: "u", BootID: "b", KernelVersion: "6.1", OSImage: "Debian", OperatingSystem: "linux", Architecture: "amd64"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// writes returns the mutating actions recorded since the last call, as
// "verb resource[/subresource] name" strings, and clears the record.
func (h *harness) writes() []string {
	var out []string
	for _, a := range h.client.Actions() {
		if a.GetVerb() == "get" || a.GetVerb() == "list" || a.GetVerb() == "watch" {
			continue
		}
		s := a.GetVerb() + " " + a.GetResource().Resource
		if a.GetSubresource() != "" {
			s += "/" + a.GetSubresource()
		}
		out = append(out, s)
	}
	h.client.ClearActions()
	return out
}

// refreshCache copies the API server's version of the pod into the pod
// source, as the informer would.
func (h *harness) refreshCache(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	p, err := h.client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.k.pods.informer.GetIndexer().Update(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func wantNode() *corev1.Node {
	cond := func(typ corev1.NodeConditionType, st corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: typ, Status: st, Reason: reason, Message: msg, LastHeartbeatTime: mt(0), LastTransitionTime: mt(0)}
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: "node-1",
			Labels: map[string]string{
				"kubernetes.io/hostname": "node-1", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
				"beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
			},
			Annotations: map[string]string{"volumes.kubernetes.io/controller-managed-attach-detach": "true"},
		},
		Status: corev1.NodeStatus{
			Capacity:    capacity(),
			Allocatable: capacity(),
			Addresses:   []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.1.10"}, {Type: corev1.NodeHostName, Address: "node-1"}},
			Conditions: []corev1.NodeCondition{
				cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
				cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
				cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
				cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"),
			},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
			NodeInfo: corev1.NodeSystemInfo{
				MachineID: "m", SystemUUID: "u", BootID: "b", KernelVersion: "6.1", OSImage: "Debian",
				ContainerRuntimeVersion: "sim://1.0.0", KubeletVersion: "v1.37.2", OperatingSystem: "linux", Architecture: "amd64",
			},
		},
	}
}

var nodeEvents = []string{
	"Node/node-1 NodeHasSufficientMemory: Node node-1 status is now: NodeHasSufficientMemory",
	"Node/node-1 NodeHasNoDiskPressure: Node node-1 status is now: NodeHasNoDiskPressure",
	"Node/node-1 NodeHasSufficientPID: Node node-1 status is now: NodeHasSufficientPID",
	"Node/node-1 NodeReady: Node node-1 status is now: NodeReady",
}

func TestRegisterNodeCreates(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	if err := h.k.registerNode(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := h.client.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantNode(), got, apiNoise); diff != "" {
		t.Errorf("registered node (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"create nodes"}, h.writes()); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(nodeEvents, h.rec.take()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestRegisterNodeAdoptsExisting(t *testing.T) {
	ctx := context.Background()
	existing := wantNode()
	existing.Labels = map[string]string{"team": "a"}
	existing.Spec.PodCIDR = "10.244.7.0/24"
	for i := range existing.Status.Conditions {
		c := &existing.Status.Conditions[i]
		c.Status, c.Reason, c.LastTransitionTime = corev1.ConditionUnknown, "NodeStatusUnknown", mt(-time.Hour)
	}
	h := newHarness(t, existing)
	if err := h.k.registerNode(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := h.client.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := wantNode()
	want.Labels["team"] = "a"
	want.Spec.PodCIDR = "10.244.7.0/24"
	if diff := cmp.Diff(want, got, apiNoise); diff != "" {
		t.Errorf("adopted node (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"create nodes", "update nodes", "update nodes/status"}, h.writes()); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(nodeEvents, h.rec.take()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if got := h.rt.podCIDR(); got != "10.244.7.0/24" {
		t.Errorf("runtime pod CIDR = %q, want 10.244.7.0/24", got)
	}
}

func TestNodeStatusWrittenOnlyWhenChangedOrDue(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	if err := h.k.registerNode(ctx); err != nil {
		t.Fatal(err)
	}
	h.writes()
	h.rec.take()
	steps := []struct {
		name       string
		advance    time.Duration
		mutate     func(*Kubelet)
		wantWrites []string
	}{
		{name: "unchanged after 10s: heartbeat is the Lease, no write", advance: 10 * time.Second},
		{name: "unchanged after 4m50s", advance: 4*time.Minute + 40*time.Second},
		{name: "report frequency (5m) elapsed", advance: 10 * time.Second, wantWrites: []string{"update nodes/status"}},
		{name: "unchanged again", advance: 10 * time.Second},
		{name: "capacity changed", advance: 10 * time.Second, wantWrites: []string{"update nodes/status"},
			mutate: func(k *Kubelet) { k.cfg.Capacity = corev1.ResourceList{corev1.ResourcePods: resource.MustParse("50")} }},
	}
	for _, s := range steps {
		h.clock.Step(s.advance)
		if s.mutate != nil {
			s.mutate(h.k)
		}
		if err := h.k.syncNodeStatus(ctx, false); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if diff := cmp.Diff(s.wantWrites, h.writes()); diff != "" {
			t.Errorf("%s: writes (-want +got):\n%s", s.name, diff)
		}
	}
	got, err := h.client.CoreV1().Nodes().Get(ctx, "node-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ready := got.Status.Conditions[3]
	if diff := cmp.Diff([]metav1.Time{mt(5*time.Minute + 20*time.Second), mt(0)}, []metav1.Time{ready.LastHeartbeatTime, ready.LastTransitionTime}); diff != "" {
		t.Errorf("Ready heartbeat/transition (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string(nil), h.rec.take()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestLeaseCreatedAndRenewed(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	if err := h.k.registerNode(ctx); err != nil {
		t.Fatal(err)
	}
	h.writes()
	h.k.node.UID = "node-uid" // the fake API server assigns none
	want := func(renew time.Duration) *coordinationv1.Lease {
		return &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{
				Name: "node-1", Namespace: "kube-node-lease",
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: "node-1", UID: "node-uid"}},
			},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity: new("node-1"), LeaseDurationSeconds: new(int32(40)),
				RenewTime: new(metav1.NewMicroTime(t0.Add(renew))),
			},
		}
	}
	steps := []struct {
		name       string
		advance    time.Duration
		wantWrites []string
	}{
		{name: "first renewal creates", wantWrites: []string{"create leases"}},
		{name: "renewal after 10s is one update", advance: 10 * time.Second, wantWrites: []string{"update leases"}},
		{name: "and again", advance: 10 * time.Second, wantWrites: []string{"update leases"}},
	}
	var elapsed time.Duration
	for _, s := range steps {
		h.clock.Step(s.advance)
		elapsed += s.advance
		if err := h.k.renewLease(ctx); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if diff := cmp.Diff(s.wantWrites, h.writes()); diff != "" {
			t.Errorf("%s: writes (-want +got):\n%s", s.name, diff)
		}
		got, err := h.client.CoordinationV1().Leases("kube-node-lease").Get(ctx, "node-1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want(elapsed), got, apiNoise); diff != "" {
			t.Errorf("%s: lease (-want +got):\n%s", s.name, diff)
		}
		h.client.ClearActions()
	}

	// Someone deletes the Lease: the next renewal re-creates it.
	if err := h.client.CoordinationV1().Leases("kube-node-lease").Delete(ctx, "node-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.client.ClearActions()
	if err := h.k.renewLease(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"update leases", "create leases"}, h.writes()); diff != "" {
		t.Errorf("after deletion: writes (-want +got):\n%s", diff)
	}
}

func nginxPod(restart corev1.RestartPolicy) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "pod-uid", CreationTimestamp: mt(-time.Minute)},
		Spec: corev1.PodSpec{
			NodeName:      "node-1",
			RestartPolicy: restart,
			Containers: []corev1.Container{{Name: "nginx", Image: "nginx:1.25", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")},
			}}},
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodPending,
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: mt(-time.Minute)},
			},
		},
	}
}

// seedPod creates pod in the fake API server and the pod cache.
func (h *harness) seedPod(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	if _, err := h.client.CoreV1().Pods(pod.Namespace).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := h.k.pods.add(pod); err != nil {
		t.Fatal(err)
	}
	h.client.ClearActions()
}

func runningStatus(at time.Duration) corev1.PodStatus {
	cid := "fake://pod-uid/nginx"
	return corev1.PodStatus{
		Phase: corev1.PodRunning,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodReadyToStartContainers, Status: corev1.ConditionTrue, LastTransitionTime: mt(at)},
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: mt(at)},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: mt(at)},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: mt(at)},
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: mt(-time.Minute)},
		},
		HostIP:    "192.168.1.10",
		HostIPs:   []corev1.HostIP{{IP: "192.168.1.10"}},
		PodIP:     "10.244.1.2",
		PodIPs:    []corev1.PodIP{{IP: "10.244.1.2"}},
		StartTime: new(mt(at)),
		QOSClass:  corev1.PodQOSBurstable,
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: "nginx", Image: "nginx:1.25", ImageID: "nginx@sha256:1.25", ContainerID: cid,
			State:   corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: mt(at)}},
			Ready:   true,
			Started: new(true),
		}},
	}
}

func TestPodGoesRunningThenConvergedPodWritesNothing(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.seedPod(t, nginxPod(corev1.RestartPolicyAlways))

	if err := h.k.syncPod(ctx, "default/web"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"update pods/status"}, h.writes()); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
	got := h.refreshCache(t, "default", "web")
	if diff := cmp.Diff(runningStatus(0), got.Status); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	wantEvents := []string{
		`Pod/web Pulled spec.containers{nginx}: Container image "nginx:1.25" already present on machine and can be accessed by the pod`,
		"Pod/web Created spec.containers{nginx}: Container created",
		"Pod/web Started spec.containers{nginx}: Container started",
	}
	if diff := cmp.Diff(wantEvents, h.rec.take()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}

	// Converged: any number of later syncs write nothing and record nothing.
	for range 3 {
		h.clock.Step(time.Minute)
		if err := h.k.syncPod(ctx, "default/web"); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]string(nil), h.writes()); diff != "" {
		t.Errorf("converged pod writes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string(nil), h.rec.take()); diff != "" {
		t.Errorf("converged pod events (-want +got):\n%s", diff)
	}
}

func TestJobPodSucceeds(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.seedPod(t, nginxPod(corev1.RestartPolicyNever))

	if err := h.k.syncPod(ctx, "default/web"); err != nil {
		t.Fatal(err)
	}
	if got := h.refreshCache(t, "default", "web"); got.Status.Phase != corev1.PodRunning {
		t.Fatalf("phase after first sync = %s, want Running", got.Status.Phase)
	}
	// The runtime asked for a sync when the job ends.
	if got := h.k.queue.Len(); got != 0 {
		t.Fatalf("queue length before the job ends = %d, want 0", got)
	}
	h.clock.Step(2 * time.Second)
	if !waitForQueue(h.k, 1) {
		t.Fatal("the delayed sync was not queued at the end of the job")
	}
	h.writes()
	if err := h.k.syncPod(ctx, "default/web"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"update pods/status"}, h.writes()); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
	got := h.refreshCache(t, "default", "web")
	cid := "fake://pod-uid/nginx"
	want := runningStatus(0)
	want.Phase = corev1.PodSucceeded
	want.Conditions = []corev1.PodCondition{
		{Type: corev1.PodReadyToStartContainers, Status: corev1.ConditionTrue, LastTransitionTime: mt(0)},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, Reason: "PodCompleted", LastTransitionTime: mt(0)},
		{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "PodCompleted", LastTransitionTime: mt(2 * time.Second)},
		{Type: corev1.ContainersReady, Status: corev1.ConditionFalse, Reason: "PodCompleted", LastTransitionTime: mt(2 * time.Second)},
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: mt(-time.Minute)},
	}
	want.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: 0, Reason: "Completed", StartedAt: mt(0), FinishedAt: mt(2 * time.Second), ContainerID: cid,
	}}
	want.ContainerStatuses[0].Ready = false
	want.ContainerStatuses[0].Started = new(false)
	if diff := cmp.Diff(want, got.Status); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}

	// The terminal pod is never written again, and its containers stay
	// in the runtime (for their logs) until the pod is deleted.
	for range 2 {
		if err := h.k.syncPod(ctx, "default/web"); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]string(nil), h.writes()); diff != "" {
		t.Errorf("terminal pod writes (-want +got):\n%s", diff)
	}
	if pods, _ := h.rt.ListPods(ctx); len(pods) != 1 {
		t.Errorf("runtime holds %v after the pod succeeded, want the pod kept until deletion", pods)
	}
	if err := h.client.CoreV1().Pods("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := h.k.pods.informer.GetIndexer().Delete(got); err != nil {
		t.Fatal(err)
	}
	if err := h.k.syncPod(ctx, "default/web"); err != nil {
		t.Fatal(err)
	}
	if pods, _ := h.rt.ListPods(ctx); len(pods) != 0 {
		t.Errorf("runtime still holds %v after the terminal pod was deleted", pods)
	}
}

// waitForQueue reports whether the queue holds n keys; the delaying queue
// moves due keys in its own goroutine after the fake clock steps, so this
// waits on the queue itself (Get blocks until an item is ready), never on
// wall-clock time.
func waitForQueue(k *Kubelet, n int) bool {
	for i := 0; i < n; i++ {
		key, shutdown := k.queue.Get()
		if shutdown {
			return false
		}
		k.queue.Done(key)
	}
	return true
}

func TestDeletionKillsThenDeletesWithUIDPrecondition(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	pod := nginxPod(corev1.RestartPolicyAlways)
	h.seedPod(t, pod)
	if err := h.k.syncPod(ctx, "default/web"); err != nil {
		t.Fatal(err)
	}
	running := h.refreshCache(t, "default", "web")
	h.writes()
	h.rec.take()

	terminating := running.DeepCopy()
	terminating.DeletionTimestamp = new(mt(time.Minute))
	terminating.DeletionGracePeriodSeconds = new(int64(30))
	if err := h.k.pods.informer.GetIndexer().Update(terminating); err != nil {
		t.Fatal(err)
	}
	if err := h.k.syncPod(ctx, "default/web"); err != nil {
		t.Fatal(err)
	}
	var deletes []k8stesting.DeleteActionImpl
	for _, a := range h.client.Actions() {
		if d, ok := a.(k8stesting.DeleteActionImpl); ok {
			deletes = append(deletes, d)
		}
	}
	if len(deletes) != 1 {
		t.Fatalf("got %d deletes, want 1: %v", len(deletes), h.client.Actions())
	}
	wantOpts := metav1.DeleteOptions{GracePeriodSeconds: new(int64(0)), Preconditions: &metav1.Preconditions{UID: new(types.UID("pod-uid"))}}
	if diff := cmp.Diff(wantOpts, deletes[0].DeleteOptions); diff != "" {
		t.Errorf("delete options (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"Pod/web Killing spec.containers{nginx}: Stopping container nginx"}, h.rec.take()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if pods, _ := h.rt.ListPods(ctx); len(pods) != 0 {
		t.Errorf("runtime still holds %v after deletion", pods)
	}
}

func TestRecreatedPodKillsOldInstance(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.seedPod(t, nginxPod(corev1.RestartPolicyAlways))
	if err := h.k.syncPod(ctx, "default/web"); err != nil {
		t.Fatal(err)
	}
	// Force-deleted and re-created under the same name with a new UID.
	if err := h.client.CoreV1().Pods("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	again := nginxPod(corev1.RestartPolicyAlways)
	again.UID = "pod-uid-2"
	if _, err := h.client.CoreV1().Pods("default").Create(ctx, again, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.refreshCache(t, "default", "web")
	if err := h.k.syncPod(ctx, "default/web"); err != nil {
		t.Fatal(err)
	}
	pods, err := h.rt.ListPods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []RunningPod{{UID: "pod-uid-2", Namespace: "default", Name: "web"}}
	if diff := cmp.Diff(want, pods); diff != "" {
		t.Errorf("runtime pods (-want +got):\n%s", diff)
	}
}

func TestAdoptRuntimePodsCleansPodsDeletedWhileDown(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	kept := nginxPod(corev1.RestartPolicyAlways)
	h.seedPod(t, kept)
	gone := nginxPod(corev1.RestartPolicyAlways)
	gone.Name, gone.UID = "gone", "gone-uid"
	for _, p := range []*corev1.Pod{kept, gone} {
		if _, err := h.rt.SyncPod(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.k.adoptRuntimePods(ctx); err != nil {
		t.Fatal(err)
	}
	pods, err := h.rt.ListPods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]RunningPod{{UID: "pod-uid", Namespace: "default", Name: "web"}}, pods); diff != "" {
		t.Errorf("runtime pods (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]types.UID{"default/web": "pod-uid"}, h.k.known); diff != "" {
		t.Errorf("adopted pods (-want +got):\n%s", diff)
	}
}

func TestPodOfOtherNodeIsIgnored(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	pod := nginxPod(corev1.RestartPolicyAlways)
	pod.Spec.NodeName = "node-2"
	h.seedPod(t, pod)
	if err := h.k.syncPod(ctx, "default/web"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string(nil), h.writes()); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
}
