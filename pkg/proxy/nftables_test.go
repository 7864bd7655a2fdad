package proxy

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestNFTablesFullSyncGolden(t *testing.T) {
	p, _, fx := unitProxier(t, ModeNFTables, scenario()...)
	mustSync(t, p)
	w := writes(fx.take())
	if len(w) != 1 {
		t.Fatalf("got %d writes, want 1 nft transaction: %v", len(w), w)
	}
	golden(t, "nftables-full.golden", w[0].stdin)
}

// nftLines returns the transaction's lines that start with prefix.
func nftLines(tx, prefix string) []string {
	var out []string
	for l := range strings.Lines(tx) {
		l = strings.TrimSuffix(l, "\n")
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// TestNFTablesRules checks the rules that implement each feature, in the
// shape of upstream's nftables kube-proxy.
func TestNFTablesRules(t *testing.T) {
	p, _, fx := unitProxier(t, ModeNFTables, scenario()...)
	mustSync(t, p)
	tx := writes(fx.take())[0].stdin
	has := func(t *testing.T, want ...string) {
		t.Helper()
		for _, w := range want {
			if !slices.Contains(nftLines(tx, w), w) {
				t.Errorf("missing line\n  %s", w)
			}
		}
	}
	web := buildServicePorts(newService("default", "web", "10.96.0.10"), nil)[0]
	svc := nftSvcChain(web)
	ep2, ep3 := nftEpChain(web, eps("10.244.1.2:8080")[0]), nftEpChain(web, eps("10.244.1.3:8080")[0])
	if !strings.HasPrefix(svc, "service-") || !strings.HasSuffix(svc, "-default/web/tcp/http") {
		t.Errorf("service chain name %q", svc)
	}

	t.Run("ClusterIP via verdict map and numgen", func(t *testing.T) {
		has(t,
			"add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips",
			"add rule ip kube-proxy "+svc+" ip daddr 10.96.0.10 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
			"add rule ip kube-proxy "+svc+" numgen random mod 2 vmap { 0 : goto "+ep2+" , 1 : goto "+ep3+" }",
			"add rule ip kube-proxy "+ep2+" ip saddr 10.244.1.2 jump mark-for-masquerade",
			"add rule ip kube-proxy "+ep2+" meta l4proto tcp dnat to 10.244.1.2:8080",
		)
		elems := strings.Join(nftLines(tx, "add element ip kube-proxy service-ips "), "\n")
		if !strings.Contains(elems, "10.96.0.10 . tcp . 80 : goto "+svc) {
			t.Errorf("service-ips lacks the ClusterIP: %s", elems)
		}
	})

	t.Run("NodePort", func(t *testing.T) {
		np := buildServicePorts(newService("default", "np", "10.96.0.11", withNodePort(30080)), nil)[0]
		has(t,
			"add rule ip kube-proxy services "+nftLocalDst+" meta l4proto . th dport vmap @service-nodeports",
			`add rule ip kube-proxy `+nftExtChain(np)+` jump mark-for-masquerade comment "masquerade traffic for default/np:http external destinations"`,
			"add rule ip kube-proxy "+nftExtChain(np)+" goto "+nftSvcChain(np),
			"add element ip kube-proxy service-nodeports { tcp . 30080 : goto "+nftExtChain(np)+" }",
		)
	})

	t.Run("ClientIP affinity", func(t *testing.T) {
		sticky := buildServicePorts(newService("default", "sticky", "10.96.0.12", withAffinity(600)), nil)[0]
		e := eps("10.244.1.5:8080")[0]
		set, epc := nftAffinitySet(sticky, e), nftEpChain(sticky, e)
		has(t,
			"add set ip kube-proxy "+set+" { type ipv4_addr ; flags dynamic,timeout ; timeout 600s ; }",
			"add rule ip kube-proxy "+nftSvcChain(sticky)+" ip saddr @"+set+" goto "+epc,
			"add rule ip kube-proxy "+epc+" update @"+set+" { ip saddr }",
		)
	})

	t.Run("no endpoints rejects", func(t *testing.T) {
		has(t,
			"add element ip kube-proxy no-endpoint-services { 10.96.0.13 . tcp . 80 : goto reject-chain, 192.0.2.50 . tcp . 80 : goto reject-chain }",
			"add element ip kube-proxy no-endpoint-nodeports { tcp . 30081 : goto reject-chain }",
			"add rule ip kube-proxy reject-chain reject",
			"add rule ip kube-proxy filter-output ct state new jump service-endpoints-check",
		)
	})

	t.Run("masquerade", func(t *testing.T) {
		has(t,
			"add chain ip kube-proxy nat-postrouting { type nat hook postrouting priority 100 ; policy accept ; }",
			"add rule ip kube-proxy masquerading meta mark & 0x4000 == 0 return",
			"add rule ip kube-proxy masquerading masquerade fully-random",
		)
	})
}

func TestNFTablesConvergedWritesNothing(t *testing.T) {
	p, client, fx := unitProxier(t, ModeNFTables, scenario()...)
	mustSync(t, p)
	fx.take()
	mustSync(t, p)
	updateService(t, client, p, "sticky", func(svc *corev1.Service) { svc.Annotations = map[string]string{"a": "b"} })
	if calls := fx.take(); len(calls) != 0 {
		t.Errorf("converged syncs ran commands: %v", calls)
	}
}

// TestNFTablesIncrementalEndpointChange: replacing one endpoint writes one
// transaction touching only that Service's chains and no map element.
func TestNFTablesIncrementalEndpointChange(t *testing.T) {
	p, client, fx := unitProxier(t, ModeNFTables, scenario()...)
	mustSync(t, p)
	fx.take()
	es := newSlice("default", "sticky", "a", "http", 8080, corev1.ProtocolTCP, readyEP("10.244.1.5"), readyEP("10.244.1.8"))
	updateSlice(t, client, p, es)
	w := writes(fx.take())
	if len(w) != 1 {
		t.Fatalf("got %d writes, want 1: %v", len(w), w)
	}
	sticky := buildServicePorts(newService("default", "sticky", "10.96.0.12", withAffinity(600)), nil)[0]
	e5, e6, e8 := eps("10.244.1.5:8080")[0], eps("10.244.1.6:8080")[0], eps("10.244.1.8:8080")[0]
	svc := nftSvcChain(sticky)
	want := []string{
		"add chain ip kube-proxy " + nftEpChain(sticky, e8),
		"add set ip kube-proxy " + nftAffinitySet(sticky, e8) + " { type ipv4_addr ; flags dynamic,timeout ; timeout 600s ; }",
		"flush chain ip kube-proxy " + svc,
		"flush chain ip kube-proxy " + nftEpChain(sticky, e6),
		"delete set ip kube-proxy " + nftAffinitySet(sticky, e6),
		"add rule ip kube-proxy " + nftEpChain(sticky, e8) + " ip saddr 10.244.1.8 jump mark-for-masquerade",
		"add rule ip kube-proxy " + nftEpChain(sticky, e8) + " update @" + nftAffinitySet(sticky, e8) + " { ip saddr }",
		"add rule ip kube-proxy " + nftEpChain(sticky, e8) + " meta l4proto tcp dnat to 10.244.1.8:8080",
		"add rule ip kube-proxy " + svc + " ip daddr 10.96.0.12 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
		"add rule ip kube-proxy " + svc + " ip saddr @" + nftAffinitySet(sticky, e5) + " goto " + nftEpChain(sticky, e5),
		"add rule ip kube-proxy " + svc + " ip saddr @" + nftAffinitySet(sticky, e8) + " goto " + nftEpChain(sticky, e8),
		"add rule ip kube-proxy " + svc + " numgen random mod 2 vmap { 0 : goto " + nftEpChain(sticky, e5) + " , 1 : goto " + nftEpChain(sticky, e8) + " }",
		"delete chain ip kube-proxy " + nftEpChain(sticky, e6),
	}
	got := strings.Split(strings.TrimSuffix(w[0].stdin, "\n"), "\n")
	// Rules of one chain are in order; chains are sorted by name, which
	// the hashes make arbitrary: compare the rules per chain, the rest as
	// a sequence.
	if diff := cmp.Diff(want, got, cmp.Transformer("sortRules", func(in []string) []string {
		out := slices.Clone(in)
		slices.SortStableFunc(out, func(a, b string) int { return strings.Compare(verb(a), verb(b)) })
		return out
	})); diff != "" {
		t.Errorf("transaction (-want +got):\n%s", diff)
	}

	// A Service losing its endpoints moves its keys from service-ips to
	// no-endpoint-services, in one transaction.
	if err := client.DiscoveryV1().EndpointSlices("default").Delete(context.Background(), "web-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitDirty(t, p, "default/web")
	mustSync(t, p)
	tx := writes(fx.take())[0].stdin
	for _, wantLine := range []string{
		"delete element ip kube-proxy service-ips { 10.96.0.10 . tcp . 80 }",
		"add element ip kube-proxy no-endpoint-services { 10.96.0.10 . tcp . 80 : goto reject-chain }",
	} {
		if !strings.Contains(tx, wantLine+"\n") {
			t.Errorf("missing %q in\n%s", wantLine, tx)
		}
	}
	if strings.Index(tx, "delete element") > strings.Index(tx, "delete chain") {
		t.Errorf("chains deleted before the elements that refer to them:\n%s", tx)
	}
}

// verb is the kind of an nft command, for order-insensitive comparison
// within a kind.
func verb(line string) string {
	f := strings.Fields(line)
	if len(f) < 2 {
		return line
	}
	return f[0] + " " + f[1]
}

// TestNFTablesFullSyncDeletesStale: a full sync deletes chains and sets
// of the table it no longer wants, after flushing the rules that use them.
func TestNFTablesFullSyncDeletesStale(t *testing.T) {
	p, _, fx := unitProxier(t, ModeNFTables)
	fx.nftList["chains"] = `{"nftables": [{"metainfo": {}}, {"chain": {"family": "ip", "table": "kube-proxy", "name": "service-OLD-x/y/tcp/p80"}}, {"chain": {"family": "ip", "table": "other", "name": "keep"}}]}`
	fx.nftList["sets"] = `{"nftables": [{"set": {"family": "ip", "table": "kube-proxy", "name": "affinity-OLD"}}, {"set": {"family": "ip", "table": "kube-proxy", "name": "cluster-ips"}}]}`
	mustSync(t, p)
	tx := writes(fx.take())[0].stdin
	flush := strings.Index(tx, "flush table ip kube-proxy\n")
	delChain := strings.Index(tx, "delete chain ip kube-proxy service-OLD-x/y/tcp/p80\n")
	delSet := strings.Index(tx, "delete set ip kube-proxy affinity-OLD\n")
	if flush < 0 || delChain < flush || delSet < flush {
		t.Errorf("stale objects not deleted after the flush:\n%s", tx)
	}
	if strings.Contains(tx, "keep") || strings.Contains(tx, "delete set ip kube-proxy cluster-ips") {
		t.Errorf("deleted something it should keep:\n%s", tx)
	}
}
