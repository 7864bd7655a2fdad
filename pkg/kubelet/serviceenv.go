package kubelet

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// errServicesNotSynced is returned while the service cache has not been
// filled once: upstream refuses to start a container then too, since its
// environment would silently lack the service variables.
var errServicesNotSynced = errors.New("services have not yet been read at least once, cannot construct envvars")

// serviceEnv returns the Docker-link-style variables upstream's kubelet
// gives every container: those of the services of the pod's namespace
// (unless the pod sets enableServiceLinks false) and, always, those of the
// "kubernetes" Service of the default namespace, which in-cluster clients
// (rest.InClusterConfig) need to find the API server. Services without a
// ClusterIP (headless, ExternalName) contribute nothing.
func serviceEnv(lister corelisters.ServiceLister, pod *corev1.Pod) (map[string]string, error) {
	vars := map[string]string{}
	if pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks {
		svcs, err := lister.Services(pod.Namespace).List(labels.Everything())
		if err != nil {
			return nil, fmt.Errorf("listing services of namespace %s: %w", pod.Namespace, err)
		}
		for _, svc := range svcs {
			addServiceEnv(vars, svc)
		}
	}
	master, err := lister.Services(corev1.NamespaceDefault).Get("kubernetes")
	if err == nil {
		addServiceEnv(vars, master)
	}
	return vars, nil
}

// addServiceEnv adds the variables of one service, as upstream's
// envvars.FromServices names them: FOO_BAR_SERVICE_HOST,
// FOO_BAR_SERVICE_PORT[_<PORTNAME>], FOO_BAR_PORT and
// FOO_BAR_PORT_<port>_<PROTO>[_PROTO|_PORT|_ADDR].
func addServiceEnv(vars map[string]string, svc *corev1.Service) {
	ip := svc.Spec.ClusterIP
	if ip == "" || ip == corev1.ClusterIPNone || len(svc.Spec.Ports) == 0 {
		return
	}
	prefix := strings.ToUpper(strings.ReplaceAll(svc.Name, "-", "_"))
	first := svc.Spec.Ports[0]
	vars[prefix+"_SERVICE_HOST"] = ip
	vars[prefix+"_SERVICE_PORT"] = strconv.Itoa(int(first.Port))
	for _, p := range svc.Spec.Ports {
		if p.Name != "" {
			vars[prefix+"_SERVICE_PORT_"+strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_"))] = strconv.Itoa(int(p.Port))
		}
	}
	vars[prefix+"_PORT"] = portURL(ip, first)
	for _, p := range svc.Spec.Ports {
		proto := strings.ToUpper(string(p.Protocol))
		if proto == "" {
			proto = "TCP"
		}
		key := prefix + "_PORT_" + strconv.Itoa(int(p.Port)) + "_" + proto
		vars[key] = portURL(ip, p)
		vars[key+"_PROTO"] = strings.ToLower(proto)
		vars[key+"_PORT"] = strconv.Itoa(int(p.Port))
		vars[key+"_ADDR"] = ip
	}
}

// portURL is "tcp://10.96.0.1:443"; IPv6 addresses are bracketed.
func portURL(ip string, p corev1.ServicePort) string {
	proto := strings.ToLower(string(p.Protocol))
	if proto == "" {
		proto = "tcp"
	}
	if strings.Contains(ip, ":") {
		ip = "[" + ip + "]"
	}
	return proto + "://" + ip + ":" + strconv.Itoa(int(p.Port))
}
