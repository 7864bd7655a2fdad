package namespace

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	metadatafake "k8s.io/client-go/metadata/fake"
	clienttesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

type fakeDiscovery struct {
	lists []*metav1.APIResourceList
	err   error
}

func (f fakeDiscovery) ServerPreferredNamespacedResources() ([]*metav1.APIResourceList, error) {
	return f.lists, f.err
}

var (
	t0 = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	t1 = t0.Add(time.Minute)
)

func resources() []*metav1.APIResourceList {
	all := metav1.Verbs{"create", "delete", "deletecollection", "get", "list", "watch"}
	return []*metav1.APIResourceList{
		{GroupVersion: "v1", APIResources: []metav1.APIResource{
			{Name: "pods", Namespaced: true, Verbs: all},
			{Name: "pods/status", Namespaced: true, Verbs: metav1.Verbs{"get"}},
			{Name: "configmaps", Namespaced: true, Verbs: all},
			{Name: "bindings", Namespaced: true, Verbs: metav1.Verbs{"create"}},
		}},
		{GroupVersion: "example.com/v1", APIResources: []metav1.APIResource{
			{Name: "widgets", Namespaced: true, Verbs: metav1.Verbs{"delete", "get", "list"}},
		}},
	}
}

func okConditions(at time.Time) []corev1.NamespaceCondition {
	var out []corev1.NamespaceCondition
	for _, ty := range conditionTypes() {
		reason, msg := okCondition(ty)
		out = append(out, corev1.NamespaceCondition{Type: ty, Status: corev1.ConditionFalse, Reason: reason, Message: msg, LastTransitionTime: metav1.NewTime(at)})
	}
	return out
}

func item(name string, finalizers ...string) metav1.PartialObjectMetadata {
	return metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Finalizers: finalizers}}
}

