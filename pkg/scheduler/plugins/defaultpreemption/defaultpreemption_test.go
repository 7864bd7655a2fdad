package defaultpreemption

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
	st "github.com/skiff-project/skiff/pkg/scheduler/internal/testutil"
)

func TestPickOne(t *testing.T) {
	v := func(name string, prio int32) *framework.PodInfo {
		return framework.NewPodInfo(st.MakePod(name).Priority(prio).Obj())
	}
	tests := []struct {
		name  string
		cands []Candidate
		want  string
	}{
		{"lowest highest-priority victim wins", []Candidate{
			{Node: "a", Victims: []*framework.PodInfo{v("a1", 50)}},
			{Node: "b", Victims: []*framework.PodInfo{v("b1", 10), v("b2", 10)}},
		}, "b"},
		{"then lowest priority sum", []Candidate{
			{Node: "a", Victims: []*framework.PodInfo{v("a1", 10), v("a2", 10)}},
			{Node: "b", Victims: []*framework.PodInfo{v("b1", 10), v("b2", 1)}},
		}, "b"},
		{"then fewest victims", []Candidate{
			{Node: "a", Victims: []*framework.PodInfo{v("a1", 0), v("a2", 0)}},
			{Node: "b", Victims: []*framework.PodInfo{v("b1", 0)}},
		}, "b"},
		{"then first in order", []Candidate{
			{Node: "a", Victims: []*framework.PodInfo{v("a1", 5)}},
			{Node: "b", Victims: []*framework.PodInfo{v("b1", 5)}},
		}, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, PickOne(tt.cands).Node); diff != "" {
				t.Errorf("PickOne (-want +got):\n%s", diff)
			}
		})
	}
}
