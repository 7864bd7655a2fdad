package framework

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	resourcehelper "k8s.io/component-helpers/resource"
)

// Default requests assumed for containers that declare none. They are used
// only for spreading scores (NonZeroRequested), never for fit, exactly like
// upstream, so that best-effort pods do not all pile onto one node.
const (
	DefaultMilliCPURequest int64 = 100               // 0.1 core
	DefaultMemoryRequest   int64 = 200 * 1024 * 1024 // 200 MiB
)

// Resource is a compact, integer form of a v1.ResourceList: CPU in
// millicores, memory and ephemeral storage in bytes, extended resources in
// their own units.
type Resource struct {
	MilliCPU         int64
	Memory           int64
	EphemeralStorage int64
	// AllowedPodNumber is only meaningful for node allocatable.
	AllowedPodNumber int
	// ScalarResources holds extended and hugepage resources; nil when none.
	ScalarResources map[v1.ResourceName]int64
}

// NewResource converts a ResourceList. It never returns nil.
func NewResource(rl v1.ResourceList) *Resource {
	r := &Resource{}
	r.Add(rl)
	return r
}

// Add adds every quantity of rl to r.
func (r *Resource) Add(rl v1.ResourceList) {
	for name, q := range rl {
		switch name {
		case v1.ResourceCPU:
			r.MilliCPU += q.MilliValue()
		case v1.ResourceMemory:
			r.Memory += q.Value()
		case v1.ResourceEphemeralStorage:
			r.EphemeralStorage += q.Value()
		case v1.ResourcePods:
			r.AllowedPodNumber += int(q.Value())
		default:
			if isScalarResourceName(name) {
				r.SetScalar(name, r.ScalarResources[name]+q.Value())
			}
		}
	}
}

// AddResource adds o to r.
func (r *Resource) AddResource(o *Resource) {
	r.MilliCPU += o.MilliCPU
	r.Memory += o.Memory
	r.EphemeralStorage += o.EphemeralStorage
	r.AllowedPodNumber += o.AllowedPodNumber
	for name, v := range o.ScalarResources {
		r.SetScalar(name, r.ScalarResources[name]+v)
	}
}

// SubResource subtracts o from r.
func (r *Resource) SubResource(o *Resource) {
	r.MilliCPU -= o.MilliCPU
	r.Memory -= o.Memory
	r.EphemeralStorage -= o.EphemeralStorage
	r.AllowedPodNumber -= o.AllowedPodNumber
	for name, v := range o.ScalarResources {
		r.SetScalar(name, r.ScalarResources[name]-v)
	}
}

// SetScalar sets one extended resource, allocating the map on first use.
func (r *Resource) SetScalar(name v1.ResourceName, v int64) {
	if r.ScalarResources == nil {
		r.ScalarResources = map[v1.ResourceName]int64{}
	}
	r.ScalarResources[name] = v
}

// Clone returns a deep copy.
func (r *Resource) Clone() *Resource {
	c := *r
	if r.ScalarResources != nil {
		c.ScalarResources = make(map[v1.ResourceName]int64, len(r.ScalarResources))
		for k, v := range r.ScalarResources {
			c.ScalarResources[k] = v
		}
	}
	return &c
}

// isScalarResourceName reports whether name is an extended, hugepages or
// attachable-volume resource: anything namespaced with a "/" or hugepages-*.
func isScalarResourceName(name v1.ResourceName) bool {
	s := string(name)
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return true
		}
	}
	return len(s) > len(v1.ResourceHugePagesPrefix) && s[:len(v1.ResourceHugePagesPrefix)] == v1.ResourceHugePagesPrefix
}

// AffinityTerm is a pod (anti-)affinity term with its selector parsed once,
// so that matching it against thousands of pods costs no allocation.
type AffinityTerm struct {
	// Namespaces the term applies to; AllNamespaces overrides it.
	Namespaces    sets.Set[string]
	AllNamespaces bool
	Selector      labels.Selector
	TopologyKey   string
	// Weight is set for preferred terms only.
	Weight int32
}

