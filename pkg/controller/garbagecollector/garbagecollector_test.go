package garbagecollector

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	metadatafake "k8s.io/client-go/metadata/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-project/skiff/pkg/controller/controllertest"
)

var (
	deployments = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	replicasets = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"}
	pods        = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	nodes       = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}
	widgets     = schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}
)

type fakeDiscovery []*metav1.APIResourceList

func (f fakeDiscovery) ServerPreferredResources() ([]*metav1.APIResourceList, error) { return f, nil }

func discovered() fakeDiscovery {
	verbs := metav1.Verbs{"delete", "get", "list", "patch", "watch"}
	return fakeDiscovery{
		{GroupVersion: "v1", APIResources: []metav1.APIResource{
			{Name: "pods", Kind: "Pod", Namespaced: true, Verbs: verbs},
			{Name: "pods/status", Kind: "Pod", Namespaced: true, Verbs: metav1.Verbs{"get"}},
			{Name: "nodes", Kind: "Node", Verbs: verbs},
			{Name: "events", Kind: "Event", Namespaced: true, Verbs: verbs},
		}},
		{GroupVersion: "apps/v1", APIResources: []metav1.APIResource{
			{Name: "deployments", Kind: "Deployment", Namespaced: true, Verbs: verbs},
			{Name: "replicasets", Kind: "ReplicaSet", Namespaced: true, Verbs: verbs},
		}},
		{GroupVersion: "example.com/v1", APIResources: []metav1.APIResource{
			// Not watchable: looked up live only.
			{Name: "widgets", Kind: "Widget", Namespaced: true, Verbs: metav1.Verbs{"get", "delete"}},
		}},
	}
}

func TestBuildRestMap(t *testing.T) {
	rm := buildRestMap(discovered())
	want := []schema.GroupVersionResource{nodes, pods, deployments, replicasets}
	if diff := cmp.Diff(want, rm.deletable); diff != "" {
		t.Errorf("deletable (-want +got):\n%s", diff)
	}
	if got := rm.byKind[schema.GroupKind{Group: "example.com", Kind: "Widget"}]; got.gvr != widgets || !got.namespaced {
		t.Errorf("Widget maps to %+v", got)
	}
}

func TestParseRef(t *testing.T) {
	for _, r := range []objectRef{{pods, "default", "web-1"}, {nodes, "", "n1"}, {deployments, "ns", "web"}} {
		got, err := parseRef(r.String())
		if err != nil || got != r {
			t.Errorf("parseRef(%q) = %+v, %v; want %+v", r.String(), got, err, r)
		}
	}
	for _, bad := range []string{"", "a/b", "//pods/ns/x", "/v1/pods/ns/"} {
		if _, err := parseRef(bad); err == nil {
			t.Errorf("parseRef(%q) succeeded", bad)
		}
	}
}

func TestDecideDependent(t *testing.T) {
	ref := func(uid string) metav1.OwnerReference { return metav1.OwnerReference{UID: types.UID(uid)} }
	tests := []struct {
		name     string
		deleting bool
		refs     []metav1.OwnerReference
		states   map[types.UID]ownerState
		hasDeps  bool
		want     action
	}{
		{name: "no owners", want: action{}},
		{name: "solid owner", refs: []metav1.OwnerReference{ref("a")}, states: map[types.UID]ownerState{"a": ownerSolid}, want: action{}},
		{name: "dangling owner", refs: []metav1.OwnerReference{ref("a")}, states: map[types.UID]ownerState{"a": ownerDangling},
			want: action{kind: actionDelete, policy: metav1.DeletePropagationBackground}},
		{name: "already deleting", deleting: true, refs: []metav1.OwnerReference{ref("a")}, states: map[types.UID]ownerState{"a": ownerDangling}, want: action{}},
		{name: "solid and dangling: drop the dangling reference", refs: []metav1.OwnerReference{ref("a"), ref("b"), ref("c")},
			states: map[types.UID]ownerState{"a": ownerDangling, "b": ownerSolid, "c": ownerWaiting},
			want:   action{kind: actionRemoveRefs, uids: []types.UID{"a", "c"}}},
		{name: "waiting owner, dependent has dependents: foreground", refs: []metav1.OwnerReference{ref("a")},
			states: map[types.UID]ownerState{"a": ownerWaiting}, hasDeps: true,
			want: action{kind: actionDelete, policy: metav1.DeletePropagationForeground}},
		{name: "waiting owner, leaf dependent: background", refs: []metav1.OwnerReference{ref("a")},
			states: map[types.UID]ownerState{"a": ownerWaiting},
			want:   action{kind: actionDelete, policy: metav1.DeletePropagationBackground}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decideDependent(tt.deleting, tt.refs, tt.states, tt.hasDeps)
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(action{})); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
		})
	}
}

