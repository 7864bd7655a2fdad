package proxy

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// scenario is the set of Services the golden tests render: a ClusterIP
// with two endpoints, a NodePort, ClientIP affinity, a Service without
// endpoints (NodePort and external IP too) and a UDP one.
func scenario() []runtime.Object {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	return []runtime.Object{
		newService("default", "web", "10.96.0.10"),
		newSlice("default", "web", "a", "http", 8080, tcp, readyEP("10.244.1.2"), readyEP("10.244.1.3"), ep{ip: "10.244.1.9"}),
		newService("default", "np", "10.96.0.11", withNodePort(30080)),
		newSlice("default", "np", "a", "http", 8080, tcp, readyEP("10.244.1.4")),
		newService("default", "sticky", "10.96.0.12", withAffinity(600)),
		newSlice("default", "sticky", "a", "http", 8080, tcp, readyEP("10.244.1.5"), readyEP("10.244.1.6")),
		newService("default", "empty", "10.96.0.13", withNodePort(30081), withExternalIPs("192.0.2.50")),
		newService("kube-system", "dns", "10.96.0.53", withPorts(corev1.ServicePort{Name: "dns", Port: 53, Protocol: udp})),
		newSlice("kube-system", "dns", "a", "dns", 53, udp, readyEP("10.244.2.2")),
	}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got); rerun with -update if the change is intended:\n%s", name, diff)
	}
}

func TestIPTablesFullSyncGolden(t *testing.T) {
	p, _, fx := unitProxier(t, ModeIPTables, scenario()...)
	mustSync(t, p)
	w := writes(fx.take())
	if len(w) != 1 {
		t.Fatalf("got %d writes, want 1 iptables-restore: %v", len(w), w)
	}
	if got := strings.Join(w[0].args, " "); got != "--noflush -w 5" {
		t.Errorf("iptables-restore args %q, want --noflush (never flush other programs' rules)", got)
	}
	golden(t, "iptables-full.golden", w[0].stdin)
}

// TestIPTablesRules checks the rules that implement each feature, in
// upstream's shape.
func TestIPTablesRules(t *testing.T) {
	p, _, fx := unitProxier(t, ModeIPTables, scenario()...)
	mustSync(t, p)
	r := parseRestore(t, writes(fx.take())[0].stdin)
	nat, filter := r.lines["nat"], r.lines["filter"]

	web := buildServicePorts(newService("default", "web", "10.96.0.10"), nil)[0]
	svcWeb := iptSvcChain(web)
	contains := func(t *testing.T, lines []string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !slices.Contains(lines, w) {
				t.Errorf("missing rule\n  %s\nin\n  %s", w, strings.Join(lines, "\n  "))
			}
		}
	}

	t.Run("ClusterIP dispatch and random balancing", func(t *testing.T) {
		contains(t, nat[iptServices],
			`-A KUBE-SERVICES -m comment --comment "default/web:http cluster IP" -m tcp -p tcp -d 10.96.0.10/32 --dport 80 -j `+svcWeb)
		sep2 := iptSepChain(web, eps("10.244.1.2:8080")[0])
		sep3 := iptSepChain(web, eps("10.244.1.3:8080")[0])
		want := []string{
			`-A ` + svcWeb + ` -m comment --comment "default/web:http cluster IP" -m tcp -p tcp -d 10.96.0.10/32 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ`,
			`-A ` + svcWeb + ` -m comment --comment "default/web:http -> 10.244.1.2:8080" -m statistic --mode random --probability 0.5000000000 -j ` + sep2,
			`-A ` + svcWeb + ` -m comment --comment "default/web:http -> 10.244.1.3:8080" -j ` + sep3,
		}
		if diff := cmp.Diff(want, nat[svcWeb]); diff != "" {
			t.Errorf("%s (-want +got):\n%s", svcWeb, diff)
		}
		if diff := cmp.Diff([]string{
			`-A ` + sep2 + ` -m comment --comment default/web:http -s 10.244.1.2/32 -j KUBE-MARK-MASQ`,
			`-A ` + sep2 + ` -m comment --comment default/web:http -m tcp -p tcp -j DNAT --to-destination 10.244.1.2:8080`,
		}, nat[sep2]); diff != "" {
			t.Errorf("%s (hairpin masquerade, DNAT) (-want +got):\n%s", sep2, diff)
		}
		if strings.Contains(strings.Join(nat[svcWeb], "\n"), "10.244.1.9") {
			t.Error("a not-ready endpoint got rules")
		}
	})

	t.Run("NodePort", func(t *testing.T) {
		np := buildServicePorts(newService("default", "np", "10.96.0.11", withNodePort(30080)), nil)[0]
		ext := iptExtChain(np)
		contains(t, nat[iptNodePorts], `-A KUBE-NODEPORTS -m comment --comment default/np:http -m tcp -p tcp --dport 30080 -j `+ext)
		contains(t, nat[ext],
			`-A `+ext+` -m comment --comment "masquerade traffic for default/np:http external destinations" -j KUBE-MARK-MASQ`,
			`-A `+ext+` -j `+iptSvcChain(np))
		if last := nat[iptServices][len(nat[iptServices])-1]; last != iptNodePortsRule {
			t.Errorf("last rule of KUBE-SERVICES is %q, want the NodePort jump", last)
		}
	})

	t.Run("ClientIP affinity", func(t *testing.T) {
		sticky := buildServicePorts(newService("default", "sticky", "10.96.0.12", withAffinity(600)), nil)[0]
		e5 := eps("10.244.1.5:8080")[0]
		sep := iptSepChain(sticky, e5)
		contains(t, nat[iptSvcChain(sticky)],
			`-A `+iptSvcChain(sticky)+` -m comment --comment "default/sticky:http -> 10.244.1.5:8080" -m recent --name `+sep+` --rcheck --seconds 600 --reap -j `+sep)
		contains(t, nat[sep], `-A `+sep+` -m comment --comment default/sticky:http -m recent --name `+sep+` --set -m tcp -p tcp -j DNAT --to-destination 10.244.1.5:8080`)
		// The affinity checks come before the random choice.
		rules := nat[iptSvcChain(sticky)]
		if !strings.Contains(rules[1], "--rcheck") || !strings.Contains(rules[len(rules)-1], "-j KUBE-SEP-") || strings.Contains(rules[len(rules)-1], "recent") {
			t.Errorf("affinity rules out of order:\n%s", strings.Join(rules, "\n"))
		}
	})

	t.Run("no endpoints rejects", func(t *testing.T) {
		contains(t, filter[iptServices],
			`-A KUBE-SERVICES -m comment --comment "default/empty:http has no endpoints" -m tcp -p tcp -d 10.96.0.13/32 --dport 80 -j REJECT`)
		contains(t, filter[iptExternal],
			`-A KUBE-EXTERNAL-SERVICES -m comment --comment "default/empty:http has no endpoints" -m tcp -p tcp -d 192.0.2.50/32 --dport 80 -j REJECT`,
			`-A KUBE-EXTERNAL-SERVICES -m comment --comment "default/empty:http has no endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30081 -j REJECT`)
		for _, l := range nat[iptServices] {
			if strings.Contains(l, "10.96.0.13") {
				t.Errorf("a Service without endpoints has a nat rule: %s", l)
			}
		}
	})

	t.Run("jumps from the built-in chains", func(t *testing.T) {
		for _, j := range iptJumps {
			want := "-I " + j.chain + " 1 " + j.spec
			if !slices.Contains(r.lines[j.table][j.chain], want) {
				t.Errorf("%s: missing %q", j.table, want)
			}
		}
		contains(t, nat[iptPostrouting], `-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully`)
	})
}