// Matches reports whether pod is selected by the term.
func (t *AffinityTerm) Matches(pod *v1.Pod) bool {
	if !t.AllNamespaces && !t.Namespaces.Has(pod.Namespace) {
		return false
	}
	return t.Selector.Matches(labels.Set(pod.Labels))
}

// PodInfo is a pod plus everything the plugins derive from its spec, computed
// once when the pod enters the scheduler rather than once per node.
// Immutable after construction; shared between snapshots.
type PodInfo struct {
	Pod *v1.Pod
	// Requests is what NodeResourcesFit checks: containers (max of each init
	// container against the running set, restartable sidecars counted) plus
	// pod overhead, via the upstream component-helpers computation.
	Requests Resource
	// NonZeroRequests is Requests with DefaultMilliCPURequest and
	// DefaultMemoryRequest substituted for missing container requests; used for scoring.
	NonZeroRequests Resource

	RequiredAffinityTerms      []AffinityTerm
	RequiredAntiAffinityTerms  []AffinityTerm
	PreferredAffinityTerms     []AffinityTerm
	PreferredAntiAffinityTerms []AffinityTerm
	// ParseError records a malformed label selector; plugins report it as Error.
	ParseError error
}

var nonZeroDefaults = v1.ResourceList{
	v1.ResourceCPU:    *resource.NewMilliQuantity(DefaultMilliCPURequest, resource.DecimalSI),
	v1.ResourceMemory: *resource.NewQuantity(DefaultMemoryRequest, resource.BinarySI),
}

// NewPodInfo derives a PodInfo from pod. pod must not be modified afterwards.
func NewPodInfo(pod *v1.Pod) *PodInfo {
	pi := &PodInfo{Pod: pod}
	pi.Requests.Add(resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{}))
	pi.NonZeroRequests.Add(resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{
		// The map is only read by PodRequests, so sharing it is safe.
		NonMissingContainerRequests: nonZeroDefaults,
	}))
	if a := pod.Spec.Affinity; a != nil {
		if pa := a.PodAffinity; pa != nil {
			pi.RequiredAffinityTerms = pi.parseTerms(pod, pa.RequiredDuringSchedulingIgnoredDuringExecution, 0)
			pi.PreferredAffinityTerms = pi.parseWeighted(pod, pa.PreferredDuringSchedulingIgnoredDuringExecution)
		}
		if pa := a.PodAntiAffinity; pa != nil {
			pi.RequiredAntiAffinityTerms = pi.parseTerms(pod, pa.RequiredDuringSchedulingIgnoredDuringExecution, 0)
			pi.PreferredAntiAffinityTerms = pi.parseWeighted(pod, pa.PreferredDuringSchedulingIgnoredDuringExecution)
		}
	}
	return pi
}

func (pi *PodInfo) parseWeighted(pod *v1.Pod, terms []v1.WeightedPodAffinityTerm) []AffinityTerm {
	out := make([]AffinityTerm, 0, len(terms))
	for _, wt := range terms {
		out = append(out, pi.parseTerms(pod, []v1.PodAffinityTerm{wt.PodAffinityTerm}, wt.Weight)...)
	}
	return out
}

func (pi *PodInfo) parseTerms(pod *v1.Pod, terms []v1.PodAffinityTerm, weight int32) []AffinityTerm {
	out := make([]AffinityTerm, 0, len(terms))
	for _, t := range terms {
		sel, err := metav1.LabelSelectorAsSelector(t.LabelSelector)
		if err != nil {
			pi.ParseError = fmt.Errorf("parsing affinity term selector of pod %s/%s: %w", pod.Namespace, pod.Name, err)
			continue
		}
		at := AffinityTerm{Selector: sel, TopologyKey: t.TopologyKey, Weight: weight, Namespaces: sets.New(t.Namespaces...)}
		switch {
		case t.NamespaceSelector != nil && len(t.NamespaceSelector.MatchLabels) == 0 && len(t.NamespaceSelector.MatchExpressions) == 0:
			// An empty namespaceSelector selects every namespace.
			at.AllNamespaces = true
		case len(t.Namespaces) == 0 && t.NamespaceSelector == nil:
			// Neither set: the term applies to the pod's own namespace.
			at.Namespaces.Insert(pod.Namespace)
		}
		out = append(out, at)
	}
	return out
}

