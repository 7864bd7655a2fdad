package disruption

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/skiff-project/skiff/pkg/controller/controllertest"
)

var now = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

func newPDB(opts ...func(*policyv1.PodDisruptionBudget)) *policyv1.PodDisruptionBudget {
	p := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", Generation: 2},
		Spec:       policyv1.PodDisruptionBudgetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func minAvailable(v intstr.IntOrString) func(*policyv1.PodDisruptionBudget) {
	return func(p *policyv1.PodDisruptionBudget) { p.Spec.MinAvailable = &v }
}
func maxUnavailable(v intstr.IntOrString) func(*policyv1.PodDisruptionBudget) {
	return func(p *policyv1.PodDisruptionBudget) { p.Spec.MaxUnavailable = &v }
}

var deploy = &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", UID: "d-uid"}, Spec: appsv1.DeploymentSpec{Replicas: ptrTo(int32(4))}}
var rs = &appsv1.ReplicaSet{
	ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-abc", UID: "rs-uid",
		OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(deploy, appsv1.SchemeGroupVersion.WithKind("Deployment"))}},
	Spec: appsv1.ReplicaSetSpec{Replicas: ptrTo(int32(4))},
}

func ptrTo[T any](v T) *T { return &v }

func pod(name string, ready bool, opts ...func(*corev1.Pod)) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID(name), Labels: map[string]string{"app": "web"},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func bare(p *corev1.Pod) { p.OwnerReferences = nil }

func cond(allowed bool) []metav1.Condition {
	c := metav1.Condition{Type: policyv1.DisruptionAllowedCondition, Status: metav1.ConditionFalse, Reason: policyv1.InsufficientPodsReason,
		ObservedGeneration: 2, LastTransitionTime: metav1.NewTime(now)}
	if allowed {
		c.Status, c.Reason = metav1.ConditionTrue, policyv1.SufficientPodsReason
	}
	return []metav1.Condition{c}
}

func status(current, desired, expected, allowed int32) policyv1.PodDisruptionBudgetStatus {
	return policyv1.PodDisruptionBudgetStatus{ObservedGeneration: 2, CurrentHealthy: current, DesiredHealthy: desired, ExpectedPods: expected,
		DisruptionsAllowed: allowed, Conditions: cond(allowed > 0)}
}

type fixture struct {
	client   *fake.Clientset
	recorder *record.FakeRecorder
	ctrl     *Controller
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	t.Helper()
	client := fake.NewClientset(objs...)
	f := informers.NewSharedInformerFactory(client, 0)
	recorder := record.NewFakeRecorder(100)
	ctrl, err := New(client, f.Policy().V1().PodDisruptionBudgets(), f.Core().V1().Pods(), f.Core().V1().ReplicationControllers(),
		f.Apps().V1().ReplicaSets(), f.Apps().V1().Deployments(), f.Apps().V1().StatefulSets(), recorder, clocktesting.NewFakePassiveClock(now))
	if err != nil {
		t.Fatal(err)
	}
	controllertest.Seed(t, f, objs...)
	client.ClearActions()
	return &fixture{client: client, recorder: recorder, ctrl: ctrl}
}

