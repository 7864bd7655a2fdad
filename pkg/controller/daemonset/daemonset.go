// Package daemonset is the DaemonSet controller: it runs one pod of each
// DaemonSet on every eligible node (nodeSelector, required node affinity,
// taints and tolerations), rolls template changes out through
// ControllerRevisions named <daemonset>-<hash>, and reports status.
//
// The decision of which pods to create and delete is Decide, a pure function
// of a Snapshot; the sync gathers the snapshot and performs the Plan.
// Daemon pods are not bound by the controller: each is pinned to its node
// with a required metadata.name node-affinity term and bound by the
// scheduler, as upstream.
package daemonset

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/skiff-project/skiff/pkg/controller"
)

// EventSource is the component name events are recorded under.
const EventSource = "daemonset-controller"

// Event reasons, as upstream.
const (
	ReasonSuccessfulCreate = "SuccessfulCreate"
	ReasonFailedCreate     = "FailedCreate"
	ReasonSuccessfulDelete = "SuccessfulDelete"
	ReasonFailedDelete     = "FailedDelete"
	ReasonFailedDaemonPod  = "FailedDaemonPod"
)

// BurstReplicas caps the pods created or deleted by one sync, like
// upstream's burst of 250: a 5,000-node cluster gets its daemons over a few
// syncs instead of one unbounded fan-out.
const BurstReplicas = 250

// Controller reconciles DaemonSets with their pods. Create it with New and
// start it with Run.
type Controller struct {
	client        kubernetes.Interface                 // immutable
	dsLister      appslisters.DaemonSetLister          // immutable
	historyLister appslisters.ControllerRevisionLister // immutable
	podLister     corelisters.PodLister                // immutable
	nodeLister    corelisters.NodeLister               // immutable
	recorder      record.EventRecorder                 // immutable; reports as EventSource
	clock         clock.PassiveClock                   // immutable
	expectations  *expectations                        // internally synchronised
	loop          *controller.Loop                     // immutable
}

// New returns the DaemonSet controller and registers its handlers on the
// informers; the caller starts the informers, then calls Run.
func New(client kubernetes.Interface, dsInformer appsinformers.DaemonSetInformer, historyInformer appsinformers.ControllerRevisionInformer, podInformer coreinformers.PodInformer, nodeInformer coreinformers.NodeInformer, recorder record.EventRecorder, clk clock.PassiveClock) (*Controller, error) {
	c := &Controller{
		client:        client,
		dsLister:      dsInformer.Lister(),
		historyLister: historyInformer.Lister(),
		podLister:     podInformer.Lister(),
		nodeLister:    nodeInformer.Lister(),
		recorder:      recorder,
		clock:         clk,
		expectations:  newExpectations(clk),
	}
	c.loop = controller.NewLoop("daemonset", c.sync)
	if err := c.loop.WatchAll(
		controller.On(dsInformer.Informer(), c.loop.Handlers()),
		controller.On(historyInformer.Informer(), cache.ResourceEventHandlerFuncs{}),
		controller.On(podInformer.Informer(), cache.ResourceEventHandlerFuncs{AddFunc: c.addPod, UpdateFunc: c.updatePod, DeleteFunc: c.deletePod}),
		controller.On(nodeInformer.Informer(), cache.ResourceEventHandlerFuncs{AddFunc: c.enqueueAll, UpdateFunc: c.updateNode, DeleteFunc: c.enqueueAll}),
	); err != nil {
		return nil, err
	}
	return c, nil
}

// Run waits for the informer caches, then syncs DaemonSets with workers
// goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) error {
	return c.loop.RunSynced(ctx, workers)
}

func (c *Controller) enqueueAll(interface{}) {
	all, err := c.dsLister.List(labels.Everything())
	if err != nil {
		return
	}
	for _, ds := range all {
		c.loop.Enqueue(ds)
	}
}

// updateNode wakes every DaemonSet only when something eligibility depends
// on changed: node status heartbeats must not cost a sync per DaemonSet.
func (c *Controller) updateNode(oldObj, curObj interface{}) {
	old, ok1 := oldObj.(*corev1.Node)
	cur, ok2 := curObj.(*corev1.Node)
	if !ok1 || !ok2 {
		return
	}
	if labels.Equals(old.Labels, cur.Labels) && equality.Semantic.DeepEqual(old.Spec.Taints, cur.Spec.Taints) {
		return
	}
	c.enqueueAll(cur)
}

