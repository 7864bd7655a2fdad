// Package nodelifecycle watches node heartbeats (the node's Ready condition
// and its Lease in kube-node-lease) and reacts when a kubelet goes silent,
// like upstream's node-lifecycle controller: conditions turn Unknown,
// not-ready/unreachable taints are applied and removed, the node's pods are
// marked not ready, and pods on NoExecute-tainted nodes are evicted once
// their toleration runs out.
package nodelifecycle

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	coordinationlisters "k8s.io/client-go/listers/coordination/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/skiff-project/skiff/pkg/controller"
)

// Name is the controller's name in logs and queue metrics.
const Name = "node-lifecycle-controller"

// EventSource is the component upstream records this controller's events
// under; callers should build the recorder with it.
const EventSource = "node-controller"

// LeaseNamespace holds the kubelets' heartbeat Leases, one per node, named
// after the node.
const LeaseNamespace = corev1.NamespaceNodeLease

// Defaults for Options.
const (
	DefaultNodeMonitorGracePeriod             = 40 * time.Second
	DefaultNodeMonitorPeriod                  = 5 * time.Second
	DefaultNotReadyTolerationSeconds    int64 = 300
	DefaultUnreachableTolerationSeconds int64 = 300
)

// podNodeNameIndex indexes pods by spec.nodeName. The name is specific to
// this package so it cannot clash with another controller's index on the
// shared pod informer.
const podNodeNameIndex = "nodelifecycle.skiff.dev/nodeName"

// Options configure the controller. The zero value means the defaults.
type Options struct {
	// NodeMonitorGracePeriod is how long a node may go without a
	// heartbeat before it is considered unreachable; default 40s.
	NodeMonitorGracePeriod time.Duration
	// NodeMonitorPeriod is how often every node is re-examined; default 5s.
	NodeMonitorPeriod time.Duration
	// DefaultNotReadyTolerationSeconds is how long a pod without a
	// not-ready toleration stays on a not-ready node; default 300.
	DefaultNotReadyTolerationSeconds int64
	// DefaultUnreachableTolerationSeconds is the same for unreachable
	// nodes; default 300.
	DefaultUnreachableTolerationSeconds int64
	// Clock is the controller's time source; default the real clock.
	Clock clock.WithTicker
}

// Controller monitors node health. Its queue holds node names.
type Controller struct {
	client      kubernetes.Interface            // immutable; never nil
	recorder    record.EventRecorder            // immutable; never nil
	nodes       corelisters.NodeLister          // immutable; never nil
	leases      coordinationlisters.LeaseLister // immutable; never nil
	podIndex    cache.Indexer                   // immutable; pods by node name
	synced      []cache.InformerSynced          // immutable
	clock       clock.WithTicker                // immutable; never nil
	grace       time.Duration                   // immutable
	period      time.Duration                   // immutable
	tolerations tolerationDefaults              // immutable
	loop        *controller.Loop                // immutable; never nil

	mu  sync.Mutex             // guards obs
	obs map[string]observation // guarded by mu; per node name
}

// New returns a Controller watching nodes, node Leases and pods through
// factory, recording events with recorder (component EventSource). The
// caller starts factory.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, recorder record.EventRecorder, opts Options) (*Controller, error) {
	if opts.NodeMonitorGracePeriod <= 0 {
		opts.NodeMonitorGracePeriod = DefaultNodeMonitorGracePeriod
	}
	if opts.NodeMonitorPeriod <= 0 {
		opts.NodeMonitorPeriod = DefaultNodeMonitorPeriod
	}
	if opts.DefaultNotReadyTolerationSeconds <= 0 {
		opts.DefaultNotReadyTolerationSeconds = DefaultNotReadyTolerationSeconds
	}
	if opts.DefaultUnreachableTolerationSeconds <= 0 {
		opts.DefaultUnreachableTolerationSeconds = DefaultUnreachableTolerationSeconds
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	nodeInf := factory.Core().V1().Nodes()
	leaseInf := factory.Coordination().V1().Leases()
	podInf := factory.Core().V1().Pods()
	if err := podInf.Informer().AddIndexers(cache.Indexers{podNodeNameIndex: func(obj interface{}) ([]string, error) {
		if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
			return []string{p.Spec.NodeName}, nil
		}
		return nil, nil
	}}); err != nil {
		return nil, fmt.Errorf("index pods by node: %w", err)
	}
	c := &Controller{
		client:   client,
		recorder: recorder,
		nodes:    nodeInf.Lister(),
		leases:   leaseInf.Lister(),
		podIndex: podInf.Informer().GetIndexer(),
		synced:   []cache.InformerSynced{nodeInf.Informer().HasSynced, leaseInf.Informer().HasSynced, podInf.Informer().HasSynced},
		clock:    opts.Clock,
		grace:    opts.NodeMonitorGracePeriod,
		period:   opts.NodeMonitorPeriod,
		tolerations: tolerationDefaults{
			notReady:    time.Duration(opts.DefaultNotReadyTolerationSeconds) * time.Second,
			unreachable: time.Duration(opts.DefaultUnreachableTolerationSeconds) * time.Second,
		},
		obs: map[string]observation{},
	}
	c.loop = controller.NewLoop(Name, c.sync)
	if _, err := nodeInf.Informer().AddEventHandler(c.loop.Handlers()); err != nil {
		return nil, fmt.Errorf("add node handler: %w", err)
	}
	leaseToNode := func(obj interface{}) {
		if l, ok := obj.(metav1.Object); ok && l.GetNamespace() == LeaseNamespace {
			c.loop.EnqueueKey(l.GetName())
		}
	}
	if _, err := leaseInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    leaseToNode,
		UpdateFunc: func(_, obj interface{}) { leaseToNode(obj) },
	}); err != nil {
		return nil, fmt.Errorf("add lease handler: %w", err)
	}
	// A pod landing on (or changing on) a tainted node may need an
	// eviction deadline; syncing its node computes it.
	podToNode := func(obj interface{}) {
		if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
			c.loop.EnqueueKey(p.Spec.NodeName)
		}
	}
	if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    podToNode,
		UpdateFunc: func(_, obj interface{}) { podToNode(obj) },
	}); err != nil {
		return nil, fmt.Errorf("add pod handler: %w", err)
	}
	return c, nil
}

