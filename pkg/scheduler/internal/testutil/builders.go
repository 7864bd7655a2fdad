// Package testutil has terse builders for the pods and nodes that scheduler
// tests and benchmarks need. Test-only by convention; it imports no testing
// package so benchmarks in other packages can share it.
package testutil

import (
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// NodeWrapper builds a *v1.Node.
type NodeWrapper struct{ n *v1.Node }

// MakeNode starts a Ready node with the given name and no capacity.
func MakeNode(name string) *NodeWrapper {
	return &NodeWrapper{n: &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v1.LabelHostname: name}},
		Status: v1.NodeStatus{
			Allocatable: v1.ResourceList{},
			Capacity:    v1.ResourceList{},
			Conditions:  []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue}},
		},
	}}
}

// Capacity sets allocatable (and capacity) cpu like "4", memory like "8Gi",
// and a max pod count; empty strings are left unset.
func (w *NodeWrapper) Capacity(cpu, mem string, pods int64) *NodeWrapper {
	set := func(name v1.ResourceName, q resource.Quantity) {
		w.n.Status.Allocatable[name] = q
		w.n.Status.Capacity[name] = q
	}
	if cpu != "" {
		set(v1.ResourceCPU, resource.MustParse(cpu))
	}
	if mem != "" {
		set(v1.ResourceMemory, resource.MustParse(mem))
	}
	set(v1.ResourcePods, *resource.NewQuantity(pods, resource.DecimalSI))
	return w
}

// Label sets a label.
func (w *NodeWrapper) Label(k, v string) *NodeWrapper { w.n.Labels[k] = v; return w }

// Taint adds a taint.
func (w *NodeWrapper) Taint(key, value string, effect v1.TaintEffect) *NodeWrapper {
	w.n.Spec.Taints = append(w.n.Spec.Taints, v1.Taint{Key: key, Value: value, Effect: effect})
	return w
}

// Unschedulable cordons the node.
func (w *NodeWrapper) Unschedulable() *NodeWrapper { w.n.Spec.Unschedulable = true; return w }

// Image adds an image with the given names and size.
func (w *NodeWrapper) Image(size int64, names ...string) *NodeWrapper {
	w.n.Status.Images = append(w.n.Status.Images, v1.ContainerImage{Names: names, SizeBytes: size})
	return w
}

// Obj returns the node.
func (w *NodeWrapper) Obj() *v1.Node { return w.n }

// PodWrapper builds a *v1.Pod.
type PodWrapper struct{ p *v1.Pod }

// MakePod starts a pod in namespace "default" with UID = name, scheduler
// "default-scheduler" and one container "c" with image "busybox".
func MakePod(name string) *PodWrapper {
	return &PodWrapper{p: &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name), Labels: map[string]string{}},
		Spec: v1.PodSpec{
			SchedulerName: "default-scheduler",
			Containers:    []v1.Container{{Name: "c", Image: "busybox"}},
		},
	}}
}

// Namespace sets the namespace.
func (w *PodWrapper) Namespace(ns string) *PodWrapper { w.p.Namespace = ns; return w }

// Req sets the first container's cpu and memory requests; "" leaves one unset.
func (w *PodWrapper) Req(cpu, mem string) *PodWrapper {
	c := &w.p.Spec.Containers[0]
	if c.Resources.Requests == nil {
		c.Resources.Requests = v1.ResourceList{}
	}
	if cpu != "" {
		c.Resources.Requests[v1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		c.Resources.Requests[v1.ResourceMemory] = resource.MustParse(mem)
	}
	return w
}

// Container appends a container with the given cpu/memory requests.
func (w *PodWrapper) Container(name, image, cpu, mem string) *PodWrapper {
	w.p.Spec.Containers = append(w.p.Spec.Containers, v1.Container{Name: name, Image: image, Resources: v1.ResourceRequirements{Requests: list(cpu, mem)}})
	return w
}

// InitContainer appends an init container; sidecar makes it restartable.
func (w *PodWrapper) InitContainer(name, cpu, mem string, sidecar bool) *PodWrapper {
	c := v1.Container{Name: name, Image: "busybox", Resources: v1.ResourceRequirements{Requests: list(cpu, mem)}}
	if sidecar {
		always := v1.ContainerRestartPolicyAlways
		c.RestartPolicy = &always
	}
	w.p.Spec.InitContainers = append(w.p.Spec.InitContainers, c)
	return w
}

// Overhead sets pod overhead.
func (w *PodWrapper) Overhead(cpu, mem string) *PodWrapper {
	w.p.Spec.Overhead = list(cpu, mem)
	return w
}

func list(cpu, mem string) v1.ResourceList {
	rl := v1.ResourceList{}
	if cpu != "" {
		rl[v1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		rl[v1.ResourceMemory] = resource.MustParse(mem)
	}
	return rl
}

// HostPort adds a host port on the first container.
func (w *PodWrapper) HostPort(port int32, proto v1.Protocol, ip string) *PodWrapper {
	c := &w.p.Spec.Containers[0]
	c.Ports = append(c.Ports, v1.ContainerPort{ContainerPort: port, HostPort: port, Protocol: proto, HostIP: ip})
	return w
}

// Node sets spec.nodeName.
func (w *PodWrapper) Node(n string) *PodWrapper { w.p.Spec.NodeName = n; return w }

// Label sets a label.
func (w *PodWrapper) Label(k, v string) *PodWrapper { w.p.Labels[k] = v; return w }

// Priority sets spec.priority.
func (w *PodWrapper) Priority(p int32) *PodWrapper { w.p.Spec.Priority = &p; return w }

// NodeSelector sets spec.nodeSelector.
func (w *PodWrapper) NodeSelector(m map[string]string) *PodWrapper {
	w.p.Spec.NodeSelector = m
	return w
}

// Toleration adds a toleration.
func (w *PodWrapper) Toleration(key, value string, op v1.TolerationOperator, effect v1.TaintEffect) *PodWrapper {
	w.p.Spec.Tolerations = append(w.p.Spec.Tolerations, v1.Toleration{Key: key, Value: value, Operator: op, Effect: effect})
	return w
}

// Affinity sets spec.affinity.
func (w *PodWrapper) Affinity(a *v1.Affinity) *PodWrapper { w.p.Spec.Affinity = a; return w }

// SpreadConstraint adds a topology spread constraint selecting pods with label k=v.
func (w *PodWrapper) SpreadConstraint(maxSkew int32, topologyKey string, when v1.UnsatisfiableConstraintAction, k, v string) *PodWrapper {
	w.p.Spec.TopologySpreadConstraints = append(w.p.Spec.TopologySpreadConstraints, v1.TopologySpreadConstraint{
		MaxSkew: maxSkew, TopologyKey: topologyKey, WhenUnsatisfiable: when,
		LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{k: v}},
	})
	return w
}

// SchedulerName sets spec.schedulerName.
func (w *PodWrapper) SchedulerName(n string) *PodWrapper { w.p.Spec.SchedulerName = n; return w }

// Obj returns the pod.
func (w *PodWrapper) Obj() *v1.Pod { return w.p }

// PodAffinityTerm returns a required term selecting pods with label k=v.
func PodAffinityTerm(topologyKey, k, v string) v1.PodAffinityTerm {
	return v1.PodAffinityTerm{TopologyKey: topologyKey, LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{k: v}}}
}
