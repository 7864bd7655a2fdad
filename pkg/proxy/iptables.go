package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"k8s.io/klog/v2"
)

// The chains of the iptables mode. Per-service chains are KUBE-SVC-*,
// KUBE-EXT-* and KUBE-SEP-* (see names.go); everything named KUBE-* in
// the nat and filter tables belongs to the proxy.
const (
	iptChainPrefix   = "KUBE-"
	iptServices      = "KUBE-SERVICES"          // nat: ClusterIP/external IP dispatch; filter: REJECTs for ClusterIPs
	iptNodePorts     = "KUBE-NODEPORTS"         // nat: NodePort dispatch
	iptPostrouting   = "KUBE-POSTROUTING"       // nat: masquerade of marked packets
	iptMarkMasq      = "KUBE-MARK-MASQ"         // nat: marks a packet for masquerade
	iptExternal      = "KUBE-EXTERNAL-SERVICES" // filter: REJECTs for NodePorts and external IPs
	iptForward       = "KUBE-FORWARD"           // filter: lets marked and established traffic through FORWARD
	iptCanary        = "KUBE-PROXY-CANARY"      // nat and filter: empty; its absence means someone flushed the tables
	iptNodePortsRule = "-A " + iptServices + ` -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j ` + iptNodePorts
)

// masqMark is the packet mark bit (upstream's --iptables-masquerade-bit
// 14) that asks KUBE-POSTROUTING / masquerading to masquerade a packet.
const masqMark = "0x4000"

// iptJump is a rule in a built-in chain that sends packets to one of the
// proxy's chains.
type iptJump struct {
	table, chain, target string
	// spec is the rule without "-A chain".
	spec string
}

// iptJumps are the proxy's hooks into the built-in chains, as upstream's.
var iptJumps = []iptJump{
	{"nat", "PREROUTING", iptServices, `-m comment --comment "kubernetes service portals" -j ` + iptServices},
	{"nat", "OUTPUT", iptServices, `-m comment --comment "kubernetes service portals" -j ` + iptServices},
	{"nat", "POSTROUTING", iptPostrouting, `-m comment --comment "kubernetes postrouting rules" -j ` + iptPostrouting},
	{"filter", "INPUT", iptExternal, `-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j ` + iptExternal},
	{"filter", "FORWARD", iptForward, `-m comment --comment "kubernetes forwarding rules" -j ` + iptForward},
	{"filter", "FORWARD", iptServices, `-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j ` + iptServices},
	{"filter", "FORWARD", iptExternal, `-m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j ` + iptExternal},
	{"filter", "OUTPUT", iptServices, `-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j ` + iptServices},
}

// iptTables are the tables the proxy writes, in restore order.
var iptTables = []string{"nat", "filter"}

// iptRender is the iptables rendering of one Service: its lines in the
// shared chains and its own chains. Immutable once built.
type iptRender struct {
	natServices, natNodePorts, filterServices, filterExternal []string
	// chains are the Service's own nat chains (SVC, EXT, SEP), by name,
	// each with its "-A" lines.
	chains map[string][]string
}

// iptablesBackend programs Services with iptables-restore. Not safe for
// concurrent use: only the sync loop calls it.
type iptablesBackend struct {
	exec        Executor
	clusterCIDR netip.Prefix

	// renders holds the rendering of every Service with rules, by
	// namespace/name.
	renders map[string]*iptRender
	// written is what the last successful restore left in the kernel:
	// table → chain → "-A" lines. nil forces the next sync to be full.
	written map[string]map[string][]string
}

func newIPTablesBackend(exec Executor, clusterCIDR netip.Prefix) *iptablesBackend {
	return &iptablesBackend{exec: exec, clusterCIDR: clusterCIDR, renders: map[string]*iptRender{}}
}

func (b *iptablesBackend) name() string { return string(ModeIPTables) }

