package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"k8s.io/klog/v2"
)

// nftTable is the proxy's table: everything of the nftables mode lives in
// it, so deleting it undoes the mode.
const (
	nftFamily = "ip"
	nftTable  = "kube-proxy"
	nftPrefix = "ip " + nftTable + " "
)

// Names of the fixed sets, maps and chains of the table, as upstream's
// nftables kube-proxy names them.
const (
	nftClusterIPs          = "cluster-ips"
	nftServiceIPs          = "service-ips"
	nftServiceNodePorts    = "service-nodeports"
	nftNoEndpointServices  = "no-endpoint-services"
	nftNoEndpointNodePorts = "no-endpoint-nodeports"

	nftMarkForMasq = "mark-for-masquerade"
	nftRejectChain = "reject-chain"
)

// nftMapDef is a fixed set or map of the table.
type nftMapDef struct{ kind, name, def string }

// nftMaps are the fixed sets and maps with their definitions; their
// elements are the per-Service part.
var nftMaps = []nftMapDef{
	{"set", nftClusterIPs, `{ type ipv4_addr ; comment "Active ClusterIPs" ; }`},
	{"map", nftServiceIPs, `{ type ipv4_addr . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }`},
	{"map", nftServiceNodePorts, `{ type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }`},
	{"map", nftNoEndpointServices, `{ type ipv4_addr . inet_proto . inet_service : verdict ; comment "vmap to reject packets to services with no endpoints" ; }`},
	{"map", nftNoEndpointNodePorts, `{ type inet_proto . inet_service : verdict ; comment "vmap to reject packets to service nodeports with no endpoints" ; }`},
}

// nftBaseChain is a chain hooked into netfilter.
type nftBaseChain struct{ name, spec string }

// nftBaseChains are the chains hooked into netfilter, with their hook
// specification, in the order they are created.
var nftBaseChains = []nftBaseChain{
	{"filter-input", "{ type filter hook input priority -110 ; policy accept ; }"},
	{"filter-forward", "{ type filter hook forward priority -110 ; policy accept ; }"},
	{"filter-output", "{ type filter hook output priority -110 ; policy accept ; }"},
	{"filter-output-post-dnat", "{ type filter hook output priority -90 ; policy accept ; }"},
	{"nat-prerouting", "{ type nat hook prerouting priority -100 ; policy accept ; }"},
	{"nat-output", "{ type nat hook output priority -100 ; policy accept ; }"},
	{"nat-postrouting", "{ type nat hook postrouting priority 100 ; policy accept ; }"},
}

// nftLocalDst matches NodePort traffic: any local address but loopback
// (like upstream's --nodeport-addresses unset, minus localhost NodePorts,
// which need route_localnet).
const nftLocalDst = "fib daddr type local ip daddr != 127.0.0.0/8"

// nftStaticChains are the rules of the fixed chains.
func nftStaticChains() map[string][]string {
	return map[string][]string{
		"filter-input":            {"ct state new jump nodeport-endpoints-check", "ct state new jump service-endpoints-check"},
		"filter-forward":          {"ct state new jump service-endpoints-check", "ct state new jump cluster-ips-check"},
		"filter-output":           {"ct state new jump service-endpoints-check"},
		"filter-output-post-dnat": {"ct state new jump cluster-ips-check"},
		"nat-prerouting":          {"jump services"},
		"nat-output":              {"jump services"},
		"nat-postrouting":         {"jump masquerading"},
		"services": {
			"ip daddr . meta l4proto . th dport vmap @" + nftServiceIPs,
			nftLocalDst + " meta l4proto . th dport vmap @" + nftServiceNodePorts,
		},
		"service-endpoints-check":  {"ip daddr . meta l4proto . th dport vmap @" + nftNoEndpointServices},
		"nodeport-endpoints-check": {nftLocalDst + " meta l4proto . th dport vmap @" + nftNoEndpointNodePorts},
		// DNAT happened before this chain: a ClusterIP still here is a
		// port the Service does not have.
		"cluster-ips-check": {`ip daddr @` + nftClusterIPs + ` reject comment "Reject traffic to invalid ports of ClusterIPs"`},
		nftMarkForMasq:      {"meta mark set meta mark | " + masqMark},
		"masquerading": {
			"meta mark & " + masqMark + " == 0 return",
			"meta mark set meta mark ^ " + masqMark,
			"masquerade fully-random",
		},
		nftRejectChain: {"reject"},
	}
}

