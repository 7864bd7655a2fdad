package tainttoleration

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
	st "github.com/skiff-project/skiff/pkg/scheduler/internal/testutil"
)

func TestFilter(t *testing.T) {
	unreachable := st.MakeNode("n").Taint(v1.TaintNodeUnreachable, "", v1.TaintEffectNoExecute).Obj()
	tests := []struct {
		name string
		pod  *v1.Pod
		node *v1.Node
		want st.Result
	}{
		{"untainted node", st.MakePod("p").Obj(), st.MakeNode("n").Obj(), st.Result{}},
		{"untolerated NoExecute taint names key and empty value", st.MakePod("p").Obj(), unreachable,
			st.Result{Code: framework.UnschedulableAndUnresolvable, Reasons: []string{"node(s) had untolerated taint {node.kubernetes.io/unreachable: }"}}},
		{"tolerated with Exists", st.MakePod("p").Toleration(v1.TaintNodeUnreachable, "", v1.TolerationOpExists, "").Obj(), unreachable, st.Result{}},
		{"key=value taint untolerated", st.MakePod("p").Obj(), st.MakeNode("n").Taint("dedicated", "gpu", v1.TaintEffectNoSchedule).Obj(),
			st.Result{Code: framework.UnschedulableAndUnresolvable, Reasons: []string{"node(s) had untolerated taint {dedicated: gpu}"}}},
		{"PreferNoSchedule never filters", st.MakePod("p").Obj(), st.MakeNode("n").Taint("soft", "", v1.TaintEffectPreferNoSchedule).Obj(), st.Result{}},
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