// render builds the rules of one Service's ports, in upstream's shape.
func (b *iptablesBackend) render(ports []*servicePort) *iptRender {
	r := &iptRender{chains: map[string][]string{}}
	for _, sp := range ports {
		proto := lowerProto(sp.protocol)
		match := "-m " + proto + " -p " + proto
		svcChain := iptSvcChain(sp)
		if len(sp.endpoints) == 0 {
			// No endpoint: refuse connections at once rather than let
			// them time out (REJECT's default is icmp-port-unreachable).
			r.filterServices = append(r.filterServices, fmt.Sprintf(`-A %s -m comment --comment "%s has no endpoints" %s -d %s/32 --dport %d -j REJECT`,
				iptServices, sp.name, match, sp.clusterIP, sp.port))
			for _, ip := range sp.externalIPs {
				r.filterExternal = append(r.filterExternal, fmt.Sprintf(`-A %s -m comment --comment "%s has no endpoints" %s -d %s/32 --dport %d -j REJECT`,
					iptExternal, sp.name, match, ip, sp.port))
			}
			if sp.nodePort != 0 {
				r.filterExternal = append(r.filterExternal, fmt.Sprintf(`-A %s -m comment --comment "%s has no endpoints" -m addrtype --dst-type LOCAL %s --dport %d -j REJECT`,
					iptExternal, sp.name, match, sp.nodePort))
			}
			continue
		}

		r.natServices = append(r.natServices, fmt.Sprintf(`-A %s -m comment --comment "%s cluster IP" %s -d %s/32 --dport %d -j %s`,
			iptServices, sp.name, match, sp.clusterIP, sp.port, svcChain))
		if len(sp.externalIPs) > 0 || sp.nodePort != 0 {
			// External traffic is always masqueraded (externalTrafficPolicy
			// Cluster): the reply must come back through this node.
			extChain := iptExtChain(sp)
			r.chains[extChain] = []string{
				fmt.Sprintf(`-A %s -m comment --comment "masquerade traffic for %s external destinations" -j %s`, extChain, sp.name, iptMarkMasq),
				fmt.Sprintf(`-A %s -j %s`, extChain, svcChain),
			}
			for _, ip := range sp.externalIPs {
				r.natServices = append(r.natServices, fmt.Sprintf(`-A %s -m comment --comment "%s external IP" %s -d %s/32 --dport %d -j %s`,
					iptServices, sp.name, match, ip, sp.port, extChain))
			}
			if sp.nodePort != 0 {
				r.natNodePorts = append(r.natNodePorts, fmt.Sprintf(`-A %s -m comment --comment %s %s --dport %d -j %s`,
					iptNodePorts, sp.name, match, sp.nodePort, extChain))
			}
		}

		svc := make([]string, 0, 1+2*len(sp.endpoints))
		if b.clusterCIDR.IsValid() {
			// Traffic from outside the pod network (the node itself, or
			// a client routed here) must come back through this node.
			svc = append(svc, fmt.Sprintf(`-A %s -m comment --comment "%s cluster IP" %s -d %s/32 --dport %d ! -s %s -j %s`,
				svcChain, sp.name, match, sp.clusterIP, sp.port, b.clusterCIDR, iptMarkMasq))
		}
		seps := make([]string, len(sp.endpoints))
		for i, ep := range sp.endpoints {
			seps[i] = iptSepChain(sp, ep)
		}
		if sp.affinitySeconds > 0 {
			for i, ep := range sp.endpoints {
				svc = append(svc, fmt.Sprintf(`-A %s -m comment --comment "%s -> %s" -m recent --name %s --rcheck --seconds %d --reap -j %s`,
					svcChain, sp.name, ep, seps[i], sp.affinitySeconds, seps[i]))
			}
		}
		n := len(sp.endpoints)
		for i, ep := range sp.endpoints {
			if i < n-1 {
				// Rule i takes 1/(n-i) of what rules 0..i-1 left: a
				// uniform choice overall.
				svc = append(svc, fmt.Sprintf(`-A %s -m comment --comment "%s -> %s" -m statistic --mode random --probability %0.10f -j %s`,
					svcChain, sp.name, ep, 1.0/float64(n-i), seps[i]))
			} else {
				svc = append(svc, fmt.Sprintf(`-A %s -m comment --comment "%s -> %s" -j %s`, svcChain, sp.name, ep, seps[i]))
			}
			recent := ""
			if sp.affinitySeconds > 0 {
				recent = "-m recent --name " + seps[i] + " --set "
			}
			r.chains[seps[i]] = []string{
				// Hairpin: an endpoint reaching itself through the
				// Service must see a source other than its own address.
				fmt.Sprintf(`-A %s -m comment --comment %s -s %s/32 -j %s`, seps[i], sp.name, ep.ip, iptMarkMasq),
				fmt.Sprintf(`-A %s -m comment --comment %s %s%s -j DNAT --to-destination %s`, seps[i], sp.name, recent, match, ep),
			}
		}
		r.chains[svcChain] = svc
	}
	return r
}

