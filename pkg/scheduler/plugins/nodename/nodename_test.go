package nodename

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
	st "github.com/skiff-project/skiff/pkg/scheduler/internal/testutil"
)

func TestFilter(t *testing.T) {
	node := st.MakeNode("node-1").Obj()
	tests := []struct {
		name string
		pod  *st.PodWrapper
		want st.Result
	}{
		{"no node name fits anywhere", st.MakePod("p"), st.Result{}},
		{"matching node name fits", st.MakePod("p").Node("node-1"), st.Result{}},
		{"other node name is unresolvable", st.MakePod("p").Node("node-2"),
			st.Result{Code: framework.UnschedulableAndUnresolvable, Reasons: []string{ErrReason}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ni := framework.NewNodeInfo()
			ni.SetNode(node)
			got := st.RunFilter(New(), tt.pod.Obj(), []*framework.NodeInfo{ni}, ni)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Filter (-want +got):\n%s", diff)
			}
		})
	}
}