// TestIPTablesConvergedWritesNothing: a sync without changes, and a
// Service event that changes no rule, write nothing.
func TestIPTablesConvergedWritesNothing(t *testing.T) {
	p, client, fx := unitProxier(t, ModeIPTables, scenario()...)
	mustSync(t, p)
	fx.take()
	mustSync(t, p)
	if w := writes(fx.take()); len(w) != 0 {
		t.Errorf("converged sync wrote %v", w)
	}
	// A label change is an event but no rule change.
	updateService(t, client, p, "web", func(svc *corev1.Service) { svc.Labels = map[string]string{"touched": "yes"} })
	if calls := fx.take(); len(calls) != 0 {
		t.Errorf("a no-op Service update ran commands: %v", calls)
	}
}

// TestIPTablesIncrementalEndpointChange: one endpoint replaced in one
// Service rewrites that Service's SVC chain, adds the new SEP chain and
// deletes the old one, and touches nothing else.
func TestIPTablesIncrementalEndpointChange(t *testing.T) {
	p, client, fx := unitProxier(t, ModeIPTables, scenario()...)
	mustSync(t, p)
	fx.take()

	es := newSlice("default", "web", "a", "http", 8080, corev1.ProtocolTCP, readyEP("10.244.1.2"), readyEP("10.244.1.7"))
	updateSlice(t, client, p, es)
	w := writes(fx.take())
	if len(w) != 1 {
		t.Fatalf("got %d writes, want 1: %v", len(w), w)
	}
	web := buildServicePorts(newService("default", "web", "10.96.0.10"), nil)[0]
	svcChain := iptSvcChain(web)
	oldSep := iptSepChain(web, eps("10.244.1.3:8080")[0])
	newSep := iptSepChain(web, eps("10.244.1.7:8080")[0])
	r := parseRestore(t, w[0].stdin)
	wantDeclared := []string{svcChain, newSep, oldSep}
	slices.Sort(wantDeclared[:2])
	if diff := cmp.Diff(map[string][]string{"nat": wantDeclared}, r.declared); diff != "" {
		t.Errorf("declared chains (-want +got):\n%s\ninput:\n%s", diff, w[0].stdin)
	}
	if got := r.lines["nat"][oldSep]; !slices.Equal(got, []string{"-X " + oldSep}) {
		t.Errorf("old endpoint chain: got %v, want only its deletion", got)
	}
	if len(r.lines["nat"][svcChain]) != 3 || len(r.lines["nat"][newSep]) != 2 {
		t.Errorf("rewritten chains:\n%s", w[0].stdin)
	}
	if strings.Contains(w[0].stdin, "*filter") {
		t.Errorf("the filter table was written:\n%s", w[0].stdin)
	}

	// The last endpoint going away turns the Service into a REJECT:
	// KUBE-SERVICES of both tables change, the Service's chains go.
	es.Endpoints = nil
	updateSlice(t, client, p, es)
	r = parseRestore(t, writes(fx.take())[0].stdin)
	if !slices.Contains(r.lines["filter"][iptServices], `-A KUBE-SERVICES -m comment --comment "default/web:http has no endpoints" -m tcp -p tcp -d 10.96.0.10/32 --dport 80 -j REJECT`) {
		t.Errorf("no REJECT after the last endpoint went: %v", r.lines["filter"])
	}
	for _, c := range []string{svcChain, newSep, iptSepChain(web, eps("10.244.1.2:8080")[0])} {
		if got := r.lines["nat"][c]; !slices.Equal(got, []string{"-X " + c}) {
			t.Errorf("chain %s: got %v, want its deletion", c, got)
		}
	}

	// Deleting the Service removes its REJECT.
	if err := client.CoreV1().Services("default").Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitDirty(t, p, "default/web")
	mustSync(t, p)
	in := writes(fx.take())[0].stdin
	if strings.Contains(in, "default/web") || !strings.Contains(in, ":KUBE-SERVICES") {
		t.Errorf("after deleting the Service:\n%s", in)
	}
}

