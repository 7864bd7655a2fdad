package scheduler

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
	"github.com/skiff-project/skiff/pkg/scheduler/internal/cache"
	st "github.com/skiff-project/skiff/pkg/scheduler/internal/testutil"
)

func TestNumFeasibleNodesToFind(t *testing.T) {
	got := map[int]int{}
	for _, n := range []int{10, 99, 100, 1000, 5000, 10000} {
		got[n] = numFeasibleNodesToFind(n)
	}
	want := map[int]int{10: 10, 99: 99, 100: 100, 1000: 420, 5000: 500, 10000: 500}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestNodeOrderIsAPermutation(t *testing.T) {
	for _, n := range []int{1, 2, 7, 100, 1000} {
		o := newNodeOrder("some-uid", n)
		seen := map[int]bool{}
		for i := 0; i < n; i++ {
			seen[o.at(i)] = true
		}
		if len(seen) != n {
			t.Errorf("n=%d: visited %d distinct nodes", n, len(seen))
		}
	}
}

func TestSchedulePodDecisions(t *testing.T) {
	nodes := []*v1.Node{
		st.MakeNode("node-1").Capacity("1", "4Gi", 110).Obj(),
		st.MakeNode("node-2").Capacity("1", "4Gi", 110).Taint(v1.TaintNodeUnreachable, "", v1.TaintEffectNoExecute).Obj(),
		st.MakeNode("node-3").Capacity("8", "4Gi", 110).Label("disk", "ssd").Obj(),
	}
	tests := []struct {
		name    string
		pod     *v1.Pod
		want    string
		wantErr string
	}{
		{"only the big node fits", st.MakePod("a").Req("2", "").Obj(), "node-3", ""},
		{"selector", st.MakePod("b").NodeSelector(map[string]string{"disk": "ssd"}).Obj(), "node-3", ""},
		{"no fit: every node named with its reason", st.MakePod("c").Req("16", "").Obj(), "",
			"0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, 2 Insufficient cpu."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newDefaultFramework(nil, nil, 2)
			snap := cache.NewSnapshot(nil, nodes)
			res, err := f.schedulePod(context.Background(), framework.NewCycleState(), framework.NewPodInfo(tt.pod), snap.List())
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if diff := cmp.Diff([2]string{tt.want, tt.wantErr}, [2]string{res.SuggestedHost, gotErr}); diff != "" {
				t.Errorf("[host, error] (-want +got):\n%s", diff)
			}
		})
	}
}

// BenchmarkSchedule measures the pure decision core: one pod (cpu+memory
// requests) against a snapshot of N nodes each carrying 10 pods, default
// plugins, parallelism 2. Reported ns/op is per scheduled pod.
func BenchmarkSchedule(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			var nodes []*v1.Node
			var pods []*v1.Pod
			for i := range n {
				name := fmt.Sprintf("node-%d", i)
				nodes = append(nodes, st.MakeNode(name).Capacity("32", "128Gi", 110).Label("zone", fmt.Sprintf("z%d", i%3)).Obj())
				for j := range 10 {
					pods = append(pods, st.MakePod(fmt.Sprintf("%s-p%d", name, j)).Req("100m", "256Mi").Node(name).Obj())
				}
			}
			snap := cache.NewSnapshot(pods, nodes)
			f := newDefaultFramework(nil, nil, 2)
			ctx := context.Background()
			pis := make([]*framework.PodInfo, 1024)
			for i := range pis {
				pis[i] = framework.NewPodInfo(st.MakePod(fmt.Sprintf("bench-%d", i)).Req("500m", "1Gi").Obj())
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := f.schedulePod(ctx, framework.NewCycleState(), pis[i%len(pis)], snap.List()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
