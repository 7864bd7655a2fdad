// Package replicaset is the ReplicaSet and ReplicationController controller:
// it keeps the number of active pods owned by each owner equal to its
// spec.replicas, adopts matching orphans, releases pods that stopped
// matching, and reports status. One implementation serves both kinds; a
// ReplicationController is handled as a ReplicaSet with a map selector.
package replicaset

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/skiff-project/skiff/pkg/controller"
)

// BurstReplicas caps the pods created or deleted by one sync, like upstream's
// --replicaset-controller burst of 500: a huge scale step is spread over
// several syncs instead of one unbounded fan-out.
const BurstReplicas = 500

// Controller reconciles ReplicaSets (or ReplicationControllers) with their
// pods. Create it with NewReplicaSet or NewReplicationController and start it
// with Run.
type Controller struct {
	owners       owners                // immutable
	client       kubernetes.Interface  // immutable
	podLister    corelisters.PodLister // immutable
	recorder     record.EventRecorder  // immutable
	clock        clock.PassiveClock    // immutable
	expectations *expectations         // internally synchronised
	loop         *controller.Loop      // immutable
	synced       []cache.InformerSynced
	burst        int
}

// NewReplicaSet returns the controller for apps/v1 ReplicaSets. recorder
// should report as ReplicaSetEventSource. It registers event handlers on
// both informers; the caller starts the informers.
func NewReplicaSet(client kubernetes.Interface, rsInformer appsinformers.ReplicaSetInformer, podInformer coreinformers.PodInformer, recorder record.EventRecorder, clk clock.PassiveClock) (*Controller, error) {
	c, err := newController("replicaset", replicaSets{client: client, lister: rsInformer.Lister()}, client, podInformer, recorder, clk)
	if err != nil {
		return nil, err
	}
	if err := c.watchOwners(rsInformer.Informer()); err != nil {
		return nil, err
	}
	return c, nil
}

// NewReplicationController returns the controller for v1
// ReplicationControllers. recorder should report as
// ReplicationControllerEventSource.
func NewReplicationController(client kubernetes.Interface, rcInformer coreinformers.ReplicationControllerInformer, podInformer coreinformers.PodInformer, recorder record.EventRecorder, clk clock.PassiveClock) (*Controller, error) {
	c, err := newController("replicationcontroller", replicationControllers{client: client, lister: rcInformer.Lister()}, client, podInformer, recorder, clk)
	if err != nil {
		return nil, err
	}
	if err := c.watchOwners(rcInformer.Informer()); err != nil {
		return nil, err
	}
	return c, nil
}

func newController(name string, o owners, client kubernetes.Interface, podInformer coreinformers.PodInformer, recorder record.EventRecorder, clk clock.PassiveClock) (*Controller, error) {
	c := &Controller{
		owners:       o,
		client:       client,
		podLister:    podInformer.Lister(),
		recorder:     recorder,
		clock:        clk,
		expectations: newExpectations(clk),
		burst:        BurstReplicas,
	}
	c.loop = controller.NewLoop(name, c.sync)
	inf := podInformer.Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.addPod,
		UpdateFunc: c.updatePod,
		DeleteFunc: c.deletePod,
	}); err != nil {
		return nil, fmt.Errorf("watching pods: %w", err)
	}
	c.synced = append(c.synced, inf.HasSynced)
	return c, nil
}

func (c *Controller) watchOwners(inf cache.SharedIndexInformer) error {
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.loop.Enqueue,
		UpdateFunc: func(_, cur interface{}) { c.loop.Enqueue(cur) },
		DeleteFunc: func(obj interface{}) {
			// A recreated owner with the same name must not inherit the old
			// one's outstanding expectations.
			if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
				c.expectations.forget(key)
			}
			c.loop.Enqueue(obj)
		},
	})
	if err != nil {
		return fmt.Errorf("watching %s: %w", c.owners.gvk().Kind, err)
	}
	c.synced = append(c.synced, inf.HasSynced)
	return nil
}

// Run waits for the informer caches, then syncs owners with workers
// goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) error {
	if !cache.WaitForNamedCacheSync(c.loop.Name(), ctx.Done(), c.synced...) {
		return fmt.Errorf("%s: caches did not sync: %w", c.loop.Name(), ctx.Err())
	}
	c.loop.Run(ctx, workers)
	return nil
}

