// Package disruption is the PodDisruptionBudget controller: it reports, for
// each budget, how many of its pods are healthy, how many must stay healthy,
// and so how many voluntary disruptions (evictions) are allowed now. The
// eviction API reads status.disruptionsAllowed; this controller is what
// keeps it true.
package disruption

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	policyinformers "k8s.io/client-go/informers/policy/v1"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	policylisters "k8s.io/client-go/listers/policy/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/skiff-project/skiff/pkg/controller"
)

// EventSource is the component name events are recorded under: upstream's
// disruption controller records as "controllermanager".
const EventSource = "controllermanager"

// Event reasons and condition reasons, as upstream.
const (
	ReasonNoPods                          = "NoPods"
	ReasonCalculateExpectedPodCountFailed = "CalculateExpectedPodCountFailed"
)

// DeletionTimeout is how long a pod named in status.disruptedPods (by the
// eviction API, before it deletes the pod) is counted as already disrupted;
// after it the entry is considered lost and dropped, as upstream.
const DeletionTimeout = 2 * time.Minute

// Controller maintains PodDisruptionBudget status. Create it with New and
// start it with Run.
type Controller struct {
	client    kubernetes.Interface                    // immutable
	pdbLister policylisters.PodDisruptionBudgetLister // immutable
	podLister corelisters.PodLister                   // immutable
	rcLister  corelisters.ReplicationControllerLister // immutable
	rsLister  appslisters.ReplicaSetLister            // immutable
	dLister   appslisters.DeploymentLister            // immutable
	ssLister  appslisters.StatefulSetLister           // immutable
	recorder  record.EventRecorder                    // immutable; reports as EventSource
	clock     clock.PassiveClock                      // immutable
	loop      *controller.Loop                        // immutable
}

// New returns the disruption controller and registers its handlers on the
// informers; the caller starts the informers, then calls Run. The workload
// informers are read to find the scale of the pods' controllers.
func New(client kubernetes.Interface, pdbInformer policyinformers.PodDisruptionBudgetInformer, podInformer coreinformers.PodInformer,
	rcInformer coreinformers.ReplicationControllerInformer, rsInformer appsinformers.ReplicaSetInformer,
	dInformer appsinformers.DeploymentInformer, ssInformer appsinformers.StatefulSetInformer,
	recorder record.EventRecorder, clk clock.PassiveClock) (*Controller, error) {
	c := &Controller{
		client:    client,
		pdbLister: pdbInformer.Lister(),
		podLister: podInformer.Lister(),
		rcLister:  rcInformer.Lister(),
		rsLister:  rsInformer.Lister(),
		dLister:   dInformer.Lister(),
		ssLister:  ssInformer.Lister(),
		recorder:  recorder,
		clock:     clk,
	}
	c.loop = controller.NewLoop("disruption", c.sync)
	if err := c.loop.WatchAll(
		controller.On(pdbInformer.Informer(), c.loop.Handlers()),
		controller.On(podInformer.Informer(), cache.ResourceEventHandlerFuncs{AddFunc: c.enqueueForPod, UpdateFunc: c.updatePod, DeleteFunc: c.enqueueForPod}),
		controller.On(rcInformer.Informer(), cache.ResourceEventHandlerFuncs{}),
		controller.On(rsInformer.Informer(), cache.ResourceEventHandlerFuncs{}),
		controller.On(dInformer.Informer(), cache.ResourceEventHandlerFuncs{}),
		controller.On(ssInformer.Informer(), cache.ResourceEventHandlerFuncs{}),
	); err != nil {
		return nil, err
	}
	return c, nil
}

// Run waits for the informer caches, then syncs budgets with workers
// goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) error {
	return c.loop.RunSynced(ctx, workers)
}

func (c *Controller) updatePod(oldObj, curObj interface{}) {
	old, ok1 := oldObj.(*corev1.Pod)
	cur, ok2 := curObj.(*corev1.Pod)
	if !ok1 || !ok2 || old.ResourceVersion == cur.ResourceVersion {
		return
	}
	c.enqueueForPod(cur)
	if !labels.Equals(old.Labels, cur.Labels) {
		c.enqueueForPod(old)
	}
}

// enqueueForPod enqueues the budgets whose selector matches pod.
func (c *Controller) enqueueForPod(obj interface{}) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	pdbs, err := c.pdbLister.PodDisruptionBudgets(pod.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, pdb := range pdbs {
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || pdb.Spec.Selector == nil {
			continue
		}
		if sel.Matches(labels.Set(pod.Labels)) {
			c.loop.Enqueue(pdb)
		}
	}
}

