package serviceaccount

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

func TestSync(t *testing.T) {
	now := metav1.Now()
	active := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns1"}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}}
	terminating := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns1", DeletionTimestamp: &now}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating}}
	defaultSA := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "ns1"}}
	otherSA := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder", Namespace: "ns1"}}

	tests := []struct {
		name    string
		objects []runtime.Object
		want    []string // verb/resource/namespace/name of each write
	}{
		{name: "active namespace without default gets one", objects: []runtime.Object{active, otherSA}, want: []string{"create/serviceaccounts/ns1/default"}},
		{name: "converged: default exists", objects: []runtime.Object{active, defaultSA}, want: nil},
		{name: "terminating namespace is left alone", objects: []runtime.Object{terminating}, want: nil},
		{name: "missing namespace is a no-op", objects: nil, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := fake.NewClientset(tt.objects...)
			factory := informers.NewSharedInformerFactory(client, 0)
			c, err := New(client, factory)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			for _, o := range tt.objects {
				switch o := o.(type) {
				case *corev1.Namespace:
					_ = factory.Core().V1().Namespaces().Informer().GetIndexer().Add(o)
				case *corev1.ServiceAccount:
					_ = factory.Core().V1().ServiceAccounts().Informer().GetIndexer().Add(o)
				}
			}
			client.ClearActions()
			if err := c.sync(context.Background(), "ns1"); err != nil {
				t.Fatalf("sync: %v", err)
			}
			if diff := cmp.Diff(tt.want, writes(client.Actions())); diff != "" {
				t.Errorf("writes (-want +got):\n%s", diff)
			}
		})
	}
}

// writes renders every non-read action as verb/resource/namespace/name.
func writes(actions []clienttesting.Action) []string {
	var out []string
	for _, a := range actions {
		if a.GetVerb() == "get" || a.GetVerb() == "list" || a.GetVerb() == "watch" {
			continue
		}
		name := ""
		if c, ok := a.(clienttesting.CreateAction); ok {
			name = c.GetObject().(metav1.Object).GetName()
		}
		out = append(out, a.GetVerb()+"/"+a.GetResource().Resource+"/"+a.GetNamespace()+"/"+name)
	}
	return out
}