func TestSync(t *testing.T) {
	three := []runtime.Object{rs, deploy, pod("a", true), pod("b", true), pod("c", false)}
	withStatus := func(p *policyv1.PodDisruptionBudget, st policyv1.PodDisruptionBudgetStatus) *policyv1.PodDisruptionBudget {
		p.Status = st
		return p
	}
	tests := []struct {
		name       string
		pdb        *policyv1.PodDisruptionBudget
		objs       []runtime.Object
		wantStatus *policyv1.PodDisruptionBudgetStatus // nil: no write
		wantEvents []string
	}{
		{
			name: "minAvailable number: expected is the pod count",
			pdb:  newPDB(minAvailable(intstr.FromInt32(1))), objs: three,
			wantStatus: ptrTo(status(2, 1, 3, 1)),
		},
		{
			name: "minAvailable percent of the deployment's scale, rounded up",
			pdb:  newPDB(minAvailable(intstr.FromString("50%"))), objs: three,
			wantStatus: ptrTo(status(2, 2, 4, 0)),
		},
		{
			name: "maxUnavailable against the deployment's scale",
			pdb:  newPDB(maxUnavailable(intstr.FromInt32(3))), objs: three,
			wantStatus: ptrTo(status(2, 1, 4, 1)),
		},
		{
			name: "maxUnavailable with bare pods counts the pods",
			pdb:  newPDB(maxUnavailable(intstr.FromInt32(1))), objs: []runtime.Object{pod("a", true, bare), pod("b", true, bare)},
			wantStatus: ptrTo(status(2, 1, 2, 1)),
		},
		{
			name: "terminating and just-evicted pods are not healthy",
			pdb: newPDB(minAvailable(intstr.FromInt32(1)), func(p *policyv1.PodDisruptionBudget) {
				p.Status.DisruptedPods = map[string]metav1.Time{"a": metav1.NewTime(now.Add(-time.Minute)), "gone": metav1.NewTime(now)}
			}),
			objs: []runtime.Object{rs, deploy, pod("a", true), pod("b", true, func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{Time: now} }), pod("c", true)},
			wantStatus: func() *policyv1.PodDisruptionBudgetStatus {
				s := status(1, 1, 3, 0)
				s.DisruptedPods = map[string]metav1.Time{"a": metav1.NewTime(now.Add(-time.Minute))}
				return &s
			}(),
		},
		{
			name:       "no pods",
			pdb:        newPDB(minAvailable(intstr.FromInt32(1))),
			wantStatus: ptrTo(status(0, 1, 0, 0)),
			wantEvents: []string{"Normal NoPods No matching pods found"},
		},
		{
			name: "converged budget writes nothing",
			pdb:  withStatus(newPDB(minAvailable(intstr.FromInt32(1))), status(2, 1, 3, 1)), objs: three,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, append([]runtime.Object{tt.pdb}, tt.objs...)...)
			if err := f.ctrl.sync(t.Context(), "default/web"); err != nil {
				t.Fatalf("sync: %v", err)
			}
			var got *policyv1.PodDisruptionBudgetStatus
			var writes []string
			for _, a := range f.client.Actions() {
				if a.GetVerb() == "update" {
					writes = append(writes, fmt.Sprintf("update %s/%s", a.GetResource().Resource, a.GetSubresource()))
					got = &a.(clienttesting.UpdateAction).GetObject().(*policyv1.PodDisruptionBudget).Status
				}
			}
			var wantWrites []string
			if tt.wantStatus != nil {
				wantWrites = []string{"update poddisruptionbudgets/status"}
			}
			if diff := cmp.Diff(wantWrites, writes); diff != "" {
				t.Errorf("writes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantStatus, got); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
			events := controllertest.Events(f.recorder)
			if diff := cmp.Diff(tt.wantEvents, events); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetConditionKeepsTransitionTime(t *testing.T) {
	earlier := metav1.NewTime(now.Add(-time.Hour))
	conds := []metav1.Condition{{Type: policyv1.DisruptionAllowedCondition, Status: metav1.ConditionTrue, Reason: policyv1.SufficientPodsReason, LastTransitionTime: earlier}}
	setCondition(&conds, metav1.Condition{Type: policyv1.DisruptionAllowedCondition, Status: metav1.ConditionTrue, Reason: policyv1.SufficientPodsReason, ObservedGeneration: 3}, now)
	if !conds[0].LastTransitionTime.Equal(&earlier) || conds[0].ObservedGeneration != 3 {
		t.Errorf("same status: got %+v, want transition time kept and generation 3", conds[0])
	}
	setCondition(&conds, metav1.Condition{Type: policyv1.DisruptionAllowedCondition, Status: metav1.ConditionFalse, Reason: policyv1.InsufficientPodsReason}, now)
	if !conds[0].LastTransitionTime.Time.Equal(now) || conds[0].Reason != policyv1.InsufficientPodsReason {
		t.Errorf("status change: got %+v, want transition at now with InsufficientPods", conds[0])
	}
}
