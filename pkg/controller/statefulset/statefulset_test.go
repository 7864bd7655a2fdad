package statefulset

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/skiff-project/skiff/pkg/controller/controllertest"
)

var now = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

func newSet(replicas int32, opts ...func(*appsv1.StatefulSet)) *appsv1.StatefulSet {
	s := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", UID: "web-uid", Generation: 1},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    &replicas,
			ServiceName: "nginx",
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx:1"}}},
			},
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
		},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func image(i string) func(*appsv1.StatefulSet) {
	return func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.Containers[0].Image = i }
}
func parallel(s *appsv1.StatefulSet) { s.Spec.PodManagementPolicy = appsv1.ParallelPodManagement }
func partition(p int32) func(*appsv1.StatefulSet) {
	return func(s *appsv1.StatefulSet) {
		s.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{Partition: &p}
	}
}
func withClaims(s *appsv1.StatefulSet) {
	s.Spec.VolumeClaimTemplates = []corev1.PersistentVolumeClaim{{
		ObjectMeta: metav1.ObjectMeta{Name: "www"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}}
}

type podOpt func(*corev1.Pod)

func readyPod(p *corev1.Pod) {
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(now.Add(-time.Hour))}}
}
func failed(p *corev1.Pod)      { p.Status.Phase = corev1.PodFailed }
func terminating(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{Time: now} }

// replica is set's pod ord at the revision of set's template.
func replica(set *appsv1.StatefulSet, ord int, opts ...podOpt) *corev1.Pod {
	p := newPod(set, &set.Spec.Template, revisionName(set), ord)
	p.UID = types.UID(p.Name + "-uid")
	p.Status.Phase = corev1.PodPending
	for _, o := range opts {
		o(p)
	}
	return p
}

func render(actions []Action) []string {
	var out []string
	for _, a := range actions {
		switch a.Type {
		case CreatePod:
			out = append(out, fmt.Sprintf("create %d @%s", a.Ordinal, a.Revision))
		case DeletePod:
			out = append(out, fmt.Sprintf("delete %s", a.Pod.Name))
		}
	}
	return out
}

