package replicaset

import (
	"math"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PodDeletionCostAnnotation lets users rank pods for scale-down: lower cost
// pods are deleted first (upstream's controller.kubernetes.io/pod-deletion-cost).
const PodDeletionCostAnnotation = "controller.kubernetes.io/pod-deletion-cost"

// isPodActive reports whether pod still counts towards replicas: not
// terminal and not being deleted.
func isPodActive(pod *corev1.Pod) bool {
	return pod.Status.Phase != corev1.PodSucceeded &&
		pod.Status.Phase != corev1.PodFailed &&
		pod.DeletionTimestamp == nil
}

// readyCondition returns pod's Ready condition, or nil.
func readyCondition(pod *corev1.Pod) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == corev1.PodReady {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

func isPodReady(pod *corev1.Pod) bool {
	c := readyCondition(pod)
	return c != nil && c.Status == corev1.ConditionTrue
}

// availableAt returns when a ready pod becomes available (ready for
// minReadySeconds), and false for a pod that is not ready. A ready pod
// without a transition time is treated as available now, like upstream.
func availableAt(pod *corev1.Pod, minReadySeconds int32) (time.Time, bool) {
	c := readyCondition(pod)
	if c == nil || c.Status != corev1.ConditionTrue {
		return time.Time{}, false
	}
	if minReadySeconds == 0 || c.LastTransitionTime.IsZero() {
		return time.Time{}, true
	}
	return c.LastTransitionTime.Add(time.Duration(minReadySeconds) * time.Second), true
}

// isPodAvailable reports whether pod has been ready for at least
// minReadySeconds at now (strictly after, as upstream).
func isPodAvailable(pod *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	at, ready := availableAt(pod, minReadySeconds)
	return ready && (at.IsZero() || at.Before(now))
}

var phaseOrdinal = map[corev1.PodPhase]int{corev1.PodPending: 0, corev1.PodUnknown: 1, corev1.PodRunning: 2}

// podsToDelete returns the diff pods of pods that upstream would delete
// first. related are all active pods of the owner (used to find nodes where
// pods are doubled up). pods is sorted in place.
func podsToDelete(pods, related []*corev1.Pod, diff int, now time.Time) []*corev1.Pod {
	if diff >= len(pods) {
		return pods
	}
	perNode := map[string]int{}
	for _, p := range related {
		if isPodActive(p) {
			perNode[p.Spec.NodeName]++
		}
	}
	sort.SliceStable(pods, func(i, j int) bool { return deleteBefore(pods[i], pods[j], perNode, now) })
	return pods[:diff]
}

// deleteBefore reports whether a should be deleted before b. The order is
// upstream's ActivePodsWithRanks, each rule applying only when all earlier
// rules tie:
//  1. unassigned before assigned;
//  2. Pending before Unknown before Running;
//  3. not ready before ready;
//  4. lower pod-deletion-cost first;
//  5. on a node with more of the owner's pods first (spreads the survivors);
//  6. ready for less time first, compared in log2 buckets of age so that
//     pods of similar age tie and fall through to the next rules;
//  7. more container restarts first;
//  8. newer first (log2 buckets again); equal buckets break by UID, a stable
//     pseudo-random order.
func deleteBefore(a, b *corev1.Pod, perNode map[string]int, now time.Time) bool {
	if a.Spec.NodeName != b.Spec.NodeName && (a.Spec.NodeName == "" || b.Spec.NodeName == "") {
		return a.Spec.NodeName == ""
	}
	if pa, pb := phaseOrdinal[a.Status.Phase], phaseOrdinal[b.Status.Phase]; pa != pb {
		return pa < pb
	}
	ra, rb := isPodReady(a), isPodReady(b)
	if ra != rb {
		return !ra
	}
	if ca, cb := deletionCost(a), deletionCost(b); ca != cb {
		return ca < cb
	}
	if na, nb := perNode[a.Spec.NodeName], perNode[b.Spec.NodeName]; na != nb {
		return na > nb
	}
	if ra && rb {
		ta, tb := readyCondition(a).LastTransitionTime, readyCondition(b).LastTransitionTime
		if !ta.Equal(&tb) {
			if d, ok := logRankDiff(ta, tb, now); ok {
				if d != 0 {
					return d < 0
				}
				return a.UID < b.UID
			}
			return afterOrZero(ta, tb)
		}
	}
	if ma, mb := maxRestarts(a), maxRestarts(b); ma != mb {
		return ma > mb
	}
	if ta, tb := a.CreationTimestamp, b.CreationTimestamp; !ta.Equal(&tb) {
		if d, ok := logRankDiff(ta, tb, now); ok {
			if d != 0 {
				return d < 0
			}
			return a.UID < b.UID
		}
		return afterOrZero(ta, tb)
	}
	return false
}

func deletionCost(p *corev1.Pod) int64 {
	v, ok := p.Annotations[PodDeletionCostAnnotation]
	if !ok {
		return 0
	}
	// Invalid values are rejected by API validation; treat leftovers as 0.
	c, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0
	}
	return c
}

// logRankDiff compares the ages of t1 and t2 at now in log2 buckets of
// nanoseconds; ok is false when any time is zero (no bucketing possible).
func logRankDiff(t1, t2 metav1.Time, now time.Time) (int64, bool) {
	if now.IsZero() || t1.IsZero() || t2.IsZero() {
		return 0, false
	}
	rank := func(t metav1.Time) int64 {
		if d := now.Sub(t.Time); d > 0 {
			return int64(math.Log2(float64(d)))
		}
		return -1
	}
	return rank(t1) - rank(t2), true
}

// afterOrZero orders zero times first, then newer before older.
func afterOrZero(t1, t2 metav1.Time) bool {
	if t1.IsZero() || t2.IsZero() {
		return t1.IsZero()
	}
	return t1.After(t2.Time)
}

func maxRestarts(p *corev1.Pod) int32 {
	var m int32
	for _, c := range p.Status.ContainerStatuses {
		m = max(m, c.RestartCount)
	}
	return m
}
