//go:build linux

package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// modeTools are the programs each mode needs.
var modeTools = map[Mode][]string{
	ModeIPTables: {"iptables-save", "iptables-restore"},
	ModeNFTables: {"nft"},
}

// TestRealProxy runs the proxier of each mode against a real kernel, in
// namespaces of its own, and checks the traffic.
func TestRealProxy(t *testing.T) {
	for _, mode := range []Mode{ModeIPTables, ModeNFTables} {
		t.Run(string(mode), func(t *testing.T) {
			requireRealNet(t, append(modeTools[mode], "conntrack")...)
			testRealProxy(t, mode)
		})
	}
}

func testRealProxy(t *testing.T, mode Mode) {
	ctx := context.Background()
	n := newTestNet(t)
	serveEcho(t, n.pod1, testPod1IP)
	serveEcho(t, n.pod2, testPod2IP)
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	client := fake.NewClientset(
		newService("default", "web", "10.96.0.10", withPorts(corev1.ServicePort{Name: "http", Port: 80, NodePort: 30080}),
			func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort }),
		newSlice("default", "web", "a", "http", testEchoPort, tcp, readyEP(testPod1IP), readyEP(testPod2IP)),
		newService("default", "sticky", "10.96.0.12", withAffinity(300)),
		newSlice("default", "sticky", "a", "http", testEchoPort, tcp, readyEP(testPod1IP), readyEP(testPod2IP)),
		newService("default", "solo", "10.96.0.14"),
		newSlice("default", "solo", "a", "http", testEchoPort, tcp, readyEP(testPod2IP)),
		newService("default", "empty", "10.96.0.13", withNodePort(30081)),
		newService("kube-system", "dns", "10.96.0.53", withPorts(corev1.ServicePort{Name: "dns", Port: 53, Protocol: udp})),
		newSlice("kube-system", "dns", "a", "dns", testUDPPort, udp, readyEP(testPod1IP)),
	)
	cfg := Config{Client: client, NodeName: "node-a", Mode: mode, ClusterCIDR: netip.MustParsePrefix(testPodCIDR)}
	stop := runProxier(t, n, cfg)

	t.Run("ClusterIP balances over the ready endpoints", func(t *testing.T) {
		// Dials before the first sync would wait for ARP replies that
		// never come: wait for the rules instead.
		eventually(t, "first sync", func() error {
			args := []string{"ip", "netns", "exec", n.node, "iptables-save", "-t", "nat"}
			if mode == ModeNFTables {
				args = []string{"ip", "netns", "exec", n.node, "nft", "list", "ruleset"}
			}
			out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "default/web") {
				return fmt.Errorf("no rules yet: %v", err)
			}
			return nil
		})
		seen := map[string]int{}
		for range 40 {
			ep, _, err := dialTCP(n.node, "", "10.96.0.10:80")
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			seen[ep]++
		}
		// 40 uniform picks all landing on one of two endpoints has
		// probability 2^-39.
		if seen[testPod1IP] == 0 || seen[testPod2IP] == 0 {
			t.Errorf("connections per endpoint: %v, want both used", seen)
		}
	})

	t.Run("traffic from outside the cluster CIDR is masqueraded", func(t *testing.T) {
		// The node's connection leaves from 192.168.77.1: the endpoint
		// must see the node's address on its link instead.
		_, from, err := dialTCP(n.node, "", "10.96.0.14:80")
		if err != nil {
			t.Fatal(err)
		}
		if from != testGateway {
			t.Errorf("endpoint saw client %s, want the masqueraded %s", from, testGateway)
		}
		// A pod's connection keeps its source.
		_, from, err = dialTCP(n.pod1, "", "10.96.0.14:80")
		if err != nil {
			t.Fatal(err)
		}
		if from != testPod1IP {
			t.Errorf("endpoint saw pod client as %s, want %s (not masqueraded)", from, testPod1IP)
		}
	})

	t.Run("hairpin: an endpoint reaching itself is masqueraded", func(t *testing.T) {
		// Without masquerade pod2 would receive a packet from its own
		// address and drop it as a martian.
		ep, from, err := dialTCP(n.pod2, "", "10.96.0.14:80")
		if err != nil {
			t.Fatal(err)
		}
		if ep != testPod2IP || from != testGateway {
			t.Errorf("hairpin: endpoint %s saw %s, want %s seeing %s", ep, from, testPod2IP, testGateway)
		}
	})

	t.Run("NodePort on the node's addresses", func(t *testing.T) {
		for _, c := range []struct{ ns, addr string }{
			{n.node, testNodeIP + ":30080"},  // local client, OUTPUT
			{n.node, testGateway + ":30080"}, // any local address
			{n.pod1, testGateway + ":30080"}, // from outside the node, PREROUTING
		} {
			ep, _, err := dialTCP(c.ns, "", c.addr)
			if err != nil {
				t.Errorf("dial %s from %s: %v", c.addr, c.ns, err)
			} else if ep != testPod1IP && ep != testPod2IP {
				t.Errorf("dial %s: answered by %s", c.addr, ep)
			}
		}
	})

	t.Run("ClientIP affinity sticks", func(t *testing.T) {
		first, _, err := dialTCP(n.node, "", "10.96.0.12:80")
		if err != nil {
			t.Fatal(err)
		}
		for range 15 {
			ep, _, err := dialTCP(n.node, "", "10.96.0.12:80")
			if err != nil {
				t.Fatal(err)
			}
			if ep != first {
				t.Fatalf("affinity broken: %s after %s", ep, first)
			}
		}
	})

	t.Run("no endpoints refuses connections at once", func(t *testing.T) {
		for _, addr := range []string{"10.96.0.13:80", testNodeIP + ":30081"} {
			_, _, err := dialTCP(n.node, "", addr)
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("dial %s: %v, want connection refused", addr, err)
			}
		}
		_, _, err := dialTCP(n.pod1, "", "10.96.0.13:80")
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dial from a pod: %v, want connection refused", err)
		}
	})

	t.Run("endpoint becoming ready and going away", func(t *testing.T) {
		es := newSlice("default", "empty", "a", "http", testEchoPort, tcp, readyEP(testPod1IP))
		if _, err := client.DiscoveryV1().EndpointSlices("default").Create(ctx, es, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "new endpoint reachable", func() error {
			_, _, err := dialTCP(n.node, "", "10.96.0.13:80")
			return err
		})
		es.Endpoints[0].Conditions.Ready = new(false)
		es.Endpoints[0].Conditions.Serving = new(false)
		if _, err := client.DiscoveryV1().EndpointSlices("default").Update(ctx, es, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "refused again", func() error {
			_, _, err := dialTCP(n.node, "", "10.96.0.13:80")
			if errors.Is(err, syscall.ECONNREFUSED) {
				return nil
			}
			return fmt.Errorf("dial: %v", err)
		})
	})

	t.Run("UDP fails over when its endpoint is replaced", func(t *testing.T) {
		// One client socket, like a resolver reusing its port: only the
		// conntrack flush lets it reach the new endpoint.
		var conn net.PacketConn
		if err := inNetns(n.node, func() error {
			var err error
			conn, err = net.ListenPacket("udp", testNodeIP+":0")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		vip := &net.UDPAddr{IP: net.ParseIP("10.96.0.53"), Port: 53}
		ask := func() (string, error) {
			if _, err := conn.WriteTo([]byte("q"), vip); err != nil {
				return "", err
			}
			_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			buf := make([]byte, 128)
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return "", err
			}
			return strings.Fields(string(buf[:n]))[0], nil
		}
		eventually(t, "UDP via ClusterIP", func() error {
			ep, err := ask()
			if err == nil && ep != testPod1IP {
				err = fmt.Errorf("answered by %s", ep)
			}
			return err
		})
		es := newSlice("kube-system", "dns", "a", "dns", testUDPPort, udp, readyEP(testPod2IP))
		if _, err := client.DiscoveryV1().EndpointSlices("kube-system").Update(ctx, es, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "UDP answered by the new endpoint", func() error {
			ep, err := ask()
			if err == nil && ep != testPod2IP {
				err = fmt.Errorf("still answered by %s", ep)
			}
			return err
		})
	})

	t.Run("deleting a Service removes its rules", func(t *testing.T) {
		if err := client.CoreV1().Services("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "rules of default/web gone", func() error {
			if dump := ruleDump(t, n, mode); strings.Contains(dump, "default/web") {
				return fmt.Errorf("still present:\n%s", dump)
			}
			return nil
		})
		if dump := ruleDump(t, n, mode); !strings.Contains(dump, "default/solo") {
			t.Errorf("other Services' rules went too:\n%s", dump)
		}
	})

	t.Run("a restart converges without duplicates", func(t *testing.T) {
		before := ruleDump(t, n, mode)
		stop()
		stop = runProxier(t, n, cfg)
		// The new proxier's first (full) sync rewrote everything; the
		// kernel must show the same rules, jumps not duplicated.
		eventually(t, "same rules after restart", func() error {
			if after := ruleDump(t, n, mode); after != before {
				return fmt.Errorf("rules differ:\n--- before\n%s\n--- after\n%s", before, after)
			}
			return nil
		})
		if _, _, err := dialTCP(n.node, "", "10.96.0.14:80"); err != nil {
			t.Errorf("after restart: %v", err)
		}
	})

	t.Run("Cleanup removes everything and is idempotent", func(t *testing.T) {
		stop()
		exec := NewExecutor(ExecOptions{Netns: n.node})
		for i := range 2 {
			if err := Cleanup(ctx, Config{Executor: exec}); err != nil {
				t.Fatalf("Cleanup #%d: %v", i+1, err)
			}
		}
		if out := nsRun(t, n.node, "iptables-save"); strings.Contains(out, "SKIFF") {
			t.Errorf("iptables leftovers:\n%s", out)
		}
		if out := nsRun(t, n.node, "nft", "list", "ruleset"); strings.Contains(out, "SKIFF") || strings.Contains(out, nftTable) {
			t.Errorf("nft leftovers:\n%s", out)
		}
		_, _, err := dialTCP(n.node, "", "10.96.0.14:80")
		if err == nil {
			t.Error("the ClusterIP still answers after Cleanup")
		}
	})
}

