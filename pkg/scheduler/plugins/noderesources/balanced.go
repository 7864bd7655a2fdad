package noderesources

import (
	"context"
	"math"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
)

// BalancedAllocationName is the plugin name.
const BalancedAllocationName = "NodeResourcesBalancedAllocation"

// BalancedAllocation prefers nodes whose cpu and memory utilisation, with the
// pod placed, are close to each other, so that neither is stranded.
type BalancedAllocation struct{}

var _ framework.ScorePlugin = &BalancedAllocation{}

// NewBalancedAllocation returns the plugin.
func NewBalancedAllocation() *BalancedAllocation { return &BalancedAllocation{} }

// Name implements framework.Plugin.
func (*BalancedAllocation) Name() string { return BalancedAllocationName }

// Score is (1 - stddev of the utilisation fractions) * MaxNodeScore; with two
// resources the standard deviation is |cpu - mem| / 2, as upstream computes.
func (*BalancedAllocation) Score(_ context.Context, cs *framework.CycleState, pod *v1.Pod, ni *framework.NodeInfo) (int64, *framework.Status) {
	req := &requestsOf(cs, pod).NonZeroRequests
	cpu := fraction(ni.NonZeroRequested.MilliCPU+req.MilliCPU, ni.Allocatable.MilliCPU)
	mem := fraction(ni.NonZeroRequested.Memory+req.Memory, ni.Allocatable.Memory)
	std := math.Abs(cpu-mem) / 2
	return int64((1 - std) * float64(framework.MaxNodeScore)), nil
}

func fraction(requested, capacity int64) float64 {
	if capacity == 0 {
		return 1
	}
	return min(float64(requested)/float64(capacity), 1)
}

// ScoreExtensions returns nil: scores are already in range.
func (*BalancedAllocation) ScoreExtensions() framework.ScoreExtensions { return nil }
