// Package nodename implements the NodeName filter: a pod that names a node in
// spec.nodeName (but is still pending, e.g. created with it and a custom
// scheduler) may only go there.
package nodename

import (
	"context"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
)

// Name is the plugin name used in configuration and statuses.
const Name = "NodeName"

// ErrReason is the upstream rejection reason.
const ErrReason = "node(s) didn't match the requested node name"

// NodeName is stateless.
type NodeName struct{}

var (
	_ framework.FilterPlugin      = &NodeName{}
	_ framework.EnqueueExtensions = &NodeName{}
)

// New returns the plugin.
func New() *NodeName { return &NodeName{} }

// Name implements framework.Plugin.
func (*NodeName) Name() string { return Name }

// Filter rejects every node but the named one, unresolvably.
func (*NodeName) Filter(_ context.Context, _ *framework.CycleState, pod *v1.Pod, ni *framework.NodeInfo) *framework.Status {
	if pod.Spec.NodeName != "" && pod.Spec.NodeName != ni.Node().Name {
		return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReason)
	}
	return nil
}

// EventsToRegister: only a new node with the right name can help.
func (*NodeName) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{{Resource: framework.Node, ActionType: framework.Add}}
}
