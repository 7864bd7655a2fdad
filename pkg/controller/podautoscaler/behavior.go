package podautoscaler

import (
	"math"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
)

// DefaultScaleDownStabilization is the scale-down stabilization window
// when behavior.scaleDown.stabilizationWindowSeconds is unset
// (--horizontal-pod-autoscaler-downscale-stabilization).
const DefaultScaleDownStabilization = 300 * time.Second

// timedRecommendation is one past unstabilized recommendation.
type timedRecommendation struct {
	replicas int32
	at       time.Time
}

// scaleEvent is one past rescale, for the rate limits of behavior
// policies.
type scaleEvent struct {
	change int32 // replicas added (scale-up list) or removed (scale-down list)
	at     time.Time
}

// history is the per-HPA memory the behavior rules need. It lives in the
// controller's memory, as upstream's does: after a restart the windows
// start empty.
type history struct {
	recommendations []timedRecommendation
	scaleUps        []scaleEvent
	scaleDowns      []scaleEvent
}

// defaultBehavior fills in the autoscaling/v2 defaults the API server
// normally applies, so a Behavior-less object (written by an older client
// or a server that skipped defaulting) gets upstream's behavior: scale up
// by max(4 pods, 100%) per 15 s without stabilization, scale down by up to
// 100% per 15 s after the default stabilization window.
func defaultBehavior(b *autoscalingv2.HorizontalPodAutoscalerBehavior) autoscalingv2.HorizontalPodAutoscalerBehavior {
	maxPolicy := autoscalingv2.MaxChangePolicySelect
	out := autoscalingv2.HorizontalPodAutoscalerBehavior{}
	if b != nil {
		out = *b.DeepCopy()
	}
	if out.ScaleUp == nil {
		out.ScaleUp = &autoscalingv2.HPAScalingRules{}
	}
	if out.ScaleUp.StabilizationWindowSeconds == nil {
		out.ScaleUp.StabilizationWindowSeconds = new(int32)
	}
	if out.ScaleUp.SelectPolicy == nil {
		out.ScaleUp.SelectPolicy = &maxPolicy
	}
	if len(out.ScaleUp.Policies) == 0 {
		out.ScaleUp.Policies = []autoscalingv2.HPAScalingPolicy{
			{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
			{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
		}
	}
	if out.ScaleDown == nil {
		out.ScaleDown = &autoscalingv2.HPAScalingRules{}
	}
	if out.ScaleDown.StabilizationWindowSeconds == nil {
		w := int32(DefaultScaleDownStabilization / time.Second)
		out.ScaleDown.StabilizationWindowSeconds = &w
	}
	if out.ScaleDown.SelectPolicy == nil {
		out.ScaleDown.SelectPolicy = &maxPolicy
	}
	if len(out.ScaleDown.Policies) == 0 {
		out.ScaleDown.Policies = []autoscalingv2.HPAScalingPolicy{
			{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
		}
	}
	return out
}

// normalized is the outcome of applying behavior to a recommendation,
// with the reasons for the AbleToScale and ScalingLimited conditions.
type normalized struct {
	replicas int32
	// stabilized is the recommendation after the stabilization windows.
	stabilized                    int32
	ableReason, ableMessage       string
	limited                       bool
	limitedReason, limitedMessage string
}

// normalize applies the stabilization windows and the scaling policies of
// behavior (already defaulted) to desired, then the min/max bounds. It
// returns the outcome and h with desired recorded as of now.
func normalize(b autoscalingv2.HorizontalPodAutoscalerBehavior, h history, current, desired, minReplicas, maxReplicas int32, now time.Time) (normalized, history) {
	var n normalized
	n.stabilized, h = stabilize(b, h, current, desired, now)
	if n.stabilized != desired {
		if desired >= current {
			n.ableReason, n.ableMessage = "ScaleUpStabilized", "recent recommendations were lower than current one, applying the lowest recent recommendation"
		} else {
			n.ableReason, n.ableMessage = "ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation"
		}
	} else {
		n.ableReason, n.ableMessage = "ReadyForNewScale", "recommended size matches current size"
	}
	n.replicas, n.limitedReason, n.limitedMessage = limitRate(b, h, current, n.stabilized, minReplicas, maxReplicas, now)
	n.limited = n.replicas != n.stabilized
	return n, h
}

// stabilize bounds desired by the recommendations within the windows: it
// never scales up above the lowest recommendation of the scale-up window,
// nor down below the highest of the scale-down window. desired is then
// recorded, reusing the slot of a sample older than both windows.
func stabilize(b autoscalingv2.HorizontalPodAutoscalerBehavior, h history, current, desired int32, now time.Time) (int32, history) {
	upCutoff := now.Add(-time.Duration(*b.ScaleUp.StabilizationWindowSeconds) * time.Second)
	downCutoff := now.Add(-time.Duration(*b.ScaleDown.StabilizationWindowSeconds) * time.Second)
	up, down := desired, desired
	old := -1
	for i, r := range h.recommendations {
		if r.at.After(upCutoff) {
			up = min(up, r.replicas)
		}
		if r.at.After(downCutoff) {
			down = max(down, r.replicas)
		}
		if r.at.Before(upCutoff) && r.at.Before(downCutoff) {
			old = i
		}
	}
	rec := max(current, up)
	rec = min(rec, down)
	recs := append([]timedRecommendation(nil), h.recommendations...)
	if old >= 0 {
		recs[old] = timedRecommendation{desired, now}
	} else {
		recs = append(recs, timedRecommendation{desired, now})
	}
	h.recommendations = recs
	return rec, h
}

// limitRate applies the scaling policies and the min/max bounds.
func limitRate(b autoscalingv2.HorizontalPodAutoscalerBehavior, h history, current, desired, minReplicas, maxReplicas int32, now time.Time) (int32, string, string) {
	switch {
	case desired > current:
		limit := max(scaleUpLimit(current, h, b.ScaleUp, now), current)
		allowed, reason, msg := maxReplicas, "TooManyReplicas", "the desired replica count is more than the maximum replica count"
		if allowed > limit {
			allowed, reason, msg = limit, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"
		}
		if desired > allowed {
			return allowed, reason, msg
		}
	case desired < current:
		limit := min(scaleDownLimit(current, h, b.ScaleDown, now), current)
		allowed, reason, msg := minReplicas, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
		if allowed < limit {
			allowed, reason, msg = limit, "ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate"
		}
		if desired < allowed {
			return allowed, reason, msg
		}
	}
	return desired, "DesiredWithinRange", "the desired count is within the acceptable range"
}

// scaleUpLimit is the most replicas the policies allow now: each policy
// proposes growth from the replica count at the start of its period, and
// selectPolicy picks the largest (Max) or smallest (Min) proposal.
func scaleUpLimit(current int32, h history, rules *autoscalingv2.HPAScalingRules, now time.Time) int32 {
	if *rules.SelectPolicy == autoscalingv2.DisabledPolicySelect {
		return current
	}
	pick, result := maxInt32, int32(math.MinInt32)
	if *rules.SelectPolicy == autoscalingv2.MinChangePolicySelect {
		pick, result = minInt32, math.MaxInt32
	}
	for _, p := range rules.Policies {
		start := current - changeInPeriod(h.scaleUps, p.PeriodSeconds, now) + changeInPeriod(h.scaleDowns, p.PeriodSeconds, now)
		var proposed int32
		switch p.Type {
		case autoscalingv2.PodsScalingPolicy:
			proposed = start + p.Value
		case autoscalingv2.PercentScalingPolicy:
			// Rounded up, or a small target could never grow.
			proposed = int32(math.Ceil(float64(start) * (1 + float64(p.Value)/100)))
		}
		result = pick(result, proposed)
	}
	return result
}

// scaleDownLimit is the fewest replicas the policies allow now.
func scaleDownLimit(current int32, h history, rules *autoscalingv2.HPAScalingRules, now time.Time) int32 {
	if *rules.SelectPolicy == autoscalingv2.DisabledPolicySelect {
		return current
	}
	pick, result := minInt32, int32(math.MaxInt32)
	if *rules.SelectPolicy == autoscalingv2.MinChangePolicySelect {
		pick, result = maxInt32, math.MinInt32
	}
	for _, p := range rules.Policies {
		start := current - changeInPeriod(h.scaleUps, p.PeriodSeconds, now) + changeInPeriod(h.scaleDowns, p.PeriodSeconds, now)
		var proposed int32
		switch p.Type {
		case autoscalingv2.PodsScalingPolicy:
			proposed = start - p.Value
		case autoscalingv2.PercentScalingPolicy:
			proposed = int32(float64(start) * (1 - float64(p.Value)/100))
		}
		result = pick(result, proposed)
	}
	return result
}

func changeInPeriod(events []scaleEvent, periodSeconds int32, now time.Time) int32 {
	cutoff := now.Add(-time.Duration(periodSeconds) * time.Second)
	var sum int32
	for _, e := range events {
		if e.at.After(cutoff) {
			sum += e.change
		}
	}
	return sum
}

// recordScale returns h with a rescale from prev to next recorded,
// dropping events older than the longest policy period of that direction.
func recordScale(b autoscalingv2.HorizontalPodAutoscalerBehavior, h history, prev, next int32, now time.Time) history {
	keep := func(events []scaleEvent, rules *autoscalingv2.HPAScalingRules, change int32) []scaleEvent {
		var longest int32
		for _, p := range rules.Policies {
			longest = max(longest, p.PeriodSeconds)
		}
		cutoff := now.Add(-time.Duration(longest) * time.Second)
		var out []scaleEvent
		for _, e := range events {
			if e.at.After(cutoff) {
				out = append(out, e)
			}
		}
		return append(out, scaleEvent{change: change, at: now})
	}
	switch {
	case next > prev:
		h.scaleUps = keep(h.scaleUps, b.ScaleUp, next-prev)
	case next < prev:
		h.scaleDowns = keep(h.scaleDowns, b.ScaleDown, prev-next)
	}
	return h
}

func minInt32(a, b int32) int32 { return min(a, b) }
func maxInt32(a, b int32) int32 { return max(a, b) }
