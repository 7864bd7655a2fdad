package replicaset

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/skiff-project/skiff/pkg/controller/controllertest"
)

var now = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

type fixture struct {
	client   *fake.Clientset
	recorder *record.FakeRecorder
	ctrl     *Controller
	factory  informers.SharedInformerFactory
}

// newFixture builds a controller over a fake clientset holding objs, with
// the same objects seeded into the informer indexers (no informer runs).
// Pod creates get deterministic names, as the fake does not implement
// generateName.
func newFixture(t *testing.T, rc bool, objs ...runtime.Object) *fixture {
	t.Helper()
	client := fake.NewClientset(objs...)
	controllertest.GenerateNames(client, "pods")
	factory := informers.NewSharedInformerFactory(client, 0)
	recorder := record.NewFakeRecorder(100)
	clk := clocktesting.NewFakePassiveClock(now)
	var (
		ctrl *Controller
		err  error
	)
	if rc {
		ctrl, err = NewReplicationController(client, factory.Core().V1().ReplicationControllers(), factory.Core().V1().Pods(), recorder, clk)
	} else {
		ctrl, err = NewReplicaSet(client, factory.Apps().V1().ReplicaSets(), factory.Core().V1().Pods(), recorder, clk)
	}
	if err != nil {
		t.Fatal(err)
	}
	controllertest.Seed(t, factory, objs...)
	client.ClearActions()
	return &fixture{client: client, recorder: recorder, ctrl: ctrl, factory: factory}
}

// writes renders the client's write actions as "verb resource[/sub] name";
// creates show the generateName and patches their body.
func (f *fixture) writes() []string {
	return controllertest.Writes(f.client.Actions(), controllertest.CreatesByGenerateName(), controllertest.PatchBodies())
}

func (f *fixture) events() []string { return controllertest.Events(f.recorder) }

func newRS(name string, replicas int32) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID(name + "-uid"), Generation: 1},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx:1.25"}}},
			},
		},
	}
}

type podOpt func(*corev1.Pod)

func onNode(n string) podOpt { return func(p *corev1.Pod) { p.Spec.NodeName = n } }
func running(p *corev1.Pod)  { p.Status.Phase = corev1.PodRunning }
func ready(since time.Time) podOpt {
	return func(p *corev1.Pod) {
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(since)}}
	}
}
func orphan(p *corev1.Pod) { p.OwnerReferences = nil }
func labeled(k, v string) podOpt {
	return func(p *corev1.Pod) { p.Labels = map[string]string{k: v} }
}
func created(t time.Time) podOpt {
	return func(p *corev1.Pod) { p.CreationTimestamp = metav1.NewTime(t) }
}

func newPod(rs *appsv1.ReplicaSet, name string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: rs.Namespace, Name: name, UID: types.UID(name + "-uid"),
			Labels:          map[string]string{"app": rs.Spec.Selector.MatchLabels["app"]},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))},
		},
		Status: corev1.PodStatus{Phase: corev1.PodPending},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func withStatus(rs *appsv1.ReplicaSet, replicas, ready, available int32) *appsv1.ReplicaSet {
	rs.Status = appsv1.ReplicaSetStatus{Replicas: replicas, FullyLabeledReplicas: replicas, ReadyReplicas: ready, AvailableReplicas: available, ObservedGeneration: rs.Generation}
	return rs
}

