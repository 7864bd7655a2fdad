package podautoscaler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
)

// metricsSource reads pods' current resource usage.
type metricsSource interface {
	// podMetrics returns the usage of resource by each pod in namespace
	// matching selector, keyed by pod name, in milli-units. Pods lacking a
	// sample for any container are left out. An empty result is an error.
	podMetrics(ctx context.Context, namespace string, selector labels.Selector, resource corev1.ResourceName) (map[string]podMetric, error)
}

// metricsPath is the resource metrics API (served by metrics-server or a
// compatible aggregated API).
const metricsPath = "/apis/metrics.k8s.io/v1beta1"

// The subset of metrics.k8s.io/v1beta1 PodMetrics the controller reads;
// k8s.io/metrics is not a dependency.
type podMetricsList struct {
	Items []podMetricsItem `json:"items"`
}

type podMetricsItem struct {
	Metadata   metav1.ObjectMeta  `json:"metadata"`
	Timestamp  metav1.Time        `json:"timestamp"`
	Window     metav1.Duration    `json:"window"`
	Containers []containerMetrics `json:"containers"`
}

type containerMetrics struct {
	Name  string              `json:"name"`
	Usage corev1.ResourceList `json:"usage"`
}

var errNoMetrics = errors.New("no metrics returned from resource metrics API")

// restMetrics reads the resource metrics API over a REST client.
type restMetrics struct {
	client rest.Interface // nil when the clientset has none (fakes)
}

func (r restMetrics) podMetrics(ctx context.Context, namespace string, selector labels.Selector, resource corev1.ResourceName) (map[string]podMetric, error) {
	if r.client == nil {
		return nil, errors.New("no client for the resource metrics API")
	}
	raw, err := r.client.Get().AbsPath(metricsPath, "namespaces", namespace, "pods").
		Param("labelSelector", selector.String()).Do(ctx).Raw()
	if err != nil {
		return nil, fmt.Errorf("unable to fetch metrics from resource metrics API: %w", err)
	}
	var list podMetricsList
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("decoding resource metrics: %w", err)
	}
	return sumPodMetrics(list, resource)
}

// sumPodMetrics adds up each pod's container usage of resource.
func sumPodMetrics(list podMetricsList, resource corev1.ResourceName) (map[string]podMetric, error) {
	out := map[string]podMetric{}
	for _, item := range list.Items {
		var sum int64
		complete := len(item.Containers) > 0
		for _, c := range item.Containers {
			q, ok := c.Usage[resource]
			if !ok {
				complete = false
				break
			}
			sum += q.MilliValue()
		}
		if !complete {
			continue
		}
		out[item.Metadata.Name] = podMetric{timestamp: item.Timestamp.Time, window: item.Window.Duration, value: sum}
	}
	if len(out) == 0 {
		return nil, errNoMetrics
	}
	return out, nil
}
