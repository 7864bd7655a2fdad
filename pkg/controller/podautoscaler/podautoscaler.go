// Package podautoscaler is the HorizontalPodAutoscaler controller
// (autoscaling/v2): every ResyncPeriod it reads each HPA's target through
// the scale subresource and its pods' usage from the resource metrics API
// (metrics.k8s.io/v1beta1), computes the desired replica count with
// upstream's control law and behavior rules, rescales the target and
// reports status.
//
// Only Resource metrics (cpu, memory, ... with Utilization or AverageValue
// targets) are implemented; Pods, Object, External and ContainerResource
// metrics report ScalingActive=False. Scale targets are Deployments,
// ReplicaSets, StatefulSets and ReplicationControllers, read through their
// typed scale subresources.
package podautoscaler

import (
	"context"
	"fmt"
	"sync"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	autoscalinginformers "k8s.io/client-go/informers/autoscaling/v2"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	autoscalinglisters "k8s.io/client-go/listers/autoscaling/v2"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/skiff-project/skiff/pkg/controller"
)

// EventSource is the component name upstream uses for this controller.
const EventSource = "horizontal-pod-autoscaler"

// ResyncPeriod is how often every HPA is evaluated
// (--horizontal-pod-autoscaler-sync-period).
const ResyncPeriod = 15 * time.Second

// defaultUtilization is the CPU target of an HPA without metrics, as the
// autoscaling/v2 defaults.
const defaultUtilization = 80

// Controller reconciles HorizontalPodAutoscalers. Create it with New and
// start it with Run.
type Controller struct {
	client    kubernetes.Interface                             // immutable
	hpaLister autoscalinglisters.HorizontalPodAutoscalerLister // immutable
	podLister corelisters.PodLister                            // immutable
	metrics   metricsSource                                    // immutable after New
	recorder  record.EventRecorder                             // immutable
	clock     clock.PassiveClock                               // immutable
	loop      *controller.Loop                                 // immutable
	synced    []cache.InformerSynced                           // immutable
	// enqueueAfter is loop.EnqueueAfter except in tests. Immutable.
	enqueueAfter func(key string, d time.Duration)

	mu        sync.Mutex
	histories map[string]history // by HPA key; guarded by mu
}

// New returns the HPA controller. recorder should report as EventSource.
// Pod metrics are read from the metrics.k8s.io/v1beta1 API through
// client's discovery REST client. It registers event handlers on
// hpaInformer and reads pods from podInformer; the caller starts both.
func New(client kubernetes.Interface, hpaInformer autoscalinginformers.HorizontalPodAutoscalerInformer, podInformer coreinformers.PodInformer, recorder record.EventRecorder, clk clock.PassiveClock) (*Controller, error) {
	c := &Controller{
		client:    client,
		hpaLister: hpaInformer.Lister(),
		podLister: podInformer.Lister(),
		metrics:   restMetrics{client: discoveryREST(client)},
		recorder:  recorder,
		clock:     clk,
		histories: map[string]history{},
	}
	c.loop = controller.NewLoop("horizontalpodautoscaling", c.sync)
	c.enqueueAfter = c.loop.EnqueueAfter
	inf := hpaInformer.Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.loop.Enqueue,
		UpdateFunc: func(old, cur interface{}) {
			// Our own status writes need no extra sync: the resync
			// period drives evaluation.
			o, ok1 := old.(*autoscalingv2.HorizontalPodAutoscaler)
			n, ok2 := cur.(*autoscalingv2.HorizontalPodAutoscaler)
			if ok1 && ok2 && equality.Semantic.DeepEqual(o.Spec, n.Spec) {
				return
			}
			c.loop.Enqueue(cur)
		},
		DeleteFunc: func(obj interface{}) {
			if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
				c.forget(key)
			}
		},
	}); err != nil {
		return nil, fmt.Errorf("watching horizontalpodautoscalers: %w", err)
	}
	c.synced = []cache.InformerSynced{inf.HasSynced, podInformer.Informer().HasSynced}
	return c, nil
}