// ownerOf returns the key of the DaemonSet controlling pod, if it exists.
func (c *Controller) ownerOf(pod *corev1.Pod) (string, bool) {
	ref := metav1.GetControllerOf(pod)
	if ref == nil || ref.Kind != "DaemonSet" || ref.APIVersion != appsv1.SchemeGroupVersion.String() {
		return "", false
	}
	ds, err := c.dsLister.DaemonSets(pod.Namespace).Get(ref.Name)
	if err != nil || ds.UID != ref.UID {
		return "", false
	}
	return ds.Namespace + "/" + ds.Name, true
}

func (c *Controller) addPod(obj interface{}) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if key, ok := c.ownerOf(pod); ok {
		c.expectations.creationObserved(key)
		c.loop.EnqueueKey(key)
	}
}

func (c *Controller) updatePod(oldObj, curObj interface{}) {
	old, ok1 := oldObj.(*corev1.Pod)
	cur, ok2 := curObj.(*corev1.Pod)
	if !ok1 || !ok2 || old.ResourceVersion == cur.ResourceVersion {
		return
	}
	key, ok := c.ownerOf(cur)
	if !ok {
		return
	}
	if old.DeletionTimestamp == nil && cur.DeletionTimestamp != nil {
		// A graceful deletion is our delete taking effect.
		c.expectations.deletionObserved(key)
	}
	c.loop.EnqueueKey(key)
	if ds, err := c.dsLister.DaemonSets(cur.Namespace).Get(metav1.GetControllerOf(cur).Name); err == nil &&
		ds.Spec.MinReadySeconds > 0 && !isReady(old) && isReady(cur) {
		// Nothing announces the moment the pod becomes available.
		c.loop.EnqueueAfter(key, time.Duration(ds.Spec.MinReadySeconds)*time.Second+time.Second)
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
	if key, ok := c.ownerOf(pod); ok {
		c.expectations.deletionObserved(key)
		c.loop.EnqueueKey(key)
	}
}

func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return controller.Terminal(fmt.Errorf("invalid key %q: %w", key, err))
	}
	ds, err := c.dsLister.DaemonSets(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		c.expectations.forget(key)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading daemonset %s: %w", key, err)
	}
	selector, err := selectorOrNothing(ds.Spec.Selector)
	if err != nil {
		return controller.Terminal(fmt.Errorf("daemonset %s has an invalid selector: %w", key, err))
	}
	if ds.DeletionTimestamp != nil {
		// The garbage collector removes the pods; writing now would race it.
		return nil
	}
	nodes, err := c.nodeLister.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	// Read expectations before listing pods: a pod observed after this
	// point is at worst counted in a later sync, never missed.
	satisfied := c.expectations.satisfied(key)
	all, err := c.podLister.Pods(namespace).List(selector)
	if err != nil {
		return fmt.Errorf("listing pods of daemonset %s: %w", key, err)
	}
	var owned []*corev1.Pod
	byNode := map[string][]*corev1.Pod{}
	for _, p := range all {
		if ref := metav1.GetControllerOf(p); ref == nil || ref.UID != ds.UID {
			continue
		}
		owned = append(owned, p)
		if n := targetNode(p); n != "" {
			byNode[n] = append(byNode[n], p)
		}
	}

	hash, err := c.ensureRevision(ctx, ds, owned)
	if errors.Is(err, errHashCollision) {
		return c.bumpCollisionCount(ctx, ds, err)
	}
	if err != nil {
		return err
	}
	snap := Snapshot{DaemonSet: ds, Hash: hash, Nodes: nodes, PodsByNode: byNode, Now: c.clock.Now()}
	var manageErr error
	if satisfied {
		manageErr = c.perform(ctx, key, ds, hash, Decide(snap))
	}
	status := calculateStatus(snap)
	if !equality.Semantic.DeepEqual(ds.Status, status) {
		u := ds.DeepCopy()
		u.Status = status
		if _, err := c.client.AppsV1().DaemonSets(namespace).UpdateStatus(ctx, u, metav1.UpdateOptions{}); err != nil {
			return errors.Join(manageErr, fmt.Errorf("updating status of daemonset %s: %w", key, err))
		}
	}
	return manageErr
}

