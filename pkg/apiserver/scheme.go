package apiserver

import (
	"fmt"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/skiff-project/skiff/pkg/registry/defaults"
)

// newScheme builds the server's private scheme: every k8s.io/api type, the
// meta.k8s.io types (Table, PartialObjectMetadata) and Skiff's defaulting
// functions. It is never shared with other components.
func newScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("register built-in types: %w", err)
	}
	if err := metav1.AddMetaToScheme(s); err != nil {
		return nil, fmt.Errorf("register meta.k8s.io types: %w", err)
	}
	metav1.AddToGroupVersion(s, schema.GroupVersion{Group: "meta.k8s.io", Version: "v1"})
	defaults.Register(s)
	return s, nil
}

func newCodecs(s *runtime.Scheme) serializer.CodecFactory {
	return serializer.NewCodecFactory(s)
}

// versionConverter converts between a served version and the storage
// version of a resource whose versions differ (events.k8s.io/v1 events kept
// as core/v1 events; autoscaling/v1 HPAs kept as autoscaling/v2).
type versionConverter struct {
	toStorage func(runtime.Object) (runtime.Object, error)
	toServed  func(runtime.Object) (runtime.Object, error)
}

// eventsConverter maps events.k8s.io/v1 Events to and from core/v1 Events
// as upstream does, so both APIs see the same objects.
func eventsConverter() versionConverter {
	return versionConverter{
		toStorage: func(o runtime.Object) (runtime.Object, error) {
			in, ok := o.(*eventsv1.Event)
			if !ok {
				return nil, fmt.Errorf("expected events.k8s.io/v1 Event, got %T", o)
			}
			out := &corev1.Event{
				TypeMeta:            metav1.TypeMeta{APIVersion: "v1", Kind: "Event"},
				ObjectMeta:          in.ObjectMeta,
				InvolvedObject:      in.Regarding,
				Reason:              in.Reason,
				Message:             in.Note,
				Type:                in.Type,
				EventTime:           in.EventTime,
				Action:              in.Action,
				ReportingController: in.ReportingController,
				ReportingInstance:   in.ReportingInstance,
				Source:              corev1.EventSource{Component: in.DeprecatedSource.Component, Host: in.DeprecatedSource.Host},
				FirstTimestamp:      in.DeprecatedFirstTimestamp,
				LastTimestamp:       in.DeprecatedLastTimestamp,
				Count:               in.DeprecatedCount,
			}
			if in.Related != nil {
				r := *in.Related
				out.Related = &r
			}
			if in.Series != nil {
				out.Series = &corev1.EventSeries{Count: in.Series.Count, LastObservedTime: in.Series.LastObservedTime}
			}
			return out, nil
		},
		toServed: func(o runtime.Object) (runtime.Object, error) {
			in, ok := o.(*corev1.Event)
			if !ok {
				return nil, fmt.Errorf("expected core/v1 Event, got %T", o)
			}
			out := &eventsv1.Event{
				TypeMeta:                 metav1.TypeMeta{APIVersion: "events.k8s.io/v1", Kind: "Event"},
				ObjectMeta:               in.ObjectMeta,
				EventTime:                in.EventTime,
				ReportingController:      in.ReportingController,
				ReportingInstance:        in.ReportingInstance,
				Action:                   in.Action,
				Reason:                   in.Reason,
				Regarding:                in.InvolvedObject,
				Note:                     in.Message,
				Type:                     in.Type,
				DeprecatedSource:         in.Source,
				DeprecatedFirstTimestamp: in.FirstTimestamp,
				DeprecatedLastTimestamp:  in.LastTimestamp,
				DeprecatedCount:          in.Count,
			}
			if in.Related != nil {
				r := *in.Related
				out.Related = &r
			}
			if in.Series != nil {
				out.Series = &eventsv1.EventSeries{Count: in.Series.Count, LastObservedTime: in.Series.LastObservedTime}
			}
			return out, nil
		},
	}
}