// discoveryREST returns client's discovery REST client, or nil if it has
// none (fake clientsets).
func discoveryREST(client kubernetes.Interface) rest.Interface {
	d := client.Discovery()
	if d == nil {
		return nil
	}
	r := d.RESTClient()
	if rc, ok := r.(*rest.RESTClient); ok && rc == nil {
		return nil
	}
	return r
}

// Run waits for the informer caches, then evaluates HPAs with workers
// goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) error {
	if !cache.WaitForNamedCacheSync(c.loop.Name(), ctx.Done(), c.synced...) {
		return fmt.Errorf("%s: caches did not sync: %w", c.loop.Name(), ctx.Err())
	}
	c.loop.Run(ctx, workers)
	return nil
}

func (c *Controller) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.histories, key)
}

func (c *Controller) history(key string) history {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.histories[key]
}

func (c *Controller) setHistory(key string, h history) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.histories[key] = h
}

// sync evaluates the HPA named by key once and schedules the next
// evaluation.
func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return controller.Terminal(fmt.Errorf("invalid key %q: %w", key, err))
	}
	cached, err := c.hpaLister.HorizontalPodAutoscalers(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		c.forget(key)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading horizontalpodautoscaler %s: %w", key, err)
	}
	c.enqueueAfter(key, ResyncPeriod)
	hpa := cached.DeepCopy()
	err = c.reconcile(ctx, key, hpa)
	if !equality.Semantic.DeepEqual(cached.Status, hpa.Status) {
		if _, uerr := c.client.AutoscalingV2().HorizontalPodAutoscalers(namespace).UpdateStatus(ctx, hpa, metav1.UpdateOptions{}); uerr != nil {
			return fmt.Errorf("updating status of horizontalpodautoscaler %s: %w", key, uerr)
		}
	}
	return err
}

