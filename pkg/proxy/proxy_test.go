package proxy

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
)

func conntrackCalls(calls []fakeCall) []string {
	var out []string
	for _, c := range calls {
		if c.name == "conntrack" {
			out = append(out, strings.Join(c.args, " "))
		}
	}
	return out
}

// TestConntrackFlushOnUDPEndpointChange: a UDP endpoint going away flushes
// its flows after the rules changed; a UDP Service getting its first
// endpoint flushes the flows to its VIP; TCP changes flush nothing.
func TestConntrackFlushOnUDPEndpointChange(t *testing.T) {
	p, client, fx := unitProxier(t, ModeIPTables, scenario()...)
	mustSync(t, p)
	// The first sync saw the dns Service appear with an endpoint.
	if got, want := conntrackCalls(fx.take()), []string{"-D -p udp --orig-dst 10.96.0.53 --orig-port-dst 53"}; !slices.Equal(got, want) {
		t.Errorf("first sync conntrack calls %q, want %q", got, want)
	}

	es := newSlice("kube-system", "dns", "a", "dns", 53, corev1.ProtocolUDP, readyEP("10.244.2.3"))
	if _, err := client.DiscoveryV1().EndpointSlices("kube-system").Update(context.Background(), es, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitDirty(t, p, "kube-system/dns")
	mustSync(t, p)
	calls := fx.take()
	want := []string{"-D -p udp --orig-dst 10.96.0.53 --orig-port-dst 53 --dst-nat 10.244.2.2"}
	if got := conntrackCalls(calls); !slices.Equal(got, want) {
		t.Errorf("conntrack calls %q, want %q", got, want)
	}
	if i := slices.IndexFunc(calls, func(c fakeCall) bool { return c.name == "conntrack" }); i >= 0 && !slices.ContainsFunc(calls[:i], func(c fakeCall) bool { return c.name == "iptables-restore" }) {
		t.Error("conntrack flushed before the rules changed")
	}

	// TCP endpoints: no flush.
	es = newSlice("default", "web", "a", "http", 8080, corev1.ProtocolTCP, readyEP("10.244.1.2"))
	updateSlice(t, client, p, es)
	if got := conntrackCalls(fx.take()); len(got) != 0 {
		t.Errorf("TCP change flushed conntrack: %q", got)
	}
}

func TestConntrackFlushes(t *testing.T) {
	np := func(endpoints ...string) []*servicePort {
		sp := buildServicePorts(newService("ns", "d", "10.96.0.53", withExternalIPs("192.0.2.1"),
			withPorts(corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, NodePort: 30053}),
			func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort }), nil)
		sp[0].endpoints = eps(endpoints...)
		return sp
	}
	got := conntrackFlushes(np("10.244.0.1:53", "10.244.0.2:53"), np("10.244.0.2:53"))
	want := [][]string{
		{"-D", "-p", "udp", "--orig-dst", "10.96.0.53", "--orig-port-dst", "53", "--dst-nat", "10.244.0.1"},
		{"-D", "-p", "udp", "--orig-dst", "192.0.2.1", "--orig-port-dst", "53", "--dst-nat", "10.244.0.1"},
		{"-D", "-p", "udp", "--orig-port-dst", "30053", "--dst-nat", "10.244.0.1"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("removed endpoint (-want +got):\n%s", diff)
	}
	got = conntrackFlushes(np(), np("10.244.0.2:53"))
	want = [][]string{
		{"-D", "-p", "udp", "--orig-dst", "10.96.0.53", "--orig-port-dst", "53"},
		{"-D", "-p", "udp", "--orig-dst", "192.0.2.1", "--orig-port-dst", "53"},
		{"-D", "-p", "udp", "--orig-port-dst", "30053"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("first endpoint (-want +got):\n%s", diff)
	}
	if got := conntrackFlushes(np("10.244.0.2:53"), np("10.244.0.2:53")); len(got) != 0 {
		t.Errorf("no change flushed %v", got)
	}
}

// TestConntrackMissingIsNotFatal: without conntrack the sync succeeds and
// the tool is not tried again.
func TestConntrackMissingIsNotFatal(t *testing.T) {
	p, client, fx := unitProxier(t, ModeNFTables, scenario()...)
	fx.missing["conntrack"] = true
	mustSync(t, p)
	if !p.conntrackMissing {
		t.Error("missing conntrack not noticed")
	}
	fx.take()
	if err := client.DiscoveryV1().EndpointSlices("kube-system").Delete(context.Background(), "dns-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitDirty(t, p, "kube-system/dns")
	mustSync(t, p)
	if got := conntrackCalls(fx.take()); len(got) != 0 {
		t.Errorf("conntrack tried again: %v", got)
	}
	// "Nothing deleted" is success.
	fx2 := newFakeExec()
	fx2.fail["conntrack"] = "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted."
	if err := runConntrack(context.Background(), fx2, []string{"-D"}); err != nil {
		t.Errorf("no flow to delete: %v", err)
	}
}

// TestRouteSync checks the routing decisions against a fake `ip`.
func TestRouteSync(t *testing.T) {
	fx := newFakeExec()
	fx.outputs["ip -4 -o addr show"] = "1: lo    inet 127.0.0.1/8 scope host lo\n2: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\n"
	fx.outputs["ip -4 route show table main"] = "default via 192.0.2.1 dev eth0\n192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2\n10.244.9.0/24 via 192.0.2.9 dev eth0 proto 212\n"
	node := func(name, ip, cidr string) *corev1.Node {
		return &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       corev1.NodeSpec{PodCIDRs: []string{cidr}},
			Status:     corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}},
		}
	}
	r := &routeSyncer{exec: fx, nodeName: "me"}
	nodes := []*corev1.Node{
		node("me", "192.0.2.2", "10.244.0.0/24"),
		node("b", "192.0.2.3", "10.244.1.0/24"),
		node("far", "198.51.100.7", "10.244.2.0/24"),
		node("sim", "100.64.0.9", "10.244.3.0/24"),
	}
	if err := r.sync(context.Background(), nodes, false); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range fx.take() {
		if len(c.args) > 2 && (c.args[2] == "replace" || c.args[2] == "del") {
			got = append(got, c.String())
		}
	}
	want := []string{
		"ip -4 route replace 10.244.1.0/24 via 192.0.2.3 proto 212",
		"ip -4 route del 10.244.9.0/24 proto 212", // a node that is gone
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("route commands (-want +got):\n%s", diff)
	}
	// Heartbeats change nothing: no command at all.
	if err := r.sync(context.Background(), nodes, false); err != nil {
		t.Fatal(err)
	}
	if calls := fx.take(); len(calls) != 0 {
		t.Errorf("unchanged nodes ran %v", calls)
	}
}

