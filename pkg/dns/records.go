package dns

import (
	"net/netip"
	"slices"
	"strings"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Label values of the zone's schema
// (https://github.com/kubernetes/dns/blob/master/docs/specification.md).
const (
	labelSvc        = "svc"
	labelPod        = "pod"
	labelDNSVersion = "dns-version"
	// schemaVersion is the TXT of dns-version.<zone>, CoreDNS's value.
	schemaVersion = "1.1.0"
	// schemaVersionTTL is the TTL CoreDNS gives the dns-version TXT.
	schemaVersionTTL = 28800
)

// SOA timers of the zone, CoreDNS's values.
const (
	soaRefresh = 7200
	soaRetry   = 1800
	soaExpire  = 86400
)

// resolver answers questions inside the cluster zone. It is a pure function
// of the store's caches and the question: no I/O, no clock.
type resolver struct {
	// zone is the canonical zone name, "cluster.local.".
	zone string
	// zoneLabels is the number of labels of zone.
	zoneLabels int
	// ttl of every record, seconds.
	ttl uint32
	// dnsService is the Service whose ClusterIPs are the addresses of
	// ns.dns.<zone>.
	dnsService types.NamespacedName
	st         *store
}

func newResolver(zone string, ttl uint32, dnsService types.NamespacedName, st *store) *resolver {
	zone = mdns.CanonicalName(zone)
	return &resolver{zone: zone, zoneLabels: mdns.CountLabel(zone), ttl: ttl, dnsService: dnsService, st: st}
}

// result is the outcome of one question: what goes in each section.
type result struct {
	rcode             int
	answer, ns, extra []mdns.RR
	// chase is the target of an ExternalName CNAME in answer that the
	// server resolves and appends (A and AAAA questions only).
	chase string
}

// entry is one record source found for a name: an address (with the port
// and SRV target it belongs to) or an ExternalName target.
type entry struct {
	// ip is the address; invalid for a CNAME entry.
	ip netip.Addr
	// cname is the ExternalName target, fully qualified.
	cname string
	// port is the port for SRV records; -1 when there is none.
	port int32
	// host is the endpoint's label under the Service name, the first
	// label of its SRV target; empty when the target is the Service.
	host string
}

// node is what the zone holds at one name.
type node struct {
	// exists is false for a name that is not in the zone (NXDOMAIN).
	exists bool
	// entries are the record sources at the name.
	entries []entry
	// txt is the name's TXT string, if any.
	txt string
	// fqdn is the Service's name, under which SRV targets are.
	fqdn string
}

// inZone reports whether the canonical name is the zone or below it.
func (r *resolver) inZone(name string) bool { return mdns.IsSubDomain(r.zone, name) }

// resolve answers q, whose name must be in the zone (see inZone). Answer
// owner names keep the question's spelling, so clients that randomise the
// case of their queries (DNS 0x20) recognise the answer.
func (r *resolver) resolve(q mdns.Question) result {
	name := mdns.CanonicalName(q.Name)
	labels := mdns.SplitDomainName(name)
	base := labels[:len(labels)-r.zoneLabels]
	if len(base) == 0 {
		return r.apex(q)
	}
	return r.render(q, r.lookup(base))
}

// apex answers the zone's own name: its SOA and NS.
func (r *resolver) apex(q mdns.Question) result {
	switch q.Qtype {
	case mdns.TypeSOA:
		return result{answer: []mdns.RR{r.soa()}}
	case mdns.TypeNS:
		ns := &mdns.NS{Hdr: r.hdr(q.Name, mdns.TypeNS), Ns: r.nsName()}
		var extra []mdns.RR
		for _, e := range r.nsEntries() {
			extra = append(extra, r.addr(r.nsName(), e.ip))
		}
		return result{answer: []mdns.RR{ns}, extra: extra}
	}
	return result{ns: []mdns.RR{r.soa()}}
}

// nsName is the name server of the zone, ns.dns.<zone>, as CoreDNS names it.
func (r *resolver) nsName() string { return "ns.dns." + r.zone }

// nsEntries are the addresses of ns.dns.<zone>: the DNS Service's ClusterIPs.
func (r *resolver) nsEntries() []entry {
	svc := r.st.service(r.dnsService.Namespace, r.dnsService.Name)
	if svc == nil {
		return nil
	}
	var out []entry
	for _, ip := range clusterIPs(svc) {
		out = append(out, entry{ip: netip.MustParseAddr(ip), port: -1})
	}
	return out
}

// lookup finds the node at the name whose labels below the zone are base
// (non-empty, lowercase). The shapes follow CoreDNS's kubernetes plugin:
//
//	svc | pod | dns                          empty non-terminals
//	dns-version                              TXT "1.1.0"
//	ns.dns                                   the DNS Service's ClusterIPs
//	<ns>.svc | <ns>.pod                      exist iff the Namespace does
//	<a-b-c-d>.<ns>.pod                       the IP a.b.c.d ("pods insecure")
//	<svc>.<ns>.svc                           the Service
//	<endpoint>.<svc>.<ns>.svc                its endpoints of that hostname
//	_<port>._<proto>.<svc>.<ns>.svc          its ports of that name/protocol
func (r *resolver) lookup(base []string) node {
	n := len(base)
	last := base[n-1]
	if n == 1 {
		switch last {
		case labelSvc, labelPod, "dns":
			return node{exists: true}
		case labelDNSVersion:
			return node{exists: true, txt: schemaVersion}
		}
		return node{}
	}
	switch last {
	case "dns":
		if n == 2 && base[0] == "ns" {
			return node{exists: true, entries: r.nsEntries()}
		}
	case labelPod:
		if !r.st.namespaceExists(base[n-2]) {
			return node{}
		}
		switch n {
		case 2:
			return node{exists: true}
		case 3:
			return podNode(base[0])
		}
	case labelSvc:
		ns := base[n-2]
		if n == 2 {
			return node{exists: r.st.namespaceExists(ns)}
		}
		svc := r.st.service(ns, base[n-3])
		switch {
		case svc == nil:
			return node{}
		case n == 3:
			return r.serviceNode(svc, "", "", "")
		case n == 4:
			return r.serviceNode(svc, base[0], "", "")
		case n == 5:
			return r.serviceNode(svc, "", strings.TrimPrefix(base[0], "_"), strings.TrimPrefix(base[1], "_"))
		}
	}
	return node{}
}

// podNode answers <a-b-c-d>.<ns>.pod without checking that a pod has the
// address, like CoreDNS's "pods insecure" (and kube-dns before it). IPv6
// addresses are written with dashes for colons.
func podNode(label string) node {
	var s string
	if strings.Count(label, "-") == 3 && !strings.Contains(label, "--") {
		s = strings.ReplaceAll(label, "-", ".")
	} else {
		s = strings.ReplaceAll(label, "-", ":")
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return node{}
	}
	return node{exists: true, entries: []entry{{ip: ip.Unmap(), port: -1}}}
}

// serviceNode collects the entries of svc: its ClusterIPs per port, or for
// a headless Service or an endpoint name its ready endpoints per port, or
// its ExternalName. endpoint, port and proto filter when non-empty. A name
// with no entries does not exist, as in CoreDNS (a headless Service without
// ready endpoints is NXDOMAIN, as the specification requires).
func (r *resolver) serviceNode(svc *corev1.Service, endpoint, port, proto string) node {
	fqdn := svc.Name + "." + svc.Namespace + "." + labelSvc + "." + r.zone
	var entries []entry
	if n := len(svc.Spec.Ports) * len(svc.Spec.ClusterIPs); n > 0 {
		entries = make([]entry, 0, n)
	}
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		if endpoint != "" {
			return node{}
		}
		target := mdns.CanonicalName(svc.Spec.ExternalName)
		// CoreDNS publishes only names: an IP in externalName gets nothing.
		if _, ok := mdns.IsDomainName(target); !ok || target == "." || canonicalIP(strings.TrimSuffix(target, ".")) != "" {
			return node{}
		}
		entries = append(entries, entry{cname: target, port: -1})
	case headless(svc) || endpoint != "":
		for _, es := range r.st.slicesOf(svc.Namespace, svc.Name) {
			if es.AddressType == discoveryv1.AddressTypeFQDN {
				continue
			}
			for i := range es.Endpoints {
				ep := &es.Endpoints[i]
				if !ready(ep) {
					continue
				}
				for _, a := range ep.Addresses {
					ip, err := netip.ParseAddr(a)
					if err != nil {
						continue
					}
					ip = ip.Unmap()
					name := endpointName(ep, ip)
					if endpoint != "" && !strings.EqualFold(endpoint, name) {
						continue
					}
					if len(es.Ports) == 0 {
						// No ports: addresses only, no SRV.
						if port == "" && proto == "" {
							entries = append(entries, entry{ip: ip, port: -1, host: name})
						}
						continue
					}
					for _, p := range es.Ports {
						if !matchPort(port, proto, deref(p.Name), string(derefProto(p.Protocol))) {
							continue
						}
						num := int32(-1)
						if p.Port != nil {
							num = *p.Port
						}
						entries = append(entries, entry{ip: ip, port: num, host: name})
					}
				}
			}
		}
	default:
		ips := clusterIPs(svc)
		for _, p := range svc.Spec.Ports {
			if !matchPort(port, proto, p.Name, string(p.Protocol)) {
				continue
			}
			for _, ip := range ips {
				entries = append(entries, entry{ip: netip.MustParseAddr(ip), port: p.Port})
			}
		}
	}
	return node{exists: len(entries) > 0, entries: entries, fqdn: fqdn}
}