func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return controller.Terminal(fmt.Errorf("invalid key %q: %w", key, err))
	}
	pdb, err := c.pdbLister.PodDisruptionBudgets(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading poddisruptionbudget %s: %w", key, err)
	}
	now := c.clock.Now()
	pods, err := c.pods(pdb)
	if err != nil {
		return c.failSafe(ctx, pdb, now, err)
	}
	if len(pods) == 0 {
		c.recorder.Event(pdb, corev1.EventTypeNormal, ReasonNoPods, "No matching pods found")
	}
	expected, desired, err := c.expectations(pdb, pods)
	if err != nil {
		c.recorder.Event(pdb, corev1.EventTypeWarning, ReasonCalculateExpectedPodCountFailed, fmt.Sprintf("Failed to calculate the number of expected pods: %v", err))
		return c.failSafe(ctx, pdb, now, err)
	}
	disrupted, recheck := activeDisruptions(pdb.Status.DisruptedPods, pods, now)
	status := Status(pdb, pods, disrupted, expected, desired, now)
	if err := c.writeStatus(ctx, pdb, status); err != nil {
		return err
	}
	if !recheck.IsZero() {
		// An eviction entry expires then and the budget changes with it.
		c.loop.EnqueueAfter(key, recheck.Sub(now))
	}
	return nil
}

func (c *Controller) writeStatus(ctx context.Context, pdb *policyv1.PodDisruptionBudget, status policyv1.PodDisruptionBudgetStatus) error {
	if equality.Semantic.DeepEqual(pdb.Status, status) {
		return nil
	}
	u := pdb.DeepCopy()
	u.Status = status
	if _, err := c.client.PolicyV1().PodDisruptionBudgets(pdb.Namespace).UpdateStatus(ctx, u, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating status of poddisruptionbudget %s/%s: %w", pdb.Namespace, pdb.Name, err)
	}
	return nil
}

// failSafe allows no disruptions while the budget cannot be computed: a
// wrong "allowed" would let evictions break the application.
func (c *Controller) failSafe(ctx context.Context, pdb *policyv1.PodDisruptionBudget, now time.Time, cause error) error {
	st := *pdb.Status.DeepCopy()
	st.DisruptionsAllowed = 0
	st.ObservedGeneration = pdb.Generation
	setCondition(&st.Conditions, metav1.Condition{
		Type: policyv1.DisruptionAllowedCondition, Status: metav1.ConditionFalse, Reason: policyv1.SyncFailedReason,
		Message: cause.Error(), ObservedGeneration: pdb.Generation,
	}, now)
	return errors.Join(cause, c.writeStatus(ctx, pdb, st))
}

// pods returns the pods pdb selects. A nil selector selects nothing; an
// empty one selects every pod in the namespace (policy/v1 semantics).
func (c *Controller) pods(pdb *policyv1.PodDisruptionBudget) ([]*corev1.Pod, error) {
	if pdb.Spec.Selector == nil {
		return nil, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil {
		return nil, controller.Terminal(fmt.Errorf("poddisruptionbudget %s/%s has an invalid selector: %w", pdb.Namespace, pdb.Name, err))
	}
	pods, err := c.podLister.Pods(pdb.Namespace).List(sel)
	if err != nil {
		return nil, fmt.Errorf("listing pods for poddisruptionbudget %s/%s: %w", pdb.Namespace, pdb.Name, err)
	}
	return pods, nil
}

// expectations returns how many pods pdb expects and how many must be
// healthy: minAvailable as a number needs no scale; a percentage or
// maxUnavailable is resolved against the summed scale of the pods'
// controllers (each counted once), percentages rounded up.
func (c *Controller) expectations(pdb *policyv1.PodDisruptionBudget, pods []*corev1.Pod) (expected, desired int32, err error) {
	switch {
	case pdb.Spec.MaxUnavailable != nil:
		expected = c.scale(pods)
		maxUnavailable, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MaxUnavailable, int(expected), true)
		if err != nil {
			return 0, 0, fmt.Errorf("invalid maxUnavailable: %w", err)
		}
		return expected, max(0, expected-int32(maxUnavailable)), nil
	case pdb.Spec.MinAvailable != nil && pdb.Spec.MinAvailable.Type == intstr.Int:
		return int32(len(pods)), pdb.Spec.MinAvailable.IntVal, nil
	case pdb.Spec.MinAvailable != nil:
		expected = c.scale(pods)
		minAvailable, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MinAvailable, int(expected), true)
		if err != nil {
			return 0, 0, fmt.Errorf("invalid minAvailable: %w", err)
		}
		return expected, int32(minAvailable), nil
	}
	// Neither set: validation forbids it; treat as "no pod may go".
	return int32(len(pods)), int32(len(pods)), nil
}

// scale sums the desired replicas of the controllers of pods, each
// controller once. Pods without a scalable controller (bare pods,
// DaemonSets, Jobs) count as one each: the budget then protects the pods
// that exist.
func (c *Controller) scale(pods []*corev1.Pod) int32 {
	seen := map[types.UID]bool{}
	var total int32
	for _, p := range pods {
		uid, replicas, ok := c.controllerScale(p)
		if !ok {
			total++
			continue
		}
		if !seen[uid] {
			seen[uid] = true
			total += replicas
		}
	}
	return total
}

