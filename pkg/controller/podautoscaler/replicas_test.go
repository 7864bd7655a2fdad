package podautoscaler

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

var now = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

type podOpt func(*corev1.Pod)

func pending(p *corev1.Pod)  { p.Status.Phase = corev1.PodPending; p.Status.Conditions = nil }
func deleting(p *corev1.Pod) { p.DeletionTimestamp = ptr.To(metav1.NewTime(now)) }
func startedAgo(d, readyAgo time.Duration) podOpt {
	return func(p *corev1.Pod) {
		p.Status.StartTime = ptr.To(metav1.NewTime(now.Add(-d)))
		p.Status.Conditions[0].LastTransitionTime = metav1.NewTime(now.Add(-readyAgo))
	}
}
func noRequest(p *corev1.Pod) { p.Spec.Containers[0].Resources.Requests = nil }

// newPod is a running pod, ready for an hour, requesting 100m CPU and
// 100Mi memory.
func newPod(name string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("100Mi"),
		}}}}},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			StartTime:  ptr.To(metav1.NewTime(now.Add(-time.Hour))),
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(now.Add(-time.Hour))}},
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// usage builds samples taken now over a 30 s window, in milli-units.
func usage(kv ...any) map[string]podMetric {
	m := map[string]podMetric{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = podMetric{timestamp: now, window: 30 * time.Second, value: int64(kv[i+1].(int))}
	}
	return m
}

func TestReplicasFor(t *testing.T) {
	cpu50 := target{resource: corev1.ResourceCPU, utilization: 50}
	three := []*corev1.Pod{newPod("a"), newPod("b"), newPod("c")}
	tests := []struct {
		name    string
		current int32
		pods    []*corev1.Pod
		metrics map[string]podMetric
		target  target
		want    recommendation
		wantErr bool
	}{
		{
			name: "above target scales up by the usage ratio", current: 3, pods: three,
			metrics: usage("a", 90, "b", 90, "c", 90), target: cpu50,
			want: recommendation{replicas: 6, utilization: 90, averageMilli: 90},
		},
		{
			name: "within tolerance keeps the current count", current: 3, pods: three,
			metrics: usage("a", 54, "b", 54, "c", 54), target: cpu50,
			want: recommendation{replicas: 3, utilization: 54, averageMilli: 54},
		},
		{
			name: "just outside tolerance scales", current: 3, pods: three,
			metrics: usage("a", 56, "b", 56, "c", 56), target: cpu50,
			want: recommendation{replicas: 4, utilization: 56, averageMilli: 56},
		},
		{
			name: "below target scales down", current: 3, pods: three,
			metrics: usage("a", 20, "b", 20, "c", 20), target: cpu50,
			want: recommendation{replicas: 2, utilization: 20, averageMilli: 20},
		},
		{
			name: "missing pod counts as fully used on a scale-down", current: 3, pods: three,
			metrics: usage("a", 10, "b", 10), target: cpu50,
			// 10+10+100 of 300 is 40%: ratio 0.8 of 3 pods, ceil 2.4 = 3.
			want: recommendation{replicas: 3, utilization: 10, averageMilli: 10},
		},
		{
			name: "missing pod counts as idle on a scale-up", current: 3, pods: three,
			metrics: usage("a", 100, "b", 100), target: cpu50,
			// 200 of 300 is 66%: ratio 1.32 of 3 pods, ceil 3.96 = 4.
			want: recommendation{replicas: 4, utilization: 100, averageMilli: 100},
		},
		{
			name: "pending pod counts as idle on a scale-up", current: 3,
			pods:    []*corev1.Pod{newPod("a"), newPod("b"), newPod("c", pending)},
			metrics: usage("a", 100, "b", 100), target: cpu50,
			want: recommendation{replicas: 4, utilization: 100, averageMilli: 100},
		},
		{
			name: "pending pod is ignored on a scale-down", current: 3,
			pods:    []*corev1.Pod{newPod("a"), newPod("b"), newPod("c", pending)},
			metrics: usage("a", 10, "b", 10), target: cpu50,
			want: recommendation{replicas: 1, utilization: 10, averageMilli: 10},
		},
		{
			name: "filling in would flip the direction: keep current", current: 2,
			pods:    []*corev1.Pod{newPod("a"), newPod("b"), newPod("c", pending), newPod("d", pending)},
			metrics: usage("a", 60, "b", 60), target: cpu50,
			// 120%→ratio 1.2 up, with two idle pods 60 of 400 → 30%: down.
			want: recommendation{replicas: 2, utilization: 60, averageMilli: 60},
		},
		{
			name: "deleted and failed pods are ignored", current: 3,
			pods:    []*corev1.Pod{newPod("a"), newPod("b", deleting), newPod("c", func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed })},
			metrics: usage("a", 100, "b", 500, "c", 500), target: cpu50,
			want: recommendation{replicas: 2, utilization: 100, averageMilli: 100},
		},
		{
			name: "cpu sample taken too soon after turning ready is distrusted", current: 2,
			pods:    []*corev1.Pod{newPod("a"), newPod("b", startedAgo(time.Minute, 10*time.Second))},
			metrics: usage("a", 100, "b", 400), target: cpu50,
			// b counts as idle on the scale-up: 100 of 200 = 50%: no change.
			want: recommendation{replicas: 2, utilization: 100, averageMilli: 100},
		},
		{
			name: "memory samples are trusted from the start", current: 2,
			pods:    []*corev1.Pod{newPod("a"), newPod("b", startedAgo(time.Minute, 10*time.Second))},
			metrics: usage("a", 200*1024*1024*1000, "b", 200*1024*1024*1000),
			target:  target{resource: corev1.ResourceMemory, averageMilli: 100 * 1024 * 1024 * 1000},
			want:    recommendation{replicas: 4, averageMilli: 200 * 1024 * 1024 * 1000},
		},
		{name: "no pods", current: 1, metrics: usage("a", 1), target: cpu50, wantErr: true},
		{name: "no usable samples", current: 1, pods: []*corev1.Pod{newPod("a", pending)}, metrics: usage("a", 1), target: cpu50, wantErr: true},
		{name: "pod without a request", current: 1, pods: []*corev1.Pod{newPod("a", noRequest)}, metrics: usage("a", 1), target: cpu50, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := replicasFor(tt.current, tt.pods, tt.metrics, tt.target, now)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(recommendation{})); diff != "" {
				t.Errorf("replicasFor (-want +got):\n%s", diff)
			}
		})
	}
}
