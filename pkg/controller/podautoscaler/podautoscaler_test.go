package podautoscaler

import (
	"context"
	"errors"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/skiff-project/skiff/pkg/controller/controllertest"
)

type fakeMetrics struct {
	metrics map[string]podMetric
	err     error
}

func (f fakeMetrics) podMetrics(context.Context, string, labels.Selector, corev1.ResourceName) (map[string]podMetric, error) {
	if f.err != nil {
		return nil, f.err
	}
	if len(f.metrics) == 0 {
		return nil, errNoMetrics
	}
	return f.metrics, nil
}

type fixture struct {
	client   *fake.Clientset
	recorder *record.FakeRecorder
	ctrl     *Controller
	requeues []time.Duration
}

// newFixture serves the "web" Deployment's scale with replicas and selector
// app=web; scale updates succeed.
func newFixture(t *testing.T, replicas int32, m metricsSource, objs ...runtime.Object) *fixture {
	t.Helper()
	client := fake.NewClientset(objs...)
	client.PrependReactor("get", "deployments", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "scale" {
			return false, nil, nil
		}
		return true, &autoscalingv1.Scale{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", ResourceVersion: "7"},
			Spec:       autoscalingv1.ScaleSpec{Replicas: replicas},
			Status:     autoscalingv1.ScaleStatus{Replicas: replicas, Selector: "app=web"},
		}, nil
	})
	client.PrependReactor("update", "deployments", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "scale" {
			return false, nil, nil
		}
		return true, a.(clienttesting.UpdateAction).GetObject(), nil
	})
	factory := informers.NewSharedInformerFactory(client, 0)
	recorder := record.NewFakeRecorder(100)
	ctrl, err := New(client, factory.Autoscaling().V2().HorizontalPodAutoscalers(), factory.Core().V1().Pods(), recorder, clocktesting.NewFakePassiveClock(now))
	if err != nil {
		t.Fatal(err)
	}
	ctrl.metrics = m
	f := &fixture{client: client, recorder: recorder, ctrl: ctrl}
	ctrl.enqueueAfter = func(_ string, d time.Duration) { f.requeues = append(f.requeues, d) }
	controllertest.Seed(t, factory, objs...)
	client.ClearActions()
	return f
}

func (f *fixture) writes() []string {
	var out []string
	for _, a := range f.client.Actions() {
		if a.GetVerb() != "update" {
			continue
		}
		w := "update " + a.GetResource().Resource + "/" + a.GetSubresource() + " " + a.(clienttesting.UpdateAction).GetObject().(metav1.Object).GetName()
		if s, ok := a.(clienttesting.UpdateAction).GetObject().(*autoscalingv1.Scale); ok {
			w += " replicas=" + resource.NewQuantity(int64(s.Spec.Replicas), resource.DecimalSI).String()
		}
		out = append(out, w)
	}
	return out
}

func (f *fixture) events() []string {
	out := controllertest.Events(f.recorder)
	sort.Strings(out)
	return out
}

func (f *fixture) status(t *testing.T) autoscalingv2.HorizontalPodAutoscalerStatus {
	t.Helper()
	h, err := f.client.AutoscalingV2().HorizontalPodAutoscalers("default").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return h.Status
}

func newHPA() *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", UID: "web-uid"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MinReplicas:    ptr.To[int32](1),
			MaxReplicas:    10,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](50)},
			}}},
		},
	}
}

func cond(t autoscalingv2.HorizontalPodAutoscalerConditionType, s corev1.ConditionStatus, reason, msg string) autoscalingv2.HorizontalPodAutoscalerCondition {
	return autoscalingv2.HorizontalPodAutoscalerCondition{Type: t, Status: s, Reason: reason, Message: msg, LastTransitionTime: metav1.NewTime(now)}
}

func cpuStatus(util int32, avg string) []autoscalingv2.MetricStatus {
	q := resource.MustParse(avg)
	return []autoscalingv2.MetricStatus{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{
		Name: corev1.ResourceCPU, Current: autoscalingv2.MetricValueStatus{AverageValue: &q, AverageUtilization: ptr.To(util)},
	}}}
}

