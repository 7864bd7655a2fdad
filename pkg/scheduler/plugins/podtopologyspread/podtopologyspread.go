// Package podtopologyspread implements PodTopologySpread: hard constraints
// (whenUnsatisfiable: DoNotSchedule) are a Filter on skew; soft ones
// (ScheduleAnyway) a Score preferring the least crowded domains.
package podtopologyspread

import (
	"context"
	"fmt"
	"math"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
)

// Name is the plugin name.
const Name = "PodTopologySpread"

// Upstream rejection reasons.
const (
	ErrReasonConstraintsNotMatch = "node(s) didn't match pod topology spread constraints"
	ErrReasonNodeLabelNotMatch   = ErrReasonConstraintsNotMatch + " (missing required label)"
)

const (
	filterKey framework.StateKey = Name + "/filter"
	scoreKey  framework.StateKey = Name + "/score"
)

type constraint struct {
	maxSkew    int32
	key        string
	minDomains int32
	selector   labels.Selector
}

// spreadState holds, per constraint, matching pod counts per topology value
// over the nodes eligible for counting.
type spreadState struct {
	constraints []constraint
	counts      []map[string]int
}

func (s *spreadState) Clone() framework.StateData {
	c := &spreadState{constraints: s.constraints, counts: make([]map[string]int, len(s.counts))}
	for i, m := range s.counts {
		c.counts[i] = make(map[string]int, len(m))
		for k, v := range m {
			c.counts[i][k] = v
		}
	}
	return c
}

// PodTopologySpread is stateless across cycles.
type PodTopologySpread struct{}

var (
	_ framework.PreFilterPlugin     = &PodTopologySpread{}
	_ framework.PreFilterExtensions = &PodTopologySpread{}
	_ framework.FilterPlugin        = &PodTopologySpread{}
	_ framework.PreScorePlugin      = &PodTopologySpread{}
	_ framework.ScorePlugin         = &PodTopologySpread{}
	_ framework.EnqueueExtensions   = &PodTopologySpread{}
)

// New returns the plugin.
func New() *PodTopologySpread { return &PodTopologySpread{} }

// Name implements framework.Plugin.
func (*PodTopologySpread) Name() string { return Name }