func TestSyncReplicaSet(t *testing.T) {
	web := newRS("web", 3)
	tests := []struct {
		name       string
		objs       []runtime.Object
		wantWrites []string
		wantEvents []string
	}{
		{
			name: "converged replica set writes nothing",
			objs: []runtime.Object{
				withStatus(newRS("web", 3), 3, 3, 3),
				newPod(web, "web-a", onNode("n1"), ready(now.Add(-time.Hour))),
				newPod(web, "web-b", onNode("n1"), ready(now.Add(-time.Hour))),
				newPod(web, "web-c", onNode("n2"), ready(now.Add(-time.Hour))),
			},
		},
		{
			name: "scale up from zero creates pods in slow-start batches and records status",
			objs: []runtime.Object{newRS("web", 3)},
			wantWrites: []string{
				"create pods web-", "create pods web-", "create pods web-",
				"update replicasets/status web",
			},
			wantEvents: []string{
				"Normal SuccessfulCreate Created pod: web-00001",
				"Normal SuccessfulCreate Created pod: web-00002",
				"Normal SuccessfulCreate Created pod: web-00003",
			},
		},
		{
			name: "scale down deletes unassigned, then pending pods first",
			objs: []runtime.Object{
				withStatus(newRS("web", 1), 4, 2, 2),
				newPod(web, "web-ready1", onNode("n1"), ready(now.Add(-time.Hour))),
				newPod(web, "web-pending", onNode("n1")),
				newPod(web, "web-unassigned"),
				newPod(web, "web-ready2", onNode("n2"), ready(now.Add(-time.Hour))),
			},
			// web-ready1 shares node n1 with another pod; web-ready2 is alone.
			wantWrites: []string{
				"delete pods web-pending", "delete pods web-ready1", "delete pods web-unassigned",
			},
			wantEvents: []string{
				"Normal SuccessfulDelete Deleted pod: web-unassigned",
				"Normal SuccessfulDelete Deleted pod: web-pending",
				"Normal SuccessfulDelete Deleted pod: web-ready1",
			},
		},
		{
			name: "adopts a matching orphan and releases a pod that stopped matching",
			objs: []runtime.Object{
				withStatus(newRS("web", 1), 1, 1, 1),
				newPod(web, "web-orphan", orphan, onNode("n1"), ready(now.Add(-time.Hour))),
				newPod(web, "web-relabeled", labeled("app", "debug"), onNode("n1"), ready(now.Add(-time.Hour))),
			},
			wantWrites: []string{
				`patch pods web-orphan {"metadata":{"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web","uid":"web-uid","controller":true,"blockOwnerDeletion":true}],"uid":"web-orphan-uid"}}`,
				`patch pods web-relabeled {"metadata":{"ownerReferences":[{"$patch":"delete","uid":"web-uid"}],"uid":"web-relabeled-uid"}}`,
			},
		},
		{
			name: "inactive pods do not count: a failed pod is replaced",
			objs: []runtime.Object{
				withStatus(newRS("web", 1), 1, 0, 0),
				newPod(web, "web-failed", onNode("n1"), func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed }),
			},
			wantWrites: []string{"create pods web-", "update replicasets/status web"},
			wantEvents: []string{"Normal SuccessfulCreate Created pod: web-00001"},
		},
		{
			name: "minReadySeconds: ready pods are not yet available",
			objs: []runtime.Object{
				func() *appsv1.ReplicaSet {
					rs := withStatus(newRS("web", 1), 1, 0, 0)
					rs.Spec.MinReadySeconds = 30
					return rs
				}(),
				newPod(web, "web-a", onNode("n1"), ready(now.Add(-10*time.Second))),
			},
			wantWrites: []string{"update replicasets/status web"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, false, tt.objs...)
			if err := f.ctrl.sync(context.Background(), "default/web"); err != nil {
				t.Fatalf("sync: %v", err)
			}
			// Creates within a batch and deletes run concurrently: compare
			// as sets.
			if diff := cmp.Diff(sorted(tt.wantWrites), sorted(f.writes())); diff != "" {
				t.Errorf("writes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(sorted(tt.wantEvents), sorted(f.events())); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

func TestStatusAfterScaleUp(t *testing.T) {
	f := newFixture(t, false, newRS("web", 2))
	if err := f.ctrl.sync(context.Background(), "default/web"); err != nil {
		t.Fatal(err)
	}
	got, err := f.client.AppsV1().ReplicaSets("default").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The pods created by this sync are counted by the next one, once the
	// informer shows them.
	want := appsv1.ReplicaSetStatus{ObservedGeneration: 1}
	if diff := cmp.Diff(want, got.Status); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
}

func TestExpectationsPreventDoubleCreate(t *testing.T) {
	f := newFixture(t, false, withStatus(newRS("web", 2), 0, 0, 0))
	ctx := context.Background()
	if err := f.ctrl.sync(ctx, "default/web"); err != nil {
		t.Fatal(err)
	}
	f.client.ClearActions()
	// The informer has not delivered the two new pods yet: a second sync
	// must not create them again.
	if err := f.ctrl.sync(ctx, "default/web"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string(nil), f.writes()); diff != "" {
		t.Errorf("writes of second sync (-want +got):\n%s", diff)
	}
	// Observing both creations releases the controller again.
	web := newRS("web", 2)
	f.ctrl.addPod(newPod(web, "web-00001"))
	f.ctrl.addPod(newPod(web, "web-00002"))
	if !f.ctrl.expectations.satisfied("default/web") {
		t.Error("expectations not satisfied after both creations were observed")
	}
}

func TestCreateFailureSlowStartAndCondition(t *testing.T) {
	f := newFixture(t, false, withStatus(newRS("web", 5), 0, 0, 0))
	f.client.PrependReactor("create", "pods", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("quota exceeded")
	})
	err := f.ctrl.sync(context.Background(), "default/web")
	if err == nil || !strings.Contains(err.Error(), "quota exceeded") {
		t.Fatalf("sync error = %v, want quota exceeded", err)
	}
	// Slow start: the first batch of one fails, so no further creates.
	if diff := cmp.Diff([]string{"create pods web-", "update replicasets/status web"}, f.writes()); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"Warning FailedCreate Error creating: quota exceeded"}, f.events()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	got, _ := f.client.AppsV1().ReplicaSets("default").Get(context.Background(), "web", metav1.GetOptions{})
	wantCond := []appsv1.ReplicaSetCondition{{
		Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(now),
		Reason: "FailedCreate", Message: "creating pod for default/web: quota exceeded",
	}}
	if diff := cmp.Diff(wantCond, got.Status.Conditions); diff != "" {
		t.Errorf("conditions (-want +got):\n%s", diff)
	}
	// The failed creation was never going to be observed.
	if !f.ctrl.expectations.satisfied("default/web") {
		t.Error("expectations still pending after failed create")
	}
}

func TestReplicationController(t *testing.T) {
	replicas := int32(2)
	rc := &corev1.ReplicationController{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", UID: "rc-uid", Generation: 2},
		Spec: corev1.ReplicationControllerSpec{
			Replicas: &replicas,
			Selector: map[string]string{"app": "web"},
			Template: &corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
			},
		},
	}
	f := newFixture(t, true, rc)
	if err := f.ctrl.sync(context.Background(), "default/web"); err != nil {
		t.Fatal(err)
	}
	wantWrites := []string{"create pods web-", "create pods web-", "update replicationcontrollers/status web"}
	if diff := cmp.Diff(wantWrites, f.writes()); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
	pod, err := f.client.CoreV1().Pods("default").Get(context.Background(), "web-00001", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantRefs := []metav1.OwnerReference{{APIVersion: "v1", Kind: "ReplicationController", Name: "web", UID: "rc-uid", Controller: ptrTo(true), BlockOwnerDeletion: ptrTo(true)}}
	if diff := cmp.Diff(wantRefs, pod.OwnerReferences); diff != "" {
		t.Errorf("ownerReferences (-want +got):\n%s", diff)
	}
	got, _ := f.client.CoreV1().ReplicationControllers("default").Get(context.Background(), "web", metav1.GetOptions{})
	if got.Status.ObservedGeneration != 2 {
		t.Errorf("observedGeneration = %d, want 2", got.Status.ObservedGeneration)
	}
}

func TestMissingOwnerIsNoop(t *testing.T) {
	f := newFixture(t, false)
	if err := f.ctrl.sync(context.Background(), "default/gone"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string(nil), f.writes()); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
}

func TestDeleteOrder(t *testing.T) {
	rs := newRS("web", 0)
	old := now.Add(-100 * time.Hour)
	tests := []struct {
		name string
		pods []*corev1.Pod
		want []string // full deletion order
	}{
		{
			name: "unassigned < pending < unknown < running",
			pods: []*corev1.Pod{
				newPod(rs, "running", onNode("n1"), running),
				newPod(rs, "unknown", onNode("n2"), func(p *corev1.Pod) { p.Status.Phase = corev1.PodUnknown }),
				newPod(rs, "pending", onNode("n3")),
				newPod(rs, "unassigned"),
			},
			want: []string{"unassigned", "pending", "unknown", "running"},
		},
		{
			name: "not ready < ready; lower deletion cost first",
			pods: []*corev1.Pod{
				newPod(rs, "ready-cost5", onNode("n1"), ready(old), func(p *corev1.Pod) {
					p.Annotations = map[string]string{PodDeletionCostAnnotation: "5"}
				}),
				newPod(rs, "ready", onNode("n2"), ready(old)),
				newPod(rs, "notready", onNode("n3"), running),
			},
			want: []string{"notready", "ready", "ready-cost5"},
		},
		{
			name: "doubled-up nodes first, then more restarts, then newer",
			pods: []*corev1.Pod{
				newPod(rs, "alone", onNode("n1"), ready(old), created(old)),
				newPod(rs, "pair-old", onNode("n2"), ready(old), created(old)),
				newPod(rs, "pair-new", onNode("n2"), ready(old), created(now.Add(-time.Minute))),
				newPod(rs, "restarts", onNode("n3"), ready(old), created(old), func(p *corev1.Pod) {
					p.Status.ContainerStatuses = []corev1.ContainerStatus{{RestartCount: 3}}
				}),
			},
			want: []string{"pair-new", "pair-old", "restarts", "alone"},
		},
		{
			name: "ready for less time first",
			pods: []*corev1.Pod{
				newPod(rs, "ready-long", onNode("n1"), ready(old)),
				newPod(rs, "ready-short", onNode("n2"), ready(now.Add(-time.Second))),
			},
			want: []string{"ready-short", "ready-long"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Asking for all but one sorts the whole slice in place.
			all := append([]*corev1.Pod(nil), tt.pods...)
			podsToDelete(all, tt.pods, len(all)-1, now)
			names := make([]string, 0, len(all))
			for _, p := range all {
				names = append(names, p.Name)
			}
			if diff := cmp.Diff(tt.want, names); diff != "" {
				t.Errorf("deletion order (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSlowStartBatch(t *testing.T) {
	tests := []struct {
		name        string
		count       int
		failAfter   int32 // calls after which fn fails; -1 never
		wantCalls   int32
		wantSuccess int
	}{
		{name: "all succeed", count: 10, failAfter: -1, wantCalls: 10, wantSuccess: 10},
		{name: "first call fails", count: 10, failAfter: 0, wantCalls: 1, wantSuccess: 0},
		// Batches 1,2,4: the fourth call (in the batch of four) fails, so
		// that batch completes and nothing more runs.
		{name: "fails in third batch", count: 10, failAfter: 3, wantCalls: 7, wantSuccess: 3 + 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			ok, err := slowStartBatch(tt.count, 1, func() error {
				if calls.Add(1) == tt.failAfter+1 {
					return errors.New("boom")
				}
				return nil
			})
			if calls.Load() != tt.wantCalls {
				t.Errorf("calls = %d, want %d", calls.Load(), tt.wantCalls)
			}
			if ok != tt.wantSuccess {
				t.Errorf("successes = %d, want %d", ok, tt.wantSuccess)
			}
			if (err != nil) != (tt.failAfter >= 0) {
				t.Errorf("err = %v", err)
			}
		})
	}
}
