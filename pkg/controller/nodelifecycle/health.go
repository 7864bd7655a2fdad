package nodelifecycle

import (
	"slices"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
)

// Condition reasons and messages upstream's node controller writes.
const (
	ReasonNodeStatusUnknown      = "NodeStatusUnknown"
	ReasonNodeStatusNeverUpdated = "NodeStatusNeverUpdated"
	MessageStoppedPosting        = "Kubelet stopped posting node status."
	MessageNeverPosted           = "Kubelet never posted node status."
)

// observation is what the controller remembers about one node between
// syncs. Heartbeats are judged by when the controller *saw* them change,
// on its own clock, so clock skew between kubelet and controller does not
// matter (as upstream does).
type observation struct {
	heartbeat metav1.Time      // Ready condition's lastHeartbeatTime last seen
	renew     metav1.MicroTime // node lease's renewTime last seen
	probe     time.Time        // controller time of the last observed change
	// taintSeen is the controller time each NoExecute taint without a
	// timeAdded was first seen (keyed by taintKey), the start of its
	// eviction countdown.
	taintSeen map[string]time.Time
}

func taintKey(t corev1.Taint) string { return t.Key + "=" + t.Value + ":" + string(t.Effect) }

// observe folds the node's current heartbeat and lease into prev (nil for a
// node seen for the first time) at controller time now.
func observe(prev *observation, node *corev1.Node, lease *coordinationv1.Lease, now time.Time) observation {
	var o observation
	if prev != nil {
		o = *prev
	} else {
		// A node seen for the first time (or after a controller restart)
		// gets a full grace period from now.
		o.probe = now
	}
	if c := condition(node.Status.Conditions, corev1.NodeReady); c != nil && !c.LastHeartbeatTime.Equal(&o.heartbeat) {
		o.heartbeat = c.LastHeartbeatTime
		o.probe = now
	}
	if lease != nil && lease.Spec.RenewTime != nil && !lease.Spec.RenewTime.Equal(&o.renew) {
		o.renew = *lease.Spec.RenewTime
		o.probe = now
	}
	seen := map[string]time.Time{}
	for _, t := range node.Spec.Taints {
		if t.Effect != corev1.TaintEffectNoExecute || t.TimeAdded != nil {
			continue
		}
		k := taintKey(t)
		if at, ok := o.taintSeen[k]; ok {
			seen[k] = at
		} else {
			seen[k] = now
		}
	}
	o.taintSeen = seen
	return o
}

// nodeDecision is what decideNode wants changed on one node.
type nodeDecision struct {
	// conditions is the full new condition list, nil when unchanged.
	conditions []corev1.NodeCondition
	// taints is the full new taint list, nil when unchanged.
	taints []corev1.Taint
	// becameNotReady is set when the controller itself turns a Ready node
	// not ready (the kubelet reports its own transitions).
	becameNotReady bool
	// ready is the Ready status after the change ("" when absent).
	ready corev1.ConditionStatus
}

// decideNode computes the conditions and taints node should carry at now,
// given what was observed of it and the grace period. It is a pure function.
func decideNode(node *corev1.Node, o observation, now time.Time, grace time.Duration) nodeDecision {
	var d nodeDecision
	conds := node.Status.Conditions
	if now.Sub(o.probe) > grace {
		conds = slices.Clone(conds)
		changed := false
		for _, t := range []corev1.NodeConditionType{corev1.NodeReady, corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure} {
			i := slices.IndexFunc(conds, func(c corev1.NodeCondition) bool { return c.Type == t })
			switch {
			case i < 0:
				conds = append(conds, corev1.NodeCondition{
					Type: t, Status: corev1.ConditionUnknown, Reason: ReasonNodeStatusNeverUpdated, Message: MessageNeverPosted,
					LastHeartbeatTime: node.CreationTimestamp, LastTransitionTime: metav1.NewTime(now),
				})
				changed = true
			case conds[i].Status != corev1.ConditionUnknown:
				conds[i].Status = corev1.ConditionUnknown
				conds[i].Reason = ReasonNodeStatusUnknown
				conds[i].Message = MessageStoppedPosting
				conds[i].LastTransitionTime = metav1.NewTime(now)
				changed = true
			}
		}
		if changed {
			d.conditions = conds
		}
	}
	if before := condition(node.Status.Conditions, corev1.NodeReady); before != nil && before.Status == corev1.ConditionTrue {
		after := condition(conds, corev1.NodeReady)
		d.becameNotReady = after.Status != corev1.ConditionTrue
	}
	if c := condition(conds, corev1.NodeReady); c != nil {
		d.ready = c.Status
	}
	if taints, changed := desiredTaints(node.Spec.Taints, conds, node.Spec.Unschedulable, now); changed {
		d.taints = taints
	}
	return d
}

// noScheduleTaintFor returns the NoSchedule taint key a node condition
// implies (upstream's taint-nodes-by-condition), or "".
func noScheduleTaintFor(c corev1.NodeCondition) string {
	switch {
	case c.Type == corev1.NodeReady && c.Status == corev1.ConditionFalse:
		return corev1.TaintNodeNotReady
	case c.Type == corev1.NodeReady && c.Status == corev1.ConditionUnknown:
		return corev1.TaintNodeUnreachable
	case c.Type == corev1.NodeMemoryPressure && c.Status == corev1.ConditionTrue:
		return corev1.TaintNodeMemoryPressure
	case c.Type == corev1.NodeDiskPressure && c.Status == corev1.ConditionTrue:
		return corev1.TaintNodeDiskPressure
	case c.Type == corev1.NodePIDPressure && c.Status == corev1.ConditionTrue:
		return corev1.TaintNodePIDPressure
	case c.Type == corev1.NodeNetworkUnavailable && c.Status == corev1.ConditionTrue:
		return corev1.TaintNodeNetworkUnavailable
	}
	return ""
}