// reconcile computes and applies the HPA's scale, editing hpa.Status. Its
// error is for failures a quick retry may fix (API writes); metric
// problems are reported in conditions and retried at the next resync.
func (c *Controller) reconcile(ctx context.Context, key string, hpa *autoscalingv2.HorizontalPodAutoscaler) error {
	now := c.clock.Now()
	ref := hpa.Spec.ScaleTargetRef
	gr, scale, err := c.getScale(ctx, hpa.Namespace, ref)
	if err != nil {
		setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionFalse, "FailedGetScale", fmt.Sprintf("the HPA controller was unable to get the target's current scale: %v", err), now)
		c.recorder.Event(hpa, corev1.EventTypeWarning, "FailedGetScale", err.Error())
		return nil
	}
	setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, "SucceededGetScale", "the HPA controller was able to get the target's current scale", now)

	current := scale.Spec.Replicas
	minReplicas := int32(1)
	if hpa.Spec.MinReplicas != nil {
		minReplicas = *hpa.Spec.MinReplicas
	}
	var (
		desired  int32
		reason   string
		statuses []autoscalingv2.MetricStatus
		rescale  bool
	)
	switch {
	case current == 0 && minReplicas != 0:
		// Scaled to zero by hand: autoscaling is off until scaled back.
		setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, "ScalingDisabled", "scaling is disabled since the replica count of the target is zero", now)
	case current > hpa.Spec.MaxReplicas:
		desired, reason, rescale = hpa.Spec.MaxReplicas, "Current number of replicas above Spec.MaxReplicas", true
	case current < minReplicas:
		desired, reason, rescale = minReplicas, "Current number of replicas below Spec.MinReplicas", true
	default:
		proposed, metricName, st, err := c.replicasForMetrics(ctx, hpa, scale, current, now)
		statuses = st
		if err != nil {
			hpa.Status.CurrentReplicas = current
			hpa.Status.CurrentMetrics = statuses
			c.recorder.Event(hpa, corev1.EventTypeWarning, "FailedComputeMetricsReplicas", err.Error())
			klog.FromContext(ctx).V(2).Info("cannot compute replicas", "hpa", key, "err", err)
			return nil
		}
		switch {
		case proposed > current:
			reason = metricName + " above target"
		case proposed < current:
			reason = "All metrics below target"
		}
		b := defaultBehavior(hpa.Spec.Behavior)
		n, h := normalize(b, c.history(key), current, proposed, minReplicas, hpa.Spec.MaxReplicas, now)
		c.setHistory(key, h)
		setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, n.ableReason, n.ableMessage, now)
		limited := corev1.ConditionFalse
		if n.limited {
			limited = corev1.ConditionTrue
		}
		setCondition(hpa, autoscalingv2.ScalingLimited, limited, n.limitedReason, n.limitedMessage, now)
		desired = n.replicas
		rescale = desired != current
	}

	if rescale {
		if err := c.updateScale(ctx, hpa.Namespace, gr, scale, desired); err != nil {
			c.recorder.Eventf(hpa, corev1.EventTypeWarning, "FailedRescale", "New size: %d; reason: %s; error: %v", desired, reason, err)
			setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionFalse, "FailedUpdateScale", fmt.Sprintf("the HPA controller was unable to update the target scale: %v", err), now)
			hpa.Status.CurrentReplicas = current
			hpa.Status.CurrentMetrics = statuses
			return fmt.Errorf("rescaling %s %s/%s: %w", ref.Kind, hpa.Namespace, ref.Name, err)
		}
		setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, "SucceededRescale", fmt.Sprintf("the HPA controller was able to update the target scale to %d", desired), now)
		c.recorder.Eventf(hpa, corev1.EventTypeNormal, "SuccessfulRescale", "New size: %d; reason: %s", desired, reason)
		c.setHistory(key, recordScale(defaultBehavior(hpa.Spec.Behavior), c.history(key), current, desired, now))
		hpa.Status.LastScaleTime = &metav1.Time{Time: now}
	} else {
		desired = current
	}
	hpa.Status.CurrentReplicas = current
	hpa.Status.DesiredReplicas = desired
	hpa.Status.CurrentMetrics = statuses
	return nil
}

// replicasForMetrics returns the largest replica count any metric asks
// for, the name of that metric and every metric's current status. A
// metric that cannot be evaluated sets its condition; the result is an
// error if no metric could be evaluated, or if some could not and the rest
// would scale down (scaling down on partial data is unsafe).
func (c *Controller) replicasForMetrics(ctx context.Context, hpa *autoscalingv2.HorizontalPodAutoscaler, scale *autoscalingv1.Scale, current int32, now time.Time) (int32, string, []autoscalingv2.MetricStatus, error) {
	specs := hpa.Spec.Metrics
	if len(specs) == 0 {
		u := int32(defaultUtilization)
		specs = []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
			Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &u},
		}}}
	}
	if scale.Status.Selector == "" {
		c.recorder.Event(hpa, corev1.EventTypeWarning, "SelectorRequired", "selector is required")
		setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, "InvalidSelector", "the HPA target's scale is missing a selector", now)
		return -1, "", nil, fmt.Errorf("selector is required")
	}
	selector, err := labels.Parse(scale.Status.Selector)
	if err != nil {
		c.recorder.Event(hpa, corev1.EventTypeWarning, "InvalidSelector", err.Error())
		setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, "InvalidSelector", fmt.Sprintf("the HPA was unable to compute the replica count: %v", err), now)
		return -1, "", nil, fmt.Errorf("parsing selector %q: %w", scale.Status.Selector, err)
	}
	pods, err := c.podLister.Pods(hpa.Namespace).List(selector)
	if err != nil {
		return -1, "", nil, fmt.Errorf("listing pods: %w", err)
	}

	statuses := make([]autoscalingv2.MetricStatus, len(specs))
	var (
		replicas   int32
		metricName string
		invalid    int
		firstErr   error
		firstCond  autoscalingv2.HorizontalPodAutoscalerCondition
	)
	for i, spec := range specs {
		proposal, name, status, reason, err := c.replicasForMetric(ctx, hpa.Namespace, spec, selector, pods, current, now)
		if err != nil {
			c.recorder.Event(hpa, corev1.EventTypeWarning, reason, err.Error())
			if invalid == 0 {
				firstErr = err
				firstCond = autoscalingv2.HorizontalPodAutoscalerCondition{
					Type: autoscalingv2.ScalingActive, Status: corev1.ConditionFalse, Reason: reason,
					Message: fmt.Sprintf("the HPA was unable to compute the replica count: %v", err),
				}
			}
			invalid++
			continue
		}
		statuses[i] = status
		if metricName == "" || proposal > replicas {
			replicas, metricName = proposal, name
		}
	}
	if invalid >= len(specs) || (invalid > 0 && replicas < current) {
		setCondition(hpa, firstCond.Type, firstCond.Status, firstCond.Reason, firstCond.Message, now)
		return -1, "", statuses, fmt.Errorf("invalid metrics (%v invalid out of %v), first error is: %w", invalid, len(specs), firstErr)
	}
	setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionTrue, "ValidMetricFound", fmt.Sprintf("the HPA was able to successfully calculate a replica count from %s", metricName), now)
	return replicas, metricName, statuses, nil
}

