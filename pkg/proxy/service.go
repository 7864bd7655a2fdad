package proxy

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// defaultAffinitySeconds is the ClientIP affinity timeout of a Service that
// sets none (upstream's DefaultClientIPServiceAffinitySeconds, 3 hours).
const defaultAffinitySeconds = 10800

// servicePort is everything the backends need to program one port of one
// Service: the proxy's model of the API objects. It is immutable once built
// and compared with equal to decide whether a Service's rules can change.
type servicePort struct {
	// name is upstream's ServicePortName: "ns/name:port", or "ns/name"
	// when the port has no name. It appears in rule comments.
	name string
	// chainBase identifies the port in nft object names:
	// "ns/name/proto/portname" ("p<port>" when unnamed).
	chainBase string

	protocol corev1.Protocol
	// clusterIP is the IPv4 ClusterIP; always valid.
	clusterIP netip.Addr
	port      int32
	// nodePort is 0 unless the Service is a NodePort or LoadBalancer.
	nodePort int32
	// externalIPs are spec.externalIPs and the VIP-mode load-balancer
	// ingress IPs (IPv4 only), sorted and deduplicated.
	externalIPs []netip.Addr
	// affinitySeconds is the ClientIP session affinity timeout; 0 means no
	// affinity.
	affinitySeconds int32
	// endpoints are the endpoints traffic goes to (ready ones, or the
	// serving terminating ones when none is ready), sorted by address and
	// port; empty means the port rejects connections.
	endpoints []endpoint
}

// endpoint is one backend of a servicePort.
type endpoint struct {
	ip   netip.Addr
	port int32
}

// String returns "ip:port", the form of the rule comments.
func (e endpoint) String() string {
	return netip.AddrPortFrom(e.ip, uint16(e.port)).String()
}

// equal reports whether a and b program the same rules.
func (sp *servicePort) equal(o *servicePort) bool {
	return sp.name == o.name && sp.protocol == o.protocol && sp.clusterIP == o.clusterIP &&
		sp.port == o.port && sp.nodePort == o.nodePort && sp.affinitySeconds == o.affinitySeconds &&
		slices.Equal(sp.externalIPs, o.externalIPs) && slices.Equal(sp.endpoints, o.endpoints)
}

// portsEqual reports whether two models of one Service program the same
// rules.
func portsEqual(a, b []*servicePort) bool {
	return slices.EqualFunc(a, b, (*servicePort).equal)
}

// buildServicePorts returns the proxy's model of svc given its
// EndpointSlices (any order; slices of other Services are not expected).
// Services that get no rules upstream (ExternalName, headless, no IPv4
// ClusterIP yet) yield nil. Ports of unsupported protocols are skipped.
func buildServicePorts(svc *corev1.Service, endpointSlices []*discoveryv1.EndpointSlice) []*servicePort {
	if svc == nil || svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	clusterIP, ok := firstIPv4(svc.Spec.ClusterIPs, svc.Spec.ClusterIP)
	if !ok {
		// Headless ("None") or not allocated yet.
		return nil
	}
	var externalIPs []netip.Addr
	for _, s := range svc.Spec.ExternalIPs {
		if ip, err := netip.ParseAddr(s); err == nil && ip.Is4() {
			externalIPs = append(externalIPs, ip)
		}
	}
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			// A Proxy-mode load balancer sends traffic to node or pod
			// addresses itself; capturing its IP locally would bypass it.
			if ing.IPMode != nil && *ing.IPMode == corev1.LoadBalancerIPModeProxy {
				continue
			}
			if ip, err := netip.ParseAddr(ing.IP); err == nil && ip.Is4() {
				externalIPs = append(externalIPs, ip)
			}
		}
	}
	slices.SortFunc(externalIPs, netip.Addr.Compare)
	externalIPs = slices.Compact(externalIPs)

	var affinity int32
	if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
		affinity = defaultAffinitySeconds
		if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil && *c.ClientIP.TimeoutSeconds > 0 {
			affinity = *c.ClientIP.TimeoutSeconds
		}
	}
	nodePorts := svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer

	var out []*servicePort
	for _, p := range svc.Spec.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		if proto != corev1.ProtocolTCP && proto != corev1.ProtocolUDP && proto != corev1.ProtocolSCTP {
			continue
		}
		name := svc.Namespace + "/" + svc.Name
		portName := p.Name
		if p.Name != "" {
			name += ":" + p.Name
		} else {
			portName = "p" + strconv.Itoa(int(p.Port))
		}
		sp := &servicePort{
			name:            name,
			chainBase:       svc.Namespace + "/" + svc.Name + "/" + lowerProto(proto) + "/" + portName,
			protocol:        proto,
			clusterIP:       clusterIP,
			port:            p.Port,
			externalIPs:     externalIPs,
			affinitySeconds: affinity,
			endpoints:       selectEndpoints(endpointSlices, p.Name, proto),
		}
		if nodePorts {
			sp.nodePort = p.NodePort
		}
		out = append(out, sp)
	}
	return out
}

