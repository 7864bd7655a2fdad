package dns

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const soaRR = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 0 7200 1800 86400 5"

// TestZone checks each record shape of the Kubernetes DNS specification
// and CoreDNS's kubernetes plugin against the fixture cluster.
func TestZone(t *testing.T) {
	s, _ := startServer(t, Config{}, fixture()...)
	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		rcode  int
		answer []string
		ns     []string // nil: expect the SOA when the answer is empty
		extra  []string
	}{
		// 2.3.1: A record of a ClusterIP Service.
		{name: "clusterIP A", qname: "web.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"web.default.svc.cluster.local. 5 IN A 10.96.0.20"}},
		{name: "names are case-insensitive, the owner keeps the question's case", qname: "WEB.Default.SVC.Cluster.LOCAL.", qtype: mdns.TypeA,
			answer: []string{"WEB.Default.SVC.Cluster.LOCAL. 5 IN A 10.96.0.20"}},
		{name: "IPv4-only Service has no AAAA: NODATA", qname: "web.default.svc.cluster.local.", qtype: mdns.TypeAAAA},
		{name: "dual-stack A", qname: "dual.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"dual.default.svc.cluster.local. 5 IN A 10.96.0.30"}},
		{name: "dual-stack AAAA", qname: "dual.default.svc.cluster.local.", qtype: mdns.TypeAAAA,
			answer: []string{"dual.default.svc.cluster.local. 5 IN AAAA fd00::30"}},
		{name: "existing name, other type: NODATA", qname: "web.default.svc.cluster.local.", qtype: mdns.TypeMX},

		// 2.3.2: SRV of named ports, the Service's address as extra.
		{name: "SRV of a named port", qname: "_http._tcp.web.default.svc.cluster.local.", qtype: mdns.TypeSRV,
			answer: []string{"_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 100 80 web.default.svc.cluster.local."},
			extra:  []string{"web.default.svc.cluster.local. 5 IN A 10.96.0.20"}},
		{name: "SRV protocol mismatch: NXDOMAIN", qname: "_http._udp.web.default.svc.cluster.local.", qtype: mdns.TypeSRV,
			rcode: mdns.RcodeNameError},
		{name: "SRV unknown port: NXDOMAIN", qname: "_nope._tcp.web.default.svc.cluster.local.", qtype: mdns.TypeSRV,
			rcode: mdns.RcodeNameError},
		{name: "SRV on the Service name lists every port (CoreDNS)", qname: "web.default.svc.cluster.local.", qtype: mdns.TypeSRV,
			answer: []string{
				"web.default.svc.cluster.local. 5 IN SRV 0 50 80 web.default.svc.cluster.local.",
				"web.default.svc.cluster.local. 5 IN SRV 0 50 9090 web.default.svc.cluster.local.",
			},
			extra: []string{"web.default.svc.cluster.local. 5 IN A 10.96.0.20"}},
		{name: "dual-stack SRV has both addresses as extra", qname: "_http._tcp.dual.default.svc.cluster.local.", qtype: mdns.TypeSRV,
			answer: []string{"_http._tcp.dual.default.svc.cluster.local. 5 IN SRV 0 100 80 dual.default.svc.cluster.local."},
			extra: []string{
				"dual.default.svc.cluster.local. 5 IN A 10.96.0.30",
				"dual.default.svc.cluster.local. 5 IN AAAA fd00::30",
			}},

		// 2.4.1: headless A records are the ready endpoints, over all slices.
		{name: "headless A: ready endpoints only", qname: "db.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{
				"db.default.svc.cluster.local. 5 IN A 10.1.0.1",
				"db.default.svc.cluster.local. 5 IN A 10.1.0.2",
				"db.default.svc.cluster.local. 5 IN A 10.1.0.4",
				"db.default.svc.cluster.local. 5 IN A 10.1.0.5",
			}},
		{name: "headless endpoint by hostname", qname: "db-0.db.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"db-0.db.default.svc.cluster.local. 5 IN A 10.1.0.1"}},
		{name: "headless endpoint by dashed address", qname: "10-1-0-4.db.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"10-1-0-4.db.default.svc.cluster.local. 5 IN A 10.1.0.4"}},
		{name: "not-ready endpoint has no name", qname: "db-2.db.default.svc.cluster.local.", qtype: mdns.TypeA,
			rcode: mdns.RcodeNameError},
		{name: "headless without ready endpoints: NXDOMAIN", qname: "notready.default.svc.cluster.local.", qtype: mdns.TypeA,
			rcode: mdns.RcodeNameError},
		{name: "headless IPv6 AAAA", qname: "db6.default.svc.cluster.local.", qtype: mdns.TypeAAAA,
			answer: []string{"db6.default.svc.cluster.local. 5 IN AAAA fd00::1:1"}},
		{name: "headless IPv6 A: NODATA", qname: "db6.default.svc.cluster.local.", qtype: mdns.TypeA},
		{name: "headless IPv6 endpoint name", qname: "fd00--1-1.db6.default.svc.cluster.local.", qtype: mdns.TypeAAAA,
			answer: []string{"fd00--1-1.db6.default.svc.cluster.local. 5 IN AAAA fd00::1:1"}},
		{name: "headless without ports still has A", qname: "noports.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"noports.default.svc.cluster.local. 5 IN A 10.1.1.1"}},
		{name: "headless without ports has no SRV", qname: "noports.default.svc.cluster.local.", qtype: mdns.TypeSRV},
		{name: "ClusterIP Service endpoint by name (CoreDNS)", qname: "10-1-3-1.web.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"10-1-3-1.web.default.svc.cluster.local. 5 IN A 10.1.3.1"}},

		// 2.4.2: headless SRV, one per ready endpoint, to its own name.
		{name: "headless SRV", qname: "_pg._tcp.db.default.svc.cluster.local.", qtype: mdns.TypeSRV,
			answer: []string{
				"_pg._tcp.db.default.svc.cluster.local. 5 IN SRV 0 25 5432 10-1-0-4.db.default.svc.cluster.local.",
				"_pg._tcp.db.default.svc.cluster.local. 5 IN SRV 0 25 5432 10-1-0-5.db.default.svc.cluster.local.",
				"_pg._tcp.db.default.svc.cluster.local. 5 IN SRV 0 25 5432 db-0.db.default.svc.cluster.local.",
				"_pg._tcp.db.default.svc.cluster.local. 5 IN SRV 0 25 5432 db-1.db.default.svc.cluster.local.",
			},
			extra: []string{
				"10-1-0-4.db.default.svc.cluster.local. 5 IN A 10.1.0.4",
				"10-1-0-5.db.default.svc.cluster.local. 5 IN A 10.1.0.5",
				"db-0.db.default.svc.cluster.local. 5 IN A 10.1.0.1",
				"db-1.db.default.svc.cluster.local. 5 IN A 10.1.0.2",
			}},
		{name: "SRV without underscores (CoreDNS accepts them)", qname: "pg.tcp.db.default.svc.cluster.local.", qtype: mdns.TypeSRV,
			answer: []string{
				"pg.tcp.db.default.svc.cluster.local. 5 IN SRV 0 25 5432 10-1-0-4.db.default.svc.cluster.local.",
				"pg.tcp.db.default.svc.cluster.local. 5 IN SRV 0 25 5432 10-1-0-5.db.default.svc.cluster.local.",
				"pg.tcp.db.default.svc.cluster.local. 5 IN SRV 0 25 5432 db-0.db.default.svc.cluster.local.",
				"pg.tcp.db.default.svc.cluster.local. 5 IN SRV 0 25 5432 db-1.db.default.svc.cluster.local.",
			},
			extra: []string{
				"10-1-0-4.db.default.svc.cluster.local. 5 IN A 10.1.0.4",
				"10-1-0-5.db.default.svc.cluster.local. 5 IN A 10.1.0.5",
				"db-0.db.default.svc.cluster.local. 5 IN A 10.1.0.1",
				"db-1.db.default.svc.cluster.local. 5 IN A 10.1.0.2",
			}},

		// 2.5: ExternalName is a CNAME.
		{name: "ExternalName CNAME", qname: "ext.default.svc.cluster.local.", qtype: mdns.TypeCNAME,
			answer: []string{"ext.default.svc.cluster.local. 5 IN CNAME www.example.com."}},
		{name: "ExternalName A without upstream: the CNAME alone", qname: "ext.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"ext.default.svc.cluster.local. 5 IN CNAME www.example.com."}},
		{name: "ExternalName into the zone is followed", qname: "alias.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{
				"alias.default.svc.cluster.local. 5 IN CNAME web.default.svc.cluster.local.",
				"web.default.svc.cluster.local. 5 IN A 10.96.0.20",
			}},
		{name: "ExternalName loop ends", qname: "loop-a.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{
				"loop-a.default.svc.cluster.local. 5 IN CNAME loop-b.default.svc.cluster.local.",
				"loop-b.default.svc.cluster.local. 5 IN CNAME loop-a.default.svc.cluster.local.",
			}},
		{name: "ExternalName has no SRV", qname: "ext.default.svc.cluster.local.", qtype: mdns.TypeSRV},
		{name: "ExternalName holding an IP publishes nothing (CoreDNS)", qname: "ipname.default.svc.cluster.local.", qtype: mdns.TypeA,
			rcode: mdns.RcodeNameError},

		// 2.6: pod names, "pods insecure".
		{name: "pod A", qname: "10-2-3-4.default.pod.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"10-2-3-4.default.pod.cluster.local. 5 IN A 10.2.3.4"}},
		{name: "pod IPv4 AAAA: NODATA", qname: "10-2-3-4.default.pod.cluster.local.", qtype: mdns.TypeAAAA},
		{name: "pod IPv6", qname: "fd00--5.default.pod.cluster.local.", qtype: mdns.TypeAAAA,
			answer: []string{"fd00--5.default.pod.cluster.local. 5 IN AAAA fd00::5"}},
		{name: "pod name that is no address", qname: "10-2-3-400.default.pod.cluster.local.", qtype: mdns.TypeA,
			rcode: mdns.RcodeNameError},
		{name: "pod in a missing namespace", qname: "10-2-3-4.nope.pod.cluster.local.", qtype: mdns.TypeA,
			rcode: mdns.RcodeNameError},
		{name: "pod namespace: NODATA", qname: "default.pod.cluster.local.", qtype: mdns.TypeA},

		// Intermediate names exist (NODATA), others do not (NXDOMAIN).
		{name: "namespace: NODATA", qname: "default.svc.cluster.local.", qtype: mdns.TypeA},
		{name: "namespace without Services: NODATA", qname: "empty-ns.svc.cluster.local.", qtype: mdns.TypeA},
		{name: "missing namespace: NXDOMAIN", qname: "nope.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError},
		{name: "svc: NODATA", qname: "svc.cluster.local.", qtype: mdns.TypeA},
		{name: "pod: NODATA", qname: "pod.cluster.local.", qtype: mdns.TypeA},
		{name: "missing Service: NXDOMAIN", qname: "nope.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError},
		{name: "missing endpoint: NXDOMAIN", qname: "nope.db.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError},
		{name: "too many labels: NXDOMAIN", qname: "a.b.c.d.web.default.svc.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError},
		{name: "unknown top label: NXDOMAIN", qname: "foo.cluster.local.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError},
		{name: "SOA of a name below the apex: NODATA", qname: "web.default.svc.cluster.local.", qtype: mdns.TypeSOA},

		// The apex and the schema version.
		{name: "apex SOA", qname: "cluster.local.", qtype: mdns.TypeSOA, answer: []string{soaRR}},
		{name: "apex NS with the DNS Service as glue", qname: "cluster.local.", qtype: mdns.TypeNS,
			answer: []string{"cluster.local. 5 IN NS ns.dns.cluster.local."},
			extra:  []string{"ns.dns.cluster.local. 5 IN A 10.96.0.10"}},
		{name: "apex A: NODATA", qname: "cluster.local.", qtype: mdns.TypeA},
		{name: "name server A", qname: "ns.dns.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"ns.dns.cluster.local. 5 IN A 10.96.0.10"}},
		{name: "dns-version TXT", qname: "dns-version.cluster.local.", qtype: mdns.TypeTXT,
			answer: []string{`dns-version.cluster.local. 28800 IN TXT "1.1.0"`}},

		// 2.3.3 and 2.4.3: PTR.
		{name: "PTR of a ClusterIP", qname: "20.0.96.10.in-addr.arpa.", qtype: mdns.TypePTR,
			answer: []string{"20.0.96.10.in-addr.arpa. 5 IN PTR web.default.svc.cluster.local."}, ns: []string{}},
		{name: "PTR of an IPv6 ClusterIP", qname: "0.3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", qtype: mdns.TypePTR,
			answer: []string{"0.3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. 5 IN PTR dual.default.svc.cluster.local."}, ns: []string{}},
		{name: "PTR of an endpoint with hostname", qname: "1.0.1.10.in-addr.arpa.", qtype: mdns.TypePTR,
			answer: []string{"1.0.1.10.in-addr.arpa. 5 IN PTR db-0.db.default.svc.cluster.local."}, ns: []string{}},
		{name: "PTR of an endpoint without hostname", qname: "5.0.1.10.in-addr.arpa.", qtype: mdns.TypePTR,
			answer: []string{"5.0.1.10.in-addr.arpa. 5 IN PTR 10-1-0-5.db.default.svc.cluster.local."}, ns: []string{}},
		{name: "PTR of a not-ready endpoint goes upstream (none here: SERVFAIL)", qname: "3.0.1.10.in-addr.arpa.", qtype: mdns.TypePTR,
			rcode: mdns.RcodeServerFailure, ns: []string{}},

		// Outside the zone without upstream.
		{name: "outside the zone without upstream: SERVFAIL", qname: "example.com.", qtype: mdns.TypeA,
			rcode: mdns.RcodeServerFailure, ns: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := query(tt.qname, tt.qtype)
			resp := s.handle(context.Background(), req, false)
			if resp == nil {
				t.Fatal("no answer")
			}
			if resp.Rcode != tt.rcode {
				t.Errorf("rcode = %s, want %s", mdns.RcodeToString[resp.Rcode], mdns.RcodeToString[tt.rcode])
			}
			if resp.Id != req.Id || !resp.Response {
				t.Errorf("answer id %d response %v, want id %d response true", resp.Id, resp.Response, req.Id)
			}
			inZone := tt.rcode != mdns.RcodeServerFailure
			if resp.Authoritative != inZone {
				t.Errorf("authoritative = %v, want %v", resp.Authoritative, inZone)
			}
			if diff := cmp.Diff(tt.answer, rrStrings(resp.Answer), cmpEmpty); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
			wantNS := tt.ns
			if wantNS == nil && len(tt.answer) == 0 {
				wantNS = []string{soaRR}
			}
			if diff := cmp.Diff(wantNS, rrStrings(resp.Ns), cmpEmpty); diff != "" {
				t.Errorf("authority (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.extra, rrStrings(resp.Extra), cmpEmpty); diff != "" {
				t.Errorf("additional (-want +got):\n%s", diff)
			}
			if _, err := resp.Pack(); err != nil {
				t.Errorf("answer does not pack: %v", err)
			}
		})
	}
}

// cmpEmpty treats nil and empty slices alike.
var cmpEmpty = cmp.Comparer(func(a, b []string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return cmp.Equal([]string(a), []string(b))
})

// TestZoneRefusals checks the questions the zone does not answer.
func TestZoneRefusals(t *testing.T) {
	s, _ := startServer(t, Config{}, fixture()...)
	for _, tt := range []struct {
		name  string
		msg   func() *mdns.Msg
		rcode int
	}{
		{"chaos class", func() *mdns.Msg {
			m := query("web.default.svc.cluster.local.", mdns.TypeA)
			m.Question[0].Qclass = mdns.ClassCHAOS
			return m
		}, mdns.RcodeRefused},
		{"zone transfer", func() *mdns.Msg { return query("cluster.local.", mdns.TypeAXFR) }, mdns.RcodeRefused},
		{"no question", func() *mdns.Msg { m := query("x.", mdns.TypeA); m.Question = nil; return m }, mdns.RcodeFormatError},
		{"two questions", func() *mdns.Msg {
			m := query("web.default.svc.cluster.local.", mdns.TypeA)
			m.Question = append(m.Question, m.Question[0])
			return m
		}, mdns.RcodeFormatError},
		{"update opcode", func() *mdns.Msg {
			m := query("cluster.local.", mdns.TypeSOA)
			m.Opcode = mdns.OpcodeUpdate
			return m
		}, mdns.RcodeNotImplemented},
		{"EDNS version 1", func() *mdns.Msg {
			m := query("web.default.svc.cluster.local.", mdns.TypeA)
			m.SetEdns0(1232, false)
			m.IsEdns0().SetVersion(1)
			return m
		}, mdns.RcodeBadVers},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.msg()
			resp := s.handle(context.Background(), req, true)
			if resp == nil {
				t.Fatal("no answer")
			}
			if resp.Rcode != tt.rcode || len(resp.Answer) != 0 {
				t.Errorf("rcode %s with %d answers, want %s and none", mdns.RcodeToString[resp.Rcode], len(resp.Answer), mdns.RcodeToString[tt.rcode])
			}
			if _, err := resp.Pack(); err != nil {
				t.Errorf("answer does not pack: %v", err)
			}
		})
	}
	t.Run("responses are dropped", func(t *testing.T) {
		req := query("web.default.svc.cluster.local.", mdns.TypeA)
		req.Response = true
		if resp := s.handle(context.Background(), req, true); resp != nil {
			t.Errorf("answered a response: %v", resp)
		}
	})
}

// TestNotSynced checks that before the informers have synced the zone
// answers SERVFAIL (not a false NXDOMAIN), as CoreDNS does.
func TestNotSynced(t *testing.T) {
	s, err := New(Config{Client: fakeClient(fixture()...), Address: "127.0.0.1:0", Upstreams: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	resp := s.handle(context.Background(), query("web.default.svc.cluster.local.", mdns.TypeA), false)
	if resp.Rcode != mdns.RcodeServerFailure {
		t.Errorf("rcode before sync = %s, want SERVFAIL", mdns.RcodeToString[resp.Rcode])
	}
}

// TestInformerUpdates checks that answers follow the API: a Service
// created, its endpoints turning ready and not ready, its deletion.
func TestInformerUpdates(t *testing.T) {
	s, client := startServer(t, Config{}, namespace("default"))
	ctx := context.Background()
	answer := func(name string, qtype uint16) (int, []string) {
		resp := s.handle(ctx, query(name, qtype), false)
		return resp.Rcode, rrStrings(resp.Answer)
	}
	eventually := func(what, name string, qtype uint16, rcode int, want ...string) {
		t.Helper()
		waitFor(t, what, func() bool {
			c, got := answer(name, qtype)
			return c == rcode && cmp.Equal(want, got, cmpEmpty)
		})
	}

	const name = "api.default.svc.cluster.local."
	eventually("no Service yet", name, mdns.TypeA, mdns.RcodeNameError)
	svc := clusterIPService("default", "api", []string{"10.96.1.1"}, port("http", 80, corev1.ProtocolTCP))
	if _, err := client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("Service created", name, mdns.TypeA, mdns.RcodeSuccess, "api.default.svc.cluster.local. 5 IN A 10.96.1.1")

	// The ClusterIP changes (a Service re-created under the same name).
	svc.Spec.ClusterIP, svc.Spec.ClusterIPs = "10.96.1.2", []string{"10.96.1.2"}
	if _, err := client.CoreV1().Services("default").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("Service updated", name, mdns.TypeA, mdns.RcodeSuccess, "api.default.svc.cluster.local. 5 IN A 10.96.1.2")

	// Headless with endpoints that become ready, then not.
	hl := headlessService("default", "sts", port("web", 80, corev1.ProtocolTCP))
	if _, err := client.CoreV1().Services("default").Create(ctx, hl, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const hname = "sts-0.sts.default.svc.cluster.local."
	es := slice("default", "sts-x", "sts", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{slicePort("web", 80)},
		ep("10.2.0.1", "sts-0", ptr(false)))
	if _, err := client.DiscoveryV1().EndpointSlices("default").Create(ctx, es, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("endpoint not ready", hname, mdns.TypeA, mdns.RcodeNameError)
	es.Endpoints[0].Conditions.Ready = ptr(true)
	if _, err := client.DiscoveryV1().EndpointSlices("default").Update(ctx, es, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("endpoint ready", hname, mdns.TypeA, mdns.RcodeSuccess, "sts-0.sts.default.svc.cluster.local. 5 IN A 10.2.0.1")
	eventually("PTR of the ready endpoint", "1.0.2.10.in-addr.arpa.", mdns.TypePTR, mdns.RcodeSuccess,
		"1.0.2.10.in-addr.arpa. 5 IN PTR sts-0.sts.default.svc.cluster.local.")
	if err := client.DiscoveryV1().EndpointSlices("default").Delete(ctx, es.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("slice deleted", hname, mdns.TypeA, mdns.RcodeNameError)

	if err := client.CoreV1().Services("default").Delete(ctx, "api", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("Service deleted", name, mdns.TypeA, mdns.RcodeNameError)

	// A new namespace appears as NODATA.
	eventually("no namespace", "team.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError)
	if _, err := client.CoreV1().Namespaces().Create(ctx, namespace("team"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("namespace created", "team.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess)
}

// TestClusterDomainAndTTL checks a custom zone and TTL.
func TestClusterDomainAndTTL(t *testing.T) {
	s, _ := startServer(t, Config{ClusterDomain: "Corp.Example.", TTL: 30e9}, fixture()...)
	resp := s.handle(context.Background(), query("web.default.svc.corp.example.", mdns.TypeA), false)
	if diff := cmp.Diff([]string{"web.default.svc.corp.example. 30 IN A 10.96.0.20"}, rrStrings(resp.Answer)); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}
	resp = s.handle(context.Background(), query("nope.default.svc.corp.example.", mdns.TypeA), false)
	want := []string{"corp.example. 30 IN SOA ns.dns.corp.example. hostmaster.corp.example. 0 7200 1800 86400 30"}
	if diff := cmp.Diff(want, rrStrings(resp.Ns)); diff != "" || resp.Rcode != mdns.RcodeNameError {
		t.Errorf("rcode %s, authority (-want +got):\n%s", mdns.RcodeToString[resp.Rcode], diff)
	}
	// cluster.local is now outside the zone: forwarded (no upstream).
	resp = s.handle(context.Background(), query("web.default.svc.cluster.local.", mdns.TypeA), false)
	if resp.Rcode != mdns.RcodeServerFailure {
		t.Errorf("old zone: rcode %s, want SERVFAIL", mdns.RcodeToString[resp.Rcode])
	}
}

// TestRotation checks that several addresses come in turns (loadbalance).
func TestRotation(t *testing.T) {
	s, _ := startServer(t, Config{}, fixture()...)
	firsts := map[string]bool{}
	for range 8 {
		resp := s.handle(context.Background(), query("db.default.svc.cluster.local.", mdns.TypeA), false)
		if len(resp.Answer) != 4 {
			t.Fatalf("got %d answers, want 4", len(resp.Answer))
		}
		firsts[resp.Answer[0].(*mdns.A).A.String()] = true
	}
	if len(firsts) != 4 {
		t.Errorf("first addresses over 8 queries: %v, want all 4", firsts)
	}
}
