package nodeunschedulable

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
	st "github.com/skiff-project/skiff/pkg/scheduler/internal/testutil"
)

func TestFilter(t *testing.T) {
	unresolvable := st.Result{Code: framework.UnschedulableAndUnresolvable, Reasons: []string{ErrReasonUnschedulable}}
	tests := []struct {
		name string
		pod  *v1.Pod
		node *v1.Node
		want st.Result
	}{
		{"schedulable node", st.MakePod("p").Obj(), st.MakeNode("n").Obj(), st.Result{}},
		{"cordoned node", st.MakePod("p").Obj(), st.MakeNode("n").Unschedulable().Obj(), unresolvable},
		{"cordoned node, pod tolerates the cordon taint",
			st.MakePod("p").Toleration(v1.TaintNodeUnschedulable, "", v1.TolerationOpExists, v1.TaintEffectNoSchedule).Obj(),
			st.MakeNode("n").Unschedulable().Obj(), st.Result{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ni := framework.NewNodeInfo()
			ni.SetNode(tt.node)
			if diff := cmp.Diff(tt.want, st.RunFilter(New(), tt.pod, []*framework.NodeInfo{ni}, ni)); diff != "" {
				t.Errorf("Filter (-want +got):\n%s", diff)
			}
		})
	}
}