// nftState is a rendering of the table (or of one Service's part of it).
type nftState struct {
	// chains maps a chain to its rules (the text after "add rule ip
	// kube-proxy <chain>").
	chains map[string][]string
	// elements maps a fixed set or map to its elements: key → value
	// ("" for sets).
	elements map[string]map[string]string
	// affinity maps an affinity set to its timeout in seconds.
	affinity map[string]int32
}

func newNFTState() *nftState {
	return &nftState{chains: map[string][]string{}, elements: map[string]map[string]string{}, affinity: map[string]int32{}}
}

func (s *nftState) addElement(set, key, value string) {
	m := s.elements[set]
	if m == nil {
		m = map[string]string{}
		s.elements[set] = m
	}
	m[key] = value
}

// nftBackend programs Services as one nft table, with `nft -f -`
// transactions. Not safe for concurrent use: only the sync loop calls it.
type nftBackend struct {
	exec        Executor
	clusterCIDR netip.Prefix

	// renders holds the rendering of every Service with rules, by
	// namespace/name.
	renders map[string]*nftState
	// written is what the last successful transaction left in the
	// kernel; nil forces the next sync to be full.
	written *nftState
}

func newNFTBackend(exec Executor, clusterCIDR netip.Prefix) *nftBackend {
	return &nftBackend{exec: exec, clusterCIDR: clusterCIDR, renders: map[string]*nftState{}}
}

func (b *nftBackend) name() string { return string(ModeNFTables) }

// render builds the table's part for one Service, in the shape of
// upstream's nftables kube-proxy.
func (b *nftBackend) render(ports []*servicePort) *nftState {
	s := newNFTState()
	for _, sp := range ports {
		proto := lowerProto(sp.protocol)
		s.addElement(nftClusterIPs, sp.clusterIP.String(), "")
		if len(sp.endpoints) == 0 {
			s.addElement(nftNoEndpointServices, fmt.Sprintf("%s . %s . %d", sp.clusterIP, proto, sp.port), "goto "+nftRejectChain)
			for _, ip := range sp.externalIPs {
				s.addElement(nftNoEndpointServices, fmt.Sprintf("%s . %s . %d", ip, proto, sp.port), "goto "+nftRejectChain)
			}
			if sp.nodePort != 0 {
				s.addElement(nftNoEndpointNodePorts, fmt.Sprintf("%s . %d", proto, sp.nodePort), "goto "+nftRejectChain)
			}
			continue
		}
		svcChain := nftSvcChain(sp)
		s.addElement(nftServiceIPs, fmt.Sprintf("%s . %s . %d", sp.clusterIP, proto, sp.port), "goto "+svcChain)
		if len(sp.externalIPs) > 0 || sp.nodePort != 0 {
			extChain := nftExtChain(sp)
			s.chains[extChain] = []string{
				fmt.Sprintf(`jump %s comment "masquerade traffic for %s external destinations"`, nftMarkForMasq, sp.name),
				"goto " + svcChain,
			}
			for _, ip := range sp.externalIPs {
				s.addElement(nftServiceIPs, fmt.Sprintf("%s . %s . %d", ip, proto, sp.port), "goto "+extChain)
			}
			if sp.nodePort != 0 {
				s.addElement(nftServiceNodePorts, fmt.Sprintf("%s . %d", proto, sp.nodePort), "goto "+extChain)
			}
		}
		var svc []string
		if b.clusterCIDR.IsValid() {
			svc = append(svc, fmt.Sprintf("ip daddr %s %s dport %d ip saddr != %s jump %s", sp.clusterIP, proto, sp.port, b.clusterCIDR, nftMarkForMasq))
		}
		vmap := make([]string, len(sp.endpoints))
		for i, ep := range sp.endpoints {
			epChain := nftEpChain(sp, ep)
			vmap[i] = fmt.Sprintf("%d : goto %s", i, epChain)
			ep := []string{
				// Hairpin: see the iptables SEP chains.
				fmt.Sprintf("ip saddr %s jump %s", ep.ip, nftMarkForMasq),
			}
			if sp.affinitySeconds > 0 {
				set := nftAffinitySet(sp, sp.endpoints[i])
				s.affinity[set] = sp.affinitySeconds
				svc = append(svc, fmt.Sprintf("ip saddr @%s goto %s", set, epChain))
				ep = append(ep, fmt.Sprintf("update @%s { ip saddr }", set))
			}
			ep = append(ep, fmt.Sprintf("meta l4proto %s dnat to %s", proto, sp.endpoints[i]))
			s.chains[epChain] = ep
		}
		svc = append(svc, fmt.Sprintf("numgen random mod %d vmap { %s }", len(sp.endpoints), strings.Join(vmap, " , ")))
		s.chains[svcChain] = svc
	}
	return s
}

