package endpoints

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MaxEndpointsPerSlice is the most endpoints one EndpointSlice holds, as
// upstream's --max-endpoints-per-slice default.
const MaxEndpointsPerSlice = 100

// ManagedBy is the endpointslice.kubernetes.io/managed-by value of the
// slices this controller owns; slices with another value are left alone.
const ManagedBy = "endpointslice-controller.k8s.io"

// SlicePlan is the writes that bring one Service's EndpointSlices to the
// desired state. Create entries have GenerateName set and no Name; Update
// entries are modified deep copies of existing slices.
type SlicePlan struct {
	Create []*discoveryv1.EndpointSlice
	Update []*discoveryv1.EndpointSlice
	Delete []*discoveryv1.EndpointSlice
}

// Empty reports whether the plan has no writes.
func (p SlicePlan) Empty() bool { return len(p.Create)+len(p.Update)+len(p.Delete) == 0 }

// desiredGroup is the endpoints that share one port list.
type desiredGroup struct {
	ports     []discoveryv1.EndpointPort
	endpoints map[string]discoveryv1.Endpoint // by endpointKey
}

// PlanSlices computes the writes for svc's slices, given the pods its
// selector matches and the slices this controller already manages for it
// (existing must be owned by svc and carry ManagedBy). It keeps churn low,
// as upstream's reconciler does:
//   - an endpoint stays in the slice it is in; a slice is rewritten only if
//     one of its endpoints changed or went away, or its labels are stale;
//   - new endpoints fill slices that are rewritten anyway, then the fullest
//     existing slice that can take all of them, and only then new slices of
//     at most maxPerSlice endpoints;
//   - slices left empty are deleted, except that a Service without any
//     endpoint keeps exactly one empty "placeholder" slice.
//
// Endpoints are grouped by their resolved port list (pods may resolve a
// named targetPort to different numbers); each group has its own slices.
func PlanSlices(svc *corev1.Service, pods []*corev1.Pod, existing []*discoveryv1.EndpointSlice, maxPerSlice int) SlicePlan {
	if maxPerSlice < 1 {
		maxPerSlice = MaxEndpointsPerSlice
	}
	desired := map[string]*desiredGroup{} // by portsKey
	total := 0
	for _, pod := range pods {
		// Terminating pods stay in slices (with terminating=true) so that
		// proxies can drain them; only terminal or IP-less pods are left out.
		if !shouldPodBeInEndpoints(pod, true) {
			continue
		}
		ports := slicePorts(svc, pod)
		pk := portsKey(ports)
		g := desired[pk]
		if g == nil {
			g = &desiredGroup{ports: ports, endpoints: map[string]discoveryv1.Endpoint{}}
			desired[pk] = g
		}
		ep := sliceEndpoint(svc, pod)
		g.endpoints[endpointKey(ep)] = ep
		total++
	}
	labels := sliceLabels(svc)

	var plan SlicePlan
	sorted := append([]*discoveryv1.EndpointSlice(nil), existing...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })

	if total == 0 {
		return planPlaceholder(svc, sorted, labels)
	}

	byPorts := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range sorted {
		pk := portsKey(s.Ports)
		if s.AddressType != discoveryv1.AddressTypeIPv4 || desired[pk] == nil {
			plan.Delete = append(plan.Delete, s)
			continue
		}
		byPorts[pk] = append(byPorts[pk], s)
	}
	pks := make([]string, 0, len(desired))
	for pk := range desired {
		pks = append(pks, pk)
	}
	sort.Strings(pks)
	for _, pk := range pks {
		planGroup(&plan, svc, desired[pk], byPorts[pk], labels, maxPerSlice)
	}
	return plan
}

// sliceState is an existing slice while its group is planned.
type sliceState struct {
	orig      *discoveryv1.EndpointSlice
	endpoints []discoveryv1.Endpoint
	changed   bool
}

