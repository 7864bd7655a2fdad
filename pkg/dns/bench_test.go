package dns

import (
	"context"
	"fmt"
	"testing"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// benchCluster is the fixture plus 5,000 ClusterIP Services and a headless
// Service of 100 ready endpoints, so lookups are measured in a cluster of
// some size.
func benchCluster() []runtime.Object {
	objs := fixture()
	for i := range 5000 {
		objs = append(objs, clusterIPService("default", fmt.Sprintf("svc-%d", i),
			[]string{fmt.Sprintf("10.97.%d.%d", i/250, i%250+1)}, port("http", 80, corev1.ProtocolTCP)))
	}
	objs = append(objs, headlessService("default", "big", port("http", 80, corev1.ProtocolTCP)))
	var eps []discoveryv1.Endpoint
	for i := range 100 {
		eps = append(eps, ep(fmt.Sprintf("10.3.0.%d", i+1), fmt.Sprintf("big-%d", i), ptr(true)))
	}
	objs = append(objs, slice("default", "big-a", "big", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{slicePort("http", 80)}, eps...))
	return objs
}

var benchQueries = []struct {
	name  string
	qname string
	qtype uint16
}{
	{"ClusterIP_A", "svc-4321.default.svc.cluster.local.", mdns.TypeA},
	{"Headless_A_4", "db.default.svc.cluster.local.", mdns.TypeA},
	{"Headless_A_100", "big.default.svc.cluster.local.", mdns.TypeA},
	{"SRV_headless_4", "_pg._tcp.db.default.svc.cluster.local.", mdns.TypeSRV},
	{"Endpoint_A", "big-42.big.default.svc.cluster.local.", mdns.TypeA},
	{"Pod_A", "10-2-3-4.default.pod.cluster.local.", mdns.TypeA},
	{"NXDOMAIN", "nope.default.svc.cluster.local.", mdns.TypeA},
	{"PTR", "20.0.96.10.in-addr.arpa.", mdns.TypePTR},
}

// BenchmarkHandle measures the in-zone query handler alone (no sockets):
// ns/op is the per-query latency on one core; the Parallel variants give
// queries/s on all cores. UDP sizing is applied as for a UDP client.
func BenchmarkHandle(b *testing.B) {
	s, _ := startServer(b, Config{}, benchCluster()...)
	ctx := context.Background()
	for _, bq := range benchQueries {
		req := query(bq.qname, bq.qtype)
		req.SetEdns0(1232, false)
		if resp := s.handle(ctx, req, true); resp.Rcode == mdns.RcodeServerFailure {
			b.Fatalf("%s: SERVFAIL", bq.qname)
		}
		b.Run(bq.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.handle(ctx, req, true)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
		})
		b.Run(bq.name+"/Parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					s.handle(ctx, req, true)
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
		})
	}
}

// BenchmarkServeUDP measures whole queries over UDP on 127.0.0.1 through
// the real server: packet in, parse, answer, pack, packet out, with the
// miekg/dns client on the same machine taking its share of the CPU.
func BenchmarkServeUDP(b *testing.B) {
	s, _ := startServer(b, Config{}, benchCluster()...)
	addr := s.Addrs().UDP
	for _, bq := range benchQueries[:3] {
		b.Run(bq.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				c := &mdns.Client{Net: "udp"}
				co, err := c.Dial(addr)
				if err != nil {
					b.Error(err)
					return
				}
				defer co.Close()
				req := query(bq.qname, bq.qtype)
				for pb.Next() {
					resp, _, err := c.ExchangeWithConn(req, co)
					if err != nil || resp.Rcode != mdns.RcodeSuccess {
						b.Errorf("query: %v %v", err, resp)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
		})
	}
}
