// Package nodeaffinity implements NodeAffinity: Filter enforces
// spec.nodeSelector and required node affinity; Score sums the weights of the
// preferred terms a node matches.
package nodeaffinity

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
)

// Name is the plugin name.
const Name = "NodeAffinity"

// ErrReasonPod is the upstream rejection reason.
const ErrReasonPod = "node(s) didn't match Pod's node affinity/selector"

const stateKey framework.StateKey = Name

// state is the pod's parsed selectors, computed once per cycle.
type state struct {
	required  nodeaffinity.RequiredNodeAffinity
	preferred *nodeaffinity.PreferredSchedulingTerms
}

// Clone implements framework.StateData; state is immutable.
func (s *state) Clone() framework.StateData { return s }

// NodeAffinity is stateless across cycles.
type NodeAffinity struct{}

var (
	_ framework.PreFilterPlugin   = &NodeAffinity{}
	_ framework.FilterPlugin      = &NodeAffinity{}
	_ framework.PreScorePlugin    = &NodeAffinity{}
	_ framework.ScorePlugin       = &NodeAffinity{}
	_ framework.EnqueueExtensions = &NodeAffinity{}
)

// New returns the plugin.
func New() *NodeAffinity { return &NodeAffinity{} }

// Name implements framework.Plugin.
func (*NodeAffinity) Name() string { return Name }

// PreFilter parses the pod's required affinity once instead of per node.
func (*NodeAffinity) PreFilter(_ context.Context, cs *framework.CycleState, pod *v1.Pod, _ []*framework.NodeInfo) *framework.Status {
	cs.Write(stateKey, &state{required: nodeaffinity.GetRequiredNodeAffinity(pod)})
	return nil
}

// PreFilterExtensions returns nil: the state depends on no other pod.
func (*NodeAffinity) PreFilterExtensions() framework.PreFilterExtensions { return nil }

// Filter rejects nodes that do not match nodeSelector and required affinity.
func (*NodeAffinity) Filter(_ context.Context, cs *framework.CycleState, pod *v1.Pod, ni *framework.NodeInfo) *framework.Status {
	var req nodeaffinity.RequiredNodeAffinity
	if d, ok := cs.Read(stateKey); ok {
		req = d.(*state).required
	} else {
		req = nodeaffinity.GetRequiredNodeAffinity(pod)
	}
	ok, err := req.Match(ni.Node())
	if err != nil {
		return framework.AsStatus(fmt.Errorf("matching node affinity of pod %s/%s: %w", pod.Namespace, pod.Name, err))
	}
	if !ok {
		return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReasonPod)
	}
	return nil
}

const preScoreKey framework.StateKey = Name + "/score"

// PreScore parses the preferred terms; Skip when there are none.
func (*NodeAffinity) PreScore(_ context.Context, cs *framework.CycleState, pod *v1.Pod, _, _ []*framework.NodeInfo) *framework.Status {
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || len(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0 {
		return framework.NewStatus(framework.Skip)
	}
	terms, err := nodeaffinity.NewPreferredSchedulingTerms(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution)
	if err != nil {
		return framework.AsStatus(fmt.Errorf("parsing preferred node affinity: %w", err))
	}
	cs.Write(preScoreKey, &state{preferred: terms})
	return nil
}

// Score is the sum of weights of matching preferred terms.
func (*NodeAffinity) Score(_ context.Context, cs *framework.CycleState, _ *v1.Pod, ni *framework.NodeInfo) (int64, *framework.Status) {
	d, ok := cs.Read(preScoreKey)
	if !ok {
		return 0, nil
	}
	return d.(*state).preferred.Score(ni.Node()), nil
}

// ScoreExtensions implements framework.ScorePlugin.
func (na *NodeAffinity) ScoreExtensions() framework.ScoreExtensions { return na }

// NormalizeScore scales to [0, MaxNodeScore].
func (*NodeAffinity) NormalizeScore(_ context.Context, _ *framework.CycleState, _ *v1.Pod, scores []framework.NodeScore) *framework.Status {
	return framework.DefaultNormalizeScore(framework.MaxNodeScore, false, scores)
}

// EventsToRegister: new nodes or changed labels.
func (*NodeAffinity) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{{Resource: framework.Node, ActionType: framework.Add | framework.UpdateNodeLabel}}
}
