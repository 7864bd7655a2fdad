package podautoscaler

import (
	"errors"
	"fmt"
	"math"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Control-law constants, upstream's kube-controller-manager defaults.
const (
	// Tolerance is the relative deviation from the target within which no
	// scaling happens (--horizontal-pod-autoscaler-tolerance).
	Tolerance = 0.1
	// CPUInitializationPeriod is how long after start a pod's CPU samples
	// are distrusted unless it is ready and was sampled after becoming so.
	CPUInitializationPeriod = 5 * time.Minute
	// InitialReadinessDelay is how long after start a not-ready pod is
	// presumed to be still starting rather than broken.
	InitialReadinessDelay = 30 * time.Second
)

// podMetric is one pod's usage of a resource, summed over its containers,
// in milli-units.
type podMetric struct {
	timestamp time.Time
	window    time.Duration
	value     int64
}

// target is what one resource metric aims for: a utilization percentage
// of the pods' requests, or (utilization 0) an average milli-value.
type target struct {
	resource     corev1.ResourceName
	utilization  int32
	averageMilli int64
}

// recommendation is the control law's output for one metric.
type recommendation struct {
	replicas int32
	// utilization is the current average utilization in percent of the
	// requests (utilization targets only).
	utilization int32
	// averageMilli is the current average usage per pod in milli-units.
	averageMilli int64
}

var errNoMatchingMetrics = errors.New("no metrics returned matched known pods")

// replicasFor is the control law: desired = ceil(ready pods × usage
// ratio), nothing within Tolerance of the target, with upstream's
// conservative treatment of pods that have no usable sample:
//
//   - deleted and failed pods are ignored;
//   - pending pods, and (for CPU) pods not yet ready or sampled too soon
//     after start, count as using nothing — but only on a scale-up;
//   - pods without metrics count as using nothing on a scale-up, and their
//     full request (or the target, if above 100%) on a scale-down;
//
// and the result falls back to current when the filled-in figures would
// flip the direction of scaling. pods are the target's pods, metrics the
// samples by pod name, now the clock for the readiness rules.
func replicasFor(current int32, pods []*corev1.Pod, metrics map[string]podMetric, t target, now time.Time) (recommendation, error) {
	if len(pods) == 0 {
		return recommendation{}, errors.New("no pods returned by selector while calculating replica count")
	}
	ready, unready, missing := groupPods(pods, metrics, t.resource, now)
	usable := map[string]podMetric{}
	for name, m := range metrics {
		if ready[name] {
			usable[name] = m
		}
	}
	if len(usable) == 0 {
		return recommendation{}, errors.New("did not receive metrics for targeted pods (pods might be unready)")
	}
	var requests map[string]int64
	if t.utilization > 0 {
		var err error
		if requests, err = podRequests(pods, t.resource); err != nil {
			return recommendation{}, err
		}
	}
	ratio, rec, err := usageRatio(usable, requests, t)
	if err != nil {
		return recommendation{}, err
	}
	scaleUpWithUnready := len(unready) > 0 && ratio > 1.0
	if !scaleUpWithUnready && len(missing) == 0 {
		if math.Abs(1.0-ratio) <= Tolerance {
			rec.replicas = current
		} else {
			rec.replicas = int32(math.Ceil(ratio * float64(len(ready))))
		}
		return rec, nil
	}
	for name := range missing {
		switch {
		case ratio < 1.0 && t.utilization > 0:
			usable[name] = podMetric{value: requests[name] * int64(max(100, t.utilization)) / 100}
		case ratio < 1.0:
			usable[name] = podMetric{value: t.averageMilli}
		case ratio > 1.0:
			usable[name] = podMetric{}
		}
	}
	if scaleUpWithUnready {
		for name := range unready {
			usable[name] = podMetric{}
		}
	}
	newRatio, _, err := usageRatio(usable, requests, t)
	if err != nil {
		return recommendation{}, err
	}
	if math.Abs(1.0-newRatio) <= Tolerance || (ratio < 1.0 && newRatio > 1.0) || (ratio > 1.0 && newRatio < 1.0) {
		rec.replicas = current
		return rec, nil
	}
	n := int32(math.Ceil(newRatio * float64(len(usable))))
	if (newRatio < 1.0 && n > current) || (newRatio > 1.0 && n < current) {
		rec.replicas = current
		return rec, nil
	}
	rec.replicas = n
	return rec, nil
}

// groupPods sorts pods into ready (usable sample), unready (sample not
// trusted) and missing (no sample); deleted and failed pods are in none.
func groupPods(pods []*corev1.Pod, metrics map[string]podMetric, resource corev1.ResourceName, now time.Time) (ready, unready, missing map[string]bool) {
	ready, unready, missing = map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, pod := range pods {
		if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		if pod.Status.Phase == corev1.PodPending {
			unready[pod.Name] = true
			continue
		}
		m, ok := metrics[pod.Name]
		if !ok {
			missing[pod.Name] = true
			continue
		}
		if resource == corev1.ResourceCPU && cpuSampleUntrusted(pod, m, now) {
			unready[pod.Name] = true
			continue
		}
		ready[pod.Name] = true
	}
	return ready, unready, missing
}

// cpuSampleUntrusted reports whether pod's CPU sample may reflect start-up
// work rather than load: during the initialization period unless ready
// and sampled a full window after turning ready; afterwards only if it has
// never been ready.
func cpuSampleUntrusted(pod *corev1.Pod, m podMetric, now time.Time) bool {
	var cond *corev1.PodCondition
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == corev1.PodReady {
			cond = &pod.Status.Conditions[i]
		}
	}
	if cond == nil || pod.Status.StartTime == nil {
		return true
	}
	start := pod.Status.StartTime.Time
	if start.Add(CPUInitializationPeriod).After(now) {
		return cond.Status == corev1.ConditionFalse || m.timestamp.Before(cond.LastTransitionTime.Add(m.window))
	}
	return cond.Status == corev1.ConditionFalse && start.Add(InitialReadinessDelay).After(cond.LastTransitionTime.Time)
}

// podRequests sums each pod's container requests of resource in
// milli-units; a container without one makes utilization undefined.
func podRequests(pods []*corev1.Pod, resource corev1.ResourceName) (map[string]int64, error) {
	out := make(map[string]int64, len(pods))
	for _, pod := range pods {
		var sum int64
		for _, c := range pod.Spec.Containers {
			q, ok := c.Resources.Requests[resource]
			if !ok {
				return nil, fmt.Errorf("missing request for %s in container %s of Pod %s", resource, c.Name, pod.Name)
			}
			sum += q.MilliValue()
		}
		out[pod.Name] = sum
	}
	return out, nil
}

// usageRatio returns current usage over target and the current averages.
func usageRatio(metrics map[string]podMetric, requests map[string]int64, t target) (float64, recommendation, error) {
	if t.utilization > 0 {
		var used, requested, n int64
		for name, m := range metrics {
			req, ok := requests[name]
			if !ok {
				continue
			}
			used += m.value
			requested += req
			n++
		}
		if requested == 0 {
			return 0, recommendation{}, errNoMatchingMetrics
		}
		util := int32(used * 100 / requested)
		return float64(util) / float64(t.utilization), recommendation{utilization: util, averageMilli: used / n}, nil
	}
	if len(metrics) == 0 || t.averageMilli <= 0 {
		return 0, recommendation{}, errNoMatchingMetrics
	}
	var used int64
	for _, m := range metrics {
		used += m.value
	}
	avg := used / int64(len(metrics))
	return float64(avg) / float64(t.averageMilli), recommendation{averageMilli: avg}, nil
}