var expiresRE = regexp.MustCompile(` expires [0-9hms]+`)

// ruleDump returns the proxy's rules in the node namespace, without
// counters, for comparisons.
func ruleDump(t *testing.T, n *testNet, mode Mode) string {
	t.Helper()
	if mode == ModeNFTables {
		// Chains list in creation order and affinity entries count down:
		// compare the sorted lines, without the timers.
		out := nsRun(t, n.node, "nft", "list", "table", "ip", nftTable)
		lines := strings.Split(expiresRE.ReplaceAllString(out, ""), "\n")
		slices.Sort(lines)
		return strings.Join(lines, "\n")
	}
	var b strings.Builder
	for _, table := range []string{"nat", "filter"} {
		for l := range strings.Lines(nsRun(t, n.node, "iptables-save", "-t", table)) {
			if strings.HasPrefix(l, "#") {
				continue
			}
			b.WriteString(l)
		}
	}
	return b.String()
}

// TestRealModeSwitch: starting one mode removes what the other left.
func TestRealModeSwitch(t *testing.T) {
	requireRealNet(t, "iptables-save", "iptables-restore", "nft")
	n := newTestNet(t)
	serveEcho(t, n.pod1, testPod1IP)
	client := fake.NewClientset(
		newService("default", "web", "10.96.0.10"),
		newSlice("default", "web", "a", "http", testEchoPort, corev1.ProtocolTCP, readyEP(testPod1IP)),
	)
	cfg := Config{Client: client, Mode: ModeIPTables}
	stop := runProxier(t, n, cfg)
	eventually(t, "iptables mode serves", func() error { _, _, err := dialTCP(n.node, "", "10.96.0.10:80"); return err })
	stop()
	cfg.Mode = ModeNFTables
	runProxier(t, n, cfg)
	eventually(t, "iptables leftovers removed", func() error {
		if out := nsRun(t, n.node, "iptables-save"); strings.Contains(out, "SKIFF") {
			return fmt.Errorf("still there:\n%s", out)
		}
		return nil
	})
	eventually(t, "nftables mode serves", func() error {
		if !strings.Contains(nsRun(t, n.node, "nft", "list", "tables"), nftTable) {
			return errors.New("no table yet")
		}
		_, _, err := dialTCP(n.node, "", "10.96.0.10:80")
		return err
	})
}

