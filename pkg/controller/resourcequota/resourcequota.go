// Package resourcequota is the ResourceQuota controller: it keeps each
// quota's status.hard equal to spec.hard and status.used equal to what the
// namespace actually consumes (pod counts, compute requests and limits of
// non-terminal pods, object counts, node ports, load balancers, storage
// requests). Admission charges usage on create; this controller recomputes
// it on every relevant change and every ResyncPeriod, which also returns the
// usage of deleted objects.
package resourcequota

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-project/skiff/pkg/controller"
)

// EventSource is the component name events are recorded under (the
// controller records none today; kept for registration symmetry).
const EventSource = "resourcequota-controller"

// ResyncPeriod is how often every quota is recomputed even without events,
// as upstream's --resource-quota-sync-period default.
const ResyncPeriod = 5 * time.Minute

// counted is one object kind counted by "<name>" / "count/<name>" quotas.
type counted struct {
	name     string // e.g. "configmaps", "deployments.apps"
	informer cache.SharedIndexInformer
}

// Controller recomputes ResourceQuota status. Create it with New and start
// it with Run.
type Controller struct {
	client      kubernetes.Interface            // immutable
	quotaLister corelisters.ResourceQuotaLister // immutable
	podLister   corelisters.PodLister           // immutable
	svcLister   corelisters.ServiceLister       // immutable
	pvcLister   corelisters.PersistentVolumeClaimLister
	counted     []counted // immutable
	resync      time.Duration
	loop        *controller.Loop // immutable
	synced      []cache.InformerSynced
}

// New returns the ResourceQuota controller. It requests from factory the
// informers of every kind it counts (pods, services, PVCs, configmaps,
// secrets, replication controllers, resource quotas, and the apps and batch
// workloads) and registers its handlers on them; the caller starts the
// factory, then calls Run.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory) (*Controller, error) {
	core, apps, batch := factory.Core().V1(), factory.Apps().V1(), factory.Batch().V1()
	c := &Controller{
		client:      client,
		quotaLister: core.ResourceQuotas().Lister(),
		podLister:   core.Pods().Lister(),
		svcLister:   core.Services().Lister(),
		pvcLister:   core.PersistentVolumeClaims().Lister(),
		resync:      ResyncPeriod,
		counted: []counted{
			{"pods", core.Pods().Informer()},
			{"services", core.Services().Informer()},
			{"persistentvolumeclaims", core.PersistentVolumeClaims().Informer()},
			{"configmaps", core.ConfigMaps().Informer()},
			{"secrets", core.Secrets().Informer()},
			{"replicationcontrollers", core.ReplicationControllers().Informer()},
			{"resourcequotas", core.ResourceQuotas().Informer()},
			{"deployments.apps", apps.Deployments().Informer()},
			{"replicasets.apps", apps.ReplicaSets().Informer()},
			{"statefulsets.apps", apps.StatefulSets().Informer()},
			{"daemonsets.apps", apps.DaemonSets().Informer()},
			{"controllerrevisions.apps", apps.ControllerRevisions().Informer()},
			{"jobs.batch", batch.Jobs().Informer()},
			{"cronjobs.batch", batch.CronJobs().Informer()},
		},
	}
	c.loop = controller.NewLoop("resourcequota", c.sync)
	quotaInf := core.ResourceQuotas().Informer()
	if _, err := quotaInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.loop.Enqueue,
		UpdateFunc: func(oldObj, curObj interface{}) {
			old, ok1 := oldObj.(*corev1.ResourceQuota)
			cur, ok2 := curObj.(*corev1.ResourceQuota)
			// Our own status writes come back as updates; only a spec change
			// (or a status someone else changed) needs a recompute.
			if ok1 && ok2 && equality.Semantic.DeepEqual(old.Spec, cur.Spec) && equality.Semantic.DeepEqual(cur.Spec.Hard, cur.Status.Hard) {
				return
			}
			c.loop.Enqueue(curObj)
		},
	}); err != nil {
		return nil, fmt.Errorf("watching resourcequotas: %w", err)
	}
	for _, k := range c.counted {
		if _, err := k.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    c.enqueueNamespaceOf,
			UpdateFunc: c.updateObject,
			DeleteFunc: c.enqueueNamespaceOf,
		}); err != nil {
			return nil, fmt.Errorf("watching %s: %w", k.name, err)
		}
		c.synced = append(c.synced, k.informer.HasSynced)
	}
	return c, nil
}

