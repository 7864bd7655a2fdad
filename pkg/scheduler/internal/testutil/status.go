package testutil

import (
	"context"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
)

// Result is a Status flattened for cmp.Diff.
type Result struct {
	Code    framework.Code
	Reasons []string
}

// ResultOf flattens st.
func ResultOf(st *framework.Status) Result {
	return Result{Code: st.Code(), Reasons: st.Reasons()}
}

// RunFilter runs p's PreFilter (if any) over nodes, then Filter on target,
// the way the framework does, and flattens the outcome.
func RunFilter(p framework.FilterPlugin, pod *v1.Pod, nodes []*framework.NodeInfo, target *framework.NodeInfo) Result {
	ctx := context.Background()
	cs := framework.NewCycleState()
	cs.Write(framework.PodInfoStateKey, &framework.PodInfoState{PodInfo: framework.NewPodInfo(pod)})
	if pf, ok := p.(framework.PreFilterPlugin); ok {
		st := pf.PreFilter(ctx, cs, pod, nodes)
		if st.IsSkip() {
			return Result{}
		}
		if !st.IsSuccess() {
			return ResultOf(st)
		}
	}
	return ResultOf(p.Filter(ctx, cs, pod, target))
}