// desired assembles the complete rule set: table → chain → "-A" lines.
func (b *iptablesBackend) desired() map[string]map[string][]string {
	keys := make([]string, 0, len(b.renders))
	for k := range b.renders {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	nat := map[string][]string{
		iptPostrouting: {
			"-A " + iptPostrouting + " -m mark ! --mark " + masqMark + "/" + masqMark + " -j RETURN",
			// Clear the bit so that a packet re-entering the stack (e.g.
			// through a tunnel) is not masqueraded twice.
			"-A " + iptPostrouting + " -j MARK --xor-mark " + masqMark,
			"-A " + iptPostrouting + ` -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully`,
		},
		iptMarkMasq: {"-A " + iptMarkMasq + " -j MARK --or-mark " + masqMark},
		iptCanary:   nil,
	}
	filter := map[string][]string{
		iptForward: {
			"-A " + iptForward + " -m conntrack --ctstate INVALID -j DROP",
			"-A " + iptForward + ` -m comment --comment "kubernetes forwarding rules" -m mark --mark ` + masqMark + "/" + masqMark + " -j ACCEPT",
			"-A " + iptForward + ` -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
		},
		iptCanary: nil,
	}
	var natSvc, natNP, filSvc, filExt []string
	for _, k := range keys {
		r := b.renders[k]
		natSvc = append(natSvc, r.natServices...)
		natNP = append(natNP, r.natNodePorts...)
		filSvc = append(filSvc, r.filterServices...)
		filExt = append(filExt, r.filterExternal...)
		for name, rules := range r.chains {
			nat[name] = rules
		}
	}
	nat[iptServices] = append(natSvc, iptNodePortsRule)
	nat[iptNodePorts] = natNP
	filter[iptServices] = filSvc
	filter[iptExternal] = filExt
	return map[string]map[string][]string{"nat": nat, "filter": filter}
}

// sync implements backend.
func (b *iptablesBackend) sync(ctx context.Context, services map[string][]*servicePort, changed map[string]bool, full bool) (bool, error) {
	if full || b.written == nil {
		b.renders = make(map[string]*iptRender, len(services))
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
	var buf bytes.Buffer
	for _, table := range iptTables {
		have, wantT := b.written[table], want[table]
		var write, remove []string
		for chain, rules := range wantT {
			if old, ok := have[chain]; !ok || !slices.Equal(old, rules) {
				write = append(write, chain)
			}
		}
		for chain := range have {
			if _, ok := wantT[chain]; !ok {
				remove = append(remove, chain)
			}
		}
		if len(write) == 0 && len(remove) == 0 {
			continue
		}
		slices.Sort(write)
		slices.Sort(remove)
		fmt.Fprintf(&buf, "*%s\n", table)
		// In --noflush mode declaring a chain creates or flushes it; a
		// chain is deleted after being flushed, and after the chains
		// that jumped to it are rewritten.
		for _, c := range write {
			fmt.Fprintf(&buf, ":%s - [0:0]\n", c)
		}
		for _, c := range remove {
			fmt.Fprintf(&buf, ":%s - [0:0]\n", c)
		}
		for _, c := range write {
			for _, r := range wantT[c] {
				buf.WriteString(r)
				buf.WriteByte('\n')
			}
		}
		for _, c := range remove {
			fmt.Fprintf(&buf, "-X %s\n", c)
		}
		buf.WriteString("COMMIT\n")
	}
	if buf.Len() == 0 {
		return false, nil
	}
	if err := b.restore(ctx, buf.Bytes()); err != nil {
		b.written = nil
		return false, err
	}
	b.written = want
	return false, nil
}

// fullSync rewrites every chain of the proxy, deletes KUBE-* chains it no
// longer wants (left by an earlier run or version) and repairs the jumps
// from the built-in chains.
func (b *iptablesBackend) fullSync(ctx context.Context) error {
	b.written = nil
	want := b.desired()
	var buf bytes.Buffer
	for _, table := range iptTables {
		cur, err := b.save(ctx, table)
		if err != nil {
			return err
		}
		wantT := want[table]
		chains := make([]string, 0, len(wantT))
		for c := range wantT {
			chains = append(chains, c)
		}
		slices.Sort(chains)
		var stale []string
		for c := range cur.chains {
			if _, ok := wantT[c]; !ok && strings.HasPrefix(c, iptChainPrefix) {
				stale = append(stale, c)
			}
		}
		slices.Sort(stale)
		fmt.Fprintf(&buf, "*%s\n", table)
		for _, c := range chains {
			fmt.Fprintf(&buf, ":%s - [0:0]\n", c)
		}
		for _, c := range stale {
			fmt.Fprintf(&buf, ":%s - [0:0]\n", c)
		}
		// Jumps: one of each, first in its chain when added; any other
		// jump from a built-in chain into KUBE-* goes (a leftover of
		// another version, or a duplicate).
		for _, line := range cur.jumps {
			if !slices.ContainsFunc(iptJumps, func(j iptJump) bool { return j.table == table && line == "-A "+j.chain+" "+j.spec }) {
				buf.WriteString("-D" + strings.TrimPrefix(line, "-A") + "\n")
			}
		}
		for _, j := range iptJumps {
			if j.table != table {
				continue
			}
			n := 0
			for _, line := range cur.jumps {
				if line == "-A "+j.chain+" "+j.spec {
					n++
				}
			}
			// iptables-save prints our jumps exactly as we write them
			// (checked by the real tests), so n counts them reliably.
			switch {
			case n == 0:
				fmt.Fprintf(&buf, "-I %s 1 %s\n", j.chain, j.spec)
			case n > 1:
				for range n - 1 {
					fmt.Fprintf(&buf, "-D %s %s\n", j.chain, j.spec)
				}
			}
		}
		for _, c := range chains {
			for _, r := range wantT[c] {
				buf.WriteString(r)
				buf.WriteByte('\n')
			}
		}
		for _, c := range stale {
			fmt.Fprintf(&buf, "-X %s\n", c)
		}
		buf.WriteString("COMMIT\n")
	}
	if err := b.restore(ctx, buf.Bytes()); err != nil {
		return err
	}
	b.written = want
	return nil
}

// check implements backend: it looks for the canary chains, which a
// firewall reload or `iptables -F -X` removes along with the proxy's rules.
func (b *iptablesBackend) check(ctx context.Context) (bool, error) {
	for _, table := range iptTables {
		if _, err := b.exec.Run(ctx, nil, "iptables", "-w", "5", "-t", table, "-S", iptCanary); err != nil {
			if errors.Is(err, ErrToolMissing) {
				return false, err
			}
			klog.FromContext(ctx).V(2).Info("Canary chain missing", "table", table, "err", err)
			return false, nil
		}
	}
	return true, nil
}

// iptSaved is what iptables-save shows of one table: the proxy's chains
// and the rules in built-in chains that jump to them.
type iptSaved struct {
	chains map[string]bool
	// jumps are "-A <builtin> ... -j KUBE-..." lines, verbatim.
	jumps []string
}

// save reads one table with iptables-save.
func (b *iptablesBackend) save(ctx context.Context, table string) (iptSaved, error) {
	out, err := b.exec.Run(ctx, nil, "iptables-save", "-t", table)
	if err != nil {
		return iptSaved{}, fmt.Errorf("read iptables %s table: %w", table, err)
	}
	return parseIPTablesSave(out), nil
}

// parseIPTablesSave extracts the proxy's chains and jumps from
// iptables-save output of one table.
func parseIPTablesSave(out []byte) iptSaved {
	s := iptSaved{chains: map[string]bool{}}
	for line := range strings.Lines(string(out)) {
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			if strings.HasPrefix(name, iptChainPrefix) {
				s.chains[name] = true
			}
		case strings.HasPrefix(line, "-A "):
			chain, _, _ := strings.Cut(line[3:], " ")
			if !strings.HasPrefix(chain, iptChainPrefix) && strings.Contains(line, " -j "+iptChainPrefix) {
				s.jumps = append(s.jumps, line)
			}
		}
	}
	return s
}

// restore feeds input to iptables-restore without flushing the tables, so
// that rules of other programs in the same tables stay.
func (b *iptablesBackend) restore(ctx context.Context, input []byte) error {
	klog.FromContext(ctx).V(5).Info("iptables-restore", "input", string(input))
	if _, err := b.exec.Run(ctx, input, "iptables-restore", "--noflush", "-w", "5"); err != nil {
		return fmt.Errorf("apply iptables rules: %w", err)
	}
	return nil
}

// cleanup removes the jumps and every KUBE-* chain from the nat and
// filter tables. It is idempotent and succeeds when iptables is not
// installed.
func (b *iptablesBackend) cleanup(ctx context.Context) error {
	var buf bytes.Buffer
	for _, table := range iptTables {
		cur, err := b.save(ctx, table)
		if errors.Is(err, ErrToolMissing) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(cur.chains) == 0 && len(cur.jumps) == 0 {
			continue
		}
		chains := make([]string, 0, len(cur.chains))
		for c := range cur.chains {
			chains = append(chains, c)
		}
		slices.Sort(chains)
		fmt.Fprintf(&buf, "*%s\n", table)
		for _, c := range chains {
			fmt.Fprintf(&buf, ":%s - [0:0]\n", c)
		}
		for _, line := range cur.jumps {
			buf.WriteString("-D" + strings.TrimPrefix(line, "-A") + "\n")
		}
		for _, c := range chains {
			fmt.Fprintf(&buf, "-X %s\n", c)
		}
		buf.WriteString("COMMIT\n")
	}
	b.written = nil
	b.renders = map[string]*iptRender{}
	if buf.Len() == 0 {
		return nil
	}
	return b.restore(ctx, buf.Bytes())
}

// itoa formats a port or count.
func itoa(i int32) string { return strconv.FormatInt(int64(i), 10) }