// replicasForMetric evaluates one metric spec; on error it also returns
// the condition/event reason.
func (c *Controller) replicasForMetric(ctx context.Context, namespace string, spec autoscalingv2.MetricSpec, selector labels.Selector, pods []*corev1.Pod, current int32, now time.Time) (int32, string, autoscalingv2.MetricStatus, string, error) {
	if spec.Type != autoscalingv2.ResourceMetricSourceType || spec.Resource == nil {
		return 0, "", autoscalingv2.MetricStatus{}, "InvalidMetricSourceType", fmt.Errorf("metric source type %q is not supported", spec.Type)
	}
	res := spec.Resource.Name
	t := target{resource: res}
	var name, what string
	switch {
	case spec.Resource.Target.AverageUtilization != nil:
		t.utilization = *spec.Resource.Target.AverageUtilization
		name = fmt.Sprintf("%s resource utilization (percentage of request)", res)
		what = "utilization"
	case spec.Resource.Target.AverageValue != nil:
		t.averageMilli = spec.Resource.Target.AverageValue.MilliValue()
		name = fmt.Sprintf("%s resource", res)
		what = "usage"
	default:
		return 0, "", autoscalingv2.MetricStatus{}, "FailedGetResourceMetric", fmt.Errorf("invalid resource metric source: neither a utilization target nor a value target was set")
	}
	metrics, err := c.metrics.podMetrics(ctx, namespace, selector, res)
	var rec recommendation
	if err != nil {
		err = fmt.Errorf("unable to get metrics for resource %s: %w", res, err)
	} else {
		rec, err = replicasFor(current, pods, metrics, t, now)
	}
	if err != nil {
		return 0, "", autoscalingv2.MetricStatus{}, "FailedGetResourceMetric", fmt.Errorf("failed to get %s %s: %w", res, what, err)
	}
	status := autoscalingv2.MetricStatus{
		Type: autoscalingv2.ResourceMetricSourceType,
		Resource: &autoscalingv2.ResourceMetricStatus{
			Name:    res,
			Current: autoscalingv2.MetricValueStatus{AverageValue: resource.NewMilliQuantity(rec.averageMilli, resource.DecimalSI)},
		},
	}
	if t.utilization > 0 {
		u := rec.utilization
		status.Resource.Current.AverageUtilization = &u
	}
	return rec.replicas, name, status, "", nil
}