// desired assembles the whole table.
func (b *nftBackend) desired() *nftState {
	s := newNFTState()
	s.chains = nftStaticChains()
	for _, m := range nftMaps {
		s.elements[m.name] = map[string]string{}
	}
	keys := slices.Sorted(maps.Keys(b.renders))
	for _, k := range keys {
		r := b.renders[k]
		maps.Copy(s.chains, r.chains)
		maps.Copy(s.affinity, r.affinity)
		for set, elems := range r.elements {
			dst := s.elements[set]
			for key, v := range elems {
				// Two Services may claim one external IP and port; the
				// first (by name) wins, as the first iptables rule would.
				if _, dup := dst[key]; !dup {
					dst[key] = v
				}
			}
		}
	}
	return s
}

// sync implements backend.
func (b *nftBackend) sync(ctx context.Context, services map[string][]*servicePort, changed map[string]bool, full bool) (bool, error) {
	if full || b.written == nil {
		b.renders = make(map[string]*nftState, len(services))
		for k, ports := range services {
			if len(ports) > 0 {
				b.renders[k] = b.render(ports)
			}
		}
		return true, b.fullSync(ctx)
	}
	for k := range changed {
		if ports := services[k]; len(ports) > 0 {
			b.renders[k] = b.render(ports)
		} else {
			delete(b.renders, k)
		}
	}
	want := b.desired()
	have := b.written
	var tx nftTx

	var addChains, writeChains, staleChains []string
	for c, rules := range want.chains {
		old, ok := have.chains[c]
		if !ok {
			addChains = append(addChains, c)
		}
		if !ok || !slices.Equal(old, rules) {
			writeChains = append(writeChains, c)
		}
	}
	for c := range have.chains {
		if _, ok := want.chains[c]; !ok {
			staleChains = append(staleChains, c)
		}
	}
	var putSets, staleSets []string
	for set, t := range want.affinity {
		if old, ok := have.affinity[set]; !ok || old != t {
			putSets = append(putSets, set)
		}
	}
	for set := range have.affinity {
		if _, ok := want.affinity[set]; !ok {
			staleSets = append(staleSets, set)
		}
	}
	slices.Sort(addChains)
	slices.Sort(writeChains)
	slices.Sort(staleChains)
	slices.Sort(putSets)
	slices.Sort(staleSets)

	// The order matters within the transaction: objects exist before
	// anything refers to them, and references are gone before the
	// objects they point to are deleted.
	for _, c := range addChains {
		tx.line("add chain %s%s", nftPrefix, c)
	}
	for _, set := range putSets {
		// On a timeout change this updates the existing set.
		tx.line("add set %s%s %s", nftPrefix, set, affinitySetDef(want.affinity[set]))
	}
	for _, m := range nftMaps {
		var del []string
		for key, v := range have.elements[m.name] {
			if nv, ok := want.elements[m.name][key]; !ok || nv != v {
				del = append(del, key)
			}
		}
		tx.elements("delete", m.name, del, nil)
	}
	for _, c := range writeChains {
		if _, existed := have.chains[c]; existed {
			tx.line("flush chain %s%s", nftPrefix, c)
		}
	}
	for _, c := range staleChains {
		tx.line("flush chain %s%s", nftPrefix, c)
	}
	for _, set := range staleSets {
		tx.line("delete set %s%s", nftPrefix, set)
	}
	for _, c := range writeChains {
		for _, r := range want.chains[c] {
			tx.line("add rule %s%s %s", nftPrefix, c, r)
		}
	}
	for _, m := range nftMaps {
		var add []string
		for key, v := range want.elements[m.name] {
			if ov, ok := have.elements[m.name][key]; !ok || ov != v {
				add = append(add, key)
			}
		}
		tx.elements("add", m.name, add, want.elements[m.name])
	}
	for _, c := range staleChains {
		tx.line("delete chain %s%s", nftPrefix, c)
	}
	if tx.buf.Len() == 0 {
		return false, nil
	}
	if err := b.apply(ctx, tx.buf.Bytes()); err != nil {
		b.written = nil
		return false, err
	}
	b.written = want
	return false, nil
}

