package printers

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// hpaMaxTargets is how many metrics the Targets column lists before
// summarizing the rest as " + N more...".
const hpaMaxTargets = 2

func hpaPrinter() *Printer {
	spec, status := autoscalingv2.HorizontalPodAutoscalerSpec{}.SwaggerDoc(), autoscalingv2.HorizontalPodAutoscalerStatus{}.SwaggerDoc()
	return &Printer{
		Columns: cols(
			nameColumn(),
			column("Reference", "string", spec["scaleTargetRef"]),
			column("Targets", "string", spec["metrics"]),
			column("MinPods", "string", spec["minReplicas"]),
			column("MaxPods", "string", spec["maxReplicas"]),
			column("Replicas", "string", status["currentReplicas"]),
			ageColumn(),
		),
		Row: hpaRow,
	}
}

// hpaRow accepts both autoscaling/v2 and autoscaling/v1 objects; v1 ones are
// shown as their v2 form (a CPU utilization target becomes a Resource
// metric), which is what upstream prints from its internal version.
func hpaRow(obj runtime.Object, now time.Time) ([]interface{}, error) {
	switch h := obj.(type) {
	case *autoscalingv2.HorizontalPodAutoscaler:
		if h != nil {
			return hpaCells(h, now), nil
		}
	case *autoscalingv1.HorizontalPodAutoscaler:
		if h != nil {
			return hpaCells(hpaV1ToV2(h), now), nil
		}
	}
	return nil, fmt.Errorf("table printer for horizontalpodautoscalers: cannot print %T", obj)
}

func hpaCells(h *autoscalingv2.HorizontalPodAutoscaler, now time.Time) []interface{} {
	minPods := "<unset>"
	if h.Spec.MinReplicas != nil {
		minPods = strconv.Itoa(int(*h.Spec.MinReplicas))
	}
	return []interface{}{
		h.Name,
		h.Spec.ScaleTargetRef.Kind + "/" + h.Spec.ScaleTargetRef.Name,
		hpaTargets(h.Spec.Metrics, h.Status.CurrentMetrics),
		minPods,
		strconv.Itoa(int(h.Spec.MaxReplicas)),
		strconv.Itoa(int(h.Status.CurrentReplicas)),
		age(h.CreationTimestamp, now),
	}
}

// hpaV1ToV2 converts the fields the table shows from v1 to v2.
func hpaV1ToV2(in *autoscalingv1.HorizontalPodAutoscaler) *autoscalingv2.HorizontalPodAutoscaler {
	out := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: in.ObjectMeta,
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{
				Kind: in.Spec.ScaleTargetRef.Kind, Name: in.Spec.ScaleTargetRef.Name, APIVersion: in.Spec.ScaleTargetRef.APIVersion,
			},
			MinReplicas: in.Spec.MinReplicas,
			MaxReplicas: in.Spec.MaxReplicas,
		},
		Status: autoscalingv2.HorizontalPodAutoscalerStatus{CurrentReplicas: in.Status.CurrentReplicas},
	}
	if in.Spec.TargetCPUUtilizationPercentage != nil {
		out.Spec.Metrics = []autoscalingv2.MetricSpec{{
			Type: autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceCPU,
				Target: autoscalingv2.MetricTarget{
					Type:               autoscalingv2.UtilizationMetricType,
					AverageUtilization: in.Spec.TargetCPUUtilizationPercentage,
				},
			},
		}}
	}
	if in.Status.CurrentCPUUtilizationPercentage != nil {
		out.Status.CurrentMetrics = []autoscalingv2.MetricStatus{{
			Type: autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricStatus{
				Name:    corev1.ResourceCPU,
				Current: autoscalingv2.MetricValueStatus{AverageUtilization: in.Status.CurrentCPUUtilizationPercentage},
			},
		}}
	}
	return out
}

