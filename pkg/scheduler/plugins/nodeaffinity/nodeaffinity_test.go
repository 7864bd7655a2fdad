package nodeaffinity

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
	st "github.com/skiff-project/skiff/pkg/scheduler/internal/testutil"
)

func TestFilter(t *testing.T) {
	mismatch := st.Result{Code: framework.UnschedulableAndUnresolvable, Reasons: []string{ErrReasonPod}}
	required := func(key string, values ...string) *v1.Affinity {
		return &v1.Affinity{NodeAffinity: &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{
			NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{{Key: key, Operator: v1.NodeSelectorOpIn, Values: values}}}},
		}}}
	}
	node := st.MakeNode("n").Label("zone", "a").Obj()
	tests := []struct {
		name string
		pod  *v1.Pod
		want st.Result
	}{
		{"no constraints", st.MakePod("p").Obj(), st.Result{}},
		{"nodeSelector matches", st.MakePod("p").NodeSelector(map[string]string{"zone": "a"}).Obj(), st.Result{}},
		{"nodeSelector mismatches", st.MakePod("p").NodeSelector(map[string]string{"zone": "b"}).Obj(), mismatch},
		{"required affinity matches", st.MakePod("p").Affinity(required("zone", "a", "c")).Obj(), st.Result{}},
		{"required affinity mismatches", st.MakePod("p").Affinity(required("zone", "b")).Obj(), mismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ni := framework.NewNodeInfo()
			ni.SetNode(node)
			if diff := cmp.Diff(tt.want, st.RunFilter(New(), tt.pod, []*framework.NodeInfo{ni}, ni)); diff != "" {
				t.Errorf("Filter (-want +got):\n%s", diff)
			}
		})
	}
}