// fullSync rewrites the whole table in one transaction, keeping the
// affinity sets' contents, and deletes chains and sets of the table it no
// longer wants.
func (b *nftBackend) fullSync(ctx context.Context) error {
	b.written = nil
	want := b.desired()
	cur, err := b.list(ctx)
	if err != nil {
		return err
	}
	var tx nftTx
	tx.line(`add table %s%s { comment "rules for kube-proxy" ; }`, nftFamily+" ", nftTable)
	for _, m := range nftMaps {
		tx.line("add %s %s%s %s", m.kind, nftPrefix, m.name, m.def)
	}
	for _, c := range nftBaseChains {
		tx.line("add chain %s%s %s", nftPrefix, c.name, c.spec)
	}
	chains := slices.Sorted(maps.Keys(want.chains))
	for _, c := range chains {
		if !slices.ContainsFunc(nftBaseChains, func(b nftBaseChain) bool { return b.name == c }) {
			tx.line("add chain %s%s", nftPrefix, c)
		}
	}
	sets := slices.Sorted(maps.Keys(want.affinity))
	for _, set := range sets {
		tx.line("add set %s%s %s", nftPrefix, set, affinitySetDef(want.affinity[set]))
	}
	// Rules reference chains and sets, elements reference chains: empty
	// everything first, delete what is stale, then fill.
	tx.line("flush table %s%s", nftFamily+" ", nftTable)
	for _, m := range nftMaps {
		tx.line("flush %s %s%s", m.kind, nftPrefix, m.name)
	}
	for _, set := range slices.Sorted(maps.Keys(cur.sets)) {
		if _, ok := want.affinity[set]; !ok && !slices.ContainsFunc(nftMaps, func(m nftMapDef) bool { return m.name == set }) {
			tx.line("delete %s %s%s", cur.sets[set], nftPrefix, set)
		}
	}
	for _, c := range chains {
		for _, r := range want.chains[c] {
			tx.line("add rule %s%s %s", nftPrefix, c, r)
		}
	}
	for _, m := range nftMaps {
		tx.elements("add", m.name, slices.Collect(maps.Keys(want.elements[m.name])), want.elements[m.name])
	}
	for _, c := range slices.Sorted(maps.Keys(cur.chains)) {
		if _, ok := want.chains[c]; !ok {
			tx.line("delete chain %s%s", nftPrefix, c)
		}
	}
	if err := b.apply(ctx, tx.buf.Bytes()); err != nil {
		return err
	}
	b.written = want
	return nil
}