func parse(pod *v1.Pod, when v1.UnsatisfiableConstraintAction) ([]constraint, error) {
	var out []constraint
	for _, c := range pod.Spec.TopologySpreadConstraints {
		if c.WhenUnsatisfiable != when {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
		if err != nil {
			return nil, fmt.Errorf("parsing topology spread selector: %w", err)
		}
		md := int32(1)
		if c.MinDomains != nil {
			md = *c.MinDomains
		}
		out = append(out, constraint{maxSkew: c.MaxSkew, key: c.TopologyKey, minDomains: md, selector: sel})
	}
	return out, nil
}

// count builds the per-domain counts over nodes that match the pod's node
// affinity (nodeAffinityPolicy: Honor) and carry every constraint key.
func count(pod *v1.Pod, cons []constraint, nodes []*framework.NodeInfo) *spreadState {
	st := &spreadState{constraints: cons, counts: make([]map[string]int, len(cons))}
	for i := range cons {
		st.counts[i] = map[string]int{}
	}
	req := nodeaffinity.GetRequiredNodeAffinity(pod)
	for _, ni := range nodes {
		if !eligible(req, cons, ni.Node()) {
			continue
		}
		for i, c := range cons {
			v := ni.Node().Labels[c.key]
			st.counts[i][v] += matching(pod.Namespace, c.selector, ni.Pods)
		}
	}
	return st
}

func eligible(req nodeaffinity.RequiredNodeAffinity, cons []constraint, node *v1.Node) bool {
	if ok, _ := req.Match(node); !ok {
		return false
	}
	for _, c := range cons {
		if _, ok := node.Labels[c.key]; !ok {
			return false
		}
	}
	return true
}

func matching(ns string, sel labels.Selector, pods []*framework.PodInfo) int {
	n := 0
	for _, pi := range pods {
		if pi.Pod.Namespace == ns && pi.Pod.DeletionTimestamp == nil && sel.Matches(labels.Set(pi.Pod.Labels)) {
			n++
		}
	}
	return n
}

// PreFilter counts matching pods per domain for the hard constraints; Skip
// when the pod has none.
func (*PodTopologySpread) PreFilter(_ context.Context, cs *framework.CycleState, pod *v1.Pod, nodes []*framework.NodeInfo) *framework.Status {
	cons, err := parse(pod, v1.DoNotSchedule)
	if err != nil {
		return framework.AsStatus(err)
	}
	if len(cons) == 0 {
		return framework.NewStatus(framework.Skip)
	}
	cs.Write(filterKey, count(pod, cons, nodes))
	return nil
}

// PreFilterExtensions implements framework.PreFilterPlugin.
func (p *PodTopologySpread) PreFilterExtensions() framework.PreFilterExtensions { return p }

// AddPod counts a hypothetically added pod.
func (p *PodTopologySpread) AddPod(_ context.Context, cs *framework.CycleState, pod *v1.Pod, added *framework.PodInfo, ni *framework.NodeInfo) *framework.Status {
	return p.adjust(cs, pod, added, ni, 1)
}

// RemovePod uncounts a hypothetically removed pod (a preemption victim).
func (p *PodTopologySpread) RemovePod(_ context.Context, cs *framework.CycleState, pod *v1.Pod, removed *framework.PodInfo, ni *framework.NodeInfo) *framework.Status {
	return p.adjust(cs, pod, removed, ni, -1)
}

func (*PodTopologySpread) adjust(cs *framework.CycleState, pod *v1.Pod, pi *framework.PodInfo, ni *framework.NodeInfo, delta int) *framework.Status {
	d, ok := cs.Read(filterKey)
	if !ok {
		return nil
	}
	st := d.(*spreadState)
	if !eligible(nodeaffinity.GetRequiredNodeAffinity(pod), st.constraints, ni.Node()) {
		return nil
	}
	for i, c := range st.constraints {
		st.counts[i][ni.Node().Labels[c.key]] += delta * matching(pod.Namespace, c.selector, []*framework.PodInfo{pi})
	}
	return nil
}

// Filter rejects a node where placing the pod would exceed maxSkew over the
// least populated domain (counted as 0 while fewer than minDomains exist).
func (*PodTopologySpread) Filter(_ context.Context, cs *framework.CycleState, pod *v1.Pod, ni *framework.NodeInfo) *framework.Status {
	d, ok := cs.Read(filterKey)
	if !ok {
		return nil
	}
	st := d.(*spreadState)
	for i, c := range st.constraints {
		v, ok := ni.Node().Labels[c.key]
		if !ok {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReasonNodeLabelNotMatch)
		}
		minCount := math.MaxInt
		for _, n := range st.counts[i] {
			minCount = min(minCount, n)
		}
		if len(st.counts[i]) < int(c.minDomains) || minCount == math.MaxInt {
			minCount = 0
		}
		self := 0
		if c.selector.Matches(labels.Set(pod.Labels)) {
			self = 1
		}
		if skew := st.counts[i][v] + self - minCount; skew > int(c.maxSkew) {
			return framework.NewStatus(framework.Unschedulable, ErrReasonConstraintsNotMatch)
		}
	}
	return nil
}

// PreScore counts for the soft constraints; Skip when the pod has none.
func (*PodTopologySpread) PreScore(_ context.Context, cs *framework.CycleState, pod *v1.Pod, _, all []*framework.NodeInfo) *framework.Status {
	cons, err := parse(pod, v1.ScheduleAnyway)
	if err != nil {
		return framework.AsStatus(err)
	}
	if len(cons) == 0 {
		return framework.NewStatus(framework.Skip)
	}
	cs.Write(scoreKey, count(pod, cons, all))
	return nil
}

// Score is the number of matching pods in the node's domains, each divided
// by maxSkew; NormalizeScore inverts it so emptier domains win.
func (*PodTopologySpread) Score(_ context.Context, cs *framework.CycleState, _ *v1.Pod, ni *framework.NodeInfo) (int64, *framework.Status) {
	d, ok := cs.Read(scoreKey)
	if !ok {
		return 0, nil
	}
	st := d.(*spreadState)
	var s int64
	for i, c := range st.constraints {
		if v, ok := ni.Node().Labels[c.key]; ok {
			s += int64(st.counts[i][v]) * 10 / int64(max(c.maxSkew, 1))
		}
	}
	return s, nil
}

// ScoreExtensions implements framework.ScorePlugin.
func (p *PodTopologySpread) ScoreExtensions() framework.ScoreExtensions { return p }

// NormalizeScore maps fewer matching pods to higher scores.
func (*PodTopologySpread) NormalizeScore(_ context.Context, _ *framework.CycleState, _ *v1.Pod, scores []framework.NodeScore) *framework.Status {
	return framework.DefaultNormalizeScore(framework.MaxNodeScore, true, scores)
}

// EventsToRegister: any pod or node label change can change skew.
func (*PodTopologySpread) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{
		{Resource: framework.AssignedPod, ActionType: framework.All},
		{Resource: framework.Node, ActionType: framework.Add | framework.Delete | framework.UpdateNodeLabel},
	}
}