// Run waits for the caches, then re-examines every node each
// NodeMonitorPeriod and syncs nodes with workers goroutines until ctx is
// done.
func (c *Controller) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	if !cache.WaitForNamedCacheSync(Name, ctx.Done(), c.synced...) {
		return
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := c.clock.NewTicker(c.period)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C():
				c.enqueueAll(ctx)
			}
		}
	}()
	c.loop.Run(ctx, workers)
}

func (c *Controller) enqueueAll(ctx context.Context) {
	nodes, err := c.nodes.List(labels.Everything())
	if err != nil {
		klog.FromContext(ctx).Error(err, "list nodes")
		return
	}
	for _, n := range nodes {
		c.loop.EnqueueKey(n.Name)
	}
}

// sync examines one node: heartbeat, conditions, taints, its pods'
// readiness and due evictions.
func (c *Controller) sync(ctx context.Context, name string) error {
	node, err := c.nodes.Get(name)
	if apierrors.IsNotFound(err) {
		c.mu.Lock()
		delete(c.obs, name)
		c.mu.Unlock()
		return nil
	}
	if err != nil {
		return fmt.Errorf("get node %s: %w", name, err)
	}
	lease, err := c.leases.Leases(LeaseNamespace).Get(name)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("get lease of node %s: %w", name, err)
	}
	now := c.clock.Now()
	c.mu.Lock()
	prev, seen := c.obs[name]
	var prevp *observation
	if seen {
		prevp = &prev
	}
	o := observe(prevp, node, lease, now)
	c.obs[name] = o
	c.mu.Unlock()

	d := decideNode(node, o, now, c.grace)
	if d.conditions != nil {
		n := node.DeepCopy()
		n.Status.Conditions = d.conditions
		if node, err = c.client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("mark node %s status unknown: %w", name, err)
		}
	}
	if d.becameNotReady {
		c.recorder.Eventf(&corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: name, UID: types.UID(name)},
			corev1.EventTypeNormal, "NodeNotReady", "Node %s status is now: %s", name, "NodeNotReady")
	}
	if d.taints != nil {
		n := node.DeepCopy()
		n.Spec.Taints = d.taints
		if node, err = c.client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update taints of node %s: %w", name, err)
		}
	}

	pods, err := c.podsOn(name)
	if err != nil {
		return err
	}
	if d.ready == corev1.ConditionUnknown {
		if err := c.markPodsNotReady(ctx, pods, now); err != nil {
			return err
		}
	}
	evict, next := evictions(klog.FromContext(ctx), node, pods, o.taintSeen, now, c.tolerations)
	for _, p := range evict {
		c.recorder.Eventf(p, corev1.EventTypeNormal, "TaintManagerEviction", "Marking for deletion Pod %s/%s", p.Namespace, p.Name)
		uid := p.UID
		err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("evict pod %s/%s: %w", p.Namespace, p.Name, err)
		}
	}
	// Come back exactly when the next thing is due; the periodic pass
	// covers everything else.
	if wait := c.nextCheck(d, o, now, next); wait > 0 {
		c.loop.EnqueueAfter(name, wait)
	}
	return nil
}

// nextCheck is how long until the node's grace period or a pod's
// toleration runs out, whichever is first (0 for none).
func (c *Controller) nextCheck(d nodeDecision, o observation, now time.Time, nextEviction time.Duration) time.Duration {
	wait := nextEviction
	if d.ready != corev1.ConditionUnknown {
		if g := o.probe.Add(c.grace).Sub(now) + time.Millisecond; g > 0 && (wait == 0 || g < wait) {
			wait = g
		}
	}
	return wait
}

func (c *Controller) podsOn(node string) ([]*corev1.Pod, error) {
	objs, err := c.podIndex.ByIndex(podNodeNameIndex, node)
	if err != nil {
		return nil, fmt.Errorf("list pods on node %s: %w", node, err)
	}
	pods := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		if p, ok := o.(*corev1.Pod); ok {
			pods = append(pods, p)
		}
	}
	return pods, nil
}

// markPodsNotReady sets Ready=False on pods of an unreachable node: their
// kubelet can no longer report them, and endpoints must stop routing to
// them.
func (c *Controller) markPodsNotReady(ctx context.Context, pods []*corev1.Pod, now time.Time) error {
	for _, p := range pods {
		if !podNeedsNotReady(p) {
			continue
		}
		p = p.DeepCopy()
		for i := range p.Status.Conditions {
			if p.Status.Conditions[i].Type == corev1.PodReady {
				p.Status.Conditions[i].Status = corev1.ConditionFalse
				p.Status.Conditions[i].LastTransitionTime = metav1.NewTime(now)
			}
		}
		if _, err := c.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("mark pod %s/%s not ready: %w", p.Namespace, p.Name, err)
		}
	}
	return nil
}