// TestCleanupWithFake: Cleanup deletes the jumps and chains iptables-save
// shows, the nft table and the routes of routeProto, and succeeds when
// tools are missing.
func TestCleanupWithFake(t *testing.T) {
	fx := newFakeExec()
	fx.saved["nat"] = "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:OTHER-SERVICES - [0:0]\n-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n-A PREROUTING -j OTHER-SERVICES\nCOMMIT\n"
	fx.outputs["ip -4 route show table main proto 212"] = "10.244.5.0/24 via 192.0.2.5 dev eth0\n"
	if err := Cleanup(context.Background(), Config{Executor: fx}); err != nil {
		t.Fatal(err)
	}
	calls := fx.take()
	var restore, nft string
	var routes []string
	for _, c := range calls {
		switch {
		case c.name == "iptables-restore":
			restore = c.stdin
		case c.name == "nft":
			nft = c.stdin
		case c.name == "ip" && slices.Contains(c.args, "del"):
			routes = append(routes, c.String())
		}
	}
	wantRestore := "*nat\n:KUBE-SERVICES - [0:0]\n-D PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n-X KUBE-SERVICES\nCOMMIT\n"
	if restore != wantRestore {
		t.Errorf("restore input:\n%s\nwant:\n%s", restore, wantRestore)
	}
	if nft != "add table ip kube-proxy\ndelete table ip kube-proxy\n" {
		t.Errorf("nft input: %q", nft)
	}
	if !slices.Equal(routes, []string{"ip -4 route del 10.244.5.0/24 proto 212"}) {
		t.Errorf("route deletions: %v", routes)
	}

	none := newFakeExec()
	for _, tool := range []string{"iptables-save", "nft", "ip"} {
		none.missing[tool] = true
	}
	if err := Cleanup(context.Background(), Config{Executor: none}); err != nil {
		t.Errorf("Cleanup without tools: %v", err)
	}
}

