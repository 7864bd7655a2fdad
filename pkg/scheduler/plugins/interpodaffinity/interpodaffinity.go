// Package interpodaffinity implements the InterPodAffinity filter: the pod's
// required pod affinity and anti-affinity, and the required anti-affinity of
// pods already running, evaluated per topology domain.
package interpodaffinity

import (
	"context"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
)

// Name is the plugin name.
const Name = "InterPodAffinity"

// Upstream rejection reasons.
const (
	ErrReasonExistingAntiAffinityRulesNotMatch = "node(s) didn't satisfy existing pods anti-affinity rules"
	ErrReasonAffinityRulesNotMatch             = "node(s) didn't match pod affinity rules"
	ErrReasonAntiAffinityRulesNotMatch         = "node(s) didn't match pod anti-affinity rules"
)

const stateKey framework.StateKey = Name

// pair is one topology domain, e.g. {zone, us-east-1a}.
type pair struct{ key, value string }

type counts map[pair]int

// state holds, per domain, how many existing pods: have an anti-affinity
// term matching the incoming pod; match the incoming pod's affinity terms
// (all of them); match any of its anti-affinity terms.
type state struct {
	pod                *framework.PodInfo
	existingAntiCounts counts
	affinityCounts     counts
	antiCounts         counts
}

func (s *state) Clone() framework.StateData {
	cp := func(c counts) counts {
		n := make(counts, len(c))
		for k, v := range c {
			n[k] = v
		}
		return n
	}
	return &state{pod: s.pod, existingAntiCounts: cp(s.existingAntiCounts), affinityCounts: cp(s.affinityCounts), antiCounts: cp(s.antiCounts)}
}

// InterPodAffinity is stateless across cycles.
type InterPodAffinity struct{}

var (
	_ framework.PreFilterPlugin     = &InterPodAffinity{}
	_ framework.PreFilterExtensions = &InterPodAffinity{}
	_ framework.FilterPlugin        = &InterPodAffinity{}
	_ framework.EnqueueExtensions   = &InterPodAffinity{}
)

// New returns the plugin.
func New() *InterPodAffinity { return &InterPodAffinity{} }

// Name implements framework.Plugin.
func (*InterPodAffinity) Name() string { return Name }

func podInfo(cs *framework.CycleState, pod *v1.Pod) *framework.PodInfo {
	if d, ok := cs.Read(framework.PodInfoStateKey); ok {
		if pi := d.(*framework.PodInfoState).PodInfo; pi.Pod.UID == pod.UID {
			return pi
		}
	}
	return framework.NewPodInfo(pod)
}

// PreFilter builds the domain counts. It skips when neither the pod nor any
// existing pod has required (anti-)affinity, which is the common case and
// keeps the cost O(nodes) rather than O(pods).
func (*InterPodAffinity) PreFilter(_ context.Context, cs *framework.CycleState, pod *v1.Pod, nodes []*framework.NodeInfo) *framework.Status {
	pi := podInfo(cs, pod)
	if pi.ParseError != nil {
		return framework.AsStatus(pi.ParseError)
	}
	st := &state{pod: pi, existingAntiCounts: counts{}, affinityCounts: counts{}, antiCounts: counts{}}
	mine := len(pi.RequiredAffinityTerms)+len(pi.RequiredAntiAffinityTerms) > 0
	any := mine
	for _, ni := range nodes {
		if len(ni.PodsWithRequiredAntiAffinity) > 0 {
			any = true
		}
		for _, ex := range ni.PodsWithRequiredAntiAffinity {
			st.update(ex, ni.Node(), 1, false)
		}
		if mine {
			for _, ex := range ni.Pods {
				st.update(ex, ni.Node(), 1, true)
			}
		}
	}
	if !any {
		return framework.NewStatus(framework.Skip)
	}
	cs.Write(stateKey, st)
	return nil
}