func TestSync(t *testing.T) {
	pods := []runtime.Object{newPod("a"), newPod("b"), newPod("c")}
	tests := []struct {
		name       string
		replicas   int32
		metrics    metricsSource
		wantWrites []string
		wantEvents []string
		wantStatus autoscalingv2.HorizontalPodAutoscalerStatus
	}{
		{
			name:     "utilization above target rescales",
			replicas: 3,
			metrics:  fakeMetrics{metrics: usage("a", 90, "b", 90, "c", 90)},
			wantWrites: []string{
				"update deployments/scale web replicas=6",
				"update horizontalpodautoscalers/status web",
			},
			wantEvents: []string{"Normal SuccessfulRescale New size: 6; reason: cpu resource utilization (percentage of request) above target"},
			wantStatus: autoscalingv2.HorizontalPodAutoscalerStatus{
				LastScaleTime:   ptr.To(metav1.NewTime(now)),
				CurrentReplicas: 3, DesiredReplicas: 6,
				CurrentMetrics: cpuStatus(90, "90m"),
				Conditions: []autoscalingv2.HorizontalPodAutoscalerCondition{
					cond(autoscalingv2.AbleToScale, corev1.ConditionTrue, "SucceededRescale", "the HPA controller was able to update the target scale to 6"),
					cond(autoscalingv2.ScalingActive, corev1.ConditionTrue, "ValidMetricFound", "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)"),
					cond(autoscalingv2.ScalingLimited, corev1.ConditionFalse, "DesiredWithinRange", "the desired count is within the acceptable range"),
				},
			},
		},
		{
			name:       "no metrics: ScalingActive false and nothing else",
			replicas:   3,
			metrics:    fakeMetrics{},
			wantWrites: []string{"update horizontalpodautoscalers/status web"},
			wantEvents: []string{
				"Warning FailedComputeMetricsReplicas invalid metrics (1 invalid out of 1), first error is: failed to get cpu utilization: unable to get metrics for resource cpu: no metrics returned from resource metrics API",
				"Warning FailedGetResourceMetric failed to get cpu utilization: unable to get metrics for resource cpu: no metrics returned from resource metrics API",
			},
			wantStatus: autoscalingv2.HorizontalPodAutoscalerStatus{
				CurrentReplicas: 3,
				CurrentMetrics:  []autoscalingv2.MetricStatus{{}},
				Conditions: []autoscalingv2.HorizontalPodAutoscalerCondition{
					cond(autoscalingv2.AbleToScale, corev1.ConditionTrue, "SucceededGetScale", "the HPA controller was able to get the target's current scale"),
					cond(autoscalingv2.ScalingActive, corev1.ConditionFalse, "FailedGetResourceMetric", "the HPA was unable to compute the replica count: failed to get cpu utilization: unable to get metrics for resource cpu: no metrics returned from resource metrics API"),
				},
			},
		},
		{
			name:       "metrics API absent",
			replicas:   3,
			metrics:    fakeMetrics{err: errors.New("the server could not find the requested resource")},
			wantWrites: []string{"update horizontalpodautoscalers/status web"},
			wantEvents: []string{
				"Warning FailedComputeMetricsReplicas invalid metrics (1 invalid out of 1), first error is: failed to get cpu utilization: unable to get metrics for resource cpu: the server could not find the requested resource",
				"Warning FailedGetResourceMetric failed to get cpu utilization: unable to get metrics for resource cpu: the server could not find the requested resource",
			},
			wantStatus: autoscalingv2.HorizontalPodAutoscalerStatus{
				CurrentReplicas: 3,
				CurrentMetrics:  []autoscalingv2.MetricStatus{{}},
				Conditions: []autoscalingv2.HorizontalPodAutoscalerCondition{
					cond(autoscalingv2.AbleToScale, corev1.ConditionTrue, "SucceededGetScale", "the HPA controller was able to get the target's current scale"),
					cond(autoscalingv2.ScalingActive, corev1.ConditionFalse, "FailedGetResourceMetric", "the HPA was unable to compute the replica count: failed to get cpu utilization: unable to get metrics for resource cpu: the server could not find the requested resource"),
				},
			},
		},
		{
			name:       "target above maxReplicas is brought down without metrics",
			replicas:   12,
			metrics:    fakeMetrics{},
			wantWrites: []string{"update deployments/scale web replicas=10", "update horizontalpodautoscalers/status web"},
			wantEvents: []string{"Normal SuccessfulRescale New size: 10; reason: Current number of replicas above Spec.MaxReplicas"},
			wantStatus: autoscalingv2.HorizontalPodAutoscalerStatus{
				LastScaleTime:   ptr.To(metav1.NewTime(now)),
				CurrentReplicas: 12, DesiredReplicas: 10,
				Conditions: []autoscalingv2.HorizontalPodAutoscalerCondition{
					cond(autoscalingv2.AbleToScale, corev1.ConditionTrue, "SucceededRescale", "the HPA controller was able to update the target scale to 10"),
				},
			},
		},
		{
			name:       "target scaled to zero disables autoscaling",
			replicas:   0,
			metrics:    fakeMetrics{},
			wantWrites: []string{"update horizontalpodautoscalers/status web"},
			wantStatus: autoscalingv2.HorizontalPodAutoscalerStatus{
				Conditions: []autoscalingv2.HorizontalPodAutoscalerCondition{
					cond(autoscalingv2.AbleToScale, corev1.ConditionTrue, "SucceededGetScale", "the HPA controller was able to get the target's current scale"),
					cond(autoscalingv2.ScalingActive, corev1.ConditionFalse, "ScalingDisabled", "scaling is disabled since the replica count of the target is zero"),
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.replicas, tt.metrics, append([]runtime.Object{newHPA()}, pods...)...)
			if err := f.ctrl.sync(context.Background(), "default/web"); err != nil {
				t.Fatalf("sync: %v", err)
			}
			if diff := cmp.Diff(tt.wantWrites, f.writes()); diff != "" {
				t.Errorf("writes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantEvents, f.events()); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantStatus, f.status(t)); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]time.Duration{ResyncPeriod}, f.requeues); diff != "" {
				t.Errorf("requeues (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSyncConvergedWritesNothing(t *testing.T) {
	// Utilization at target: the first sync records status, the second,
	// over that status, must write nothing.
	m := fakeMetrics{metrics: usage("a", 50, "b", 50, "c", 50)}
	pods := []runtime.Object{newPod("a"), newPod("b"), newPod("c")}
	f := newFixture(t, 3, m, append([]runtime.Object{newHPA()}, pods...)...)
	if err := f.ctrl.sync(context.Background(), "default/web"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"update horizontalpodautoscalers/status web"}, f.writes()); diff != "" {
		t.Fatalf("first sync writes (-want +got):\n%s", diff)
	}
	hpa := newHPA()
	hpa.Status = f.status(t)
	f2 := newFixture(t, 3, m, append([]runtime.Object{hpa}, pods...)...)
	if err := f2.ctrl.sync(context.Background(), "default/web"); err != nil {
		t.Fatal(err)
	}
	if w := f2.writes(); len(w) != 0 {
		t.Errorf("converged sync wrote %v", w)
	}
	if e := f2.events(); len(e) != 0 {
		t.Errorf("converged sync recorded events %v", e)
	}
}

func TestSyncScaleDownIsStabilized(t *testing.T) {
	// Low usage asks for 1 replica, but the recommendation history of the
	// last 5 minutes (3 replicas) holds the target.
	m := fakeMetrics{metrics: usage("a", 10, "b", 10, "c", 10)}
	f := newFixture(t, 3, m, newHPA(), newPod("a"), newPod("b"), newPod("c"))
	f.ctrl.setHistory("default/web", history{recommendations: []timedRecommendation{{replicas: 3, at: now.Add(-time.Minute)}}})
	if err := f.ctrl.sync(context.Background(), "default/web"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"update horizontalpodautoscalers/status web"}, f.writes()); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
	st := f.status(t)
	if st.DesiredReplicas != 3 || st.Conditions[0].Reason != "ScaleDownStabilized" {
		t.Errorf("desired %d, AbleToScale reason %q; want 3, ScaleDownStabilized", st.DesiredReplicas, st.Conditions[0].Reason)
	}
}

func TestSumPodMetrics(t *testing.T) {
	list := podMetricsList{Items: []podMetricsItem{
		{Metadata: metav1.ObjectMeta{Name: "a"}, Timestamp: metav1.NewTime(now), Window: metav1.Duration{Duration: 30 * time.Second}, Containers: []containerMetrics{
			{Name: "c1", Usage: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}},
			{Name: "c2", Usage: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("0.25")}},
		}},
		{Metadata: metav1.ObjectMeta{Name: "partial"}, Containers: []containerMetrics{
			{Name: "c1", Usage: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Mi")}},
		}},
	}}
	got, err := sumPodMetrics(list, corev1.ResourceCPU)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]podMetric{"a": {timestamp: now, window: 30 * time.Second, value: 350}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(podMetric{})); diff != "" {
		t.Errorf("sumPodMetrics (-want +got):\n%s", diff)
	}
	if _, err := sumPodMetrics(podMetricsList{}, corev1.ResourceCPU); !errors.Is(err, errNoMetrics) {
		t.Errorf("empty list: err = %v, want errNoMetrics", err)
	}
}