func planGroup(plan *SlicePlan, svc *corev1.Service, g *desiredGroup, existing []*discoveryv1.EndpointSlice, labels map[string]string, maxPerSlice int) {
	remaining := g.endpoints
	states := make([]*sliceState, 0, len(existing))
	for _, s := range existing {
		st := &sliceState{orig: s, changed: !metaCurrent(s, svc, labels)}
		for _, ep := range s.Endpoints {
			k := endpointKey(ep)
			want, ok := remaining[k]
			if !ok {
				// Gone, or a duplicate of an endpoint kept elsewhere.
				st.changed = true
				continue
			}
			if !equality.Semantic.DeepEqual(want, ep) {
				st.changed = true
			}
			st.endpoints = append(st.endpoints, want)
			delete(remaining, k)
		}
		if len(st.endpoints) > maxPerSlice {
			// Written by a controller with a larger limit: spill the excess
			// back into the pool of endpoints to place.
			for _, ep := range st.endpoints[maxPerSlice:] {
				remaining[endpointKey(ep)] = ep
			}
			st.endpoints = st.endpoints[:maxPerSlice]
			st.changed = true
		}
		states = append(states, st)
	}

	keys := make([]string, 0, len(remaining))
	for k := range remaining {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	take := func(n int) []discoveryv1.Endpoint {
		n = min(n, len(keys))
		out := make([]discoveryv1.Endpoint, 0, n)
		for _, k := range keys[:n] {
			out = append(out, remaining[k])
		}
		keys = keys[n:]
		return out
	}

	// 1. Slices rewritten anyway absorb new endpoints for free.
	for _, st := range states {
		if st.changed && len(keys) > 0 && len(st.endpoints) < maxPerSlice {
			st.endpoints = append(st.endpoints, take(maxPerSlice-len(st.endpoints))...)
		}
	}
	// 2. Then one unchanged slice, the fullest that takes all the rest, so
	//    one update replaces a create.
	if len(keys) > 0 {
		var best *sliceState
		for _, st := range states {
			if !st.changed && maxPerSlice-len(st.endpoints) >= len(keys) && (best == nil || len(st.endpoints) > len(best.endpoints)) {
				best = st
			}
		}
		if best != nil {
			best.endpoints = append(best.endpoints, take(len(keys))...)
			best.changed = true
		}
	}
	// 3. New slices for whatever is left.
	for len(keys) > 0 {
		plan.Create = append(plan.Create, newSlice(svc, labels, g.ports, take(maxPerSlice)))
	}

	for _, st := range states {
		switch {
		case len(st.endpoints) == 0:
			plan.Delete = append(plan.Delete, st.orig)
		case st.changed:
			s := st.orig.DeepCopy()
			s.Labels = labels
			s.OwnerReferences = []metav1.OwnerReference{serviceRef(svc)}
			s.Endpoints = st.endpoints
			plan.Update = append(plan.Update, s)
		}
	}
}

// planPlaceholder keeps one empty slice for a Service without endpoints, so
// that consumers can tell "no endpoints" from "not yet processed".
func planPlaceholder(svc *corev1.Service, existing []*discoveryv1.EndpointSlice, labels map[string]string) SlicePlan {
	var plan SlicePlan
	kept := false
	for _, s := range existing {
		if !kept && len(s.Endpoints) == 0 && len(s.Ports) == 0 && s.AddressType == discoveryv1.AddressTypeIPv4 {
			kept = true
			if !metaCurrent(s, svc, labels) {
				u := s.DeepCopy()
				u.Labels = labels
				u.OwnerReferences = []metav1.OwnerReference{serviceRef(svc)}
				plan.Update = append(plan.Update, u)
			}
			continue
		}
		plan.Delete = append(plan.Delete, s)
	}
	if !kept {
		plan.Create = append(plan.Create, newSlice(svc, labels, nil, nil))
	}
	return plan
}

func newSlice(svc *corev1.Service, labels map[string]string, ports []discoveryv1.EndpointPort, eps []discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    svc.Name + "-",
			Namespace:       svc.Namespace,
			Labels:          labels,
			OwnerReferences: []metav1.OwnerReference{serviceRef(svc)},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   eps,
		Ports:       ports,
	}
}

