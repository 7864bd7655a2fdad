// Package garbagecollector implements ownerReference cascading deletion for
// every resource the API server serves, like upstream's garbage collector:
//
//   - Background: an object whose owners are all gone (verified by UID
//     against the API server) is deleted, so deleting a Deployment removes
//     its ReplicaSets and, through them, its Pods.
//   - Foreground: an owner being deleted with the foregroundDeletion
//     finalizer has its dependents deleted first; the finalizer is removed
//     once no dependent with blockOwnerDeletion remains.
//   - Orphan: an owner being deleted with the orphan finalizer has its
//     references removed from its dependents, then the finalizer removed.
//
// Resources are found through discovery (refreshed periodically) and
// watched through metadata-only informers, whose owner-UID index is the
// owner→dependents graph.
package garbagecollector

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/skiff-project/skiff/pkg/controller"
)

// Name is the controller's name in logs and queue metrics.
const Name = "garbage-collector-controller"

// Finalizers the API server sets for foreground and orphan deletion.
const (
	FinalizerForeground = metav1.FinalizerDeleteDependents // "foregroundDeletion"
	FinalizerOrphan     = metav1.FinalizerOrphanDependents // "orphan"
)

// Defaults for Options.
const (
	DefaultDiscoveryPeriod  = 30 * time.Second
	DefaultCacheSyncTimeout = 30 * time.Second
)

// Discoverer lists the server's resources in their preferred versions.
// discovery.DiscoveryInterface satisfies it; partial results come with a
// *discovery.ErrGroupDiscoveryFailed.
type Discoverer interface {
	ServerPreferredResources() ([]*metav1.APIResourceList, error)
}

// Options configure the controller. The zero value means the defaults.
type Options struct {
	// Discovery overrides client.Discovery(); tests use it.
	Discovery Discoverer
	// DiscoveryPeriod is how often resources are rediscovered so new CRDs
	// are watched; default DefaultDiscoveryPeriod.
	DiscoveryPeriod time.Duration
	// CacheSyncTimeout bounds the initial wait for the informers; after it
	// the collector starts anyway (owner absence is always verified live,
	// so an incomplete cache can delay but never cause a deletion).
	CacheSyncTimeout time.Duration
}

// Controller is the garbage collector. Its queue holds object keys (see
// objectRef); one sync handles an object both as a dependent and as an
// owner being deleted.
type Controller struct {
	metadata  metadata.Interface   // immutable; never nil
	discovery Discoverer           // immutable; never nil
	recorder  record.EventRecorder // immutable; never nil
	loop      *controller.Loop     // immutable; never nil
	period    time.Duration        // immutable; > 0
	syncWait  time.Duration        // immutable; > 0

	wg sync.WaitGroup // counts informer goroutines

	mu       sync.RWMutex                             // guards the fields below
	restMap  restMap                                  // guarded by mu; replaced on refresh
	monitors map[schema.GroupVersionResource]*monitor // guarded by mu
}

// New returns a garbage collector that discovers resources with
// client.Discovery() (or opts.Discovery), watches and edits them with
// metadataClient, and records events with recorder (component
// "garbage-collector-controller"). It starts its own metadata informers in
// Run; it uses no shared informer factory.
func New(client kubernetes.Interface, metadataClient metadata.Interface, recorder record.EventRecorder, opts Options) (*Controller, error) {
	if opts.Discovery == nil {
		if client == nil {
			return nil, fmt.Errorf("garbage collector needs a client or a discoverer")
		}
		opts.Discovery = client.Discovery()
	}
	if metadataClient == nil || recorder == nil {
		return nil, fmt.Errorf("garbage collector needs a metadata client and a recorder")
	}
	if opts.DiscoveryPeriod <= 0 {
		opts.DiscoveryPeriod = DefaultDiscoveryPeriod
	}
	if opts.CacheSyncTimeout <= 0 {
		opts.CacheSyncTimeout = DefaultCacheSyncTimeout
	}
	c := &Controller{
		metadata:  metadataClient,
		discovery: opts.Discovery,
		recorder:  recorder,
		period:    opts.DiscoveryPeriod,
		syncWait:  opts.CacheSyncTimeout,
		monitors:  map[schema.GroupVersionResource]*monitor{},
	}
	c.loop = controller.NewLoop(Name, c.sync)
	return c, nil
}

// Run discovers and watches resources, waits (bounded) for the caches, then
// collects garbage with workers goroutines until ctx is done. It returns
// after every informer it started has stopped.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	ctx, cancel := context.WithCancel(ctx)
	defer c.wg.Wait()
	defer cancel()
	logger := klog.FromContext(ctx)

	if err := c.refresh(ctx); err != nil {
		utilruntime.HandleError(err)
	}
	syncCtx, syncCancel := context.WithTimeout(ctx, c.syncWait)
	if !cache.WaitForCacheSync(syncCtx.Done(), c.syncedFuncs()...) {
		logger.Info("garbage collector caches not synced in time, starting anyway", "timeout", c.syncWait)
	}
	syncCancel()

	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		wait.UntilWithContext(ctx, func(ctx context.Context) {
			if err := c.refresh(ctx); err != nil {
				utilruntime.HandleError(err)
			}
		}, c.period)
	}()
	c.loop.Run(ctx, workers)
}