// TestSyncRunner checks the rate limit, coalescing and retry of the sync
// loop with a fake clock.
func TestSyncRunner(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(1000, 0))
	var calls atomic.Int32
	fail := atomic.Bool{}
	called := make(chan struct{}, 10)
	r := newSyncRunner(func(context.Context) error {
		calls.Add(1)
		called <- struct{}{}
		if fail.Load() {
			return errTest
		}
		return nil
	}, time.Second, time.Hour, clk)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	errs := make(chan error, 10)
	go func() {
		defer close(done)
		r.loop(ctx, func(err error) { errs <- err })
	}()
	defer func() { cancel(); <-done }()

	waitCall := func(what string) {
		t.Helper()
		select {
		case <-called:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no call", what)
		}
	}
	noCall := func(what string) {
		t.Helper()
		select {
		case <-called:
			t.Fatalf("%s: unexpected call", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
	waitTimer := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !clk.HasWaiters() {
			if time.Now().After(deadline) {
				t.Fatal("the loop never waited")
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitCall("initial sync")
	waitTimer()
	// Three requests within the minimum interval make one call, at its
	// end.
	r.request()
	r.request()
	r.request()
	noCall("within the minimum interval")
	waitTimer()
	clk.Step(999 * time.Millisecond)
	noCall("1ms before the minimum interval")
	clk.Step(time.Millisecond)
	waitCall("coalesced request")
	noCall("coalesced requests run once")
	// Nothing requested: the next call comes after maxInterval.
	waitTimer()
	clk.Step(time.Hour)
	waitCall("periodic sync")
	// A failure is retried.
	fail.Store(true)
	waitTimer()
	clk.Step(time.Second)
	r.request()
	waitCall("failing sync")
	if err := <-errs; !errors.Is(err, errTest) {
		t.Errorf("onError got %v", err)
	}
	fail.Store(false)
	waitTimer()
	clk.Step(time.Second)
	waitCall("retry")
	if n := calls.Load(); n != 5 {
		t.Errorf("%d calls, want 5", n)
	}
}

// TestExecutorHostRootAndNetns checks how the real executor builds its
// commands: tools looked up under the host root, chroot, and the
// `ip netns exec` prefix.
func TestExecutorHostRootAndNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox not installed")
	}
	// A host root holding a static busybox as "nft" and "ip": the
	// executor must run them chrooted (they see only the host root).
	root := t.TempDir()
	for _, d := range []string{"usr/sbin", "bin", "marker-dir"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	// "ls" is an absolute symlink that resolves only inside the root,
	// like Debian's alternatives.
	if err := os.MkdirAll(filepath.Join(root, "opt/only-in-root"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "opt/only-in-root/busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/opt/only-in-root/busybox", filepath.Join(root, "usr/sbin/ls")); err != nil {
		t.Fatal(err)
	}
	e := NewExecutor(ExecOptions{HostRoot: root})
	out, err := e.Run(context.Background(), nil, "ls", "/")
	if err != nil {
		t.Fatalf("run in host root: %v", err)
	}
	if !strings.Contains(string(out), "marker-dir") {
		t.Errorf("ls / under HostRoot printed %q: not chrooted", out)
	}
	if _, err := e.Run(context.Background(), nil, "conntrack"); !errors.Is(err, ErrToolMissing) {
		t.Errorf("missing tool: %v, want ErrToolMissing", err)
	}
	// Stdin reaches the tool; a failure carries stderr.
	if _, err := e.Run(context.Background(), []byte("x"), "ls", "/nonexistent"); err == nil || !strings.Contains(err.Error(), "nonexistent") {
		t.Errorf("failure error %v lacks stderr", err)
	}

	if _, err := exec.LookPath("ip"); err != nil {
		return
	}
	n := newTestNet(t)
	out, err = NewExecutor(ExecOptions{Netns: n.node}).Run(context.Background(), nil, "ip", "-o", "link", "show")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "vna") {
		t.Errorf("ip link in the netns shows no vna:\n%s", out)
	}
}

// TestNewValidates covers configuration errors.
func TestNewValidates(t *testing.T) {
	client := fake.NewClientset()
	for name, cfg := range map[string]Config{
		"no client":         {},
		"bad mode":          {Client: client, Mode: "ipvs"},
		"routes, no node":   {Client: client, NodeRoutes: true},
		"IPv6 cluster CIDR": {Client: client, ClusterCIDR: netip.MustParsePrefix("fd00::/64")},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
}

// TestCanaryTriggersFullSync: the periodic check is a read; when it finds
// the rules gone, the same sync rewrites everything.
func TestCanaryTriggersFullSync(t *testing.T) {
	for _, mode := range []Mode{ModeIPTables, ModeNFTables} {
		t.Run(string(mode), func(t *testing.T) {
			p, _, fx := unitProxier(t, mode, scenario()...)
			mustSync(t, p)
			fx.take()
			p.lastCheck = time.Time{} // the check is due
			mustSync(t, p)
			calls := fx.take()
			if len(calls) == 0 || len(writes(calls)) != 0 {
				t.Fatalf("intact rules: want reads only, got %v", calls)
			}
			p.lastCheck = time.Time{}
			fx.fail[calls[0].String()] = "No such file or directory"
			mustSync(t, p)
			w := writes(fx.take())
			if len(w) != 1 || !strings.Contains(w[0].stdin, "default/web") {
				t.Fatalf("flushed rules: want a full rewrite, got %v", w)
			}
			if p.clock.Since(p.lastFull) > time.Minute {
				t.Error("the rewrite was not recorded as a full sync")
			}
		})
	}
}
