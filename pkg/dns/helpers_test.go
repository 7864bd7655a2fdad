package dns

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
)

// waitFor polls cond every few milliseconds until it holds or the
// deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startServer runs a Server on a fake clientset holding objs, bound to
// 127.0.0.1:0, and waits until it is ready. The server stops at cleanup.
// cfg's Client and Address are filled in; Upstreams nil becomes "none".
func startServer(t testing.TB, cfg Config, objs ...runtime.Object) (*Server, *fake.Clientset) {
	t.Helper()
	client := fakeClient(objs...)
	cfg.Client = client
	if cfg.Address == "" {
		cfg.Address = "127.0.0.1:0"
	}
	if cfg.Upstreams == nil {
		cfg.Upstreams = []string{}
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	runServer(t, s)
	waitFor(t, "informers to sync", s.Ready)
	return s, client
}

// runServer runs s until cleanup and fails the test if Run fails.
func runServer(t testing.TB, s *Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	})
}

func fakeClient(objs ...runtime.Object) *fake.Clientset { return fake.NewClientset(objs...) }

// query builds a question with recursion desired, as stub resolvers send.
func query(name string, qtype uint16) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

// rrStrings renders records in presentation format, sorted, with SOA
// serials zeroed (they are a time).
func rrStrings(rrs []mdns.RR) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		if soa, ok := rr.(*mdns.SOA); ok {
			c := *soa
			c.Serial = 0
			rr = &c
		}
		if rr.Header().Rrtype == mdns.TypeOPT {
			continue
		}
		out = append(out, strings.ReplaceAll(rr.String(), "\t", " "))
	}
	slices.Sort(out)
	return out
}

func ptr[T any](v T) *T { return &v }

func namespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

func port(name string, n int32, proto corev1.Protocol) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: n, Protocol: proto, TargetPort: intstr.FromInt32(n)}
}

func clusterIPService(ns, name string, ips []string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type:       corev1.ServiceTypeClusterIP,
			ClusterIP:  ips[0],
			ClusterIPs: ips,
			Ports:      ports,
		},
	}
}

func headlessService(ns, name string, ports ...corev1.ServicePort) *corev1.Service {
	return clusterIPService(ns, name, []string{corev1.ClusterIPNone}, ports...)
}

func externalNameService(ns, name, target string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: target},
	}
}

// ep is an endpoint for slice: ready nil means "unknown", which counts as
// ready.
func ep(addr, hostname string, ready *bool) discoveryv1.Endpoint {
	e := discoveryv1.Endpoint{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: ready}}
	if hostname != "" {
		e.Hostname = ptr(hostname)
	}
	return e
}

func slicePort(name string, n int32) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: ptr(name), Port: ptr(n), Protocol: ptr(corev1.ProtocolTCP)}
}

func slice(ns, name, svc string, at discoveryv1.AddressType, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: name,
			Labels: map[string]string{discoveryv1.LabelServiceName: svc},
		},
		AddressType: at,
		Endpoints:   eps,
		Ports:       ports,
	}
}

// fixture is the cluster most tests answer from.
func fixture() []runtime.Object {
	yes, no := ptr(true), ptr(false)
	return []runtime.Object{
		namespace("default"), namespace("kube-system"), namespace("empty-ns"),
		clusterIPService("kube-system", "kube-dns", []string{"10.96.0.10"}, port("dns", 53, corev1.ProtocolUDP), port("dns-tcp", 53, corev1.ProtocolTCP)),
		clusterIPService("default", "web", []string{"10.96.0.20"}, port("http", 80, corev1.ProtocolTCP), port("metrics", 9090, corev1.ProtocolTCP)),
		clusterIPService("default", "dual", []string{"10.96.0.30", "fd00::30"}, port("http", 80, corev1.ProtocolTCP)),
		clusterIPService("default", "unnamed", []string{"10.96.0.40"}, port("", 8080, corev1.ProtocolTCP)),
		headlessService("default", "db", port("pg", 5432, corev1.ProtocolTCP)),
		slice("default", "db-abc", "db", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{slicePort("pg", 5432)},
			ep("10.1.0.1", "db-0", yes),
			ep("10.1.0.2", "db-1", nil),
			ep("10.1.0.3", "db-2", no),
			ep("10.1.0.4", "", yes),
		),
		// A second slice of the same Service, one endpoint repeated.
		slice("default", "db-def", "db", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{slicePort("pg", 5432)},
			ep("10.1.0.4", "", yes),
			ep("10.1.0.5", "", yes),
		),
		headlessService("default", "db6", port("pg", 5432, corev1.ProtocolTCP)),
		slice("default", "db6-abc", "db6", discoveryv1.AddressTypeIPv6, []discoveryv1.EndpointPort{slicePort("pg", 5432)},
			ep("fd00::1:1", "", yes),
		),
		headlessService("default", "noports"),
		slice("default", "noports-abc", "noports", discoveryv1.AddressTypeIPv4, nil, ep("10.1.1.1", "", yes)),
		headlessService("default", "notready", port("pg", 5432, corev1.ProtocolTCP)),
		slice("default", "notready-abc", "notready", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{slicePort("pg", 5432)},
			ep("10.1.2.1", "", no),
		),
		// The ClusterIP Service "web" also has endpoints, reachable by name.
		slice("default", "web-abc", "web", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{slicePort("http", 8080)},
			ep("10.1.3.1", "", yes),
		),
		externalNameService("default", "ext", "www.Example.COM"),
		externalNameService("default", "alias", "web.default.svc.cluster.local"),
		externalNameService("default", "loop-a", "loop-b.default.svc.cluster.local"),
		externalNameService("default", "loop-b", "loop-a.default.svc.cluster.local"),
		externalNameService("default", "ipname", "192.0.2.7"),
	}
}