// check implements backend: the table's hook into prerouting is gone when
// someone flushed the ruleset or deleted the table.
func (b *nftBackend) check(ctx context.Context) (bool, error) {
	if _, err := b.exec.Run(ctx, nil, "nft", "list", "chain", nftFamily, nftTable, "nat-prerouting"); err != nil {
		if errors.Is(err, ErrToolMissing) {
			return false, err
		}
		klog.FromContext(ctx).V(2).Info("nft table or chain missing", "err", err)
		return false, nil
	}
	return true, nil
}

// affinitySetDef is the definition of a ClientIP affinity set: the kernel
// adds a client on its first connection and forgets it after the timeout.
func affinitySetDef(seconds int32) string {
	return fmt.Sprintf("{ type ipv4_addr ; flags dynamic,timeout ; timeout %ds ; }", seconds)
}

// nftListed is what exists of the table in the kernel.
type nftListed struct {
	chains map[string]bool
	// sets maps a set or map name to its kind ("set" or "map").
	sets map[string]string
}

// list reads the table's chains, sets and maps. A missing table lists
// empty.
func (b *nftBackend) list(ctx context.Context) (nftListed, error) {
	l := nftListed{chains: map[string]bool{}, sets: map[string]string{}}
	for _, what := range []string{"chains", "sets", "maps"} {
		out, err := b.exec.Run(ctx, nil, "nft", "-j", "list", what, nftFamily)
		if err != nil {
			return l, fmt.Errorf("list nft %s: %w", what, err)
		}
		var doc struct {
			Nftables []map[string]struct {
				Table string `json:"table"`
				Name  string `json:"name"`
			} `json:"nftables"`
		}
		if err := json.Unmarshal(out, &doc); err != nil {
			return l, fmt.Errorf("list nft %s: parse: %w", what, err)
		}
		for _, item := range doc.Nftables {
			for kind, obj := range item {
				if obj.Table != nftTable {
					continue
				}
				switch kind {
				case "chain":
					l.chains[obj.Name] = true
				case "set", "map":
					l.sets[obj.Name] = kind
				}
			}
		}
	}
	return l, nil
}

// apply runs one nft transaction: all of it or nothing takes effect.
func (b *nftBackend) apply(ctx context.Context, input []byte) error {
	klog.FromContext(ctx).V(5).Info("nft transaction", "input", string(input))
	if _, err := b.exec.Run(ctx, input, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("apply nft rules: %w", err)
	}
	return nil
}

// cleanup deletes the table. It is idempotent and succeeds when nft is not
// installed.
func (b *nftBackend) cleanup(ctx context.Context) error {
	b.written = nil
	b.renders = map[string]*nftState{}
	// "destroy table" would be the idempotent form, but nft 1.0.6 lacks
	// it; "add" then "delete" in one transaction is idempotent too.
	input := fmt.Sprintf("add table %s%s\ndelete table %s%s\n", nftFamily+" ", nftTable, nftFamily+" ", nftTable)
	if _, err := b.exec.Run(ctx, []byte(input), "nft", "-f", "-"); err != nil {
		if errors.Is(err, ErrToolMissing) {
			return nil
		}
		return fmt.Errorf("delete nft table %s %s: %w", nftFamily, nftTable, err)
	}
	return nil
}

// nftTx accumulates the text of one nft transaction.
type nftTx struct{ buf bytes.Buffer }

func (t *nftTx) line(format string, args ...any) {
	fmt.Fprintf(&t.buf, format, args...)
	t.buf.WriteByte('\n')
}

// elements writes one "add element" or "delete element" command for keys
// of a fixed set or map (values gives the verdicts of a map's keys for
// "add"), sorted so that transactions are reproducible.
func (t *nftTx) elements(verb, set string, keys []string, values map[string]string) {
	if len(keys) == 0 {
		return
	}
	slices.Sort(keys)
	fmt.Fprintf(&t.buf, "%s element %s%s { ", verb, nftPrefix, set)
	for i, k := range keys {
		if i > 0 {
			t.buf.WriteString(", ")
		}
		t.buf.WriteString(k)
		if v := values[k]; verb == "add" && v != "" {
			t.buf.WriteString(" : ")
			t.buf.WriteString(v)
		}
	}
	t.buf.WriteString(" }\n")
}
