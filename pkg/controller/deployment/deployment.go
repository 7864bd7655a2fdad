// Package deployment is the Deployment controller: it rolls a Deployment's
// pod template out through ReplicaSets named <deployment>-<pod-template-hash>,
// with the RollingUpdate or Recreate strategy, and reports rollout progress.
//
// The decisions are made by Decide, a pure function of a Snapshot; the
// controller's sync only gathers the snapshot and performs the Plan.
package deployment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
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
const EventSource = "deployment-controller"

var deploymentKind = appsv1.SchemeGroupVersion.WithKind("Deployment")

// Controller reconciles Deployments with their ReplicaSets.
type Controller struct {
	client    kubernetes.Interface         // immutable
	dLister   appslisters.DeploymentLister // immutable
	rsLister  appslisters.ReplicaSetLister // immutable
	podLister corelisters.PodLister        // immutable
	recorder  record.EventRecorder         // immutable; should report as EventSource
	clock     clock.PassiveClock           // immutable
	loop      *controller.Loop             // immutable
}

// New returns a Deployment controller and registers its handlers on the
// informers; the caller starts the informers, then calls Run.
func New(client kubernetes.Interface, dInformer appsinformers.DeploymentInformer, rsInformer appsinformers.ReplicaSetInformer, podInformer coreinformers.PodInformer, recorder record.EventRecorder, clk clock.PassiveClock) (*Controller, error) {
	c := &Controller{
		client:    client,
		dLister:   dInformer.Lister(),
		rsLister:  rsInformer.Lister(),
		podLister: podInformer.Lister(),
		recorder:  recorder,
		clock:     clk,
	}
	c.loop = controller.NewLoop("deployment", c.sync)
	if err := c.loop.WatchAll(
		controller.On(dInformer.Informer(), c.loop.Handlers()),
		controller.On(rsInformer.Informer(), cache.ResourceEventHandlerFuncs{AddFunc: c.addRS, UpdateFunc: c.updateRS, DeleteFunc: c.deleteRS}),
		controller.On(podInformer.Informer(), cache.ResourceEventHandlerFuncs{DeleteFunc: c.deletePod}),
	); err != nil {
		return nil, err
	}
	return c, nil
}

// Run waits for the caches, then syncs Deployments with workers goroutines
// until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) error {
	return c.loop.RunSynced(ctx, workers)
}

// ---- event handlers ---------------------------------------------------------

func (c *Controller) resolve(namespace string, ref *metav1.OwnerReference) *appsv1.Deployment {
	if ref.Kind != deploymentKind.Kind || ref.APIVersion != deploymentKind.GroupVersion().String() {
		return nil
	}
	d, err := c.dLister.Deployments(namespace).Get(ref.Name)
	if err != nil || d.UID != ref.UID {
		return nil
	}
	return d
}

// matching returns the Deployments whose selector matches an orphan
// ReplicaSet, which may want to adopt it.
func (c *Controller) matching(rs *appsv1.ReplicaSet) []*appsv1.Deployment {
	ds, err := c.dLister.Deployments(rs.Namespace).List(labels.Everything())
	if err != nil {
		return nil
	}
	var out []*appsv1.Deployment
	for _, d := range ds {
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(rs.Labels)) {
			out = append(out, d)
		}
	}
	return out
}

func (c *Controller) addRS(obj interface{}) {
	rs, ok := obj.(*appsv1.ReplicaSet)
	if !ok {
		return
	}
	if ref := metav1.GetControllerOf(rs); ref != nil {
		if d := c.resolve(rs.Namespace, ref); d != nil {
			c.loop.Enqueue(d)
		}
		return
	}
	for _, d := range c.matching(rs) {
		c.loop.Enqueue(d)
	}
}