// obj builds a PartialObjectMetadata of kind in apiVersion.
func obj(apiVersion, kind, ns, name, uid string, mutate ...func(*metav1.PartialObjectMetadata)) *metav1.PartialObjectMetadata {
	o := &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: apiVersion, Kind: kind},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid), ResourceVersion: "7"},
	}
	for _, m := range mutate {
		m(o)
	}
	return o
}

func ownedBy(apiVersion, kind, name, uid string, block bool) func(*metav1.PartialObjectMetadata) {
	return func(o *metav1.PartialObjectMetadata) {
		o.OwnerReferences = append(o.OwnerReferences, metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: types.UID(uid), BlockOwnerDeletion: &block})
	}
}

func deleting(finalizers ...string) func(*metav1.PartialObjectMetadata) {
	return func(o *metav1.PartialObjectMetadata) {
		ts := metav1.NewTime(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
		o.DeletionTimestamp = &ts
		o.Finalizers = finalizers
	}
}

type seeded struct {
	gvr   schema.GroupVersionResource
	obj   *metav1.PartialObjectMetadata
	cache bool // also in the informer cache
}

func TestSync(t *testing.T) {
	deploy := obj("apps/v1", "Deployment", "default", "web", "d1")
	rsOf := func(mut ...func(*metav1.PartialObjectMetadata)) *metav1.PartialObjectMetadata {
		return obj("apps/v1", "ReplicaSet", "default", "web-1", "rs1", append([]func(*metav1.PartialObjectMetadata){ownedBy("apps/v1", "Deployment", "web", "d1", true)}, mut...)...)
	}
	podOf := obj("v1", "Pod", "default", "web-1-a", "p1", ownedBy("apps/v1", "ReplicaSet", "web-1", "rs1", true))

	tests := []struct {
		name       string
		objects    []seeded
		key        objectRef
		want       []string // metadata client calls
		wantEvents []string
		wantErr    bool
	}{
		{
			name:    "converged: owner in cache with the same uid",
			objects: []seeded{{deployments, deploy, true}, {replicasets, rsOf(), true}},
			key:     objectRef{replicasets, "default", "web-1"},
			want:    nil,
		},
		{
			name:    "owner deleted: dependent deleted in the background after a live check",
			objects: []seeded{{replicasets, rsOf(), true}},
			key:     objectRef{replicasets, "default", "web-1"},
			want:    []string{"get deployments default/web", `delete replicasets default/web-1 policy=Background uid=rs1`},
		},
		{
			name:    "owner not yet in cache but live: kept",
			objects: []seeded{{deployments, deploy, false}, {replicasets, rsOf(), true}},
			key:     objectRef{replicasets, "default", "web-1"},
			want:    []string{"get deployments default/web"},
		},
		{
			name:    "owner recreated with another uid: dependent deleted",
			objects: []seeded{{deployments, obj("apps/v1", "Deployment", "default", "web", "d2"), true}, {replicasets, rsOf(), true}},
			key:     objectRef{replicasets, "default", "web-1"},
			want:    []string{"get deployments default/web", `delete replicasets default/web-1 policy=Background uid=rs1`},
		},
		{
			name: "one solid, one dangling owner: the dangling reference is removed",
			objects: []seeded{{deployments, deploy, true}, {replicasets,
				rsOf(ownedBy("apps/v1", "Deployment", "old", "d0", false)), true}},
			key: objectRef{replicasets, "default", "web-1"},
			want: []string{"get deployments default/old",
				`patch replicasets default/web-1 {"metadata":{"ownerReferences":[{"apiVersion":"apps/v1","kind":"Deployment","name":"web","uid":"d1","blockOwnerDeletion":true}],"resourceVersion":"7","uid":"rs1"}}`},
		},
		{
			name: "owner in foreground deletion, dependent with dependents: foreground delete",
			objects: []seeded{{deployments, obj("apps/v1", "Deployment", "default", "web", "d1", deleting(FinalizerForeground)), true},
				{replicasets, rsOf(), true}, {pods, podOf, true}},
			key:  objectRef{replicasets, "default", "web-1"},
			want: []string{`delete replicasets default/web-1 policy=Foreground uid=rs1`},
		},
		{
			name: "foreground owner waits for a blocking dependent",
			objects: []seeded{{deployments, obj("apps/v1", "Deployment", "default", "web", "d1", deleting(FinalizerForeground)), true},
				{replicasets, rsOf(), true}},
			key:  objectRef{deployments, "default", "web"},
			want: nil,
		},
		{
			name: "foreground owner without blocking dependents drops its finalizer",
			objects: []seeded{{deployments, obj("apps/v1", "Deployment", "default", "web", "d1", deleting(FinalizerForeground, "example.com/keep")), true},
				{replicasets, obj("apps/v1", "ReplicaSet", "default", "web-1", "rs1", ownedBy("apps/v1", "Deployment", "web", "d1", false)), true}},
			key:  objectRef{deployments, "default", "web"},
			want: []string{`patch deployments default/web {"metadata":{"finalizers":["example.com/keep"],"resourceVersion":"7","uid":"d1"}}`},
		},
		{
			name: "orphan: references removed from dependents, then the finalizer",
			objects: []seeded{{deployments, obj("apps/v1", "Deployment", "default", "web", "d1", deleting(FinalizerOrphan)), true},
				{replicasets, rsOf(), true}},
			key: objectRef{deployments, "default", "web"},
			want: []string{
				`patch replicasets default/web-1 {"metadata":{"ownerReferences":[],"resourceVersion":"7","uid":"rs1"}}`,
				`patch deployments default/web {"metadata":{"finalizers":[],"resourceVersion":"7","uid":"d1"}}`,
			},
		},
		{
			name:       "cluster-scoped dependent naming a namespaced owner is garbage",
			objects:    []seeded{{nodes, obj("v1", "Node", "", "n1", "n1", ownedBy("apps/v1", "Deployment", "web", "d1", false)), true}},
			key:        objectRef{nodes, "", "n1"},
			want:       []string{`delete nodes /n1 policy=Background uid=n1`},
			wantEvents: []string{`Warning OwnerRefInvalidNamespace ownerRef [apps/v1/Deployment, namespace: , name: web, uid: d1] does not exist in namespace ""`},
		},
		{
			name:    "namespaced dependent of a cluster-scoped owner that exists",
			objects: []seeded{{nodes, obj("v1", "Node", "", "n1", "n1"), true}, {pods, obj("v1", "Pod", "default", "p", "p", ownedBy("v1", "Node", "n1", "n1", false)), true}},
			key:     objectRef{pods, "default", "p"},
			want:    nil,
		},
		{
			name:    "owner of an unwatched kind is read live",
			objects: []seeded{{widgets, obj("example.com/v1", "Widget", "default", "w", "w1"), false}, {pods, obj("v1", "Pod", "default", "p", "p", ownedBy("example.com/v1", "Widget", "w", "w1", false)), true}},
			key:     objectRef{pods, "default", "p"},
			want:    []string{"get widgets default/w"},
		},
		{
			name:    "unknown owner kind is retried",
			objects: []seeded{{pods, obj("v1", "Pod", "default", "p", "p", ownedBy("nope.io/v1", "Gadget", "g", "g1", false)), true}},
			key:     objectRef{pods, "default", "p"},
			wantErr: true,
		},
		{
			name: "gone object is a no-op",
			key:  objectRef{pods, "default", "gone"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scheme := metadatafake.NewTestScheme()
			if err := metav1.AddMetaToScheme(scheme); err != nil {
				t.Fatal(err)
			}
			var live []runtime.Object
			for _, s := range tt.objects {
				live = append(live, s.obj)
			}
			meta := metadatafake.NewSimpleMetadataClient(scheme, live...)
			rec := record.NewFakeRecorder(10)
			c, err := New(nil, meta, rec, Options{Discovery: discovered()})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			c.restMap = buildRestMap(discovered())
			for _, gvr := range c.restMap.deletable {
				c.monitors[gvr] = &monitor{store: cache.NewIndexer(cache.DeletionHandlingMetaNamespaceKeyFunc, cache.Indexers{ownerUIDIndex: indexByOwnerUID})}
			}
			for _, s := range tt.objects {
				if s.cache {
					if err := c.monitors[s.gvr].store.Add(s.obj); err != nil {
						t.Fatal(err)
					}
				}
			}
			meta.ClearActions()

			err = c.sync(context.Background(), tt.key.String())
			if (err != nil) != tt.wantErr {
				t.Fatalf("sync error = %v, wantErr %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, describe(meta.Actions())); diff != "" {
				t.Errorf("metadata calls (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantEvents, controllertest.Events(rec)); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

// TestForegroundQueuesDependents checks that an owner in foreground
// deletion queues its live dependents for deletion.
func TestForegroundQueuesDependents(t *testing.T) {
	scheme := metadatafake.NewTestScheme()
	_ = metav1.AddMetaToScheme(scheme)
	c, err := New(nil, metadatafake.NewSimpleMetadataClient(scheme), record.NewFakeRecorder(1), Options{Discovery: discovered()})
	if err != nil {
		t.Fatal(err)
	}
	c.restMap = buildRestMap(discovered())
	store := cache.NewIndexer(cache.DeletionHandlingMetaNamespaceKeyFunc, cache.Indexers{ownerUIDIndex: indexByOwnerUID})
	c.monitors[deployments] = &monitor{store: cache.NewIndexer(cache.DeletionHandlingMetaNamespaceKeyFunc, cache.Indexers{ownerUIDIndex: indexByOwnerUID})}
	c.monitors[replicasets] = &monitor{store: store}
	_ = c.monitors[deployments].store.Add(obj("apps/v1", "Deployment", "default", "web", "d1", deleting(FinalizerForeground)))
	_ = store.Add(obj("apps/v1", "ReplicaSet", "default", "web-1", "rs1", ownedBy("apps/v1", "Deployment", "web", "d1", true)))
	_ = store.Add(obj("apps/v1", "ReplicaSet", "default", "web-0", "rs0", ownedBy("apps/v1", "Deployment", "web", "d1", true), deleting()))

	if err := c.sync(context.Background(), objectRef{deployments, "default", "web"}.String()); err != nil {
		t.Fatal(err)
	}
	if got := c.loop.Len(); got != 1 {
		t.Errorf("queued %d keys, want 1 (only the dependent not yet being deleted)", got)
	}
}

func describe(actions []clienttesting.Action) []string {
	var out []string
	for _, a := range actions {
		r := a.GetResource().Resource
		switch a := a.(type) {
		case clienttesting.DeleteActionImpl:
			s := "delete " + r + " " + a.GetNamespace() + "/" + a.GetName()
			if p := a.DeleteOptions.PropagationPolicy; p != nil {
				s += " policy=" + string(*p)
			}
			if pc := a.DeleteOptions.Preconditions; pc != nil && pc.UID != nil {
				s += " uid=" + string(*pc.UID)
			}
			out = append(out, s)
		case clienttesting.PatchAction:
			out = append(out, "patch "+r+" "+a.GetNamespace()+"/"+a.GetName()+" "+string(a.GetPatch()))
		case clienttesting.GetAction:
			out = append(out, "get "+r+" "+a.GetNamespace()+"/"+a.GetName())
		default:
			out = append(out, a.GetVerb()+" "+r)
		}
	}
	return out
}
