package podtopologyspread

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
	"github.com/skiff-project/skiff/pkg/scheduler/internal/cache"
	st "github.com/skiff-project/skiff/pkg/scheduler/internal/testutil"
)

func TestFilter(t *testing.T) {
	nodes := []*v1.Node{
		st.MakeNode("a1").Label("zone", "a").Obj(),
		st.MakeNode("b1").Label("zone", "b").Obj(),
		st.MakeNode("nozone").Obj(),
	}
	// Zone a already has two "web" pods, zone b none.
	existing := []*v1.Pod{
		st.MakePod("w1").Label("app", "web").Node("a1").Obj(),
		st.MakePod("w2").Label("app", "web").Node("a1").Obj(),
	}
	spread := func(skew int32) *v1.Pod {
		return st.MakePod("p").Label("app", "web").SpreadConstraint(skew, "zone", v1.DoNotSchedule, "app", "web").Obj()
	}
	tests := []struct {
		name   string
		pod    *v1.Pod
		target string
		want   st.Result
	}{
		{"empty zone keeps skew within 1", spread(1), "b1", st.Result{}},
		{"crowded zone exceeds maxSkew 1", spread(1), "a1", st.Result{Code: framework.Unschedulable, Reasons: []string{ErrReasonConstraintsNotMatch}}},
		{"maxSkew 3 tolerates the crowded zone", spread(3), "a1", st.Result{}},
		{"node without the key is unresolvable", spread(1), "nozone", st.Result{Code: framework.UnschedulableAndUnresolvable, Reasons: []string{ErrReasonNodeLabelNotMatch}}},
		{"soft constraints do not filter", st.MakePod("p").SpreadConstraint(1, "zone", v1.ScheduleAnyway, "app", "web").Obj(), "a1", st.Result{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := cache.NewSnapshot(existing, nodes)
			target, _ := snap.Get(tt.target)
			if diff := cmp.Diff(tt.want, st.RunFilter(New(), tt.pod, snap.List(), target)); diff != "" {
				t.Errorf("Filter (-want +got):\n%s", diff)
			}
		})
	}
}
