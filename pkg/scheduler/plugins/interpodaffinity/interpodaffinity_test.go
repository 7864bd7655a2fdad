package interpodaffinity

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
	}
	db := st.MakePod("db").Label("app", "db").Node("a1").Obj()
	loner := st.MakePod("loner").Node("a1").Affinity(&v1.Affinity{PodAntiAffinity: &v1.PodAntiAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: []v1.PodAffinityTerm{st.PodAffinityTerm("zone", "app", "web")},
	}}).Obj()
	affine := func(k, v string) *v1.Affinity {
		return &v1.Affinity{PodAffinity: &v1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []v1.PodAffinityTerm{st.PodAffinityTerm("zone", k, v)}}}
	}
	anti := func(k, v string) *v1.Affinity {
		return &v1.Affinity{PodAntiAffinity: &v1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []v1.PodAffinityTerm{st.PodAffinityTerm("zone", k, v)}}}
	}
	tests := []struct {
		name     string
		pod      *v1.Pod
		existing []*v1.Pod
		target   string
		want     st.Result
	}{
		{"affinity to db: zone with db", st.MakePod("p").Affinity(affine("app", "db")).Obj(), []*v1.Pod{db}, "a1", st.Result{}},
		{"affinity to db: zone without db", st.MakePod("p").Affinity(affine("app", "db")).Obj(), []*v1.Pod{db}, "b1",
			st.Result{Code: framework.UnschedulableAndUnresolvable, Reasons: []string{ErrReasonAffinityRulesNotMatch}}},
		{"self-affine first pod goes anywhere", st.MakePod("p").Label("app", "web").Affinity(affine("app", "web")).Obj(), nil, "b1", st.Result{}},
		{"anti-affinity to db: zone with db", st.MakePod("p").Affinity(anti("app", "db")).Obj(), []*v1.Pod{db}, "a1",
			st.Result{Code: framework.Unschedulable, Reasons: []string{ErrReasonAntiAffinityRulesNotMatch}}},
		{"anti-affinity to db: other zone", st.MakePod("p").Affinity(anti("app", "db")).Obj(), []*v1.Pod{db}, "b1", st.Result{}},
		{"existing pod's anti-affinity rejects web in its zone", st.MakePod("p").Label("app", "web").Obj(), []*v1.Pod{loner}, "a1",
			st.Result{Code: framework.Unschedulable, Reasons: []string{ErrReasonExistingAntiAffinityRulesNotMatch}}},
		{"existing pod's anti-affinity allows other zones", st.MakePod("p").Label("app", "web").Obj(), []*v1.Pod{loner}, "b1", st.Result{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := cache.NewSnapshot(tt.existing, nodes)
			target, _ := snap.Get(tt.target)
			if diff := cmp.Diff(tt.want, st.RunFilter(New(), tt.pod, snap.List(), target)); diff != "" {
				t.Errorf("Filter (-want +got):\n%s", diff)
			}
		})
	}
}