// update adds delta for existing pod ex on node. With incoming=true it
// counts ex against the incoming pod's terms; otherwise ex's own
// anti-affinity terms against the incoming pod.
func (s *state) update(ex *framework.PodInfo, node *v1.Node, delta int, incoming bool) {
	if node == nil {
		return
	}
	if !incoming {
		for _, t := range ex.RequiredAntiAffinityTerms {
			if v, ok := node.Labels[t.TopologyKey]; ok && t.Matches(s.pod.Pod) {
				s.existingAntiCounts[pair{t.TopologyKey, v}] += delta
			}
		}
		return
	}
	if terms := s.pod.RequiredAffinityTerms; len(terms) > 0 && matchesAll(terms, ex.Pod) {
		for _, t := range terms {
			if v, ok := node.Labels[t.TopologyKey]; ok {
				s.affinityCounts[pair{t.TopologyKey, v}] += delta
			}
		}
	}
	for _, t := range s.pod.RequiredAntiAffinityTerms {
		if v, ok := node.Labels[t.TopologyKey]; ok && t.Matches(ex.Pod) {
			s.antiCounts[pair{t.TopologyKey, v}] += delta
		}
	}
}

func matchesAll(terms []framework.AffinityTerm, pod *v1.Pod) bool {
	for i := range terms {
		if !terms[i].Matches(pod) {
			return false
		}
	}
	return true
}

// PreFilterExtensions implements framework.PreFilterPlugin.
func (p *InterPodAffinity) PreFilterExtensions() framework.PreFilterExtensions { return p }

// AddPod accounts a hypothetically added pod.
func (*InterPodAffinity) AddPod(_ context.Context, cs *framework.CycleState, _ *v1.Pod, added *framework.PodInfo, ni *framework.NodeInfo) *framework.Status {
	if d, ok := cs.Read(stateKey); ok {
		st := d.(*state)
		st.update(added, ni.Node(), 1, false)
		st.update(added, ni.Node(), 1, true)
	}
	return nil
}

// RemovePod unaccounts a hypothetically removed pod.
func (*InterPodAffinity) RemovePod(_ context.Context, cs *framework.CycleState, _ *v1.Pod, removed *framework.PodInfo, ni *framework.NodeInfo) *framework.Status {
	if d, ok := cs.Read(stateKey); ok {
		st := d.(*state)
		st.update(removed, ni.Node(), -1, false)
		st.update(removed, ni.Node(), -1, true)
	}
	return nil
}

// Filter checks, in upstream order, existing pods' anti-affinity, the pod's
// affinity, then the pod's anti-affinity.
func (*InterPodAffinity) Filter(_ context.Context, cs *framework.CycleState, pod *v1.Pod, ni *framework.NodeInfo) *framework.Status {
	d, ok := cs.Read(stateKey)
	if !ok {
		return nil
	}
	st := d.(*state)
	labels := ni.Node().Labels
	for k, v := range labels {
		if st.existingAntiCounts[pair{k, v}] > 0 {
			return framework.NewStatus(framework.Unschedulable, ErrReasonExistingAntiAffinityRulesNotMatch)
		}
	}
	if terms := st.pod.RequiredAffinityTerms; len(terms) > 0 {
		ok := true
		for _, t := range terms {
			v, has := labels[t.TopologyKey]
			if !has || st.affinityCounts[pair{t.TopologyKey, v}] <= 0 {
				ok = false
				break
			}
		}
		// The first pod of a group that selects itself may go anywhere the
		// topology keys exist; otherwise a self-affine workload could never start.
		if !ok && !anyPositive(st.affinityCounts) && matchesAll(terms, pod) {
			ok = true
			for _, t := range terms {
				if _, has := labels[t.TopologyKey]; !has {
					ok = false
				}
			}
		}
		if !ok {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReasonAffinityRulesNotMatch)
		}
	}
	for _, t := range st.pod.RequiredAntiAffinityTerms {
		if v, has := labels[t.TopologyKey]; has && st.antiCounts[pair{t.TopologyKey, v}] > 0 {
			return framework.NewStatus(framework.Unschedulable, ErrReasonAntiAffinityRulesNotMatch)
		}
	}
	return nil
}

func anyPositive(c counts) bool {
	for _, v := range c {
		if v > 0 {
			return true
		}
	}
	return false
}

// EventsToRegister: pods coming and going, node labels.
func (*InterPodAffinity) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{
		{Resource: framework.AssignedPod, ActionType: framework.All},
		{Resource: framework.Node, ActionType: framework.Add | framework.UpdateNodeLabel},
	}
}