// firstIPv4 returns the first IPv4 address among ips (falling back to
// single when ips is empty, as for objects written by old clients).
func firstIPv4(ips []string, single string) (netip.Addr, bool) {
	if len(ips) == 0 {
		ips = []string{single}
	}
	for _, s := range ips {
		if ip, err := netip.ParseAddr(s); err == nil && ip.Is4() && !ip.IsUnspecified() {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// candidate is an endpoint with the conditions that decide whether it
// receives traffic.
type candidate struct {
	endpoint
	ready, serving, terminating bool
}

// selectEndpoints returns the endpoints of the Service port named portName
// (the EndpointSlice ports match by name), following upstream's
// CategorizeEndpoints: the ready endpoints; when none is ready, the ones
// that are serving and terminating, so that a rolling update that leaves
// only terminating pods keeps working. A nil condition counts as upstream
// documents: ready=nil is ready, serving=nil copies ready, terminating=nil
// is false.
func selectEndpoints(endpointSlices []*discoveryv1.EndpointSlice, portName string, proto corev1.Protocol) []endpoint {
	byAddr := map[endpoint]candidate{}
	for _, es := range endpointSlices {
		if es.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		var port int32
		found := false
		for _, p := range es.Ports {
			pn := ""
			if p.Name != nil {
				pn = *p.Name
			}
			pp := corev1.ProtocolTCP
			if p.Protocol != nil {
				pp = *p.Protocol
			}
			if pn == portName && pp == proto && p.Port != nil {
				port, found = *p.Port, true
				break
			}
		}
		if !found {
			continue
		}
		for _, ep := range es.Endpoints {
			if len(ep.Addresses) == 0 {
				continue
			}
			// Upstream uses the first address only: the others are
			// for the same backend.
			ip, err := netip.ParseAddr(ep.Addresses[0])
			if err != nil || !ip.Is4() {
				continue
			}
			c := candidate{endpoint: endpoint{ip: ip, port: port}}
			c.ready = ep.Conditions.Ready == nil || *ep.Conditions.Ready
			c.serving = c.ready
			if ep.Conditions.Serving != nil {
				c.serving = *ep.Conditions.Serving
			}
			c.terminating = ep.Conditions.Terminating != nil && *ep.Conditions.Terminating
			// The same endpoint in two slices (during a slice
			// rebalancing) counts once, with the better conditions.
			if old, ok := byAddr[c.endpoint]; ok {
				c.ready = c.ready || old.ready
				c.serving = c.serving || old.serving
				c.terminating = c.terminating && old.terminating
			}
			byAddr[c.endpoint] = c
		}
	}
	var ready, fallback []endpoint
	for _, c := range byAddr {
		switch {
		case c.ready:
			ready = append(ready, c.endpoint)
		case c.serving && c.terminating:
			fallback = append(fallback, c.endpoint)
		}
	}
	if len(ready) == 0 {
		ready = fallback
	}
	slices.SortFunc(ready, func(a, b endpoint) int {
		return cmp.Or(a.ip.Compare(b.ip), cmp.Compare(a.port, b.port))
	})
	return ready
}

// lowerProto returns the protocol as iptables and nft spell it.
func lowerProto(p corev1.Protocol) string {
	switch p {
	case corev1.ProtocolUDP:
		return "udp"
	case corev1.ProtocolSCTP:
		return "sctp"
	default:
		return "tcp"
	}
}