func (c *Controller) syncedFuncs() []cache.InformerSynced {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []cache.InformerSynced
	for _, m := range c.monitors {
		if m.synced != nil {
			out = append(out, m.synced)
		}
	}
	return out
}

// sync processes one object: as an owner being deleted in the foreground
// or with orphaning, and as a dependent whose owners may be gone.
func (c *Controller) sync(ctx context.Context, key string) error {
	ref, err := parseRef(key)
	if err != nil {
		return controller.Terminal(err)
	}
	obj, err := c.get(ctx, ref)
	if err != nil {
		return err
	}
	if obj == nil {
		return nil
	}
	if obj.DeletionTimestamp != nil {
		switch {
		case slices.Contains(obj.Finalizers, FinalizerOrphan):
			return c.orphanDependents(ctx, ref, obj)
		case slices.Contains(obj.Finalizers, FinalizerForeground):
			return c.deleteDependentsFirst(ctx, ref, obj)
		}
		return nil
	}
	return c.collect(ctx, ref, obj)
}

// get returns the object ref names from the cache, or live when its
// resource is not watched; nil when it does not exist.
func (c *Controller) get(ctx context.Context, ref objectRef) (*metav1.PartialObjectMetadata, error) {
	c.mu.RLock()
	m, watched := c.monitors[ref.gvr]
	c.mu.RUnlock()
	if watched {
		o, exists, err := m.store.GetByKey(ref.storeKey())
		if err != nil {
			return nil, fmt.Errorf("get %s from cache: %w", ref, err)
		}
		if !exists {
			return nil, nil
		}
		p, ok := o.(*metav1.PartialObjectMetadata)
		if !ok {
			return nil, controller.Terminal(fmt.Errorf("cache of %s holds %T", ref.gvr, o))
		}
		return p, nil
	}
	p, err := c.metadata.Resource(ref.gvr).Namespace(ref.namespace).Get(ctx, ref.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", ref, err)
	}
	return p, nil
}

// collect deletes obj, or trims its owner references, when owners are gone.
func (c *Controller) collect(ctx context.Context, ref objectRef, obj *metav1.PartialObjectMetadata) error {
	refs := obj.OwnerReferences
	if len(refs) == 0 {
		return nil
	}
	states := map[types.UID]ownerState{}
	for _, r := range refs {
		s, err := c.ownerState(ctx, ref, obj, r)
		if err != nil {
			return err
		}
		states[r.UID] = s
	}
	act := decideDependent(false, refs, states, len(c.dependents(obj.UID)) > 0)
	switch act.kind {
	case actionDelete:
		return c.delete(ctx, ref, obj.UID, act.policy)
	case actionRemoveRefs:
		return c.removeOwnerRefs(ctx, ref, obj, act.uids)
	}
	return nil
}

// ownerState classifies the owner r names, as seen from dependent obj.
// Absence is only concluded after a live read by name shows no object with
// the referenced UID, so a lagging cache never causes a deletion.
func (c *Controller) ownerState(ctx context.Context, ref objectRef, obj *metav1.PartialObjectMetadata, r metav1.OwnerReference) (ownerState, error) {
	gv, err := schema.ParseGroupVersion(r.APIVersion)
	if err != nil {
		// No retry can make this reference resolve; treat as absent,
		// as upstream does for unresolvable references.
		return ownerDangling, nil
	}
	c.mu.RLock()
	mp, known := c.restMap.byKind[schema.GroupKind{Group: gv.Group, Kind: r.Kind}]
	kind := c.restMap.byResource[ref.gvr].kind
	c.mu.RUnlock()
	if !known {
		// The kind may belong to a CRD discovery has not shown us yet.
		return 0, fmt.Errorf("owner %s %s of %s: unknown kind", r.APIVersion, r.Kind, ref)
	}
	if mp.namespaced && ref.namespace == "" {
		c.recorder.Eventf(&corev1.ObjectReference{APIVersion: ref.gvr.GroupVersion().String(), Kind: kind, Name: ref.name, UID: obj.UID},
			corev1.EventTypeWarning, "OwnerRefInvalidNamespace",
			"ownerRef [%s/%s, namespace: , name: %s, uid: %s] does not exist in namespace %q", r.APIVersion, r.Kind, r.Name, r.UID, "")
		return ownerDangling, nil
	}
	ownerNS := ref.namespace
	if !mp.namespaced {
		ownerNS = ""
	}
	owner, err := c.get(ctx, objectRef{gvr: mp.gvr, namespace: ownerNS, name: r.Name})
	if err != nil {
		return 0, err
	}
	if owner == nil || owner.UID != r.UID {
		owner, err = c.metadata.Resource(mp.gvr).Namespace(ownerNS).Get(ctx, r.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return ownerDangling, nil
		}
		if err != nil {
			return 0, fmt.Errorf("verify owner %s %s of %s: %w", r.Kind, r.Name, ref, err)
		}
		if owner.UID != r.UID {
			return ownerDangling, nil
		}
	}
	if owner.DeletionTimestamp != nil && slices.Contains(owner.Finalizers, FinalizerForeground) {
		return ownerWaiting, nil
	}
	return ownerSolid, nil
}