// hpaConverter maps autoscaling/v1 HPAs to and from the autoscaling/v2
// storage version. v1 only knows a CPU utilization target.
func hpaConverter() versionConverter {
	return versionConverter{
		toStorage: func(o runtime.Object) (runtime.Object, error) {
			in, ok := o.(*autoscalingv1.HorizontalPodAutoscaler)
			if !ok {
				return nil, fmt.Errorf("expected autoscaling/v1 HorizontalPodAutoscaler, got %T", o)
			}
			out := &autoscalingv2.HorizontalPodAutoscaler{
				TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler"},
				ObjectMeta: in.ObjectMeta,
				Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
					ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{
						Kind: in.Spec.ScaleTargetRef.Kind, Name: in.Spec.ScaleTargetRef.Name, APIVersion: in.Spec.ScaleTargetRef.APIVersion,
					},
					MinReplicas: in.Spec.MinReplicas,
					MaxReplicas: in.Spec.MaxReplicas,
				},
				Status: autoscalingv2.HorizontalPodAutoscalerStatus{
					ObservedGeneration: in.Status.ObservedGeneration,
					LastScaleTime:      in.Status.LastScaleTime,
					CurrentReplicas:    in.Status.CurrentReplicas,
					DesiredReplicas:    in.Status.DesiredReplicas,
				},
			}
			if in.Spec.TargetCPUUtilizationPercentage != nil {
				u := *in.Spec.TargetCPUUtilizationPercentage
				out.Spec.Metrics = []autoscalingv2.MetricSpec{{
					Type: autoscalingv2.ResourceMetricSourceType,
					Resource: &autoscalingv2.ResourceMetricSource{
						Name:   corev1.ResourceCPU,
						Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &u},
					},
				}}
			}
			if in.Status.CurrentCPUUtilizationPercentage != nil {
				u := *in.Status.CurrentCPUUtilizationPercentage
				out.Status.CurrentMetrics = []autoscalingv2.MetricStatus{{
					Type: autoscalingv2.ResourceMetricSourceType,
					Resource: &autoscalingv2.ResourceMetricStatus{
						Name:    corev1.ResourceCPU,
						Current: autoscalingv2.MetricValueStatus{AverageUtilization: &u},
					},
				}}
			}
			return out, nil
		},
		toServed: func(o runtime.Object) (runtime.Object, error) {
			in, ok := o.(*autoscalingv2.HorizontalPodAutoscaler)
			if !ok {
				return nil, fmt.Errorf("expected autoscaling/v2 HorizontalPodAutoscaler, got %T", o)
			}
			out := &autoscalingv1.HorizontalPodAutoscaler{
				TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v1", Kind: "HorizontalPodAutoscaler"},
				ObjectMeta: in.ObjectMeta,
				Spec: autoscalingv1.HorizontalPodAutoscalerSpec{
					ScaleTargetRef: autoscalingv1.CrossVersionObjectReference{
						Kind: in.Spec.ScaleTargetRef.Kind, Name: in.Spec.ScaleTargetRef.Name, APIVersion: in.Spec.ScaleTargetRef.APIVersion,
					},
					MinReplicas: in.Spec.MinReplicas,
					MaxReplicas: in.Spec.MaxReplicas,
				},
				Status: autoscalingv1.HorizontalPodAutoscalerStatus{
					ObservedGeneration: in.Status.ObservedGeneration,
					LastScaleTime:      in.Status.LastScaleTime,
					CurrentReplicas:    in.Status.CurrentReplicas,
					DesiredReplicas:    in.Status.DesiredReplicas,
				},
			}
			for _, m := range in.Spec.Metrics {
				if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU &&
					m.Resource.Target.AverageUtilization != nil {
					u := *m.Resource.Target.AverageUtilization
					out.Spec.TargetCPUUtilizationPercentage = &u
				}
			}
			for _, m := range in.Status.CurrentMetrics {
				if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU &&
					m.Resource.Current.AverageUtilization != nil {
					u := *m.Resource.Current.AverageUtilization
					out.Status.CurrentCPUUtilizationPercentage = &u
				}
			}
			return out, nil
		},
	}
}