func TestDecide(t *testing.T) {
	v1, v2 := newSet(3), newSet(3, image("nginx:2"))
	r1 := revisionName(v1)
	tests := []struct {
		name   string
		set    *appsv1.StatefulSet
		pods   []*corev1.Pod
		status appsv1.StatefulSetStatus
		want   []string
	}{
		{name: "OrderedReady creates web-0 first", set: v1, want: []string{"create 0 @" + r1}},
		{
			name: "OrderedReady waits for web-0 to be Running and Ready",
			set:  v1, pods: []*corev1.Pod{replica(v1, 0)},
		},
		{
			name: "OrderedReady creates the next ordinal once its predecessor is ready",
			set:  v1, pods: []*corev1.Pod{replica(v1, 0, readyPod)},
			want: []string{"create 1 @" + r1},
		},
		{
			name: "a gap is filled before anything else",
			set:  v1, pods: []*corev1.Pod{replica(v1, 0, readyPod), replica(v1, 2, readyPod)},
			want: []string{"create 1 @" + r1},
		},
		{
			name: "Parallel creates every missing replica at once",
			set:  newSet(3, parallel), pods: []*corev1.Pod{replica(v1, 1)},
			want: []string{"create 0 @" + r1, "create 2 @" + r1},
		},
		{
			name: "failed replica is deleted for recreation",
			set:  v1, pods: []*corev1.Pod{replica(v1, 0, readyPod), replica(v1, 1, failed), replica(v1, 2, readyPod)},
			want: []string{"delete web-1"},
		},
		{
			name: "converged: nothing",
			set:  v1, pods: []*corev1.Pod{replica(v1, 0, readyPod), replica(v1, 1, readyPod), replica(v1, 2, readyPod)},
		},
		{
			name: "scale down deletes the highest ordinal, one at a time",
			set:  newSet(1), pods: []*corev1.Pod{replica(v1, 0, readyPod), replica(v1, 1, readyPod), replica(v1, 2, readyPod)},
			want: []string{"delete web-2"},
		},
		{
			name: "scale down waits for the terminating replica",
			set:  newSet(1), pods: []*corev1.Pod{replica(v1, 0, readyPod), replica(v1, 1, readyPod), replica(v1, 2, readyPod, terminating)},
		},
		{
			name: "scale down waits while a kept replica is unhealthy",
			set:  newSet(1), pods: []*corev1.Pod{replica(v1, 0), replica(v1, 1, readyPod)},
		},
		{
			name: "Parallel scale down deletes all condemned replicas",
			set:  newSet(1, parallel), pods: []*corev1.Pod{replica(v1, 0, readyPod), replica(v1, 1, readyPod), replica(v1, 2, readyPod)},
			want: []string{"delete web-2", "delete web-1"},
		},
		{
			name: "rolling update replaces the highest ordinal first",
			set:  v2, pods: []*corev1.Pod{replica(v1, 0, readyPod), replica(v1, 1, readyPod), replica(v1, 2, readyPod)},
			want: []string{"delete web-2"},
		},
		{
			name: "rolling update waits for the replaced replica to become ready",
			set:  v2, pods: []*corev1.Pod{replica(v1, 0, readyPod), replica(v1, 1, readyPod), replica(v2, 2)},
		},
		{
			name: "rolling update continues downwards",
			set:  v2, pods: []*corev1.Pod{replica(v1, 0, readyPod), replica(v1, 1, readyPod), replica(v2, 2, readyPod)},
			want: []string{"delete web-1"},
		},
		{
			name: "partition keeps lower ordinals at the current revision",
			set:  newSet(3, image("nginx:2"), partition(2)), pods: []*corev1.Pod{replica(v1, 0, readyPod), replica(v1, 1, readyPod), replica(v2, 2, readyPod)},
		},
		{
			name: "a replica below the partition is recreated at the current revision",
			set:  newSet(3, image("nginx:2"), partition(2)), pods: []*corev1.Pod{replica(v1, 1, readyPod), replica(v2, 2, readyPod)},
			want: []string{"create 0 @" + r1},
		},
		{
			name: "OnDelete never deletes outdated replicas",
			set:  newSet(1, image("nginx:2"), func(s *appsv1.StatefulSet) { s.Spec.UpdateStrategy.Type = appsv1.OnDeleteStatefulSetStrategyType }),
			pods: []*corev1.Pod{replica(v1, 0, readyPod)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := render(Decide(Snapshot{Set: tt.set, Pods: tt.pods, CurrentRevision: r1, UpdateRevision: revisionName(tt.set), Now: now}))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewPodIdentity(t *testing.T) {
	set := newSet(3, withClaims, func(s *appsv1.StatefulSet) {
		s.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "www"}, {Name: "cfg"}}
	})
	pod := newPod(set, &set.Spec.Template, "web-abc", 2)
	want := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-2", Namespace: "default",
			Labels:          map[string]string{"app": "web", PodNameLabel: "web-2", PodIndexLabel: "2", RevisionHashLabel: "web-abc"},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(set, setKind)},
		},
		Spec: corev1.PodSpec{
			Hostname: "web-2", Subdomain: "nginx",
			Containers: []corev1.Container{{Name: "c", Image: "nginx:1"}},
			Volumes: []corev1.Volume{
				{Name: "www", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "www-web-2"}}},
				{Name: "cfg"},
			},
		},
	}
	if diff := cmp.Diff(want, pod); diff != "" {
		t.Errorf("pod (-want +got):\n%s", diff)
	}
}

type fixture struct {
	client   *fake.Clientset
	recorder *record.FakeRecorder
	ctrl     *Controller
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	t.Helper()
	client := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	recorder := record.NewFakeRecorder(100)
	ctrl, err := New(client, factory.Apps().V1().StatefulSets(), factory.Core().V1().Pods(), factory.Core().V1().PersistentVolumeClaims(),
		factory.Apps().V1().ControllerRevisions(), recorder, clocktesting.NewFakePassiveClock(now))
	if err != nil {
		t.Fatal(err)
	}
	controllertest.Seed(t, factory, objs...)
	client.ClearActions()
	return &fixture{client: client, recorder: recorder, ctrl: ctrl}
}

func (f *fixture) writes() []string { return controllertest.Writes(f.client.Actions()) }

func (f *fixture) events() []string { return controllertest.Events(f.recorder) }

func revisionObj(t *testing.T, set *appsv1.StatefulSet, rev int64) *appsv1.ControllerRevision {
	t.Helper()
	patch, err := revisionPatch(set)
	if err != nil {
		t.Fatal(err)
	}
	name := revisionName(set)
	return &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{"app": "web", RevisionHashLabel: name},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(set, setKind)}},
		Data: runtime.RawExtension{Raw: patch}, Revision: rev,
	}
}