// controllerScale resolves pod's scalable controller: a ReplicaSet (or the
// Deployment owning it), a ReplicationController or a StatefulSet.
func (c *Controller) controllerScale(pod *corev1.Pod) (types.UID, int32, bool) {
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return "", 0, false
	}
	replicas := func(p *int32) int32 {
		if p == nil {
			return 1
		}
		return *p
	}
	switch {
	case ref.Kind == "ReplicaSet" && ref.APIVersion == appsv1.SchemeGroupVersion.String():
		rs, err := c.rsLister.ReplicaSets(pod.Namespace).Get(ref.Name)
		if err != nil || rs.UID != ref.UID {
			return "", 0, false
		}
		if dref := metav1.GetControllerOf(rs); dref != nil && dref.Kind == "Deployment" {
			if d, err := c.dLister.Deployments(pod.Namespace).Get(dref.Name); err == nil && d.UID == dref.UID {
				return d.UID, replicas(d.Spec.Replicas), true
			}
		}
		return rs.UID, replicas(rs.Spec.Replicas), true
	case ref.Kind == "ReplicationController" && ref.APIVersion == "v1":
		rc, err := c.rcLister.ReplicationControllers(pod.Namespace).Get(ref.Name)
		if err != nil || rc.UID != ref.UID {
			return "", 0, false
		}
		return rc.UID, replicas(rc.Spec.Replicas), true
	case ref.Kind == "StatefulSet" && ref.APIVersion == appsv1.SchemeGroupVersion.String():
		ss, err := c.ssLister.StatefulSets(pod.Namespace).Get(ref.Name)
		if err != nil || ss.UID != ref.UID {
			return "", 0, false
		}
		return ss.UID, replicas(ss.Spec.Replicas), true
	}
	return "", 0, false
}

// activeDisruptions returns the entries of disruptedPods still in effect at
// now — the pod exists, is not yet being deleted, and the eviction is
// younger than DeletionTimeout — and when the earliest of them expires.
func activeDisruptions(disruptedPods map[string]metav1.Time, pods []*corev1.Pod, now time.Time) (map[string]metav1.Time, time.Time) {
	if len(disruptedPods) == 0 {
		return nil, time.Time{}
	}
	byName := make(map[string]*corev1.Pod, len(pods))
	for _, p := range pods {
		byName[p.Name] = p
	}
	var (
		out  map[string]metav1.Time
		next time.Time
	)
	for name, at := range disruptedPods {
		p, ok := byName[name]
		expires := at.Add(DeletionTimeout)
		if !ok || p.DeletionTimestamp != nil || !expires.After(now) {
			continue
		}
		if out == nil {
			out = map[string]metav1.Time{}
		}
		out[name] = at
		if next.IsZero() || expires.Before(next) {
			next = expires
		}
	}
	return out, next
}

// Status computes pdb's status: currentHealthy counts Ready pods that are
// neither being deleted nor just evicted (in disrupted); disruptionsAllowed
// is how far currentHealthy exceeds desiredHealthy; the DisruptionAllowed
// condition says whether any disruption is allowed (SufficientPods) or not
// (InsufficientPods).
func Status(pdb *policyv1.PodDisruptionBudget, pods []*corev1.Pod, disrupted map[string]metav1.Time, expected, desired int32, now time.Time) policyv1.PodDisruptionBudgetStatus {
	var healthy int32
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		if _, ok := disrupted[p.Name]; ok {
			continue
		}
		if isReady(p) {
			healthy++
		}
	}
	st := *pdb.Status.DeepCopy()
	st.ObservedGeneration = pdb.Generation
	st.CurrentHealthy = healthy
	st.DesiredHealthy = desired
	st.ExpectedPods = expected
	st.DisruptedPods = disrupted
	st.DisruptionsAllowed = max(0, healthy-desired)
	cond := metav1.Condition{
		Type: policyv1.DisruptionAllowedCondition, Status: metav1.ConditionFalse,
		Reason: policyv1.InsufficientPodsReason, ObservedGeneration: pdb.Generation,
	}
	if st.DisruptionsAllowed > 0 {
		cond.Status, cond.Reason = metav1.ConditionTrue, policyv1.SufficientPodsReason
	}
	setCondition(&st.Conditions, cond, now)
	return st
}

// setCondition sets cond in conds, keeping the transition time unless the
// status changes (meta.SetStatusCondition, with an injected clock).
func setCondition(conds *[]metav1.Condition, cond metav1.Condition, now time.Time) {
	for i := range *conds {
		e := &(*conds)[i]
		if e.Type != cond.Type {
			continue
		}
		if e.Status != cond.Status {
			e.LastTransitionTime = metav1.NewTime(now)
		}
		e.Status, e.Reason, e.Message, e.ObservedGeneration = cond.Status, cond.Reason, cond.Message, cond.ObservedGeneration
		return
	}
	cond.LastTransitionTime = metav1.NewTime(now)
	*conds = append(*conds, cond)
}

func isReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