// ProtocolPort is one (protocol, port) pair a pod binds on the host.
type ProtocolPort struct {
	Protocol string
	Port     int32
}

// HostPortInfo maps host IP → set of used (protocol, port). "0.0.0.0" is the
// wildcard and conflicts with every IP.
type HostPortInfo map[string]map[ProtocolPort]struct{}

// Add records a host port; empty ip/protocol are defaulted like the kubelet does.
func (h HostPortInfo) Add(ip, protocol string, port int32) {
	ip, protocol = sanitize(ip, protocol)
	m := h[ip]
	if m == nil {
		m = map[ProtocolPort]struct{}{}
		h[ip] = m
	}
	m[ProtocolPort{Protocol: protocol, Port: port}] = struct{}{}
}

// Remove deletes a host port recorded by Add.
func (h HostPortInfo) Remove(ip, protocol string, port int32) {
	ip, protocol = sanitize(ip, protocol)
	if m := h[ip]; m != nil {
		delete(m, ProtocolPort{Protocol: protocol, Port: port})
		if len(m) == 0 {
			delete(h, ip)
		}
	}
}

// CheckConflict reports whether (ip, protocol, port) clashes with a used port.
func (h HostPortInfo) CheckConflict(ip, protocol string, port int32) bool {
	if port <= 0 {
		return false
	}
	ip, protocol = sanitize(ip, protocol)
	pp := ProtocolPort{Protocol: protocol, Port: port}
	if ip == "0.0.0.0" {
		for _, m := range h {
			if _, ok := m[pp]; ok {
				return true
			}
		}
		return false
	}
	for _, key := range [2]string{ip, "0.0.0.0"} {
		if _, ok := h[key][pp]; ok {
			return true
		}
	}
	return false
}

func sanitize(ip, protocol string) (string, string) {
	if ip == "" {
		ip = "0.0.0.0"
	}
	if protocol == "" {
		protocol = string(v1.ProtocolTCP)
	}
	return ip, protocol
}

// ImageStateSummary is what ImageLocality needs about one image on one node.
type ImageStateSummary struct {
	// Size in bytes.
	Size int64
	// NumNodes is how many nodes in the cluster have the image.
	NumNodes int
}

// NodeInfo is the scheduler's aggregated view of one node: the node object,
// the pods on it (bound or assumed) and their summed requests and ports.
//
// A NodeInfo inside a Snapshot is read-only for plugins; code that wants to
// simulate changes (preemption, nominated pods) must Clone it first.
type NodeInfo struct {
	node *v1.Node

	Pods                         []*PodInfo
	PodsWithAffinity             []*PodInfo
	PodsWithRequiredAntiAffinity []*PodInfo
	UsedPorts                    HostPortInfo
	// Requested is the sum of pod Requests; NonZeroRequested the sum of
	// NonZeroRequests; Allocatable comes from node.status.allocatable.
	Requested        Resource
	NonZeroRequested Resource
	Allocatable      Resource
	// ImageStates is keyed by every name (tag or digest) of each image on the node.
	ImageStates map[string]*ImageStateSummary
	// Generation increases on every change; the cache uses it to copy only
	// changed NodeInfos into the next snapshot.
	Generation int64
}

// NewNodeInfo returns a NodeInfo holding pods and no node.
func NewNodeInfo(pods ...*v1.Pod) *NodeInfo {
	ni := &NodeInfo{UsedPorts: HostPortInfo{}, ImageStates: map[string]*ImageStateSummary{}}
	for _, p := range pods {
		ni.AddPodInfo(NewPodInfo(p))
	}
	return ni
}

// Node returns the node; nil while only pods are known (a pod's informer
// event may arrive before its node's).
func (n *NodeInfo) Node() *v1.Node {
	if n == nil {
		return nil
	}
	return n.node
}

// SetNode sets the node object and recomputes Allocatable.
func (n *NodeInfo) SetNode(node *v1.Node) {
	n.node = node
	n.Allocatable = *NewResource(node.Status.Allocatable)
}