func TestSync(t *testing.T) {
	deleted := metav1.NewTime(t0)
	terminating := func(phase corev1.NamespacePhase, conds []corev1.NamespaceCondition, fin ...corev1.FinalizerName) *corev1.Namespace {
		return &corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{Name: "ns", DeletionTimestamp: &deleted, Finalizers: nil},
			Spec:       corev1.NamespaceSpec{Finalizers: fin},
			Status:     corev1.NamespaceStatus{Phase: phase, Conditions: conds},
		}
	}
	pods := schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	configmaps := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	widgets := schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}

	tests := []struct {
		name          string
		ns            *corev1.Namespace
		discoveryErr  error
		content       map[schema.GroupVersionResource][]metav1.PartialObjectMetadata
		wantCore      []string // core client writes
		wantMeta      []string // metadata client calls
		wantPhase     corev1.NamespacePhase
		wantConds     []corev1.NamespaceCondition // nil: not checked
		wantFinalized bool
		wantErr       bool
	}{
		{
			name:     "active namespace: nothing to do",
			ns:       &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns"}, Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"kubernetes"}}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}},
			wantCore: nil, wantMeta: nil, wantPhase: corev1.NamespaceActive,
		},
		{
			name:      "pods still terminating: wait, other content untouched",
			ns:        terminating(corev1.NamespaceActive, nil, "kubernetes"),
			content:   map[schema.GroupVersionResource][]metav1.PartialObjectMetadata{pods: {item("p1"), item("p2", "example.com/protect")}, configmaps: {item("c1")}},
			wantCore:  []string{"update namespaces/status", "update namespaces/status"},
			wantMeta:  []string{"delete-collection pods", "list pods"},
			wantPhase: corev1.NamespaceTerminating,
			wantConds: func() []corev1.NamespaceCondition {
				c := okConditions(t1)
				c[3] = corev1.NamespaceCondition{Type: corev1.NamespaceContentRemaining, Status: corev1.ConditionTrue, Reason: "SomeResourcesRemain", Message: "Some resources are remaining: pods. has 2 resource instances", LastTransitionTime: metav1.NewTime(t1)}
				c[4] = corev1.NamespaceCondition{Type: corev1.NamespaceFinalizersRemaining, Status: corev1.ConditionTrue, Reason: "SomeFinalizersRemain", Message: "Some content in the namespace has finalizers remaining: example.com/protect in 1 resource instances", LastTransitionTime: metav1.NewTime(t1)}
				return c
			}(),
		},
		{
			name:      "no pods left: everything else deleted, collection or one by one",
			ns:        terminating(corev1.NamespaceTerminating, okConditions(t0), "kubernetes"),
			content:   map[schema.GroupVersionResource][]metav1.PartialObjectMetadata{configmaps: {item("c1")}, widgets: {item("w1")}},
			wantCore:  []string{"update namespaces/status"},
			wantMeta:  []string{"delete-collection pods", "list pods", "delete-collection configmaps", "list configmaps", "list widgets", "delete widgets/w1"},
			wantPhase: corev1.NamespaceTerminating,
			wantConds: func() []corev1.NamespaceCondition {
				c := okConditions(t0)
				c[3] = corev1.NamespaceCondition{Type: corev1.NamespaceContentRemaining, Status: corev1.ConditionTrue, Reason: "SomeResourcesRemain", Message: "Some resources are remaining: configmaps. has 1 resource instances, widgets.example.com has 1 resource instances", LastTransitionTime: metav1.NewTime(t1)}
				return c
			}(),
		},
		{
			name:          "empty and converged conditions: only the finalize call",
			ns:            terminating(corev1.NamespaceTerminating, okConditions(t0), "kubernetes"),
			wantCore:      []string{"create namespaces/finalize"},
			wantMeta:      []string{"delete-collection pods", "list pods", "delete-collection configmaps", "list configmaps", "list widgets"},
			wantPhase:     corev1.NamespaceTerminating,
			wantConds:     okConditions(t0),
			wantFinalized: true,
		},
		{
			name:      "finalizer already removed: only the phase",
			ns:        terminating(corev1.NamespaceActive, nil),
			wantCore:  []string{"update namespaces/status"},
			wantPhase: corev1.NamespaceTerminating,
		},
		{
			name:         "partial discovery failure blocks finalization",
			ns:           terminating(corev1.NamespaceTerminating, okConditions(t0), "kubernetes"),
			discoveryErr: &discovery.ErrGroupDiscoveryFailed{Groups: map[schema.GroupVersion]error{{Group: "broken.io", Version: "v1"}: errors.New("503")}},
			wantCore:     []string{"update namespaces/status"},
			wantMeta:     []string{"delete-collection pods", "list pods", "delete-collection configmaps", "list configmaps", "list widgets"},
			wantPhase:    corev1.NamespaceTerminating,
			wantErr:      true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := fake.NewClientset(tt.ns)
			factory := informers.NewSharedInformerFactory(client, 0)
			meta := metadatafake.NewSimpleMetadataClient(metadatafake.NewTestScheme())
			meta.PrependReactor("list", "*", func(a clienttesting.Action) (bool, runtime.Object, error) {
				// The fake metadata client expects a metav1.List of items.
				list := &metav1.List{}
				for _, it := range tt.content[a.GetResource()] {
					list.Items = append(list.Items, runtime.RawExtension{Object: it.DeepCopy()})
				}
				return true, list, nil
			})
			meta.PrependReactor("delete", "*", func(clienttesting.Action) (bool, runtime.Object, error) { return true, nil, nil })
			meta.PrependReactor("delete-collection", "*", func(clienttesting.Action) (bool, runtime.Object, error) { return true, nil, nil })
			c, err := New(client, meta, factory, Options{
				Discovery: fakeDiscovery{lists: resources(), err: tt.discoveryErr},
				Clock:     clocktesting.NewFakePassiveClock(t1),
			})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			_ = factory.Core().V1().Namespaces().Informer().GetIndexer().Add(tt.ns)
			client.ClearActions()

			err = c.sync(context.Background(), "ns")
			if (err != nil) != tt.wantErr {
				t.Fatalf("sync error = %v, wantErr %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantCore, describe(client.Actions())); diff != "" {
				t.Errorf("core writes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantMeta, describe(meta.Actions())); diff != "" {
				t.Errorf("metadata calls (-want +got):\n%s", diff)
			}
			got, err := client.CoreV1().Namespaces().Get(context.Background(), "ns", metav1.GetOptions{})
			if err != nil {
				t.Fatalf("get namespace: %v", err)
			}
			if got.Status.Phase != tt.wantPhase {
				t.Errorf("phase = %q, want %q", got.Status.Phase, tt.wantPhase)
			}
			if tt.wantConds != nil {
				if diff := cmp.Diff(tt.wantConds, got.Status.Conditions); diff != "" {
					t.Errorf("conditions (-want +got):\n%s", diff)
				}
			}
			if finalized := len(got.Spec.Finalizers) == 0 && len(tt.ns.Spec.Finalizers) > 0; finalized != tt.wantFinalized {
				t.Errorf("finalized = %v, want %v (finalizers %v)", finalized, tt.wantFinalized, got.Spec.Finalizers)
			}
		})
	}
}

// describe renders non-get/watch actions as "verb resource[/subresource|/name]".
func describe(actions []clienttesting.Action) []string {
	var out []string
	for _, a := range actions {
		switch a.GetVerb() {
		case "get", "watch":
			continue
		}
		s := a.GetVerb() + " " + a.GetResource().Resource
		if sub := a.GetSubresource(); sub != "" {
			s += "/" + sub
		}
		if d, ok := a.(clienttesting.DeleteAction); ok {
			s += "/" + d.GetName()
		}
		out = append(out, s)
	}
	return out
}

func TestUpdateConditionsKeepsTransitionTime(t *testing.T) {
	remaining := func(n int) contentResult {
		return contentResult{remaining: map[schema.GroupVersionResource]int{{Version: "v1", Resource: "pods"}: n}}
	}
	start, _ := updateConditions(nil, remaining(3), metav1.NewTime(t0))
	// The message changes (3 → 1) but the status stays True: the
	// transition time must not move.
	got, changed := updateConditions(start, remaining(1), metav1.NewTime(t1))
	if !changed {
		t.Fatal("changed = false, want true")
	}
	want := corev1.NamespaceCondition{Type: corev1.NamespaceContentRemaining, Status: corev1.ConditionTrue, Reason: "SomeResourcesRemain", Message: fmt.Sprintf("Some resources are remaining: pods. has %d resource instances", 1), LastTransitionTime: metav1.NewTime(t0)}
	if diff := cmp.Diff(want, got[3]); diff != "" {
		t.Errorf("condition (-want +got):\n%s", diff)
	}
	if _, changed := updateConditions(got, remaining(1), metav1.NewTime(t1)); changed {
		t.Error("converged conditions reported changed")
	}
}
