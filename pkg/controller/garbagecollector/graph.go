package garbagecollector

import (
	"context"
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// ownerUIDIndex indexes every watched object by the UIDs of its owners; it
// is the owner→dependents edge of the graph.
const ownerUIDIndex = "ownerUID"

func indexByOwnerUID(obj interface{}) ([]string, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, nil
	}
	refs := m.GetOwnerReferences()
	out := make([]string, 0, len(refs))
	for _, r := range refs {
		out = append(out, string(r.UID))
	}
	return out, nil
}

// objectRef names one object of one resource; its string form is the queue
// key "group/version/resource/namespace/name" (namespace empty for
// cluster-scoped objects). Names never contain "/", so the key splits back.
type objectRef struct {
	gvr       schema.GroupVersionResource
	namespace string
	name      string
}

func (r objectRef) String() string {
	return strings.Join([]string{r.gvr.Group, r.gvr.Version, r.gvr.Resource, r.namespace, r.name}, "/")
}

func parseRef(key string) (objectRef, error) {
	p := strings.Split(key, "/")
	if len(p) != 5 || p[1] == "" || p[2] == "" || p[4] == "" {
		return objectRef{}, fmt.Errorf("malformed garbage collector key %q", key)
	}
	return objectRef{gvr: schema.GroupVersionResource{Group: p[0], Version: p[1], Resource: p[2]}, namespace: p[3], name: p[4]}, nil
}

// storeKey is the informer cache key of r.
func (r objectRef) storeKey() string {
	if r.namespace == "" {
		return r.name
	}
	return r.namespace + "/" + r.name
}

// mapping is what discovery says about one kind.
type mapping struct {
	gvr        schema.GroupVersionResource // the server's preferred version
	kind       string
	namespaced bool
}

// restMap maps kinds to resources and back, built from one discovery pass.
// It is immutable once built; a refresh replaces it.
type restMap struct {
	byKind     map[schema.GroupKind]mapping
	byResource map[schema.GroupVersionResource]mapping
	deletable  []schema.GroupVersionResource // watched resources, sorted
}

// ignored reports whether gvr is never watched: events are numerous,
// short-lived and never carry owner references the collector acts on.
func ignored(gvr schema.GroupVersionResource) bool {
	return gvr.Resource == "events" && (gvr.Group == "" || gvr.Group == "events.k8s.io")
}

// buildRestMap turns discovery output into a restMap. Resources that cannot
// be listed, watched and deleted are mapped (they may be owners) but not
// watched.
func buildRestMap(lists []*metav1.APIResourceList) restMap {
	m := restMap{byKind: map[schema.GroupKind]mapping{}, byResource: map[schema.GroupVersionResource]mapping{}}
	for _, rl := range lists {
		gv, err := schema.ParseGroupVersion(rl.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range rl.APIResources {
			if strings.Contains(r.Name, "/") {
				continue // subresource
			}
			mp := mapping{gvr: gv.WithResource(r.Name), kind: r.Kind, namespaced: r.Namespaced}
			m.byKind[schema.GroupKind{Group: gv.Group, Kind: r.Kind}] = mp
			m.byResource[mp.gvr] = mp
			if slices.Contains(r.Verbs, "delete") && slices.Contains(r.Verbs, "list") && slices.Contains(r.Verbs, "watch") && !ignored(mp.gvr) {
				m.deletable = append(m.deletable, mp.gvr)
			}
		}
	}
	slices.SortFunc(m.deletable, func(a, b schema.GroupVersionResource) int { return strings.Compare(a.String(), b.String()) })
	return m
}

// monitor is the informer cache of one watched resource.
type monitor struct {
	store  cache.Indexer        // immutable; never nil
	synced cache.InformerSynced // immutable; nil when the store is fed by a test
	cancel context.CancelFunc   // immutable; stops the informer
}

// refresh rediscovers the server's resources, replaces the kind map, starts
// informers for newly deletable resources and, when discovery was complete,
// stops those that disappeared. Informer goroutines are counted in c.wg and
// end when ctx is done or their monitor is dropped.
func (c *Controller) refresh(ctx context.Context) error {
	lists, derr := c.discovery.ServerPreferredResources()
	if derr != nil && len(lists) == 0 {
		return fmt.Errorf("discover resources: %w", derr)
	}
	rm := buildRestMap(lists)

	c.mu.Lock()
	defer c.mu.Unlock()
	if derr != nil {
		// Partial discovery: keep what we knew about the failed groups.
		for k, v := range c.restMap.byKind {
			if _, ok := rm.byKind[k]; !ok {
				rm.byKind[k] = v
				rm.byResource[v.gvr] = v
			}
		}
	}
	c.restMap = rm
	want := map[schema.GroupVersionResource]bool{}
	for _, gvr := range rm.deletable {
		want[gvr] = true
		if _, ok := c.monitors[gvr]; ok {
			continue
		}
		if err := c.startMonitorLocked(ctx, gvr); err != nil {
			utilruntime.HandleError(err)
		}
	}
	if derr == nil {
		for gvr, m := range c.monitors {
			if !want[gvr] && m.cancel != nil {
				m.cancel()
				delete(c.monitors, gvr)
				klog.FromContext(ctx).V(2).Info("stopped watching resource", "resource", gvr)
			}
		}
	}
	return derr
}

// startMonitorLocked starts a metadata informer for gvr; c.mu must be held.
func (c *Controller) startMonitorLocked(ctx context.Context, gvr schema.GroupVersionResource) error {
	inf := metadatainformer.NewFilteredMetadataInformer(c.metadata, gvr, metav1.NamespaceAll, 0,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc, ownerUIDIndex: indexByOwnerUID}, nil).Informer()
	if _, err := inf.AddEventHandler(c.handlers(gvr)); err != nil {
		return fmt.Errorf("watch %s: %w", gvr, err)
	}
	mctx, cancel := context.WithCancel(ctx)
	c.monitors[gvr] = &monitor{store: inf.GetIndexer(), synced: inf.HasSynced, cancel: cancel}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		inf.RunWithContext(mctx)
	}()
	return nil
}