// setCondition sets hpa's condition t, moving its transition time only
// when the status changes.
func setCondition(hpa *autoscalingv2.HorizontalPodAutoscaler, t autoscalingv2.HorizontalPodAutoscalerConditionType, status corev1.ConditionStatus, reason, message string, now time.Time) {
	var cond *autoscalingv2.HorizontalPodAutoscalerCondition
	for i := range hpa.Status.Conditions {
		if hpa.Status.Conditions[i].Type == t {
			cond = &hpa.Status.Conditions[i]
		}
	}
	if cond == nil {
		hpa.Status.Conditions = append(hpa.Status.Conditions, autoscalingv2.HorizontalPodAutoscalerCondition{Type: t})
		cond = &hpa.Status.Conditions[len(hpa.Status.Conditions)-1]
	}
	if cond.Status != status {
		cond.LastTransitionTime = metav1.Time{Time: now}
	}
	cond.Status, cond.Reason, cond.Message = status, reason, message
}

// getScale reads the target's scale subresource.
func (c *Controller) getScale(ctx context.Context, namespace string, ref autoscalingv2.CrossVersionObjectReference) (schema.GroupResource, *autoscalingv1.Scale, error) {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return schema.GroupResource{}, nil, fmt.Errorf("invalid API version in scale target reference: %w", err)
	}
	gr := schema.GroupResource{Group: gv.Group}
	var scale *autoscalingv1.Scale
	switch gk := (schema.GroupKind{Group: gv.Group, Kind: ref.Kind}); gk {
	case schema.GroupKind{Group: "apps", Kind: "Deployment"}:
		gr.Resource = "deployments"
		scale, err = c.client.AppsV1().Deployments(namespace).GetScale(ctx, ref.Name, metav1.GetOptions{})
	case schema.GroupKind{Group: "apps", Kind: "ReplicaSet"}:
		gr.Resource = "replicasets"
		scale, err = c.client.AppsV1().ReplicaSets(namespace).GetScale(ctx, ref.Name, metav1.GetOptions{})
	case schema.GroupKind{Group: "apps", Kind: "StatefulSet"}:
		gr.Resource = "statefulsets"
		scale, err = c.client.AppsV1().StatefulSets(namespace).GetScale(ctx, ref.Name, metav1.GetOptions{})
	case schema.GroupKind{Group: "", Kind: "ReplicationController"}:
		gr.Resource = "replicationcontrollers"
		scale, err = c.client.CoreV1().ReplicationControllers(namespace).GetScale(ctx, ref.Name, metav1.GetOptions{})
	default:
		return gr, nil, fmt.Errorf("unable to determine resource for scale target reference: %s is not a supported scale target", gk)
	}
	if err != nil {
		return gr, nil, err
	}
	return gr, scale, nil
}

// updateScale writes replicas through the target's scale subresource,
// with the read scale's resourceVersion for optimistic concurrency.
func (c *Controller) updateScale(ctx context.Context, namespace string, gr schema.GroupResource, scale *autoscalingv1.Scale, replicas int32) error {
	s := scale.DeepCopy()
	s.Spec.Replicas = replicas
	var err error
	switch gr.Resource {
	case "deployments":
		_, err = c.client.AppsV1().Deployments(namespace).UpdateScale(ctx, s.Name, s, metav1.UpdateOptions{})
	case "replicasets":
		_, err = c.client.AppsV1().ReplicaSets(namespace).UpdateScale(ctx, s.Name, s, metav1.UpdateOptions{})
	case "statefulsets":
		_, err = c.client.AppsV1().StatefulSets(namespace).UpdateScale(ctx, s.Name, s, metav1.UpdateOptions{})
	case "replicationcontrollers":
		_, err = c.client.CoreV1().ReplicationControllers(namespace).UpdateScale(ctx, s.Name, s, metav1.UpdateOptions{})
	default:
		err = fmt.Errorf("no scale subresource for %s", gr)
	}
	return err
}