func (c *Controller) updateRS(oldObj, curObj interface{}) {
	old, ok1 := oldObj.(*appsv1.ReplicaSet)
	cur, ok2 := curObj.(*appsv1.ReplicaSet)
	if !ok1 || !ok2 || old.ResourceVersion == cur.ResourceVersion {
		return
	}
	curRef, oldRef := metav1.GetControllerOf(cur), metav1.GetControllerOf(old)
	refChanged := (curRef == nil) != (oldRef == nil) || (curRef != nil && oldRef != nil && curRef.UID != oldRef.UID)
	if refChanged && oldRef != nil {
		if d := c.resolve(old.Namespace, oldRef); d != nil {
			c.loop.Enqueue(d)
		}
	}
	if curRef != nil {
		if d := c.resolve(cur.Namespace, curRef); d != nil {
			c.loop.Enqueue(d)
		}
		return
	}
	if refChanged || !labels.Equals(old.Labels, cur.Labels) {
		for _, d := range c.matching(cur) {
			c.loop.Enqueue(d)
		}
	}
}

func (c *Controller) deleteRS(obj interface{}) {
	rs, ok := obj.(*appsv1.ReplicaSet)
	if !ok {
		tomb, isTomb := obj.(cache.DeletedFinalStateUnknown)
		if !isTomb {
			return
		}
		if rs, ok = tomb.Obj.(*appsv1.ReplicaSet); !ok {
			return
		}
	}
	if ref := metav1.GetControllerOf(rs); ref != nil {
		if d := c.resolve(rs.Namespace, ref); d != nil {
			c.loop.Enqueue(d)
		}
	}
}

// deletePod wakes a Recreate Deployment waiting for its old pods to be gone;
// nothing else in a Deployment's decisions depends on individual pods.
func (c *Controller) deletePod(obj interface{}) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		tomb, isTomb := obj.(cache.DeletedFinalStateUnknown)
		if !isTomb {
			return
		}
		if pod, ok = tomb.Obj.(*corev1.Pod); !ok {
			return
		}
	}
	ref := metav1.GetControllerOf(pod)
	if ref == nil || ref.Kind != "ReplicaSet" {
		return
	}
	rs, err := c.rsLister.ReplicaSets(pod.Namespace).Get(ref.Name)
	if err != nil || rs.UID != ref.UID {
		return
	}
	if dref := metav1.GetControllerOf(rs); dref != nil {
		if d := c.resolve(rs.Namespace, dref); d != nil && d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
			c.loop.Enqueue(d)
		}
	}
}

// ---- sync -------------------------------------------------------------------

func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return controller.Terminal(fmt.Errorf("invalid key %q: %w", key, err))
	}
	d, err := c.dLister.Deployments(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading deployment %s: %w", key, err)
	}
	selector, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return controller.Terminal(fmt.Errorf("deployment %s has an invalid selector: %w", key, err))
	}
	if selector.Empty() {
		c.recorder.Eventf(d, corev1.EventTypeWarning, "SelectingAll", "This deployment is selecting all pods. A non-empty selector is required.")
		if d.Status.ObservedGeneration < d.Generation {
			d = d.DeepCopy()
			d.Status.ObservedGeneration = d.Generation
			if _, err := c.client.AppsV1().Deployments(namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("updating status of deployment %s: %w", key, err)
			}
		}
		return nil
	}
	rss, err := c.claimReplicaSets(ctx, d, selector)
	if err != nil {
		return err
	}
	snap := Snapshot{Deployment: d, ReplicaSets: rss, Now: c.clock.Now()}
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		if snap.Pods, err = c.podsByReplicaSet(d, selector, rss); err != nil {
			return err
		}
	}
	return c.execute(ctx, key, d, Decide(snap))
}