// handlers turn watch events of resource gvr into queue keys. Each object
// is synced when its owners or deletion state change; a deleted object's
// dependents and owners are synced because its absence changes their fate.
func (c *Controller) handlers(gvr schema.GroupVersionResource) cache.ResourceEventHandlerFuncs {
	self := func(m metav1.Object) { c.loop.EnqueueKey(objectRef{gvr, m.GetNamespace(), m.GetName()}.String()) }
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj interface{}) {
			if m, ok := obj.(metav1.Object); ok && (len(m.GetOwnerReferences()) > 0 || m.GetDeletionTimestamp() != nil) {
				self(m)
			}
		},
		UpdateFunc: func(oldObj, newObj interface{}) {
			o, ok1 := oldObj.(metav1.Object)
			n, ok2 := newObj.(metav1.Object)
			if !ok1 || !ok2 {
				return
			}
			refsChanged := !slices.EqualFunc(o.GetOwnerReferences(), n.GetOwnerReferences(), func(a, b metav1.OwnerReference) bool {
				return a.UID == b.UID && blocking(a) == blocking(b)
			})
			deletionChanged := (o.GetDeletionTimestamp() == nil) != (n.GetDeletionTimestamp() == nil) || !slices.Equal(o.GetFinalizers(), n.GetFinalizers())
			if refsChanged || deletionChanged {
				self(n)
				// An owner waiting for (or orphaning) this object must look
				// again once the object lets go of it or starts going away.
				c.enqueueOwners(n.GetNamespace(), o.GetOwnerReferences())
				c.enqueueOwners(n.GetNamespace(), n.GetOwnerReferences())
			}
			if deletionChanged {
				c.enqueueDependents(n.GetUID())
			}
		},
		DeleteFunc: func(obj interface{}) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			m, ok := obj.(metav1.Object)
			if !ok {
				return
			}
			c.enqueueDependents(m.GetUID())
			c.enqueueOwners(m.GetNamespace(), m.GetOwnerReferences())
		},
	}
}

// enqueueDependents queues every cached object that names uid as an owner.
func (c *Controller) enqueueDependents(uid types.UID) {
	for _, d := range c.dependents(uid) {
		c.loop.EnqueueKey(d.ref.String())
	}
}

// enqueueOwners queues the owners refs name, as seen from a dependent in
// namespace ns. Owners of unknown kinds are skipped; they are resolved when
// the dependent itself is synced.
func (c *Controller) enqueueOwners(ns string, refs []metav1.OwnerReference) {
	for _, r := range refs {
		if ref, ok := c.ownerRef(ns, r); ok {
			c.loop.EnqueueKey(ref.String())
		}
	}
}

// ownerRef resolves an owner reference found on a dependent in namespace ns
// to the owner's object reference. ok is false for unknown kinds.
func (c *Controller) ownerRef(ns string, r metav1.OwnerReference) (ref objectRef, ok bool) {
	gv, err := schema.ParseGroupVersion(r.APIVersion)
	if err != nil {
		return objectRef{}, false
	}
	c.mu.RLock()
	mp, ok := c.restMap.byKind[schema.GroupKind{Group: gv.Group, Kind: r.Kind}]
	c.mu.RUnlock()
	if !ok {
		return objectRef{}, false
	}
	if !mp.namespaced {
		ns = ""
	}
	return objectRef{gvr: mp.gvr, namespace: ns, name: r.Name}, true
}

// dependent is one cached object that names a given owner.
type dependent struct {
	ref objectRef
	obj *metav1.PartialObjectMetadata
}

// dependents returns every cached object naming uid as an owner, across all
// watched resources, in a stable order.
func (c *Controller) dependents(uid types.UID) []dependent {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []dependent
	for gvr, m := range c.monitors {
		objs, err := m.store.ByIndex(ownerUIDIndex, string(uid))
		if err != nil {
			continue
		}
		for _, o := range objs {
			if p, ok := o.(*metav1.PartialObjectMetadata); ok {
				out = append(out, dependent{ref: objectRef{gvr, p.Namespace, p.Name}, obj: p})
			}
		}
	}
	slices.SortFunc(out, func(a, b dependent) int { return strings.Compare(a.ref.String(), b.ref.String()) })
	return out
}
