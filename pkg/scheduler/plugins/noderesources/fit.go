// Package noderesources implements NodeResourcesFit (Filter: the pod's
// requests fit the node's free allocatable; Score: LeastAllocated) and
// NodeResourcesBalancedAllocation (Score: balanced cpu/memory usage).
package noderesources

import (
	"context"
	"fmt"
	"sort"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
)

// FitName is the Fit plugin's name.
const FitName = "NodeResourcesFit"

// Upstream rejection reasons.
const (
	ReasonTooManyPods          = "Too many pods"
	ReasonInsufficientCPU      = "Insufficient cpu"
	ReasonInsufficientMemory   = "Insufficient memory"
	ReasonInsufficientEphemera = "Insufficient ephemeral-storage"
)

// Fit checks requests against allocatable and scores by LeastAllocated.
type Fit struct{}

var (
	_ framework.FilterPlugin      = &Fit{}
	_ framework.ScorePlugin       = &Fit{}
	_ framework.EnqueueExtensions = &Fit{}
)

// NewFit returns the plugin.
func NewFit() *Fit { return &Fit{} }

// Name implements framework.Plugin.
func (*Fit) Name() string { return FitName }

// requestsOf returns the pod's precomputed requests. Filter gets a bare
// *v1.Pod, so the framework's PodInfo is threaded through CycleState.
func requestsOf(cs *framework.CycleState, pod *v1.Pod) *framework.PodInfo {
	if d, ok := cs.Read(framework.PodInfoStateKey); ok {
		if pi := d.(*framework.PodInfoState).PodInfo; pi.Pod.UID == pod.UID {
			return pi
		}
	}
	return framework.NewPodInfo(pod)
}

// Filter returns every insufficient resource as a reason, so the event
// says "Insufficient cpu, Insufficient memory" when both are short. A full
// node could be emptied by preemption, hence Unschedulable.
func (*Fit) Filter(_ context.Context, cs *framework.CycleState, pod *v1.Pod, ni *framework.NodeInfo) *framework.Status {
	reasons := Insufficient(&requestsOf(cs, pod).Requests, ni)
	if len(reasons) == 0 {
		return nil
	}
	return framework.NewStatus(framework.Unschedulable, reasons...)
}

// Insufficient lists the reasons req does not fit on ni, in upstream order:
// pod count, cpu, memory, ephemeral storage, then extended resources sorted.
func Insufficient(req *framework.Resource, ni *framework.NodeInfo) []string {
	var reasons []string
	if len(ni.Pods)+1 > ni.Allocatable.AllowedPodNumber {
		reasons = append(reasons, ReasonTooManyPods)
	}
	if req.MilliCPU > 0 && req.MilliCPU > ni.Allocatable.MilliCPU-ni.Requested.MilliCPU {
		reasons = append(reasons, ReasonInsufficientCPU)
	}
	if req.Memory > 0 && req.Memory > ni.Allocatable.Memory-ni.Requested.Memory {
		reasons = append(reasons, ReasonInsufficientMemory)
	}
	if req.EphemeralStorage > 0 && req.EphemeralStorage > ni.Allocatable.EphemeralStorage-ni.Requested.EphemeralStorage {
		reasons = append(reasons, ReasonInsufficientEphemera)
	}
	if len(req.ScalarResources) > 0 {
		var scalar []string
		for name, q := range req.ScalarResources {
			if q > 0 && q > ni.Allocatable.ScalarResources[name]-ni.Requested.ScalarResources[name] {
				scalar = append(scalar, fmt.Sprintf("Insufficient %v", name))
			}
		}
		sort.Strings(scalar)
		reasons = append(reasons, scalar...)
	}
	return reasons
}

// Score is LeastAllocated over cpu and memory with equal weights:
// mean of (allocatable - requested) * 100 / allocatable, where requested
// includes the pod and uses non-zero defaults so empty pods still spread.
func (*Fit) Score(_ context.Context, cs *framework.CycleState, pod *v1.Pod, ni *framework.NodeInfo) (int64, *framework.Status) {
	req := &requestsOf(cs, pod).NonZeroRequests
	cpu := leastAllocated(ni.NonZeroRequested.MilliCPU+req.MilliCPU, ni.Allocatable.MilliCPU)
	mem := leastAllocated(ni.NonZeroRequested.Memory+req.Memory, ni.Allocatable.Memory)
	return (cpu + mem) / 2, nil
}

func leastAllocated(requested, capacity int64) int64 {
	if capacity == 0 || requested > capacity {
		return 0
	}
	return (capacity - requested) * framework.MaxNodeScore / capacity
}

// ScoreExtensions returns nil: scores are already in range.
func (*Fit) ScoreExtensions() framework.ScoreExtensions { return nil }

// EventsToRegister: room appears when pods leave or shrink, or nodes grow.
func (*Fit) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{
		{Resource: framework.AssignedPod, ActionType: framework.Delete | framework.UpdatePodScaleDown},
		{Resource: framework.Node, ActionType: framework.Add | framework.UpdateNodeAllocatable},
	}
}
