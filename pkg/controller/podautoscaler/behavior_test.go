package podautoscaler

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/utils/ptr"
)

func TestNormalize(t *testing.T) {
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	rec := func(n int32, d time.Duration) timedRecommendation { return timedRecommendation{n, ago(d)} }
	withDown := func(rules autoscalingv2.HPAScalingRules) *autoscalingv2.HorizontalPodAutoscalerBehavior {
		return &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &rules}
	}
	withUp := func(rules autoscalingv2.HPAScalingRules) *autoscalingv2.HorizontalPodAutoscalerBehavior {
		return &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: &rules}
	}
	type want struct {
		Replicas, Stabilized int32
		AbleReason           string
		Limited              bool
		LimitedReason        string
	}
	tests := []struct {
		name                  string
		behavior              *autoscalingv2.HorizontalPodAutoscalerBehavior
		history               history
		current, desired      int32
		minReplicas, maxRepls int32
		want                  want
	}{
		{
			name: "scale-up within the default rate", current: 2, desired: 5, minReplicas: 1, maxRepls: 10,
			want: want{Replicas: 5, Stabilized: 5, AbleReason: "ReadyForNewScale", LimitedReason: "DesiredWithinRange"},
		},
		{
			name: "scale-up capped at max(4 pods, 100%) per 15s", current: 2, desired: 20, minReplicas: 1, maxRepls: 100,
			want: want{Replicas: 6, Stabilized: 20, AbleReason: "ReadyForNewScale", Limited: true, LimitedReason: "ScaleUpLimit"},
		},
		{
			name: "scale-up capped at maxReplicas", current: 2, desired: 5, minReplicas: 1, maxRepls: 4,
			want: want{Replicas: 4, Stabilized: 5, AbleReason: "ReadyForNewScale", Limited: true, LimitedReason: "TooManyReplicas"},
		},
		{
			name: "recent scale-up counts against the rate", current: 6, desired: 20, minReplicas: 1, maxRepls: 100,
			history: history{scaleUps: []scaleEvent{{change: 4, at: ago(5 * time.Second)}}},
			// The period started at 2 replicas: max(2+4, 2·2) = 6.
			want: want{Replicas: 6, Stabilized: 20, AbleReason: "ReadyForNewScale", Limited: true, LimitedReason: "ScaleUpLimit"},
		},
		{
			name: "scale-down held by a higher recommendation in the window", current: 8, desired: 3, minReplicas: 1, maxRepls: 10,
			history: history{recommendations: []timedRecommendation{rec(8, 100*time.Second), rec(5, 50*time.Second)}},
			want:    want{Replicas: 8, Stabilized: 8, AbleReason: "ScaleDownStabilized", LimitedReason: "DesiredWithinRange"},
		},
		{
			name: "scale-down to the highest recommendation in the window", current: 8, desired: 3, minReplicas: 1, maxRepls: 10,
			history: history{recommendations: []timedRecommendation{rec(9, 400*time.Second), rec(5, 50*time.Second)}},
			want:    want{Replicas: 5, Stabilized: 5, AbleReason: "ScaleDownStabilized", LimitedReason: "DesiredWithinRange"},
		},
		{
			name: "scale-down once the window has passed", current: 8, desired: 3, minReplicas: 1, maxRepls: 10,
			history: history{recommendations: []timedRecommendation{rec(8, 301*time.Second)}},
			want:    want{Replicas: 3, Stabilized: 3, AbleReason: "ReadyForNewScale", LimitedReason: "DesiredWithinRange"},
		},
		{
			name: "scale-down with a zero window is immediate", current: 8, desired: 3, minReplicas: 1, maxRepls: 10,
			behavior: withDown(autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](0)}),
			history:  history{recommendations: []timedRecommendation{rec(8, 10*time.Second)}},
			want:     want{Replicas: 3, Stabilized: 3, AbleReason: "ReadyForNewScale", LimitedReason: "DesiredWithinRange"},
		},
		{
			name: "scale-down stops at minReplicas", current: 5, desired: 1, minReplicas: 2, maxRepls: 10,
			behavior: withDown(autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](0)}),
			want:     want{Replicas: 2, Stabilized: 1, AbleReason: "ReadyForNewScale", Limited: true, LimitedReason: "TooFewReplicas"},
		},
		{
			name: "pods policy limits scale-down per period", current: 10, desired: 2, minReplicas: 1, maxRepls: 10,
			behavior: withDown(autoscalingv2.HPAScalingRules{
				StabilizationWindowSeconds: ptr.To[int32](0),
				Policies:                   []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PodsScalingPolicy, Value: 2, PeriodSeconds: 60}},
			}),
			history: history{scaleDowns: []scaleEvent{{change: 1, at: ago(30 * time.Second)}}},
			// The period started at 11: 11-2 = 9.
			want: want{Replicas: 9, Stabilized: 2, AbleReason: "ReadyForNewScale", Limited: true, LimitedReason: "ScaleDownLimit"},
		},
		{
			name: "min select policy picks the smaller scale-up", current: 10, desired: 30, minReplicas: 1, maxRepls: 100,
			behavior: withUp(autoscalingv2.HPAScalingRules{
				SelectPolicy: ptr.To(autoscalingv2.MinChangePolicySelect),
				Policies: []autoscalingv2.HPAScalingPolicy{
					{Type: autoscalingv2.PodsScalingPolicy, Value: 3, PeriodSeconds: 60},
					{Type: autoscalingv2.PercentScalingPolicy, Value: 50, PeriodSeconds: 60},
				},
			}),
			want: want{Replicas: 13, Stabilized: 30, AbleReason: "ReadyForNewScale", Limited: true, LimitedReason: "ScaleUpLimit"},
		},
		{
			name: "disabled scale-up keeps the count", current: 3, desired: 6, minReplicas: 1, maxRepls: 10,
			behavior: withUp(autoscalingv2.HPAScalingRules{SelectPolicy: ptr.To(autoscalingv2.DisabledPolicySelect)}),
			want:     want{Replicas: 3, Stabilized: 6, AbleReason: "ReadyForNewScale", Limited: true, LimitedReason: "ScaleUpLimit"},
		},
		{
			name: "scale-up stabilization applies the lowest recent recommendation", current: 3, desired: 8, minReplicas: 1, maxRepls: 10,
			behavior: withUp(autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](60)}),
			history:  history{recommendations: []timedRecommendation{rec(4, 30*time.Second)}},
			want:     want{Replicas: 4, Stabilized: 4, AbleReason: "ScaleUpStabilized", LimitedReason: "DesiredWithinRange"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, h := normalize(defaultBehavior(tt.behavior), tt.history, tt.current, tt.desired, tt.minReplicas, tt.maxRepls, now)
			got := want{Replicas: n.replicas, Stabilized: n.stabilized, AbleReason: n.ableReason, Limited: n.limited, LimitedReason: n.limitedReason}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("normalize (-want +got):\n%s", diff)
			}
			last := h.recommendations[len(h.recommendations)-1]
			found := false
			for _, r := range h.recommendations {
				found = found || (r.replicas == tt.desired && r.at.Equal(now))
			}
			if !found {
				t.Errorf("desired %d not recorded in history (last %+v)", tt.desired, last)
			}
		})
	}
}

func TestRecordScaleDropsOldEvents(t *testing.T) {
	b := defaultBehavior(nil)
	h := history{scaleUps: []scaleEvent{{change: 1, at: now.Add(-time.Minute)}, {change: 2, at: now.Add(-5 * time.Second)}}}
	got := recordScale(b, h, 3, 7, now)
	want := []scaleEvent{{change: 2, at: now.Add(-5 * time.Second)}, {change: 4, at: now}}
	if diff := cmp.Diff(want, got.scaleUps, cmp.AllowUnexported(scaleEvent{})); diff != "" {
		t.Errorf("scaleUps (-want +got):\n%s", diff)
	}
}
