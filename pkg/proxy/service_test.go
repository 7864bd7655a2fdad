package proxy

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

func eps(s ...string) []endpoint {
	var out []endpoint
	for _, a := range s {
		ap := netip.MustParseAddrPort(a)
		out = append(out, endpoint{ip: ap.Addr(), port: int32(ap.Port())})
	}
	return out
}

// TestSelectEndpoints checks upstream's endpoint choice: ready endpoints
// only, and the serving terminating ones when none is ready.
func TestSelectEndpoints(t *testing.T) {
	tcp := corev1.ProtocolTCP
	tests := []struct {
		name   string
		slices []*discoveryv1.EndpointSlice
		want   []endpoint
	}{
		{
			name: "ready only, sorted",
			slices: []*discoveryv1.EndpointSlice{newSlice("ns", "s", "a", "http", 8080, tcp,
				readyEP("10.244.0.9"), ep{ip: "10.244.0.7"}, readyEP("10.244.0.3"))},
			want: eps("10.244.0.3:8080", "10.244.0.9:8080"),
		},
		{
			name: "no ready endpoint falls back to serving terminating ones",
			slices: []*discoveryv1.EndpointSlice{newSlice("ns", "s", "a", "http", 8080, tcp,
				ep{ip: "10.244.0.5", serving: true, terminating: true},
				ep{ip: "10.244.0.6", serving: false, terminating: true})},
			want: eps("10.244.0.5:8080"),
		},
		{
			name: "a ready endpoint hides the terminating ones",
			slices: []*discoveryv1.EndpointSlice{newSlice("ns", "s", "a", "http", 8080, tcp,
				readyEP("10.244.0.4"), ep{ip: "10.244.0.5", serving: true, terminating: true})},
			want: eps("10.244.0.4:8080"),
		},
		{
			name: "same endpoint in two slices counts once",
			slices: []*discoveryv1.EndpointSlice{
				newSlice("ns", "s", "a", "http", 8080, tcp, readyEP("10.244.0.4")),
				newSlice("ns", "s", "b", "http", 8080, tcp, readyEP("10.244.0.4"), readyEP("10.244.0.2")),
			},
			want: eps("10.244.0.2:8080", "10.244.0.4:8080"),
		},
		{
			name:   "port name must match",
			slices: []*discoveryv1.EndpointSlice{newSlice("ns", "s", "a", "metrics", 9090, tcp, readyEP("10.244.0.4"))},
		},
		{
			name:   "protocol must match",
			slices: []*discoveryv1.EndpointSlice{newSlice("ns", "s", "a", "http", 8080, corev1.ProtocolUDP, readyEP("10.244.0.4"))},
		},
		{
			name: "IPv6 slices are ignored",
			slices: func() []*discoveryv1.EndpointSlice {
				s := newSlice("ns", "s", "a", "http", 8080, tcp, readyEP("fd00::1"))
				s.AddressType = discoveryv1.AddressTypeIPv6
				return []*discoveryv1.EndpointSlice{s}
			}(),
		},
		{
			name: "nil conditions mean ready",
			slices: func() []*discoveryv1.EndpointSlice {
				s := newSlice("ns", "s", "a", "http", 8080, tcp, readyEP("10.244.0.8"))
				s.Endpoints[0].Conditions = discoveryv1.EndpointConditions{}
				return []*discoveryv1.EndpointSlice{s}
			}(),
			want: eps("10.244.0.8:8080"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := selectEndpoints(tt.slices, "http", tcp)
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b endpoint) bool { return a == b })); diff != "" {
				t.Errorf("endpoints (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBuildServicePortsSkips checks that the Services upstream gives no
// rules get none.
func TestBuildServicePortsSkips(t *testing.T) {
	tests := map[string]*corev1.Service{
		"headless": newService("ns", "h", "None"),
		"external name": newService("ns", "e", "", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeExternalName
			s.Spec.ExternalName = "example.com"
		}),
		"no cluster IP yet": newService("ns", "n", ""),
		"IPv6 only":         newService("ns", "v6", "fd00::10"),
		"unsupported protocol only": newService("ns", "p", "10.96.0.20", withPorts(corev1.ServicePort{
			Name: "x", Port: 1, Protocol: "ICMP"})),
	}
	for name, svc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := buildServicePorts(svc, nil); got != nil {
				t.Errorf("got %d ports, want none", len(got))
			}
		})
	}
}

func TestBuildServicePorts(t *testing.T) {
	svc := newService("web", "front", "10.96.0.10",
		withPorts(
			corev1.ServicePort{Name: "http", Port: 80, NodePort: 30080},
			corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, NodePort: 30053},
		),
		withExternalIPs("192.0.2.10", "192.0.2.9", "192.0.2.10", "fd00::1"),
		func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeLoadBalancer
			s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
			proxyMode := corev1.LoadBalancerIPModeProxy
			s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.1"}, {IP: "198.51.100.2", IPMode: &proxyMode}}
		})
	got := buildServicePorts(svc, []*discoveryv1.EndpointSlice{
		newSlice("web", "front", "a", "http", 8080, corev1.ProtocolTCP, readyEP("10.244.1.2")),
	})
	if len(got) != 2 {
		t.Fatalf("got %d ports, want 2", len(got))
	}
	http, dns := got[0], got[1]
	wantExt := []netip.Addr{netip.MustParseAddr("192.0.2.9"), netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("198.51.100.1")}
	if diff := cmp.Diff(wantExt, http.externalIPs, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("external IPs (-want +got):\n%s", diff)
	}
	if http.name != "web/front:http" || http.chainBase != "web/front/tcp/http" || http.nodePort != 30080 || http.affinitySeconds != defaultAffinitySeconds {
		t.Errorf("http port = %+v", *http)
	}
	if len(http.endpoints) != 1 || len(dns.endpoints) != 0 {
		t.Errorf("endpoints: http %v, dns %v; want 1 and 0", http.endpoints, dns.endpoints)
	}
	if dns.protocol != corev1.ProtocolUDP || dns.nodePort != 30053 {
		t.Errorf("dns port = %+v", *dns)
	}

	unnamed := buildServicePorts(newService("ns", "u", "10.96.0.11", withPorts(corev1.ServicePort{Port: 8443})), nil)
	if unnamed[0].name != "ns/u" || unnamed[0].chainBase != "ns/u/tcp/p8443" {
		t.Errorf("unnamed port: name %q chainBase %q", unnamed[0].name, unnamed[0].chainBase)
	}
}