// execute performs plan's writes in order and stops at the first failure;
// the next sync recomputes the plan from what actually got written.
func (c *Controller) execute(ctx context.Context, key string, d *appsv1.Deployment, plan Plan) error {
	rsClient := c.client.AppsV1().ReplicaSets(d.Namespace)
	for _, a := range plan.Actions {
		var err error
		switch a.Verb {
		case Create:
			_, err = rsClient.Create(ctx, a.ReplicaSet, metav1.CreateOptions{})
			if err != nil {
				return c.createFailed(ctx, d, a.ReplicaSet, err)
			}
		case Update:
			_, err = rsClient.Update(ctx, a.ReplicaSet, metav1.UpdateOptions{})
		case Delete:
			err = rsClient.Delete(ctx, a.ReplicaSet.Name, metav1.DeleteOptions{
				Preconditions: &metav1.Preconditions{UID: &a.ReplicaSet.UID},
			})
			if apierrors.IsNotFound(err) {
				err = nil
			}
		}
		if err != nil {
			return fmt.Errorf("%s replica set %s/%s: %w", a.Verb, d.Namespace, a.ReplicaSet.Name, err)
		}
		for _, e := range a.Events {
			c.recorder.Event(d, e.Type, e.Reason, e.Message)
		}
	}
	if plan.Deployment != nil {
		if _, err := c.client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, plan.Deployment, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("updating status of deployment %s: %w", key, err)
		}
	}
	if plan.RequeueAfter > 0 {
		c.loop.EnqueueAfter(key, plan.RequeueAfter)
	}
	return nil
}

// errNotCachedYet is returned when the new ReplicaSet exists on the server
// but not yet in the cache; retrying once the informer catches up is right.
var errNotCachedYet = errors.New("new replica set exists but is not in the cache yet")

// createFailed handles a failed creation of the new ReplicaSet. A name
// clash with a ReplicaSet that is not ours (a hash collision) bumps
// status.collisionCount so the next hash differs, as upstream.
func (c *Controller) createFailed(ctx context.Context, d *appsv1.Deployment, rs *appsv1.ReplicaSet, err error) error {
	switch {
	case apierrors.IsAlreadyExists(err):
		existing, gerr := c.client.AppsV1().ReplicaSets(d.Namespace).Get(ctx, rs.Name, metav1.GetOptions{})
		if gerr != nil {
			return fmt.Errorf("reading existing replica set %s/%s: %w", d.Namespace, rs.Name, gerr)
		}
		if ref := metav1.GetControllerOf(existing); ref != nil && ref.UID == d.UID && equalIgnoreHash(&d.Spec.Template, &existing.Spec.Template) {
			return fmt.Errorf("%s/%s: %w", d.Namespace, rs.Name, errNotCachedYet)
		}
		dc := d.DeepCopy()
		if dc.Status.CollisionCount == nil {
			dc.Status.CollisionCount = new(int32)
		}
		*dc.Status.CollisionCount++
		if _, uerr := c.client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, dc, metav1.UpdateOptions{}); uerr != nil {
			return fmt.Errorf("bumping collision count of deployment %s/%s: %w", d.Namespace, d.Name, uerr)
		}
		return fmt.Errorf("replica set name %s/%s collides with another object, retrying with collisionCount %d: %w", d.Namespace, rs.Name, *dc.Status.CollisionCount, err)
	case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		return fmt.Errorf("creating replica set %s/%s: %w", d.Namespace, rs.Name, err)
	}
	msg := fmt.Sprintf("Failed to create new replica set %q: %v", rs.Name, err)
	if hasProgressDeadline(d) {
		dc := d.DeepCopy()
		setCondition(&dc.Status, newCondition(c.clock.Now(), appsv1.DeploymentProgressing, corev1.ConditionFalse, ReasonFailedReplicaSetCreate, msg))
		// Best effort: the returned error already triggers a retry.
		_, _ = c.client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, dc, metav1.UpdateOptions{})
	}
	c.recorder.Event(d, corev1.EventTypeWarning, ReasonFailedReplicaSetCreate, msg)
	return fmt.Errorf("creating replica set %s/%s: %w", d.Namespace, rs.Name, err)
}