// ownerKey is the queue and expectations key of an owner.
func ownerKey(rs *appsv1.ReplicaSet) string { return rs.Namespace + "/" + rs.Name }

// resolveControllerRef returns the owner ref points to, or nil if ref is not
// of our kind or names an owner that no longer exists (same name, other UID).
func (c *Controller) resolveControllerRef(namespace string, ref *metav1.OwnerReference) *appsv1.ReplicaSet {
	gvk := c.owners.gvk()
	if ref.Kind != gvk.Kind || ref.APIVersion != gvk.GroupVersion().String() {
		return nil
	}
	rs, err := c.owners.get(namespace, ref.Name)
	if err != nil || rs.UID != ref.UID {
		return nil
	}
	return rs
}

// ownersMatching returns the owners whose selector matches pod's labels; used
// to wake owners that may adopt an orphan.
func (c *Controller) ownersMatching(pod *corev1.Pod) []*appsv1.ReplicaSet {
	all, err := c.owners.list(pod.Namespace)
	if err != nil {
		return nil
	}
	var out []*appsv1.ReplicaSet
	for _, rs := range all {
		sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
		if err != nil || sel.Empty() {
			continue
		}
		if sel.Matches(labels.Set(pod.Labels)) {
			out = append(out, rs)
		}
	}
	return out
}

func (c *Controller) addPod(obj interface{}) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if pod.DeletionTimestamp != nil {
		// Seen for the first time while already terminating (e.g. after a
		// restart): count it as a deletion so expectations settle.
		c.deletePod(pod)
		return
	}
	if ref := metav1.GetControllerOf(pod); ref != nil {
		if rs := c.resolveControllerRef(pod.Namespace, ref); rs != nil {
			c.expectations.creationObserved(ownerKey(rs))
			c.loop.EnqueueKey(ownerKey(rs))
		}
		return
	}
	for _, rs := range c.ownersMatching(pod) {
		c.loop.EnqueueKey(ownerKey(rs))
	}
}

func (c *Controller) updatePod(oldObj, curObj interface{}) {
	old, ok1 := oldObj.(*corev1.Pod)
	cur, ok2 := curObj.(*corev1.Pod)
	if !ok1 || !ok2 || old.ResourceVersion == cur.ResourceVersion {
		// Periodic resync: nothing changed, and owners resync themselves.
		return
	}
	labelsChanged := !labels.Equals(old.Labels, cur.Labels)
	if cur.DeletionTimestamp != nil {
		c.deletePod(cur)
		if labelsChanged {
			c.deletePod(old)
		}
		return
	}
	curRef, oldRef := metav1.GetControllerOf(cur), metav1.GetControllerOf(old)
	refChanged := !refEqual(curRef, oldRef)
	if refChanged && oldRef != nil {
		if rs := c.resolveControllerRef(old.Namespace, oldRef); rs != nil {
			c.loop.EnqueueKey(ownerKey(rs))
		}
	}
	if curRef != nil {
		rs := c.resolveControllerRef(cur.Namespace, curRef)
		if rs == nil {
			return
		}
		c.loop.EnqueueKey(ownerKey(rs))
		// A pod turning ready becomes available only minReadySeconds later,
		// and no event will announce that moment.
		if !isPodReady(old) && isPodReady(cur) && rs.Spec.MinReadySeconds > 0 {
			c.loop.EnqueueAfter(ownerKey(rs), time.Duration(rs.Spec.MinReadySeconds)*time.Second+availabilitySlack)
		}
		return
	}
	if labelsChanged || refChanged {
		for _, rs := range c.ownersMatching(cur) {
			c.loop.EnqueueKey(ownerKey(rs))
		}
	}
}

func (c *Controller) deletePod(obj interface{}) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		tomb, ok := obj.(cache.DeletedFinalStateUnknown)
		if !ok {
			return
		}
		if pod, ok = tomb.Obj.(*corev1.Pod); !ok {
			return
		}
	}
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return
	}
	rs := c.resolveControllerRef(pod.Namespace, ref)
	if rs == nil {
		return
	}
	key := ownerKey(rs)
	c.expectations.deletionObserved(key, podKey(pod))
	c.loop.EnqueueKey(key)
}

func refEqual(a, b *metav1.OwnerReference) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.UID == b.UID
}

func podKey(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }

// availabilitySlack is added to requeues for minReadySeconds: a pod counts
// as available strictly after its ready time plus minReadySeconds.
const availabilitySlack = 100 * time.Millisecond
