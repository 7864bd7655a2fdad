package framework

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestFitErrorMessage(t *testing.T) {
	cpu := NewStatus(Unschedulable, "Insufficient cpu")
	tests := []struct {
		name string
		fe   FitError
		want string
	}{
		{
			name: "the seed's message: every node short of cpu",
			fe:   FitError{NumAllNodes: 3, Diagnosis: Diagnosis{NodeToStatus: NodeToStatus{"a": cpu, "b": cpu, "c": cpu}}},
			want: "0/3 nodes are available: 3 Insufficient cpu.",
		},
		{
			name: "reasons counted per node and sorted as strings",
			fe: FitError{NumAllNodes: 3, Diagnosis: Diagnosis{NodeToStatus: NodeToStatus{
				"a": NewStatus(Unschedulable, "Insufficient cpu", "Insufficient memory"),
				"b": NewStatus(UnschedulableAndUnresolvable, "node(s) had untolerated taint {node.kubernetes.io/unreachable: }"),
				"c": cpu,
			}}},
			want: "0/3 nodes are available: 1 Insufficient memory, 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, 2 Insufficient cpu.",
		},
		{
			name: "preemption clause appended",
			fe: FitError{NumAllNodes: 3, Diagnosis: Diagnosis{
				NodeToStatus:  NodeToStatus{"a": cpu, "b": cpu, "c": cpu},
				PostFilterMsg: "preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.",
			}},
			want: "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod..",
		},
		{
			name: "prefilter message replaces node statuses",
			fe: FitError{NumAllNodes: 2, Diagnosis: Diagnosis{
				NodeToStatus: NodeToStatus{"a": cpu, "b": cpu},
				PreFilterMsg: "node(s) didn't match pod affinity rules",
			}},
			want: "0/2 nodes are available: node(s) didn't match pod affinity rules.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.fe.Error()); diff != "" {
				t.Errorf("Error() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPodInfoRequests(t *testing.T) {
	q := resource.MustParse
	always := v1.ContainerRestartPolicyAlways
	c := func(cpu string, sidecar bool) v1.Container {
		ct := v1.Container{Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: q(cpu)}}}
		if sidecar {
			ct.RestartPolicy = &always
		}
		return ct
	}
	tests := []struct {
		name string
		spec v1.PodSpec
		want int64 // millicpu
	}{
		{"sum of regular containers", v1.PodSpec{Containers: []v1.Container{c("100m", false), c("200m", false)}}, 300},
		{"big init container dominates", v1.PodSpec{InitContainers: []v1.Container{c("1", false)}, Containers: []v1.Container{c("300m", false)}}, 1000},
		{"sidecar counted with regular containers", v1.PodSpec{InitContainers: []v1.Container{c("200m", true)}, Containers: []v1.Container{c("300m", false)}}, 500},
		{"overhead added", v1.PodSpec{Containers: []v1.Container{c("100m", false)}, Overhead: v1.ResourceList{v1.ResourceCPU: q("50m")}}, 150},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NewPodInfo(&v1.Pod{Spec: tt.spec}).Requests.MilliCPU
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("MilliCPU (-want +got):\n%s", diff)
			}
		})
	}
}
