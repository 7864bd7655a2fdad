package resourcequota

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	resourcehelper "k8s.io/component-helpers/resource"
)

// Objects is the state of one namespace that quota usage is computed from.
// Counts maps a counted resource ("configmaps", "deployments.apps", ...) to
// its number of objects; it is consulted for "<resource>" and
// "count/<resource>" quota names.
type Objects struct {
	Pods     []*corev1.Pod
	Services []*corev1.Service
	PVCs     []*corev1.PersistentVolumeClaim
	Counts   map[string]int64
}

// podRequestNames maps quota names summing pod requests to the resource
// summed; a bare name ("cpu") means requests, as upstream.
var podRequestNames = map[corev1.ResourceName]corev1.ResourceName{
	corev1.ResourceCPU:                      corev1.ResourceCPU,
	corev1.ResourceMemory:                   corev1.ResourceMemory,
	corev1.ResourceEphemeralStorage:         corev1.ResourceEphemeralStorage,
	corev1.ResourceRequestsCPU:              corev1.ResourceCPU,
	corev1.ResourceRequestsMemory:           corev1.ResourceMemory,
	corev1.ResourceRequestsEphemeralStorage: corev1.ResourceEphemeralStorage,
}

// podLimitNames maps quota names summing pod limits to the resource summed.
var podLimitNames = map[corev1.ResourceName]corev1.ResourceName{
	corev1.ResourceLimitsCPU:              corev1.ResourceCPU,
	corev1.ResourceLimitsMemory:           corev1.ResourceMemory,
	corev1.ResourceLimitsEphemeralStorage: corev1.ResourceEphemeralStorage,
}

// Usage computes status.used for quota from objs: one entry per name in
// spec.hard, zero when nothing counts. Names it does not know are reported
// as zero too, so status.used always lists what status.hard lists. Pod
// resources count only pods that are not terminal and match the quota's
// scopes.
func Usage(quota *corev1.ResourceQuota, objs Objects) (corev1.ResourceList, error) {
	var pods []*corev1.Pod
	for _, p := range objs.Pods {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		ok, err := podMatchesScopes(quota, p)
		if err != nil {
			return nil, err
		}
		if ok {
			pods = append(pods, p)
		}
	}
	used := corev1.ResourceList{}
	for name := range quota.Spec.Hard {
		q := *resource.NewQuantity(0, resource.DecimalSI)
		switch {
		case name == corev1.ResourcePods || name == "count/pods":
			q.Set(int64(len(pods)))
		case podRequestNames[name] != "":
			for _, p := range pods {
				if v, ok := resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{})[podRequestNames[name]]; ok {
					q.Add(v)
				}
			}
		case podLimitNames[name] != "":
			for _, p := range pods {
				if v, ok := resourcehelper.PodLimits(p, resourcehelper.PodResourcesOptions{})[podLimitNames[name]]; ok {
					q.Add(v)
				}
			}
		case name == corev1.ResourceServicesNodePorts:
			var n int64
			for _, s := range objs.Services {
				n += nodePorts(s)
			}
			q.Set(n)
		case name == corev1.ResourceServicesLoadBalancers:
			var n int64
			for _, s := range objs.Services {
				if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
					n++
				}
			}
			q.Set(n)
		case name == corev1.ResourceRequestsStorage:
			for _, c := range objs.PVCs {
				if v, ok := c.Spec.Resources.Requests[corev1.ResourceStorage]; ok {
					q.Add(v)
				}
			}
		default:
			counted := strings.TrimPrefix(string(name), "count/")
			if n, ok := objs.Counts[counted]; ok {
				q.Set(n)
			}
		}
		used[name] = q
	}
	return used, nil
}

// nodePorts is how many node ports s allocates: one per port for NodePort
// services and LoadBalancer services that allocate node ports.
func nodePorts(s *corev1.Service) int64 {
	switch s.Spec.Type {
	case corev1.ServiceTypeNodePort:
		return int64(len(s.Spec.Ports))
	case corev1.ServiceTypeLoadBalancer:
		if s.Spec.AllocateLoadBalancerNodePorts != nil && !*s.Spec.AllocateLoadBalancerNodePorts {
			return 0
		}
		return int64(len(s.Spec.Ports))
	}
	return 0
}

// podMatchesScopes reports whether pod is tracked by quota's scopes and
// scope selector (all must match).
func podMatchesScopes(quota *corev1.ResourceQuota, pod *corev1.Pod) (bool, error) {
	reqs := make([]corev1.ScopedResourceSelectorRequirement, 0, len(quota.Spec.Scopes))
	for _, s := range quota.Spec.Scopes {
		reqs = append(reqs, corev1.ScopedResourceSelectorRequirement{ScopeName: s, Operator: corev1.ScopeSelectorOpExists})
	}
	if quota.Spec.ScopeSelector != nil {
		reqs = append(reqs, quota.Spec.ScopeSelector.MatchExpressions...)
	}
	for _, r := range reqs {
		ok, err := podMatchesScope(r, pod)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func podMatchesScope(r corev1.ScopedResourceSelectorRequirement, pod *corev1.Pod) (bool, error) {
	switch r.ScopeName {
	case corev1.ResourceQuotaScopeTerminating:
		return pod.Spec.ActiveDeadlineSeconds != nil && *pod.Spec.ActiveDeadlineSeconds >= 0, nil
	case corev1.ResourceQuotaScopeNotTerminating:
		return pod.Spec.ActiveDeadlineSeconds == nil || *pod.Spec.ActiveDeadlineSeconds < 0, nil
	case corev1.ResourceQuotaScopeBestEffort:
		return isBestEffort(pod), nil
	case corev1.ResourceQuotaScopeNotBestEffort:
		return !isBestEffort(pod), nil
	case corev1.ResourceQuotaScopePriorityClass:
		op := selection.Operator(strings.ToLower(string(r.Operator)))
		if r.Operator == corev1.ScopeSelectorOpDoesNotExist {
			op = selection.DoesNotExist
		}
		req, err := labels.NewRequirement(string(r.ScopeName), op, r.Values)
		if err != nil {
			return false, fmt.Errorf("invalid priority class scope selector: %w", err)
		}
		set := labels.Set{}
		if pod.Spec.PriorityClassName != "" {
			set[string(r.ScopeName)] = pod.Spec.PriorityClassName
		}
		return req.Matches(set), nil
	}
	// Scopes Skiff does not evaluate (cross-namespace affinity, volume
	// attributes classes) match no pod rather than every pod, so a scoped
	// quota never over-counts.
	return false, nil
}

// isBestEffort reports whether no container of pod requests or limits cpu
// or memory (the BestEffort QoS class).
func isBestEffort(pod *corev1.Pod) bool {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			for _, rl := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
				for n, q := range rl {
					if (n == corev1.ResourceCPU || n == corev1.ResourceMemory) && !q.IsZero() {
						return false
					}
				}
			}
		}
	}
	return true
}