func (c *Controller) bumpCollisionCount(ctx context.Context, ds *appsv1.DaemonSet, cause error) error {
	u := ds.DeepCopy()
	n := int32(0)
	if u.Status.CollisionCount != nil {
		n = *u.Status.CollisionCount
	}
	n++
	u.Status.CollisionCount = &n
	if _, err := c.client.AppsV1().DaemonSets(ds.Namespace).UpdateStatus(ctx, u, metav1.UpdateOptions{}); err != nil {
		return errors.Join(cause, fmt.Errorf("bumping collisionCount of daemonset %s/%s: %w", ds.Namespace, ds.Name, err))
	}
	// Retry with the new count, which yields a new hash.
	return cause
}

// perform executes plan, at most BurstReplicas creations and deletions,
// recording expectations first so the informer catching up cannot trigger
// the same writes twice.
func (c *Controller) perform(ctx context.Context, key string, ds *appsv1.DaemonSet, hash string, plan Plan) error {
	creates := plan.CreateOn[:min(len(plan.CreateOn), BurstReplicas)]
	deletes := plan.Delete[:min(len(plan.Delete), BurstReplicas)]
	c.expectations.expect(key, len(creates), len(deletes))
	errs := make([]error, len(creates)+len(deletes))
	var wg sync.WaitGroup
	for i, node := range creates {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.createPod(ctx, ds, node, hash); err != nil {
				c.expectations.creationObserved(key)
				errs[i] = err
			}
		}()
	}
	for i, pod := range deletes {
		if plan.Reasons[i] == deleteFailed {
			c.recorder.Eventf(ds, corev1.EventTypeWarning, ReasonFailedDaemonPod, "Found failed daemon pod %s/%s on node %s, will try to kill it", pod.Namespace, pod.Name, targetNode(pod))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.deletePodOf(ctx, ds, pod); err != nil {
				c.expectations.deletionObserved(key)
				errs[len(creates)+i] = err
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (c *Controller) createPod(ctx context.Context, ds *appsv1.DaemonSet, node, hash string) error {
	pod := newPod(ds, node, hash)
	created, err := c.client.CoreV1().Pods(ds.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			return nil
		}
		c.recorder.Eventf(ds, corev1.EventTypeWarning, ReasonFailedCreate, "Error creating: %v", err)
		return fmt.Errorf("creating daemon pod for %s/%s on node %s: %w", ds.Namespace, ds.Name, node, err)
	}
	c.recorder.Eventf(ds, corev1.EventTypeNormal, ReasonSuccessfulCreate, "Created pod: %v", created.Name)
	return nil
}

func (c *Controller) deletePodOf(ctx context.Context, ds *appsv1.DaemonSet, pod *corev1.Pod) error {
	err := c.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pod.UID}})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		c.recorder.Eventf(ds, corev1.EventTypeWarning, ReasonFailedDelete, "Error deleting: %v", err)
		return fmt.Errorf("deleting daemon pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	c.recorder.Eventf(ds, corev1.EventTypeNormal, ReasonSuccessfulDelete, "Deleted pod: %v", pod.Name)
	return nil
}

// expectationsTTL bounds how long a lost watch event can stall a DaemonSet.
const expectationsTTL = 5 * time.Minute

// expectations counts, per DaemonSet key, pod creations and deletions
// issued but not yet seen in the informer cache; while any are outstanding
// the sync must not plan again from the stale cache.
type expectations struct {
	clock clock.PassiveClock // immutable

	mu      sync.Mutex
	records map[string]*expectation // guarded by mu
}

type expectation struct {
	adds, dels int
	at         time.Time
}

func newExpectations(clk clock.PassiveClock) *expectations {
	return &expectations{clock: clk, records: map[string]*expectation{}}
}

func (e *expectations) satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.records[key]
	return !ok || (r.adds <= 0 && r.dels <= 0) || e.clock.Since(r.at) > expectationsTTL
}

func (e *expectations) expect(key string, adds, dels int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.records[key] = &expectation{adds: adds, dels: dels, at: e.clock.Now()}
}

func (e *expectations) creationObserved(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r, ok := e.records[key]; ok {
		r.adds--
	}
}

func (e *expectations) deletionObserved(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r, ok := e.records[key]; ok {
		r.dels--
	}
}

func (e *expectations) forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.records, key)
}
