package deployment

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/skiff-project/skiff/pkg/controller/controllertest"
)

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
	ctrl, err := New(client, factory.Apps().V1().Deployments(), factory.Apps().V1().ReplicaSets(), factory.Core().V1().Pods(),
		recorder, clocktesting.NewFakePassiveClock(now))
	if err != nil {
		t.Fatal(err)
	}
	controllertest.Seed(t, factory, objs...)
	client.ClearActions()
	return &fixture{client: client, recorder: recorder, ctrl: ctrl}
}

func (f *fixture) writes() []string { return controllertest.Writes(f.client.Actions()) }

func (f *fixture) events() []string { return controllertest.Events(f.recorder) }

func TestSync(t *testing.T) {
	d := newDeployment(3, "nginx:1.25")
	v1 := rsOf(d, "nginx:1.25", 1, 3, 3, time.Hour)
	orphan := v1.DeepCopy()
	orphan.OwnerReferences = nil
	tests := []struct {
		name       string
		objs       []runtime.Object
		wantWrites []string
		wantEvents []string
	}{
		{
			name: "new deployment: one replica set, status with revision",
			objs: []runtime.Object{d},
			wantWrites: []string{
				"create replicasets " + v1.Name,
				"update deployments/status web",
			},
			wantEvents: []string{"Normal ScalingReplicaSet Scaled up replica set " + v1.Name + " from 0 to 3"},
		},
		{
			name: "converged deployment: zero writes",
			objs: []runtime.Object{converged(d, v1), v1},
		},
		{
			name: "orphaned matching replica set is adopted, not duplicated",
			objs: []runtime.Object{converged(d, v1), orphan},
			wantWrites: []string{
				"patch replicasets " + v1.Name,
			},
		},
		{
			// Status follows once the replica set reports fewer pods.
			name: "scale down",
			objs: []runtime.Object{scaled(converged(d, v1), 1), v1},
			wantWrites: []string{
				"update replicasets " + v1.Name,
			},
			wantEvents: []string{"Normal ScalingReplicaSet Scaled down replica set " + v1.Name + " from 3 to 1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.objs...)
			if err := f.ctrl.sync(context.Background(), "default/web"); err != nil {
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

func TestSyncWritesRevisionAndConditions(t *testing.T) {
	d := newDeployment(3, "nginx:1.25")
	f := newFixture(t, d)
	if err := f.ctrl.sync(context.Background(), "default/web"); err != nil {
		t.Fatal(err)
	}
	rsName := rsOf(d, "nginx:1.25", 1, 0, 0, 0).Name
	rs, err := f.client.AppsV1().ReplicaSets("default").Get(context.Background(), rsName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantAnn := map[string]string{RevisionAnnotation: "1", DesiredReplicasAnnotation: "3", MaxReplicasAnnotation: "4"}
	if diff := cmp.Diff(wantAnn, rs.Annotations); diff != "" {
		t.Errorf("replica set annotations (-want +got):\n%s", diff)
	}
	if got := rs.Spec.Selector.MatchLabels[PodTemplateHashLabel]; got == "" || rs.Spec.Template.Labels[PodTemplateHashLabel] != got {
		t.Errorf("pod-template-hash label missing from selector or template: %v / %v", rs.Spec.Selector, rs.Spec.Template.Labels)
	}
	got, err := f.client.AppsV1().Deployments("default").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Annotations[RevisionAnnotation] != "1" || got.Status.ObservedGeneration != 1 {
		t.Errorf("deployment revision %q observedGeneration %d, want 1 and 1", got.Annotations[RevisionAnnotation], got.Status.ObservedGeneration)
	}
}

func TestHashCollisionBumpsCollisionCount(t *testing.T) {
	d := newDeployment(3, "nginx:1.25")
	// Same name as the new replica set, but not ours.
	squatter := rsOf(d, "nginx:1.25", 1, 0, 0, 0)
	squatter.OwnerReferences = nil
	squatter.Labels = map[string]string{"other": "app"}
	f := newFixture(t, d)
	if _, err := f.client.AppsV1().ReplicaSets("default").Create(context.Background(), squatter, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.client.ClearActions()
	err := f.ctrl.sync(context.Background(), "default/web")
	if err == nil {
		t.Fatal("sync succeeded despite a name collision")
	}
	want := []string{"create replicasets " + squatter.Name, "update deployments/status web"}
	if diff := cmp.Diff(want, f.writes()); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
	got, _ := f.client.AppsV1().Deployments("default").Get(context.Background(), "web", metav1.GetOptions{})
	if got.Status.CollisionCount == nil || *got.Status.CollisionCount != 1 {
		t.Errorf("collisionCount = %v, want 1", got.Status.CollisionCount)
	}
}

func TestCreateFailureEvent(t *testing.T) {
	d := newDeployment(3, "nginx:1.25")
	f := newFixture(t, d)
	f.client.PrependReactor("create", "replicasets", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("quota exceeded")
	})
	if err := f.ctrl.sync(context.Background(), "default/web"); err == nil {
		t.Fatal("sync succeeded despite create failure")
	}
	name := rsOf(d, "nginx:1.25", 1, 0, 0, 0).Name
	want := []string{`Warning ReplicaSetCreateError Failed to create new replica set "` + name + `": quota exceeded`}
	if diff := cmp.Diff(want, f.events()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}