// hpaTargets renders the Targets column: "current/target" per metric (the
// status at the same index is the metric's current value), "<unknown>" for
// metrics not yet observed. Nil quantities render as "<nil>", as upstream.
func hpaTargets(specs []autoscalingv2.MetricSpec, statuses []autoscalingv2.MetricStatus) string {
	if len(specs) == 0 {
		return "<none>"
	}
	list := make([]string, 0, len(specs))
	for i := range specs {
		var st *autoscalingv2.MetricStatus
		if i < len(statuses) {
			st = &statuses[i]
		}
		list = append(list, hpaTarget(&specs[i], st))
	}
	if len(list) > hpaMaxTargets {
		return fmt.Sprintf("%s + %d more...", strings.Join(list[:hpaMaxTargets], ", "), len(list)-hpaMaxTargets)
	}
	return strings.Join(list, ", ")
}

// hpaTarget renders one metric; st may be nil.
func hpaTarget(spec *autoscalingv2.MetricSpec, st *autoscalingv2.MetricStatus) string {
	const unknown = "<unknown>"
	switch {
	case spec.Type == autoscalingv2.ExternalMetricSourceType && spec.External != nil:
		current := unknown
		if spec.External.Target.AverageValue != nil {
			if st != nil && st.External != nil && st.External.Current.AverageValue != nil {
				current = st.External.Current.AverageValue.String()
			}
			return fmt.Sprintf("%s/%s (avg)", current, spec.External.Target.AverageValue.String())
		}
		if st != nil && st.External != nil {
			current = st.External.Current.Value.String()
		}
		return fmt.Sprintf("%s/%s", current, spec.External.Target.Value.String())
	case spec.Type == autoscalingv2.PodsMetricSourceType && spec.Pods != nil:
		current := unknown
		if st != nil && st.Pods != nil {
			current = st.Pods.Current.AverageValue.String()
		}
		return fmt.Sprintf("%s/%s", current, spec.Pods.Target.AverageValue.String())
	case spec.Type == autoscalingv2.ObjectMetricSourceType && spec.Object != nil:
		current := unknown
		if spec.Object.Target.AverageValue != nil {
			if st != nil && st.Object != nil && st.Object.Current.AverageValue != nil {
				current = st.Object.Current.AverageValue.String()
			}
			return fmt.Sprintf("%s/%s (avg)", current, spec.Object.Target.AverageValue.String())
		}
		if st != nil && st.Object != nil {
			current = st.Object.Current.Value.String()
		}
		return fmt.Sprintf("%s/%s", current, spec.Object.Target.Value.String())
	case spec.Type == autoscalingv2.ResourceMetricSourceType && spec.Resource != nil:
		var cur *autoscalingv2.MetricValueStatus
		if st != nil && st.Resource != nil {
			cur = &st.Resource.Current
		}
		return spec.Resource.Name.String() + ": " + resourceTarget(spec.Resource.Target, cur)
	case spec.Type == autoscalingv2.ContainerResourceMetricSourceType && spec.ContainerResource != nil:
		var cur *autoscalingv2.MetricValueStatus
		if st != nil && st.ContainerResource != nil {
			cur = &st.ContainerResource.Current
		}
		return spec.ContainerResource.Name.String() + ": " + resourceTarget(spec.ContainerResource.Target, cur)
	default:
		return "<unknown type>"
	}
}

// resourceTarget renders a (container) resource metric: an average value
// target as "current/target", a utilization target as "cur%/target%"
// ("<auto>" when the target percentage is unset). cur may be nil.
func resourceTarget(target autoscalingv2.MetricTarget, cur *autoscalingv2.MetricValueStatus) string {
	current := "<unknown>"
	if target.AverageValue != nil {
		if cur != nil {
			current = cur.AverageValue.String()
		}
		return current + "/" + target.AverageValue.String()
	}
	if cur != nil && cur.AverageUtilization != nil {
		current = fmt.Sprintf("%d%%", *cur.AverageUtilization)
	}
	want := "<auto>"
	if target.AverageUtilization != nil {
		want = fmt.Sprintf("%d%%", *target.AverageUtilization)
	}
	return current + "/" + want
}
