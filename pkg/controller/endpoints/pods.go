package endpoints

import (
	"fmt"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// LastChangeTriggerTimeAnnotation records, on Endpoints and EndpointSlices,
// when the newest change that the object reflects happened (upstream's
// endpoints.kubernetes.io/last-change-trigger-time, RFC 3339 with nanoseconds).
const LastChangeTriggerTimeAnnotation = "endpoints.kubernetes.io/last-change-trigger-time"

// shouldPodBeInEndpoints reports whether pod contributes an address at all:
// it has an IP, is not terminal, and is not terminating unless
// includeTerminating (upstream's ShouldPodBeInEndpoints).
func shouldPodBeInEndpoints(pod *corev1.Pod, includeTerminating bool) bool {
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	if podIPv4(pod) == "" {
		return false
	}
	return includeTerminating || pod.DeletionTimestamp == nil
}

// podIPv4 returns pod's IPv4 address, or "" if it has none. Skiff services are
// single-stack IPv4, so only the IPv4 address of a dual-stack pod is used.
func podIPv4(pod *corev1.Pod) string {
	candidates := []string{pod.Status.PodIP}
	for _, ip := range pod.Status.PodIPs {
		candidates = append(candidates, ip.IP)
	}
	for _, s := range candidates {
		if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
			return s
		}
	}
	return ""
}

func isPodReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// findPort resolves svcPort's targetPort on pod: a number is used as is (an
// unset one means the service port), a name is looked up among the ports of
// the pod's containers and restartable init containers (sidecars) with the
// same protocol.
func findPort(pod *corev1.Pod, svcPort *corev1.ServicePort) (int32, error) {
	tp := svcPort.TargetPort
	if tp.Type == intstr.Int {
		if tp.IntVal == 0 {
			return svcPort.Port, nil
		}
		return tp.IntVal, nil
	}
	proto := svcPort.Protocol
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	containers := pod.Spec.Containers
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			containers = append(containers[:len(containers):len(containers)], c)
		}
	}
	for _, c := range containers {
		for _, p := range c.Ports {
			pp := p.Protocol
			if pp == "" {
				pp = corev1.ProtocolTCP
			}
			if p.Name == tp.StrVal && pp == proto {
				return p.ContainerPort, nil
			}
		}
	}
	return 0, fmt.Errorf("pod %s/%s has no container port named %q (%s)", pod.Namespace, pod.Name, tp.StrVal, proto)
}

// shouldSetHostname reports whether pod's hostname is published for svc:
// the pod names svc as its subdomain (the headless-service DNS contract).
func shouldSetHostname(pod *corev1.Pod, svc *corev1.Service) bool {
	return pod.Spec.Hostname != "" && pod.Spec.Subdomain == svc.Name && pod.Namespace == svc.Namespace
}

func isHeadless(svc *corev1.Service) bool { return svc.Spec.ClusterIP == corev1.ClusterIPNone }

// triggerTime is the newest change among svc and pods that the endpoints
// reflect: the service's creation and each pod's creation or last readiness
// transition. It is a pure function of the objects, so re-syncing a
// converged service yields the same value and writes nothing.
func triggerTime(svc *corev1.Service, pods []*corev1.Pod) time.Time {
	t := svc.CreationTimestamp.Time
	for _, p := range pods {
		pt := p.CreationTimestamp.Time
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.LastTransitionTime.After(pt) {
				pt = c.LastTransitionTime.Time
			}
		}
		if p.DeletionTimestamp != nil && p.DeletionTimestamp.After(pt) {
			pt = p.DeletionTimestamp.Time
		}
		if pt.After(t) {
			t = pt
		}
	}
	return t
}

func formatTriggerTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// selectedPods returns the pods in svc's namespace matched by its selector,
// or nil, false when the service has no selector (its endpoints are managed
// by someone else) or is an ExternalName service (a DNS alias has no pods).
func selectedPods(lister corelisters.PodLister, svc *corev1.Service) ([]*corev1.Pod, bool, error) {
	if len(svc.Spec.Selector) == 0 || svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nil, false, nil
	}
	pods, err := lister.Pods(svc.Namespace).List(labels.SelectorFromValidatedSet(svc.Spec.Selector))
	if err != nil {
		return nil, true, fmt.Errorf("listing pods for service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	return pods, true, nil
}

// servicesForPod returns the keys of services in pod's namespace whose
// selector matches pod's labels.
func servicesForPod(lister corelisters.ServiceLister, pod *corev1.Pod) []string {
	svcs, err := lister.Services(pod.Namespace).List(labels.Everything())
	if err != nil {
		return nil
	}
	var keys []string
	set := labels.Set(pod.Labels)
	for _, s := range svcs {
		if len(s.Spec.Selector) == 0 {
			continue
		}
		if labels.SelectorFromValidatedSet(s.Spec.Selector).Matches(set) {
			keys = append(keys, s.Namespace+"/"+s.Name)
		}
	}
	return keys
}

// podFromEvent unwraps informer delete tombstones.
func podFromEvent(obj interface{}) (*corev1.Pod, bool) {
	switch o := obj.(type) {
	case *corev1.Pod:
		return o, true
	case cache.DeletedFinalStateUnknown:
		p, ok := o.Obj.(*corev1.Pod)
		return p, ok
	}
	return nil, false
}

// podChangeAffectsEndpoints reports whether an update of old to cur can
// change any service's endpoints; status heartbeats that touch nothing
// relevant are dropped before they cost a sync per matching service.
func podChangeAffectsEndpoints(old, cur *corev1.Pod) bool {
	if old.ResourceVersion == cur.ResourceVersion {
		return false
	}
	return !labels.Equals(old.Labels, cur.Labels) ||
		podIPv4(old) != podIPv4(cur) ||
		isPodReady(old) != isPodReady(cur) ||
		(old.DeletionTimestamp == nil) != (cur.DeletionTimestamp == nil) ||
		old.Status.Phase != cur.Status.Phase ||
		old.Spec.NodeName != cur.Spec.NodeName ||
		old.Spec.Hostname != cur.Spec.Hostname ||
		old.Spec.Subdomain != cur.Spec.Subdomain
}
