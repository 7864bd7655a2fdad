//go:build linux

package proxy

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testNet is a small network the real tests build out of namespaces:
//
//	node netns (the proxy runs here)        pod1 netns          pod2 netns
//	  vna 10.244.1.1/32  ── route 10.244.1.10 ──  eth0 10.244.1.10
//	  vnb 10.244.1.1/32  ── route 10.244.1.11 ────────────────  eth0 10.244.1.11
//	  192.168.77.1/32 on vna: the node's address, the source of the
//	  node's own connections to Services (outside the cluster CIDR)
//	  10.96.0.0/12 dev vna: Service VIPs are routable
//
// The pods route everything via 10.244.1.1, like pods of the CNI ptp
// plugin.
type testNet struct {
	node, pod1, pod2 string // netns names
}

const (
	testNodeIP   = "192.168.77.1"
	testGateway  = "10.244.1.1"
	testPod1IP   = "10.244.1.10"
	testPod2IP   = "10.244.1.11"
	testPodCIDR  = "10.244.0.0/16"
	testEchoPort = 8080
	testUDPPort  = 5353
)

// requireRealNet skips the test unless it can build namespaces and the
// tools of mode exist.
func requireRealNet(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
}

func randSuffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// nsRun runs a command in netns ns.
func nsRun(t *testing.T, ns string, args ...string) string {
	t.Helper()
	return run(t, append([]string{"ip", "netns", "exec", ns}, args...)...)
}

// newTestNet builds the namespaces; t.Cleanup deletes them (and with
// them every interface, route and rule inside).
func newTestNet(t *testing.T) *testNet {
	t.Helper()
	s := randSuffix()
	n := &testNet{node: "skpn-" + s, pod1: "skp1-" + s, pod2: "skp2-" + s}
	for _, ns := range []string{n.node, n.pod1, n.pod2} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("delete netns %s: %v: %s", ns, err, out)
			}
		})
		nsRun(t, ns, "ip", "link", "set", "lo", "up")
	}
	// A pod's packet to a VIP leaves the node by the interface it came
	// in by; the ICMP redirect the kernel would send shares the per-host
	// ICMP rate limit with the port-unreachable of a REJECT, and would
	// swallow it.
	nsRun(t, n.node, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.default.send_redirects=0")
	for _, p := range []struct{ veth, ns, ip string }{{"vna", n.pod1, testPod1IP}, {"vnb", n.pod2, testPod2IP}} {
		nsRun(t, n.node, "ip", "link", "add", p.veth, "type", "veth", "peer", "name", "eth0", "netns", p.ns)
		nsRun(t, n.node, "ip", "addr", "add", testGateway+"/32", "dev", p.veth)
		nsRun(t, n.node, "ip", "link", "set", p.veth, "up")
		nsRun(t, n.node, "ip", "route", "add", p.ip+"/32", "dev", p.veth)
		nsRun(t, p.ns, "ip", "addr", "add", p.ip+"/32", "dev", "eth0")
		nsRun(t, p.ns, "ip", "link", "set", "eth0", "up")
		nsRun(t, p.ns, "ip", "route", "add", testGateway, "dev", "eth0")
		nsRun(t, p.ns, "ip", "route", "add", "default", "via", testGateway, "dev", "eth0")
	}
	nsRun(t, n.node, "ip", "addr", "add", testNodeIP+"/32", "dev", "vna")
	nsRun(t, n.node, "ip", "route", "add", "10.96.0.0/12", "dev", "vna", "src", testNodeIP)
	return n
}

// inNetns runs fn on an OS thread switched into netns ns. Sockets created
// by fn stay in ns for their lifetime.
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread returns to the test's namespace before it is
		// unlocked; if that fails it stays locked and dies with the
		// goroutine.
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("setns back: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// serveEcho starts a TCP and a UDP server on ip inside ns that answer
// "<their address> <client address>"; t.Cleanup stops them.
func serveEcho(t *testing.T, ns, ip string) {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	err := inNetns(ns, func() error {
		var err error
		if ln, err = net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(testEchoPort))); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", net.JoinHostPort(ip, fmt.Sprint(testUDPPort)))
		return err
	})
	if err != nil {
		t.Fatalf("listen in %s: %v", ns, err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		pc.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			remote, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			fmt.Fprintf(c, "%s %s\n", ip, remote)
			c.Close()
		}
	})
	wg.Go(func() {
		buf := make([]byte, 512)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_ = n
			remote, _, _ := net.SplitHostPort(addr.String())
			_, _ = pc.WriteTo([]byte(ip+" "+remote), addr)
		}
	})
}

// dialTCP connects from ns (optionally from local address laddr) to addr
// and returns the echo server's answer: the endpoint and the client
// address it saw.
func dialTCP(ns, laddr, addr string) (endpoint, client string, err error) {
	err = inNetns(ns, func() error {
		d := net.Dialer{Timeout: 2 * time.Second}
		if laddr != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(laddr)}
		}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return fmt.Errorf("bad answer %q", line)
		}
		endpoint, client = f[0], f[1]
		return nil
	})
	return endpoint, client, err
}

// eventually polls cond until it returns nil or the deadline passes.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: still failing after 15s: %v", what, err)
}

// runProxier runs a real Proxier in the node namespace until the test
// ends (or stop is called).
func runProxier(t *testing.T, n *testNet, cfg Config) (stop func()) {
	t.Helper()
	cfg.Executor = NewExecutor(ExecOptions{Netns: n.node})
	if cfg.MinSyncPeriod == 0 {
		cfg.MinSyncPeriod = 10 * time.Millisecond
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