// claimReplicaSets returns the ReplicaSets d controls after adopting
// matching orphans and releasing controlled ones that stopped matching.
func (c *Controller) claimReplicaSets(ctx context.Context, d *appsv1.Deployment, selector labels.Selector) ([]*appsv1.ReplicaSet, error) {
	all, err := c.rsLister.ReplicaSets(d.Namespace).List(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("listing replica sets in %s: %w", d.Namespace, err)
	}
	var (
		owned    []*appsv1.ReplicaSet
		errs     []error
		checked  bool
		adoptErr error
	)
	for _, rs := range all {
		matches := selector.Matches(labels.Set(rs.Labels))
		if ref := metav1.GetControllerOf(rs); ref != nil {
			if ref.UID != d.UID {
				continue
			}
			if matches {
				owned = append(owned, rs)
			} else if d.DeletionTimestamp == nil {
				if err := c.patchOwner(ctx, rs, releasePatch(d.UID, rs.UID)); err != nil {
					errs = append(errs, err)
				}
			}
			continue
		}
		if !matches || d.DeletionTimestamp != nil || rs.DeletionTimestamp != nil {
			continue
		}
		if !checked {
			adoptErr = c.canAdopt(ctx, d)
			checked = true
		}
		if adoptErr != nil {
			errs = append(errs, adoptErr)
			break
		}
		if err := c.patchOwner(ctx, rs, adoptPatch(d, rs.UID)); err != nil {
			errs = append(errs, err)
			continue
		}
		owned = append(owned, rs)
	}
	return owned, utilerrors.NewAggregate(errs)
}

func (c *Controller) canAdopt(ctx context.Context, d *appsv1.Deployment) error {
	fresh, err := c.client.AppsV1().Deployments(d.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("rechecking deployment %s/%s before adoption: %w", d.Namespace, d.Name, err)
	}
	if fresh.UID != d.UID || fresh.DeletionTimestamp != nil {
		return fmt.Errorf("deployment %s/%s is gone or being deleted, not adopting", d.Namespace, d.Name)
	}
	return nil
}

func adoptPatch(d *appsv1.Deployment, uid types.UID) map[string]any {
	return map[string]any{"metadata": map[string]any{
		"ownerReferences": []metav1.OwnerReference{*metav1.NewControllerRef(d, deploymentKind)},
		"uid":             uid,
	}}
}

func releasePatch(owner, uid types.UID) map[string]any {
	return map[string]any{"metadata": map[string]any{
		"ownerReferences": []map[string]any{{"$patch": "delete", "uid": owner}},
		"uid":             uid,
	}}
}

func (c *Controller) patchOwner(ctx context.Context, rs *appsv1.ReplicaSet, patch map[string]any) error {
	body, err := json.Marshal(patch)
	if err != nil {
		return fmt.Errorf("encoding owner patch: %w", err)
	}
	_, err = c.client.AppsV1().ReplicaSets(rs.Namespace).Patch(ctx, rs.Name, types.StrategicMergePatchType, body, metav1.PatchOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("patching owner of replica set %s/%s: %w", rs.Namespace, rs.Name, err)
	}
	return nil
}

// podsByReplicaSet groups the pods matching d's selector by the UID of the
// ReplicaSet (of rss) that controls them.
func (c *Controller) podsByReplicaSet(d *appsv1.Deployment, selector labels.Selector, rss []*appsv1.ReplicaSet) (map[types.UID][]*corev1.Pod, error) {
	pods, err := c.podLister.Pods(d.Namespace).List(selector)
	if err != nil {
		return nil, fmt.Errorf("listing pods of deployment %s/%s: %w", d.Namespace, d.Name, err)
	}
	out := make(map[types.UID][]*corev1.Pod, len(rss))
	for _, rs := range rss {
		out[rs.UID] = nil
	}
	for _, p := range pods {
		if ref := metav1.GetControllerOf(p); ref != nil {
			if _, ok := out[ref.UID]; ok {
				out[ref.UID] = append(out[ref.UID], p)
			}
		}
	}
	return out, nil
}