// managedNoSchedule reports whether key is a NoSchedule taint this
// controller owns.
func managedNoSchedule(key string) bool {
	switch key {
	case corev1.TaintNodeNotReady, corev1.TaintNodeUnreachable, corev1.TaintNodeMemoryPressure, corev1.TaintNodeDiskPressure,
		corev1.TaintNodePIDPressure, corev1.TaintNodeNetworkUnavailable, corev1.TaintNodeUnschedulable:
		return true
	}
	return false
}

// desiredTaints returns existing with the controller-owned taints made to
// match conds and unschedulable: NoSchedule taints per condition, and a
// NoExecute not-ready (Ready=False) or unreachable (Ready=Unknown) taint
// stamped with now when added. Taints owned by others are kept in place.
func desiredTaints(existing []corev1.Taint, conds []corev1.NodeCondition, unschedulable bool, now time.Time) ([]corev1.Taint, bool) {
	want := map[string]corev1.Taint{}
	for _, c := range conds {
		if k := noScheduleTaintFor(c); k != "" {
			want[k+":NoSchedule"] = corev1.Taint{Key: k, Effect: corev1.TaintEffectNoSchedule}
		}
		if c.Type == corev1.NodeReady {
			switch c.Status {
			case corev1.ConditionFalse:
				want[corev1.TaintNodeNotReady+":NoExecute"] = corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute}
			case corev1.ConditionUnknown:
				want[corev1.TaintNodeUnreachable+":NoExecute"] = corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}
			}
		}
	}
	if unschedulable {
		want[corev1.TaintNodeUnschedulable+":NoSchedule"] = corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}
	}

	out := make([]corev1.Taint, 0, len(existing)+len(want))
	changed := false
	for _, t := range existing {
		k := t.Key + ":" + string(t.Effect)
		owned := (t.Effect == corev1.TaintEffectNoSchedule && managedNoSchedule(t.Key)) ||
			(t.Effect == corev1.TaintEffectNoExecute && (t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable))
		if !owned {
			out = append(out, t)
			continue
		}
		if _, ok := want[k]; ok {
			out = append(out, t)
			delete(want, k)
			continue
		}
		changed = true // owned taint no longer wanted
	}
	// Add missing taints in a fixed order so writes are deterministic.
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		t := want[k]
		if t.Effect == corev1.TaintEffectNoExecute {
			at := metav1.NewTime(now)
			t.TimeAdded = &at
		}
		out = append(out, t)
		changed = true
	}
	return out, changed
}

// tolerationDefaults are the toleration seconds assumed for pods that do
// not tolerate the not-ready / unreachable NoExecute taints, standing in for
// the DefaultTolerationSeconds admission plugin.
type tolerationDefaults struct {
	notReady    time.Duration
	unreachable time.Duration
}

// evictions returns the pods on node whose tolerations of its NoExecute
// taints have run out at now, and how long until the next pod's do (0 when
// no eviction is pending). A taint's countdown starts at its timeAdded or,
// without one, when the controller first saw it (taintSeen). Pods already
// terminating are skipped. It is a pure function.
func evictions(logger klog.Logger, node *corev1.Node, pods []*corev1.Pod, taintSeen map[string]time.Time, now time.Time, defaults tolerationDefaults) (evict []*corev1.Pod, next time.Duration) {
	var taints []corev1.Taint
	for _, t := range node.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoExecute {
			taints = append(taints, t)
		}
	}
	if len(taints) == 0 {
		return nil, 0
	}
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		var deadline time.Time
		for i := range taints {
			t := &taints[i]
			allowed, forever := tolerated(logger, p, t, defaults)
			if forever {
				continue
			}
			start, ok := taintSeen[taintKey(*t)]
			if t.TimeAdded != nil {
				start, ok = t.TimeAdded.Time, true
			}
			if !ok {
				start = now
			}
			if d := start.Add(allowed); deadline.IsZero() || d.Before(deadline) {
				deadline = d
			}
		}
		switch {
		case deadline.IsZero():
		case !now.Before(deadline):
			evict = append(evict, p)
		case next == 0 || deadline.Sub(now) < next:
			next = deadline.Sub(now)
		}
	}
	return evict, next
}

// tolerated returns how long pod tolerates taint, or forever.
func tolerated(logger klog.Logger, pod *corev1.Pod, taint *corev1.Taint, defaults tolerationDefaults) (allowed time.Duration, forever bool) {
	found := false
	for i := range pod.Spec.Tolerations {
		tol := &pod.Spec.Tolerations[i]
		if !tol.ToleratesTaint(logger, taint, false) {
			continue
		}
		found = true
		if tol.TolerationSeconds == nil {
			return 0, true
		}
		d := time.Duration(max(*tol.TolerationSeconds, 0)) * time.Second
		if allowed == 0 || d < allowed {
			allowed = d
		}
	}
	if found {
		return allowed, false
	}
	switch taint.Key {
	case corev1.TaintNodeNotReady:
		return defaults.notReady, false
	case corev1.TaintNodeUnreachable:
		return defaults.unreachable, false
	}
	return 0, false
}

// podNeedsNotReady reports whether pod's Ready condition must be set False.
func podNeedsNotReady(pod *corev1.Pod) bool {
	if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status != corev1.ConditionFalse
		}
	}
	return false
}

func condition(conds []corev1.NodeCondition, t corev1.NodeConditionType) *corev1.NodeCondition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}