// TestRealNodeRoutes: routes to the other Nodes' pod ranges follow the
// Nodes, skipping this node, unreachable and local addresses.
func TestRealNodeRoutes(t *testing.T) {
	requireRealNet(t, "iptables-save", "iptables-restore")
	n := newTestNet(t)
	node := func(name, ip string, cidrs ...string) *corev1.Node {
		return &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       corev1.NodeSpec{PodCIDR: cidrs[0], PodCIDRs: cidrs},
			Status:     corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}},
		}
	}
	client := fake.NewClientset(
		node("node-a", testNodeIP, "10.245.0.0/24"),    // this node
		node("node-b", testPod1IP, "10.245.1.0/24"),    // reachable on vna
		node("node-c", "203.0.113.9", "10.245.2.0/24"), // no connected route
		node("node-d", testGateway, "10.245.3.0/24"),   // a local address: same host
		node("node-e", testPod2IP, "10.245.4.0/24", "fd00:1::/64"),
	)
	stop := runProxier(t, n, Config{Client: client, NodeName: "node-a", NodeRoutes: true})
	ours := func() string { return nsRun(t, n.node, "ip", "-4", "route", "show", "proto", routeProto) }
	want := "10.245.1.0/24 via 10.244.1.10 dev vna \n10.245.4.0/24 via 10.244.1.11 dev vnb \n"
	eventually(t, "routes installed", func() error {
		if got := ours(); got != want {
			return fmt.Errorf("routes:\n%s\nwant:\n%s", got, want)
		}
		return nil
	})
	ctx := context.Background()
	if err := client.CoreV1().Nodes().Delete(ctx, "node-b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "route of the deleted node removed", func() error {
		if got := ours(); got != "10.245.4.0/24 via 10.244.1.11 dev vnb \n" {
			return fmt.Errorf("routes:\n%s", got)
		}
		return nil
	})
	stop()
	if err := Cleanup(ctx, Config{Executor: NewExecutor(ExecOptions{Netns: n.node})}); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if got := ours(); got != "" {
		t.Errorf("routes after Cleanup:\n%s", got)
	}
	// The connected routes the test made are untouched.
	if !strings.Contains(nsRun(t, n.node, "ip", "route"), "10.96.0.0/12 dev vna") {
		t.Error("Cleanup removed a route it does not own")
	}
}