// RemoveNode forgets the node object but keeps the pods, as upstream does
// while pods on a deleted node are still being deleted.
func (n *NodeInfo) RemoveNode() { n.node = nil }

// AddPodInfo accounts for pi on this node.
func (n *NodeInfo) AddPodInfo(pi *PodInfo) {
	n.Pods = append(n.Pods, pi)
	if len(pi.RequiredAffinityTerms)+len(pi.RequiredAntiAffinityTerms)+len(pi.PreferredAffinityTerms)+len(pi.PreferredAntiAffinityTerms) > 0 {
		n.PodsWithAffinity = append(n.PodsWithAffinity, pi)
	}
	if len(pi.RequiredAntiAffinityTerms) > 0 {
		n.PodsWithRequiredAntiAffinity = append(n.PodsWithRequiredAntiAffinity, pi)
	}
	n.update(pi, 1)
}

// RemovePod removes the pod with pod's UID. It returns an error if the pod
// is not on this node, which for the cache means its state is inconsistent.
func (n *NodeInfo) RemovePod(pod *v1.Pod) error {
	n.PodsWithAffinity = removeFrom(n.PodsWithAffinity, pod.UID)
	n.PodsWithRequiredAntiAffinity = removeFrom(n.PodsWithRequiredAntiAffinity, pod.UID)
	for i, pi := range n.Pods {
		if pi.Pod.UID == pod.UID {
			last := len(n.Pods) - 1
			n.Pods[i] = n.Pods[last]
			n.Pods[last] = nil
			n.Pods = n.Pods[:last]
			n.update(pi, -1)
			return nil
		}
	}
	return fmt.Errorf("pod %s/%s (uid %s) not found on node %q", pod.Namespace, pod.Name, pod.UID, n.nodeName())
}

func removeFrom(list []*PodInfo, uid types.UID) []*PodInfo {
	for i, pi := range list {
		if pi.Pod.UID == uid {
			last := len(list) - 1
			list[i] = list[last]
			list[last] = nil
			return list[:last]
		}
	}
	return list
}

func (n *NodeInfo) nodeName() string {
	if n.node == nil {
		return "<unknown>"
	}
	return n.node.Name
}

// update adds (sign=1) or subtracts (sign=-1) the pod's footprint.
func (n *NodeInfo) update(pi *PodInfo, sign int64) {
	if sign > 0 {
		n.Requested.AddResource(&pi.Requests)
		n.NonZeroRequested.AddResource(&pi.NonZeroRequests)
	} else {
		n.Requested.SubResource(&pi.Requests)
		n.NonZeroRequested.SubResource(&pi.NonZeroRequests)
	}
	for _, c := range pi.Pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort <= 0 {
				continue
			}
			if sign > 0 {
				n.UsedPorts.Add(p.HostIP, string(p.Protocol), p.HostPort)
			} else {
				n.UsedPorts.Remove(p.HostIP, string(p.Protocol), p.HostPort)
			}
		}
	}
}

// Clone returns a copy that can be modified without affecting n. PodInfos
// themselves are immutable and shared.
func (n *NodeInfo) Clone() *NodeInfo {
	c := &NodeInfo{
		node:                         n.node,
		Pods:                         append([]*PodInfo(nil), n.Pods...),
		PodsWithAffinity:             append([]*PodInfo(nil), n.PodsWithAffinity...),
		PodsWithRequiredAntiAffinity: append([]*PodInfo(nil), n.PodsWithRequiredAntiAffinity...),
		UsedPorts:                    make(HostPortInfo, len(n.UsedPorts)),
		Requested:                    *n.Requested.Clone(),
		NonZeroRequested:             *n.NonZeroRequested.Clone(),
		Allocatable:                  *n.Allocatable.Clone(),
		ImageStates:                  n.ImageStates, // replaced wholesale, never mutated
		Generation:                   n.Generation,
	}
	for ip, m := range n.UsedPorts {
		cm := make(map[ProtocolPort]struct{}, len(m))
		for k := range m {
			cm[k] = struct{}{}
		}
		c.UsedPorts[ip] = cm
	}
	return c
}
