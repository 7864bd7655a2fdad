package noderesources

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
	st "github.com/skiff-project/skiff/pkg/scheduler/internal/testutil"
)

func TestFitFilter(t *testing.T) {
	node := st.MakeNode("n").Capacity("2", "4Gi", 2).Obj()
	existing := st.MakePod("old").Node("n").Req("1", "1Gi").Obj()
	tests := []struct {
		name     string
		pod      *v1.Pod
		existing []*v1.Pod
		want     st.Result
	}{
		{"fits", st.MakePod("p").Req("1", "1Gi").Obj(), []*v1.Pod{existing}, st.Result{}},
		{"insufficient cpu", st.MakePod("p").Req("1500m", "").Obj(), []*v1.Pod{existing},
			st.Result{Code: framework.Unschedulable, Reasons: []string{ReasonInsufficientCPU}}},
		{"insufficient cpu and memory", st.MakePod("p").Req("2", "4Gi").Obj(), []*v1.Pod{existing},
			st.Result{Code: framework.Unschedulable, Reasons: []string{ReasonInsufficientCPU, ReasonInsufficientMemory}}},
		{"init container larger than the rest counts", st.MakePod("p").Req("100m", "").InitContainer("init", "1500m", "", false).Obj(), []*v1.Pod{existing},
			st.Result{Code: framework.Unschedulable, Reasons: []string{ReasonInsufficientCPU}}},
		{"sidecar adds to regular containers", st.MakePod("p").Req("600m", "").InitContainer("side", "500m", "", true).Obj(), []*v1.Pod{existing},
			st.Result{Code: framework.Unschedulable, Reasons: []string{ReasonInsufficientCPU}}},
		{"overhead counts", st.MakePod("p").Req("1", "").Overhead("100m", "").Obj(), []*v1.Pod{existing},
			st.Result{Code: framework.Unschedulable, Reasons: []string{ReasonInsufficientCPU}}},
		{"too many pods", st.MakePod("p").Obj(), []*v1.Pod{existing, st.MakePod("old2").Node("n").Obj()},
			st.Result{Code: framework.Unschedulable, Reasons: []string{ReasonTooManyPods}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ni := framework.NewNodeInfo(tt.existing...)
			ni.SetNode(node)
			if diff := cmp.Diff(tt.want, st.RunFilter(NewFit(), tt.pod, []*framework.NodeInfo{ni}, ni)); diff != "" {
				t.Errorf("Filter (-want +got):\n%s", diff)
			}
		})
	}
}

func TestScores(t *testing.T) {
	node := st.MakeNode("n").Capacity("4", "8Gi", 110).Obj()
	tests := []struct {
		name                    string
		pod                     *v1.Pod
		wantLeast, wantBalanced int64
	}{
		// cpu 1/4 used → 75 free; mem 2/8 → 75 free; perfectly balanced.
		{"quarter of both", st.MakePod("p").Req("1", "2Gi").Obj(), 75, 100},
		// cpu 2/4 → 50; mem 2/8 → 75; mean 62; |0.5-0.25|/2 = 0.125 → 87.
		{"cpu heavy", st.MakePod("p").Req("2", "2Gi").Obj(), 62, 87},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ni := framework.NewNodeInfo()
			ni.SetNode(node)
			cs := framework.NewCycleState()
			least, _ := NewFit().Score(context.Background(), cs, tt.pod, ni)
			bal, _ := NewBalancedAllocation().Score(context.Background(), cs, tt.pod, ni)
			if diff := cmp.Diff([2]int64{tt.wantLeast, tt.wantBalanced}, [2]int64{least, bal}); diff != "" {
				t.Errorf("[LeastAllocated, Balanced] (-want +got):\n%s", diff)
			}
		})
	}
}
