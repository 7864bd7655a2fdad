package controllertest

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
)

func TestWritesRendersOnlyWritesInOrder(t *testing.T) {
	ctx := t.Context()
	named := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "a", GenerateName: "web-"}}
	client := fake.NewClientset(named)
	GenerateNames(client, "pods")
	client.ClearActions()
	pods := client.CoreV1().Pods("default")
	_, _ = pods.Get(ctx, "a", metav1.GetOptions{})
	created, _ := pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "web-"}}, metav1.CreateOptions{})
	_, _ = pods.UpdateStatus(ctx, named, metav1.UpdateOptions{})
	_, _ = pods.Patch(ctx, "a", types.MergePatchType, []byte(`{"x":1}`), metav1.PatchOptions{})
	_ = pods.Delete(ctx, "a", metav1.DeleteOptions{})

	if created.Name != "web-00001" {
		t.Errorf("created name = %q, want web-00001", created.Name)
	}
	want := []string{"create pods web-", "update pods/status a", "patch pods a", "delete pods a"}
	if diff := cmp.Diff(want, Writes(client.Actions())); diff != "" {
		t.Errorf("Writes (-want +got):\n%s", diff)
	}
	want = []string{"create pods web-", "update pods/status a", `patch pods a {"x":1}`, "delete pods a"}
	if diff := cmp.Diff(want, Writes(client.Actions(), CreatesByGenerateName(), PatchBodies())); diff != "" {
		t.Errorf("Writes with options (-want +got):\n%s", diff)
	}
	if got := Writes(nil); got != nil {
		t.Errorf("Writes(nil) = %#v, want nil", got)
	}
}

func TestEventsDrainsInOrder(t *testing.T) {
	rec := record.NewFakeRecorder(10)
	if got := Events(rec); got != nil {
		t.Errorf("Events of an empty recorder = %#v, want nil", got)
	}
	pod := &corev1.Pod{}
	rec.Event(pod, corev1.EventTypeNormal, "B", "second reason first")
	rec.Event(pod, corev1.EventTypeWarning, "A", "then this")
	want := []string{"Normal B second reason first", "Warning A then this"}
	if diff := cmp.Diff(want, Events(rec)); diff != "" {
		t.Errorf("Events (-want +got):\n%s", diff)
	}
	if got := Events(rec); got != nil {
		t.Errorf("Events after draining = %#v, want nil", got)
	}
}

func TestSeedFillsTheTypedInformers(t *testing.T) {
	factory := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "p"}}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}}
	Seed(t, factory, pod, node)
	if _, err := factory.Core().V1().Pods().Lister().Pods("default").Get("p"); err != nil {
		t.Errorf("pod lister: %v", err)
	}
	nodes, err := factory.Core().V1().Nodes().Lister().List(labels.Everything())
	if err != nil || len(nodes) != 1 {
		t.Errorf("node lister: %d nodes, err %v; want 1", len(nodes), err)
	}
}