// deleteDependentsFirst handles an owner in foreground deletion: its
// dependents are queued (their own sync sees this owner waiting and deletes
// them), and the foregroundDeletion finalizer goes once no blocking
// dependent is left.
func (c *Controller) deleteDependentsFirst(ctx context.Context, ref objectRef, owner *metav1.PartialObjectMetadata) error {
	waiting := false
	for _, d := range c.dependents(owner.UID) {
		if d.obj.DeletionTimestamp == nil {
			c.loop.EnqueueKey(d.ref.String())
		}
		for _, r := range d.obj.OwnerReferences {
			if r.UID == owner.UID && blocking(r) {
				waiting = true
			}
		}
	}
	if waiting {
		// The deletion (or reference removal) of each blocking
		// dependent queues this owner again.
		return nil
	}
	return c.removeFinalizer(ctx, ref, owner, FinalizerForeground)
}

// orphanDependents handles an owner deleted with orphaning: references to
// it are removed from every dependent, then the orphan finalizer.
func (c *Controller) orphanDependents(ctx context.Context, ref objectRef, owner *metav1.PartialObjectMetadata) error {
	for _, d := range c.dependents(owner.UID) {
		if err := c.removeOwnerRefs(ctx, d.ref, d.obj, []types.UID{owner.UID}); err != nil {
			return err
		}
	}
	return c.removeFinalizer(ctx, ref, owner, FinalizerOrphan)
}

// delete deletes the object ref if it still has uid.
func (c *Controller) delete(ctx context.Context, ref objectRef, uid types.UID, policy metav1.DeletionPropagation) error {
	klog.FromContext(ctx).V(2).Info("deleting garbage", "object", ref, "propagationPolicy", policy)
	err := c.metadata.Resource(ref.gvr).Namespace(ref.namespace).Delete(ctx, ref.name, metav1.DeleteOptions{
		PropagationPolicy: &policy,
		Preconditions:     &metav1.Preconditions{UID: &uid},
	})
	// NotFound: already gone. Conflict: the name now holds another object,
	// which is synced on its own.
	if err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return fmt.Errorf("delete %s: %w", ref, err)
}

// removeOwnerRefs patches obj so it no longer names any of uids as owner.
// The patch carries obj's uid and resourceVersion, so it applies only to the
// version the decision was made on; a conflict is retried.
func (c *Controller) removeOwnerRefs(ctx context.Context, ref objectRef, obj *metav1.PartialObjectMetadata, uids []types.UID) error {
	keep := slices.DeleteFunc(slices.Clone(obj.OwnerReferences), func(r metav1.OwnerReference) bool { return slices.Contains(uids, r.UID) })
	if len(keep) == len(obj.OwnerReferences) {
		return nil
	}
	return c.patchMeta(ctx, ref, obj, map[string]any{"ownerReferences": keep})
}

// removeFinalizer patches owner to drop finalizer f.
func (c *Controller) removeFinalizer(ctx context.Context, ref objectRef, owner *metav1.PartialObjectMetadata, f string) error {
	keep := slices.DeleteFunc(slices.Clone(owner.Finalizers), func(s string) bool { return s == f })
	return c.patchMeta(ctx, ref, owner, map[string]any{"finalizers": keep})
}

// patchMeta merge-patches fields of obj's metadata, guarded by its uid and
// resourceVersion. A JSON merge patch works for every resource, custom or
// built-in; lists are replaced whole, hence the preconditions.
func (c *Controller) patchMeta(ctx context.Context, ref objectRef, obj *metav1.PartialObjectMetadata, fields map[string]any) error {
	md := map[string]any{"uid": obj.UID, "resourceVersion": obj.ResourceVersion}
	for k, v := range fields {
		md[k] = v
	}
	patch, err := json.Marshal(map[string]any{"metadata": md})
	if err != nil {
		return fmt.Errorf("encode patch for %s: %w", ref, err)
	}
	_, err = c.metadata.Resource(ref.gvr).Namespace(ref.namespace).Patch(ctx, ref.name, types.MergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("patch %s: %w", ref, err)
	}
	return nil
}