func converged(set *appsv1.StatefulSet) *appsv1.StatefulSet {
	r := *set.Spec.Replicas
	set.Status = appsv1.StatefulSetStatus{ObservedGeneration: 1, Replicas: r, ReadyReplicas: r, AvailableReplicas: r, CurrentReplicas: r, UpdatedReplicas: r,
		CurrentRevision: revisionName(set), UpdateRevision: revisionName(set), CollisionCount: new(int32)}
	return set
}

func TestSync(t *testing.T) {
	v1 := newSet(2, withClaims)
	r1 := revisionName(v1)
	tests := []struct {
		name       string
		objs       []runtime.Object
		wantWrites []string
		wantEvents []string
	}{
		{
			name:       "new set: revision, claim, then web-0, then status",
			objs:       []runtime.Object{newSet(2, withClaims)},
			wantWrites: []string{"create controllerrevisions " + r1, "create persistentvolumeclaims www-web-0", "create pods web-0", "update statefulsets/status web"},
			wantEvents: []string{
				"Normal SuccessfulCreate create Claim www-web-0 Pod web-0 in StatefulSet web success",
				"Normal SuccessfulCreate create Pod web-0 in StatefulSet web successful",
			},
		},
		{
			name: "converged set writes nothing",
			objs: []runtime.Object{converged(newSet(2, withClaims)), revisionObj(t, v1, 1), replica(v1, 0, readyPod), replica(v1, 1, readyPod)},
		},
		{
			name: "existing claim is reused",
			objs: []runtime.Object{converged(newSet(2, withClaims)), revisionObj(t, v1, 1), replica(v1, 0, readyPod),
				&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "www-web-1"}}},
			wantWrites: []string{"create pods web-1", "update statefulsets/status web"},
			wantEvents: []string{"Normal SuccessfulCreate create Pod web-1 in StatefulSet web successful"},
		},
		{
			name: "scale down with WhenScaled=Delete hands the claim to the pod, then deletes it",
			objs: []runtime.Object{
				converged(newSet(1, withClaims, func(s *appsv1.StatefulSet) {
					s.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{WhenScaled: appsv1.DeletePersistentVolumeClaimRetentionPolicyType}
				})),
				revisionObj(t, v1, 1), replica(v1, 0, readyPod), replica(v1, 1, readyPod),
				&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "www-web-1"}},
			},
			wantWrites: []string{"update persistentvolumeclaims www-web-1", "delete pods web-1", "update statefulsets/status web"},
			wantEvents: []string{"Normal SuccessfulDelete delete Pod web-1 in StatefulSet web successful"},
		},
		{
			name: "deleted set: nothing",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.objs...)
			if err := f.ctrl.sync(t.Context(), "default/web"); err != nil {
				t.Fatalf("sync: %v", err)
			}
			if diff := cmp.Diff(tt.wantWrites, f.writes()); diff != "" {
				t.Errorf("writes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantEvents, f.events()); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCalculateStatusCompletesRollout(t *testing.T) {
	v1, v2 := newSet(2), newSet(2, image("nginx:2"))
	tests := []struct {
		name string
		pods []*corev1.Pod
		want appsv1.StatefulSetStatus
	}{
		{
			name: "mid rollout",
			pods: []*corev1.Pod{replica(v1, 0, readyPod), replica(v2, 1)},
			want: appsv1.StatefulSetStatus{ObservedGeneration: 1, Replicas: 2, ReadyReplicas: 1, AvailableReplicas: 1, CurrentReplicas: 1, UpdatedReplicas: 1,
				CurrentRevision: revisionName(v1), UpdateRevision: revisionName(v2), CollisionCount: new(int32)},
		},
		{
			name: "all updated and ready: update revision becomes current",
			pods: []*corev1.Pod{replica(v2, 0, readyPod), replica(v2, 1, readyPod)},
			want: appsv1.StatefulSetStatus{ObservedGeneration: 1, Replicas: 2, ReadyReplicas: 2, AvailableReplicas: 2, CurrentReplicas: 2, UpdatedReplicas: 2,
				CurrentRevision: revisionName(v2), UpdateRevision: revisionName(v2), CollisionCount: new(int32)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := calculateStatus(Snapshot{Set: v2, Pods: tt.pods, CurrentRevision: revisionName(v1), UpdateRevision: revisionName(v2), Now: now})
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
		})
	}
}
