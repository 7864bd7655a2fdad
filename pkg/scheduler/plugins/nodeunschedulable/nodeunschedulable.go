// Package nodeunschedulable implements the NodeUnschedulable filter: cordoned
// nodes (spec.unschedulable) take only pods tolerating the
// node.kubernetes.io/unschedulable:NoSchedule taint.
package nodeunschedulable

import (
	"context"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
)

// Name is the plugin name.
const Name = "NodeUnschedulable"

// ErrReasonUnschedulable is the upstream rejection reason.
const ErrReasonUnschedulable = "node(s) were unschedulable"

// NodeUnschedulable is stateless.
type NodeUnschedulable struct{}

var (
	_ framework.FilterPlugin      = &NodeUnschedulable{}
	_ framework.EnqueueExtensions = &NodeUnschedulable{}
)

// New returns the plugin.
func New() *NodeUnschedulable { return &NodeUnschedulable{} }

// Name implements framework.Plugin.
func (*NodeUnschedulable) Name() string { return Name }

// Filter rejects cordoned nodes unless the pod tolerates the cordon taint.
func (*NodeUnschedulable) Filter(ctx context.Context, _ *framework.CycleState, pod *v1.Pod, ni *framework.NodeInfo) *framework.Status {
	if !ni.Node().Spec.Unschedulable {
		return nil
	}
	taint := v1.Taint{Key: v1.TaintNodeUnschedulable, Effect: v1.TaintEffectNoSchedule}
	for i := range pod.Spec.Tolerations {
		if pod.Spec.Tolerations[i].ToleratesTaint(klog.FromContext(ctx), &taint, false) {
			return nil
		}
	}
	return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReasonUnschedulable)
}

// EventsToRegister: uncordoning is a spec change counted as a taint update.
func (*NodeUnschedulable) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{{Resource: framework.Node, ActionType: framework.Add | framework.UpdateNodeTaint}}
}
