// Package tainttoleration implements TaintToleration: Filter rejects nodes
// with a NoSchedule/NoExecute taint the pod does not tolerate; Score prefers
// nodes with fewer untolerated PreferNoSchedule taints.
package tainttoleration

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
)

// Name is the plugin name.
const Name = "TaintToleration"

// TaintToleration is stateless.
type TaintToleration struct{}

var (
	_ framework.FilterPlugin      = &TaintToleration{}
	_ framework.ScorePlugin       = &TaintToleration{}
	_ framework.EnqueueExtensions = &TaintToleration{}
)

// New returns the plugin.
func New() *TaintToleration { return &TaintToleration{} }

// Name implements framework.Plugin.
func (*TaintToleration) Name() string { return Name }

// Filter reports the first untolerated hard taint as
// "node(s) had untolerated taint {key: value}". Only a node change can fix
// that, hence UnschedulableAndUnresolvable.
func (*TaintToleration) Filter(ctx context.Context, _ *framework.CycleState, pod *v1.Pod, ni *framework.NodeInfo) *framework.Status {
	logger := klog.FromContext(ctx)
	for i := range ni.Node().Spec.Taints {
		t := &ni.Node().Spec.Taints[i]
		if t.Effect != v1.TaintEffectNoSchedule && t.Effect != v1.TaintEffectNoExecute {
			continue
		}
		if !tolerated(logger, pod.Spec.Tolerations, t) {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable,
				fmt.Sprintf("node(s) had untolerated taint {%s: %s}", t.Key, t.Value))
		}
	}
	return nil
}

func tolerated(logger klog.Logger, tols []v1.Toleration, t *v1.Taint) bool {
	for i := range tols {
		if tols[i].ToleratesTaint(logger, t, false) {
			return true
		}
	}
	return false
}

// Score counts untolerated PreferNoSchedule taints; NormalizeScore inverts it.
func (*TaintToleration) Score(ctx context.Context, _ *framework.CycleState, pod *v1.Pod, ni *framework.NodeInfo) (int64, *framework.Status) {
	logger := klog.FromContext(ctx)
	var n int64
	for i := range ni.Node().Spec.Taints {
		t := &ni.Node().Spec.Taints[i]
		if t.Effect == v1.TaintEffectPreferNoSchedule && !tolerated(logger, pod.Spec.Tolerations, t) {
			n++
		}
	}
	return n, nil
}

// ScoreExtensions implements framework.ScorePlugin.
func (tt *TaintToleration) ScoreExtensions() framework.ScoreExtensions { return tt }

// NormalizeScore maps fewer taints to higher scores.
func (*TaintToleration) NormalizeScore(_ context.Context, _ *framework.CycleState, _ *v1.Pod, scores []framework.NodeScore) *framework.Status {
	return framework.DefaultNormalizeScore(framework.MaxNodeScore, true, scores)
}

// EventsToRegister: a taint removed or a new node.
func (*TaintToleration) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{{Resource: framework.Node, ActionType: framework.Add | framework.UpdateNodeTaint}}
}
