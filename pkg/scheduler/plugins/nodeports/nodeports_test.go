package nodeports

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
	st "github.com/skiff-project/skiff/pkg/scheduler/internal/testutil"
)

func TestFilter(t *testing.T) {
	conflict := st.Result{Code: framework.Unschedulable, Reasons: []string{ErrReason}}
	existing := st.MakePod("old").Node("n").HostPort(8080, v1.ProtocolTCP, "").Obj()
	tests := []struct {
		name string
		pod  *v1.Pod
		want st.Result
	}{
		{"no host ports", st.MakePod("p").Obj(), st.Result{}},
		{"different port", st.MakePod("p").HostPort(8081, v1.ProtocolTCP, "").Obj(), st.Result{}},
		{"same port, other protocol", st.MakePod("p").HostPort(8080, v1.ProtocolUDP, "").Obj(), st.Result{}},
		{"same port on wildcard", st.MakePod("p").HostPort(8080, v1.ProtocolTCP, "").Obj(), conflict},
		{"specific IP clashes with wildcard", st.MakePod("p").HostPort(8080, v1.ProtocolTCP, "10.0.0.1").Obj(), conflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ni := framework.NewNodeInfo(existing)
			ni.SetNode(st.MakeNode("n").Obj())
			if diff := cmp.Diff(tt.want, st.RunFilter(New(), tt.pod, []*framework.NodeInfo{ni}, ni)); diff != "" {
				t.Errorf("Filter (-want +got):\n%s", diff)
			}
		})
	}
}