// metaCurrent reports whether s already has the labels and owner the
// controller would give it.
func metaCurrent(s *discoveryv1.EndpointSlice, svc *corev1.Service, labels map[string]string) bool {
	if !equality.Semantic.DeepEqual(s.Labels, labels) {
		return false
	}
	ref := metav1.GetControllerOf(s)
	return ref != nil && ref.UID == svc.UID
}

func serviceRef(svc *corev1.Service) metav1.OwnerReference {
	return *metav1.NewControllerRef(svc, corev1.SchemeGroupVersion.WithKind("Service"))
}

// sliceLabels are svc's labels plus the slice bookkeeping labels (which
// win over service labels of the same name).
func sliceLabels(svc *corev1.Service) map[string]string {
	l := make(map[string]string, len(svc.Labels)+3)
	for k, v := range svc.Labels {
		l[k] = v
	}
	delete(l, corev1.IsHeadlessService)
	if isHeadless(svc) {
		l[corev1.IsHeadlessService] = ""
	}
	l[discoveryv1.LabelServiceName] = svc.Name
	l[discoveryv1.LabelManagedBy] = ManagedBy
	return l
}

// slicePorts resolves svc's ports on pod; ports the pod cannot resolve are
// left out, as upstream.
func slicePorts(svc *corev1.Service, pod *corev1.Pod) []discoveryv1.EndpointPort {
	var out []discoveryv1.EndpointPort
	for i := range svc.Spec.Ports {
		sp := &svc.Spec.Ports[i]
		num, err := findPort(pod, sp)
		if err != nil {
			continue
		}
		proto := sp.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		out = append(out, discoveryv1.EndpointPort{Name: ptrTo(sp.Name), Port: ptrTo(num), Protocol: ptrTo(proto), AppProtocol: sp.AppProtocol})
	}
	return out
}

func portsKey(ports []discoveryv1.EndpointPort) string {
	parts := make([]string, 0, len(ports))
	for _, p := range ports {
		var name, proto, app string
		var num int32
		if p.Name != nil {
			name = *p.Name
		}
		if p.Protocol != nil {
			proto = string(*p.Protocol)
		}
		if p.AppProtocol != nil {
			app = *p.AppProtocol
		}
		if p.Port != nil {
			num = *p.Port
		}
		parts = append(parts, fmt.Sprintf("%s/%d/%s/%s", name, num, proto, app))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// sliceEndpoint is pod's endpoint for svc, with upstream's conditions:
// serving = pod Ready; terminating = being deleted; ready = serving and not
// terminating, or always when the service publishes not-ready addresses.
func sliceEndpoint(svc *corev1.Service, pod *corev1.Pod) discoveryv1.Endpoint {
	serving := isPodReady(pod)
	terminating := pod.DeletionTimestamp != nil
	ready := svc.Spec.PublishNotReadyAddresses || (serving && !terminating)
	ep := discoveryv1.Endpoint{
		Addresses:  []string{podIPv4(pod)},
		Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &terminating},
		TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
	}
	if pod.Spec.NodeName != "" {
		ep.NodeName = ptrTo(pod.Spec.NodeName)
	}
	if shouldSetHostname(pod, svc) {
		ep.Hostname = ptrTo(pod.Spec.Hostname)
	}
	return ep
}

// endpointKey identifies an endpoint across syncs: its pod, so a pod whose
// IP or readiness changes is updated in place rather than moved.
func endpointKey(ep discoveryv1.Endpoint) string {
	if ep.TargetRef != nil {
		return ep.TargetRef.Namespace + "/" + ep.TargetRef.Name
	}
	return strings.Join(ep.Addresses, ",")
}
