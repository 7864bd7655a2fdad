// Package nodeports implements the NodePorts filter: two pods cannot bind the
// same host IP, protocol and port.
package nodeports

import (
	"context"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
)

// Name is the plugin name.
const Name = "NodePorts"

// ErrReason is the upstream rejection reason.
const ErrReason = "node(s) didn't have free ports for the requested pod ports"

// NodePorts is stateless.
type NodePorts struct{}

var (
	_ framework.FilterPlugin      = &NodePorts{}
	_ framework.EnqueueExtensions = &NodePorts{}
)

// New returns the plugin.
func New() *NodePorts { return &NodePorts{} }

// Name implements framework.Plugin.
func (*NodePorts) Name() string { return Name }

// Filter rejects a node where any of the pod's host ports is taken. Such a
// conflict can be resolved by preemption, hence Unschedulable.
func (*NodePorts) Filter(_ context.Context, _ *framework.CycleState, pod *v1.Pod, ni *framework.NodeInfo) *framework.Status {
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort > 0 && ni.UsedPorts.CheckConflict(p.HostIP, string(p.Protocol), p.HostPort) {
				return framework.NewStatus(framework.Unschedulable, ErrReason)
			}
		}
	}
	return nil
}

// EventsToRegister: ports free up when pods go away or nodes appear.
func (*NodePorts) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{
		{Resource: framework.AssignedPod, ActionType: framework.Delete},
		{Resource: framework.Node, ActionType: framework.Add},
	}
}