// Run waits for the informer caches, then recomputes quotas with workers
// goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) error {
	if !cache.WaitForNamedCacheSync(c.loop.Name(), ctx.Done(), c.synced...) {
		return fmt.Errorf("%s: caches did not sync: %w", c.loop.Name(), ctx.Err())
	}
	c.loop.Run(ctx, workers)
	return nil
}

// updateObject recomputes only for updates that can change usage: pods
// and services change resources in place, other kinds only by existing.
func (c *Controller) updateObject(oldObj, curObj interface{}) {
	switch cur := curObj.(type) {
	case *corev1.Pod:
		old, ok := oldObj.(*corev1.Pod)
		if ok && old.Status.Phase == cur.Status.Phase && equality.Semantic.DeepEqual(old.Spec, cur.Spec) {
			return
		}
	case *corev1.Service:
		old, ok := oldObj.(*corev1.Service)
		if ok && old.Spec.Type == cur.Spec.Type && len(old.Spec.Ports) == len(cur.Spec.Ports) {
			return
		}
	case *corev1.PersistentVolumeClaim:
		old, ok := oldObj.(*corev1.PersistentVolumeClaim)
		if ok && equality.Semantic.DeepEqual(old.Spec.Resources, cur.Spec.Resources) {
			return
		}
	default:
		return
	}
	c.enqueueNamespaceOf(curObj)
}

// enqueueNamespaceOf enqueues every quota in obj's namespace.
func (c *Controller) enqueueNamespaceOf(obj interface{}) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	m, ok := obj.(metav1.Object)
	if !ok || m.GetNamespace() == "" {
		return
	}
	quotas, err := c.quotaLister.ResourceQuotas(m.GetNamespace()).List(labels.Everything())
	if err != nil {
		return
	}
	for _, q := range quotas {
		c.loop.Enqueue(q)
	}
}

func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return controller.Terminal(fmt.Errorf("invalid key %q: %w", key, err))
	}
	quota, err := c.quotaLister.ResourceQuotas(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading resourcequota %s: %w", key, err)
	}
	objs, err := c.objects(namespace)
	if err != nil {
		return err
	}
	used, err := Usage(quota, objs)
	if err != nil {
		return controller.Terminal(fmt.Errorf("resourcequota %s: %w", key, err))
	}
	// Periodic recompute: deletions whose events were missed, and pods
	// becoming terminal without a spec change, still get returned.
	c.loop.EnqueueAfter(key, c.resync)

	status := corev1.ResourceQuotaStatus{Hard: quota.Spec.Hard.DeepCopy(), Used: used}
	if equality.Semantic.DeepEqual(quota.Status, status) {
		return nil
	}
	u := quota.DeepCopy()
	u.Status = status
	if _, err := c.client.CoreV1().ResourceQuotas(namespace).UpdateStatus(ctx, u, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating status of resourcequota %s: %w", key, err)
	}
	return nil
}

// objects gathers namespace's state from the informer caches.
func (c *Controller) objects(namespace string) (Objects, error) {
	var objs Objects
	var err error
	if objs.Pods, err = c.podLister.Pods(namespace).List(labels.Everything()); err != nil {
		return objs, fmt.Errorf("listing pods in %s: %w", namespace, err)
	}
	if objs.Services, err = c.svcLister.Services(namespace).List(labels.Everything()); err != nil {
		return objs, fmt.Errorf("listing services in %s: %w", namespace, err)
	}
	if objs.PVCs, err = c.pvcLister.PersistentVolumeClaims(namespace).List(labels.Everything()); err != nil {
		return objs, fmt.Errorf("listing persistentvolumeclaims in %s: %w", namespace, err)
	}
	objs.Counts = make(map[string]int64, len(c.counted)+1)
	for _, k := range c.counted {
		items, err := k.informer.GetIndexer().ByIndex(cache.NamespaceIndex, namespace)
		if err != nil {
			return objs, fmt.Errorf("counting %s in %s: %w", k.name, namespace, err)
		}
		objs.Counts[k.name] = int64(len(items))
	}
	// Core kinds are also quota'd by their bare names; "pods" is handled by
	// Usage (only non-terminal pods count).
	delete(objs.Counts, "pods")
	return objs, nil
}