// TestIPTablesFullSyncRepairs: a full sync deletes stale SKIFF chains and
// duplicate or foreign jumps found by iptables-save, and adds only the
// missing jumps.
func TestIPTablesFullSyncRepairs(t *testing.T) {
	p, _, fx := unitProxier(t, ModeIPTables)
	fx.saved["nat"] = `*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-STALESTALESTALE - [0:0]
:OTHER-SERVICES - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -j KUBE-OLD
-A OUTPUT -j OTHER-SERVICES
COMMIT
`
	mustSync(t, p)
	r := parseRestore(t, writes(fx.take())[0].stdin)
	nat := r.lines["nat"]
	if !slices.Contains(nat["KUBE-SVC-STALESTALESTALE"], "-X KUBE-SVC-STALESTALESTALE") {
		t.Errorf("stale chain not deleted: %v", nat)
	}
	if slices.Contains(r.declared["nat"], "OTHER-SERVICES") {
		t.Error("a chain of another program was touched")
	}
	wantOutput := []string{
		"-D OUTPUT -j KUBE-OLD",
		`-D OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
	}
	if diff := cmp.Diff(wantOutput, nat["OUTPUT"]); diff != "" {
		t.Errorf("OUTPUT (-want +got):\n%s", diff)
	}
	if len(nat["PREROUTING"]) != 0 {
		t.Errorf("PREROUTING jump exists, yet: %v", nat["PREROUTING"])
	}
	if !slices.Contains(nat["POSTROUTING"], "-I POSTROUTING 1 "+iptJumps[2].spec) {
		t.Errorf("POSTROUTING jump not added: %v", nat["POSTROUTING"])
	}
}

// TestIPTablesFailedRestoreForcesFullSync: after a failed write the proxy
// no longer trusts its model and rewrites everything.
func TestIPTablesFailedRestoreForcesFullSync(t *testing.T) {
	p, client, fx := unitProxier(t, ModeIPTables, scenario()...)
	mustSync(t, p)
	fx.take()
	fx.fail["iptables-restore"] = "iptables-restore: line 3 failed"
	if err := client.CoreV1().Services("default").Delete(context.Background(), "np", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitDirty(t, p, "default/np")
	if err := p.syncOnce(context.Background()); err == nil {
		t.Fatal("sync succeeded despite the failing restore")
	}
	fx.take()
	delete(fx.fail, "iptables-restore")
	mustSync(t, p)
	calls := fx.take()
	if len(writes(calls)) != 1 || !slices.ContainsFunc(calls, func(c fakeCall) bool { return c.name == "iptables-save" }) {
		t.Fatalf("want a full sync (iptables-save, then one restore), got %v", calls)
	}
	if in := writes(calls)[0].stdin; strings.Contains(in, "default/np") || !strings.Contains(in, "default/web") {
		t.Errorf("full sync content wrong:\n%s", in)
	}
}