// endpointName is the endpoint's hostname, else its address with dashes
// (10-1-2-3, fd00--1), the per-endpoint name CoreDNS publishes.
func endpointName(ep *discoveryv1.Endpoint, ip netip.Addr) string {
	if ep.Hostname != nil && *ep.Hostname != "" {
		return strings.ToLower(*ep.Hostname)
	}
	s := ip.String()
	if ip.Is4() {
		return strings.ReplaceAll(s, ".", "-")
	}
	return strings.ReplaceAll(s, ":", "-")
}

// matchPort matches a port name and protocol against the query's _port and
// _proto labels; an empty query label matches anything.
func matchPort(qport, qproto, name, proto string) bool {
	return (qport == "" || strings.EqualFold(qport, name)) && (qproto == "" || strings.EqualFold(qproto, proto))
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func derefProto(p *corev1.Protocol) corev1.Protocol {
	if p == nil {
		return corev1.ProtocolTCP
	}
	return *p
}

// render turns the node into the sections answering q. Every name that
// exists but has no record of the asked type is NODATA, everything else
// in the zone NXDOMAIN, both with the SOA in the authority section.
func (r *resolver) render(q mdns.Question, n node) result {
	if !n.exists {
		return result{rcode: mdns.RcodeNameError, ns: []mdns.RR{r.soa()}}
	}
	var res result
	switch q.Qtype {
	case mdns.TypeA, mdns.TypeAAAA:
		seen := make(map[netip.Addr]bool, len(n.entries))
		res.answer = make([]mdns.RR, 0, len(n.entries))
		for _, e := range n.entries {
			if e.cname != "" {
				res.answer = append(res.answer, r.cname(q.Name, e.cname))
				res.chase = e.cname
				continue
			}
			if seen[e.ip] || e.ip.Is4() != (q.Qtype == mdns.TypeA) {
				continue
			}
			seen[e.ip] = true
			res.answer = append(res.answer, r.addr(q.Name, e.ip))
		}
	case mdns.TypeCNAME:
		for _, e := range n.entries {
			if e.cname != "" {
				res.answer = append(res.answer, r.cname(q.Name, e.cname))
			}
		}
	case mdns.TypeSRV:
		res.answer, res.extra = r.srv(q.Name, n)
	case mdns.TypeTXT:
		if n.txt != "" {
			h := r.hdr(q.Name, mdns.TypeTXT)
			h.Ttl = schemaVersionTTL
			res.answer = append(res.answer, &mdns.TXT{Hdr: h, Txt: []string{n.txt}})
		}
	}
	if len(res.answer) == 0 {
		res.ns = []mdns.RR{r.soa()}
	}
	return res
}

// srv builds one SRV record per distinct (target, port), priority 0 and
// the weight split evenly as CoreDNS does, with the targets' addresses in
// the additional section.
func (r *resolver) srv(owner string, n node) (answer, extra []mdns.RR) {
	type key struct {
		target string
		port   int32
	}
	type addrKey struct {
		target string
		ip     netip.Addr
	}
	var keys []key
	seen := map[key]bool{}
	seenAddr := map[addrKey]bool{}
	for _, e := range n.entries {
		if e.cname != "" || e.port < 0 || e.port > 65535 {
			continue
		}
		target := n.fqdn
		if e.host != "" {
			target = e.host + "." + n.fqdn
		}
		k := key{target, e.port}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
		if ak := (addrKey{target, e.ip}); !seenAddr[ak] {
			seenAddr[ak] = true
			extra = append(extra, r.addr(target, e.ip))
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	weight := uint16(max(100/len(keys), 1))
	for _, k := range keys {
		answer = append(answer, &mdns.SRV{
			Hdr:      r.hdr(owner, mdns.TypeSRV),
			Priority: 0,
			Weight:   weight,
			Port:     uint16(k.port),
			Target:   k.target,
		})
	}
	return answer, extra
}

// reverse answers a PTR question for a Service ClusterIP
// (<svc>.<ns>.svc.<zone>) or a ready endpoint address
// (<endpoint>.<svc>.<ns>.svc.<zone>). ok is false when the name is not a
// reverse name or the address is not known, so the question goes upstream
// (CoreDNS's "fallthrough in-addr.arpa ip6.arpa").
func (r *resolver) reverse(q mdns.Question) (res result, ok bool) {
	if q.Qtype != mdns.TypePTR {
		return result{}, false
	}
	ip, ok := reverseIP(mdns.CanonicalName(q.Name))
	if !ok {
		return result{}, false
	}
	key := ip.String()
	var targets []string
	for _, svc := range r.st.servicesByIP(key) {
		targets = append(targets, svc.Name+"."+svc.Namespace+"."+labelSvc+"."+r.zone)
	}
	if len(targets) == 0 {
		for _, es := range r.st.slicesByIP(key) {
			svcName := es.Labels[discoveryv1.LabelServiceName]
			for i := range es.Endpoints {
				ep := &es.Endpoints[i]
				if !ready(ep) || !slices.ContainsFunc(ep.Addresses, func(a string) bool { return canonicalIP(a) == key }) {
					continue
				}
				targets = append(targets, endpointName(ep, ip)+"."+svcName+"."+es.Namespace+"."+labelSvc+"."+r.zone)
			}
		}
	}
	if len(targets) == 0 {
		return result{}, false
	}
	slices.Sort(targets)
	targets = slices.Compact(targets)
	for _, t := range targets {
		res.answer = append(res.answer, &mdns.PTR{Hdr: r.hdr(q.Name, mdns.TypePTR), Ptr: t})
	}
	return res, true
}

// reverseIP parses a canonical in-addr.arpa. or ip6.arpa. name holding a
// whole address.
func reverseIP(name string) (netip.Addr, bool) {
	labels := mdns.SplitDomainName(name)
	n := len(labels)
	switch {
	case n == 6 && labels[4] == "in-addr" && labels[5] == "arpa":
		var b [4]byte
		for i := range 4 {
			v, ok := decimalOctet(labels[3-i])
			if !ok {
				return netip.Addr{}, false
			}
			b[i] = v
		}
		return netip.AddrFrom4(b), true
	case n == 34 && labels[32] == "ip6" && labels[33] == "arpa":
		var b [16]byte
		for i := range 32 {
			l := labels[31-i]
			if len(l) != 1 {
				return netip.Addr{}, false
			}
			v := strings.IndexByte("0123456789abcdef", l[0])
			if v < 0 {
				return netip.Addr{}, false
			}
			if i%2 == 0 {
				b[i/2] = byte(v) << 4
			} else {
				b[i/2] |= byte(v)
			}
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}

// decimalOctet parses 0..255 without leading zeros.
func decimalOctet(s string) (byte, bool) {
	if s == "" || len(s) > 3 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	v := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	if v > 255 {
		return 0, false
	}
	return byte(v), true
}

// isReverse reports whether a canonical name is under a reverse zone.
func isReverse(name string) bool {
	return mdns.IsSubDomain("in-addr.arpa.", name) || mdns.IsSubDomain("ip6.arpa.", name)
}

func (r *resolver) hdr(owner string, t uint16) mdns.RR_Header {
	return mdns.RR_Header{Name: owner, Rrtype: t, Class: mdns.ClassINET, Ttl: r.ttl}
}

func (r *resolver) addr(owner string, ip netip.Addr) mdns.RR {
	if ip.Is4() {
		return &mdns.A{Hdr: r.hdr(owner, mdns.TypeA), A: ip.AsSlice()}
	}
	return &mdns.AAAA{Hdr: r.hdr(owner, mdns.TypeAAAA), AAAA: ip.AsSlice()}
}

func (r *resolver) cname(owner, target string) mdns.RR {
	return &mdns.CNAME{Hdr: r.hdr(owner, mdns.TypeCNAME), Target: target}
}

// soa is the zone's SOA in CoreDNS's shape: ns.dns.<zone>.
// hostmaster.<zone>., serial the time of the last API change, negative
// TTL the record TTL.
func (r *resolver) soa() mdns.RR {
	return &mdns.SOA{
		Hdr:     r.hdr(r.zone, mdns.TypeSOA),
		Ns:      r.nsName(),
		Mbox:    "hostmaster." + r.zone,
		Serial:  r.st.serial(),
		Refresh: soaRefresh,
		Retry:   soaRetry,
		Expire:  soaExpire,
		Minttl:  r.ttl,
	}
}
