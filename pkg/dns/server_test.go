package dns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mdns "github.com/miekg/dns"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
)

// upstream is a fake resolver on 127.0.0.1 (UDP and TCP, one port) that
// answers from a fixed table and counts the queries it gets.
type upstream struct {
	addr     string
	udp, tcp atomic.Int32
}

// bigTXT is how many 100-byte TXT records big.example. has: more than
// fits in the 1232-byte UDP answers the forwarder asks for.
const bigTXT = 30

func upstreamAnswer(req *mdns.Msg) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	q := req.Question[0]
	switch strings.ToLower(q.Name) + "/" + mdns.TypeToString[q.Qtype] {
	case "example.com./A":
		m.Answer = append(m.Answer, mustRR("example.com. 60 IN A 192.0.2.1"))
	case "www.example.com./A":
		m.Answer = append(m.Answer, mustRR("www.example.com. 60 IN A 192.0.2.80"))
	case "big.example./TXT":
		for i := range bigTXT {
			m.Answer = append(m.Answer, mustRR(fmt.Sprintf("big.example. 60 IN TXT \"%02d%s\"", i, strings.Repeat("x", 98))))
		}
	default:
		m.Rcode = mdns.RcodeNameError
		m.Ns = append(m.Ns, mustRR("example. 60 IN SOA ns.example. admin.example. 1 7200 1800 86400 30"))
	}
	return m
}

func mustRR(s string) mdns.RR {
	rr, err := mdns.NewRR(s)
	if err != nil {
		panic(err)
	}
	return rr
}

// startUpstream runs the fake resolver until cleanup.
func startUpstream(t testing.TB) *upstream {
	t.Helper()
	pc, ln, err := listenDNS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{addr: pc.LocalAddr().String()}
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, req *mdns.Msg) {
		resp := upstreamAnswer(req)
		if _, tcp := w.RemoteAddr().(*net.TCPAddr); tcp {
			u.tcp.Add(1)
		} else {
			u.udp.Add(1)
			size := mdns.MinMsgSize
			if opt := req.IsEdns0(); opt != nil {
				size = int(opt.UDPSize())
				resp.SetEdns0(opt.UDPSize(), false)
			}
			resp.Truncate(size)
		}
		_ = w.WriteMsg(resp)
	})
	for _, srv := range []*mdns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		done := make(chan struct{})
		go func() { defer close(done); _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	}
	return u
}

// exchange asks addr over net ("udp" or "tcp").
func exchange(t testing.TB, network, addr string, req *mdns.Msg) *mdns.Msg {
	t.Helper()
	c := &mdns.Client{Net: network, Timeout: 10 * time.Second}
	resp, _, err := c.Exchange(req, addr)
	if err != nil {
		t.Fatalf("%s query %s: %v", network, req.Question[0].Name, err)
	}
	return resp
}

// TestServeUDPAndTCP queries a real server over both transports, in the
// zone and outside it.
func TestServeUDPAndTCP(t *testing.T) {
	up := startUpstream(t)
	s, _ := startServer(t, Config{Upstreams: []string{up.addr}}, fixture()...)
	a := s.Addrs()
	if a.UDP != a.TCP {
		t.Errorf("UDP %s and TCP %s addresses differ", a.UDP, a.TCP)
	}
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			for _, tt := range []struct {
				qname string
				qtype uint16
				want  []string
			}{
				{"web.default.svc.cluster.local.", mdns.TypeA, []string{"web.default.svc.cluster.local. 5 IN A 10.96.0.20"}},
				{"example.com.", mdns.TypeA, []string{"example.com. 60 IN A 192.0.2.1"}},
				// ExternalName: the CNAME, then the target's address from upstream.
				{"ext.default.svc.cluster.local.", mdns.TypeA, []string{
					"ext.default.svc.cluster.local. 5 IN CNAME www.example.com.",
					"www.example.com. 60 IN A 192.0.2.80",
				}},
			} {
				resp := exchange(t, network, a.UDP, query(tt.qname, tt.qtype))
				if resp.Rcode != mdns.RcodeSuccess {
					t.Errorf("%s: rcode %s", tt.qname, mdns.RcodeToString[resp.Rcode])
				}
				if diff := cmp.Diff(tt.want, rrStrings(resp.Answer)); diff != "" {
					t.Errorf("%s (-want +got):\n%s", tt.qname, diff)
				}
			}
		})
	}
}

// TestForwardTruncatedRetriedOverTCP checks the UDP→TCP retry towards the
// upstream, and that the client gets what fits its own buffer.
func TestForwardTruncatedRetriedOverTCP(t *testing.T) {
	up := startUpstream(t)
	s, _ := startServer(t, Config{Upstreams: []string{up.addr}, CacheSize: -1}, fixture()...)
	addr := s.Addrs().UDP

	// A client with a 64 KiB EDNS buffer gets every record over UDP: the
	// server had to ask the upstream again over TCP.
	req := query("big.example.", mdns.TypeTXT)
	req.SetEdns0(mdns.MaxMsgSize, false)
	resp := exchange(t, "udp", addr, req)
	if len(resp.Answer) != bigTXT || resp.Truncated {
		t.Errorf("EDNS UDP client: %d records (truncated %v), want %d", len(resp.Answer), resp.Truncated, bigTXT)
	}
	if up.udp.Load() != 1 || up.tcp.Load() != 1 {
		t.Errorf("upstream got %d UDP and %d TCP queries, want 1 and 1", up.udp.Load(), up.tcp.Load())
	}
	if resp.IsEdns0() == nil {
		t.Errorf("EDNS query answered without OPT")
	}

	// A plain client gets a truncated answer within 512 bytes, then all
	// over TCP.
	c := &mdns.Client{Net: "udp", Timeout: 10 * time.Second}
	plain := query("big.example.", mdns.TypeTXT)
	resp, _, err := c.Exchange(plain, addr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Compress = true // as it was sent
	packed, _ := resp.Pack()
	if !resp.Truncated || len(packed) > mdns.MinMsgSize || resp.IsEdns0() != nil {
		t.Errorf("plain UDP client: truncated %v, %d bytes, OPT %v; want TC, <= 512 bytes, no OPT", resp.Truncated, len(packed), resp.IsEdns0() != nil)
	}
	resp = exchange(t, "tcp", addr, plain)
	if len(resp.Answer) != bigTXT {
		t.Errorf("TCP client: %d records, want %d", len(resp.Answer), bigTXT)
	}
}

// TestForwardCache checks that positive and negative upstream answers are
// served from the cache.
func TestForwardCache(t *testing.T) {
	up := startUpstream(t)
	s, _ := startServer(t, Config{Upstreams: []string{up.addr}}, fixture()...)
	addr := s.Addrs().UDP
	for range 3 {
		resp := exchange(t, "udp", addr, query("example.com.", mdns.TypeA))
		if len(resp.Answer) != 1 {
			t.Fatalf("answer %v", resp.Answer)
		}
		resp = exchange(t, "udp", addr, query("NX.example.", mdns.TypeA))
		if resp.Rcode != mdns.RcodeNameError || len(resp.Ns) != 1 {
			t.Fatalf("negative answer: rcode %s, authority %v", mdns.RcodeToString[resp.Rcode], resp.Ns)
		}
		if resp.Question[0].Name != "NX.example." {
			t.Errorf("question %q, want the client's spelling", resp.Question[0].Name)
		}
	}
	if n := up.udp.Load(); n != 2 {
		t.Errorf("upstream got %d queries for 2 names asked 3 times each, want 2", n)
	}
}

// TestForwardFailures checks SERVFAIL for dead upstreams and failover to a
// live one.
func TestForwardFailures(t *testing.T) {
	// A port nothing listens on: the kernel refuses at once.
	closed, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := closed.LocalAddr().String()
	closed.Close()
	// A socket that never answers.
	hole, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hole.Close() })
	up := startUpstream(t)

	for _, tt := range []struct {
		name      string
		upstreams []string
		rcode     int
	}{
		{"refused", []string{refused}, mdns.RcodeServerFailure},
		{"black hole", []string{hole.LocalAddr().String()}, mdns.RcodeServerFailure},
		{"refused then live", []string{refused, up.addr}, mdns.RcodeSuccess},
		{"black hole then live", []string{hole.LocalAddr().String(), up.addr}, mdns.RcodeSuccess},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := startServer(t, Config{Upstreams: tt.upstreams, ForwardTimeout: 400 * time.Millisecond, CacheSize: -1}, fixture()...)
			// Whichever upstream the rotation starts with, each query
			// must end the same way.
			for range 2 {
				resp := exchange(t, "udp", s.Addrs().UDP, query("example.com.", mdns.TypeA))
				if resp.Rcode != tt.rcode {
					t.Errorf("rcode %s, want %s", mdns.RcodeToString[resp.Rcode], mdns.RcodeToString[tt.rcode])
				}
			}
		})
	}
}

// TestNoForwardToSelf checks that an upstream list naming the server's own
// address is not used.
func TestNoForwardToSelf(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	self := pc.LocalAddr().String()
	pc.Close()
	s, err := New(Config{Client: fakeClient(), Address: self, Upstreams: []string{self}})
	if err != nil {
		t.Skipf("port %s taken again meanwhile: %v", self, err)
	}
	runServer(t, s)
	if ups := s.upstreams(); len(ups) != 0 {
		t.Errorf("upstreams %v, want none", ups)
	}
	resp := exchange(t, "udp", self, query("example.com.", mdns.TypeA))
	if resp.Rcode != mdns.RcodeServerFailure {
		t.Errorf("rcode %s, want SERVFAIL", mdns.RcodeToString[resp.Rcode])
	}
}

func TestWithoutSelf(t *testing.T) {
	local := []netip.Addr{netip.MustParseAddr("192.168.1.5")}
	ups := []string{"127.0.0.1:53", "127.0.0.53:53", "192.168.1.5:53", "192.168.1.5:5353", "8.8.8.8:53", "[::1]:53", "0.0.0.0:53"}
	for _, tt := range []struct {
		bound string
		kept  []string
	}{
		{"0.0.0.0:53", []string{"192.168.1.5:5353", "8.8.8.8:53"}},
		{"[::]:53", []string{"192.168.1.5:5353", "8.8.8.8:53"}},
		{"127.0.0.1:53", []string{"127.0.0.53:53", "192.168.1.5:53", "192.168.1.5:5353", "8.8.8.8:53", "[::1]:53", "0.0.0.0:53"}},
		{"192.168.1.5:53", []string{"127.0.0.1:53", "127.0.0.53:53", "192.168.1.5:5353", "8.8.8.8:53", "[::1]:53", "0.0.0.0:53"}},
		{"0.0.0.0:1053", ups},
	} {
		kept, _ := withoutSelf(ups, netip.MustParseAddrPort(tt.bound), local)
		if diff := cmp.Diff(tt.kept, kept); diff != "" {
			t.Errorf("bound %s (-want +got):\n%s", tt.bound, diff)
		}
	}
}

// TestHealthReady checks /health, /ready (503 until the informers sync)
// and /metrics.
func TestHealthReady(t *testing.T) {
	client := fakeClient(fixture()...)
	var allowList atomic.Bool
	client.PrependReactor("list", "namespaces", func(k8stesting.Action) (bool, runtime.Object, error) {
		if !allowList.Load() {
			return true, nil, errors.New("api server unavailable")
		}
		return false, nil, nil
	})
	s, err := New(Config{Client: client, Address: "127.0.0.1:0", Upstreams: []string{},
		HealthAddress: "127.0.0.1:0", ReadyAddress: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	runServer(t, s)
	a := s.Addrs()
	get := func(addr, path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return resp.StatusCode, string(body)
	}
	if code, body := get(a.Health, "/health"); code != http.StatusOK || body != "OK" {
		t.Errorf("/health = %d %q, want 200 OK", code, body)
	}
	if code, body := get(a.Ready, "/ready"); code != http.StatusServiceUnavailable || body != "kubernetes" {
		t.Errorf("/ready before sync = %d %q, want 503 kubernetes", code, body)
	}
	if resp := exchange(t, "udp", a.UDP, query("web.default.svc.cluster.local.", mdns.TypeA)); resp.Rcode != mdns.RcodeServerFailure {
		t.Errorf("query before sync: rcode %s, want SERVFAIL", mdns.RcodeToString[resp.Rcode])
	}
	allowList.Store(true)
	waitFor(t, "/ready to answer 200", func() bool { code, _ := get(a.Ready, "/ready"); return code == http.StatusOK })
	if resp := exchange(t, "udp", a.UDP, query("web.default.svc.cluster.local.", mdns.TypeA)); resp.Rcode != mdns.RcodeSuccess {
		t.Errorf("query after sync: rcode %s, want NOERROR", mdns.RcodeToString[resp.Rcode])
	}
	_, metrics := get(a.Health, "/metrics")
	for _, want := range []string{`skiff_dns_requests_total{proto="udp"} 2`, `skiff_dns_responses_total{rcode="SERVFAIL"} 1`, `skiff_dns_responses_total{rcode="NOERROR"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, metrics)
		}
	}
}

// TestSharedHealthReadyAddress checks that one address can serve both.
func TestSharedHealthReadyAddress(t *testing.T) {
	pc, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.Addr().String()
	pc.Close()
	s, err := New(Config{Client: fakeClient(), Address: "127.0.0.1:0", Upstreams: []string{}, HealthAddress: addr, ReadyAddress: addr})
	if err != nil {
		t.Skipf("port %s taken again meanwhile: %v", addr, err)
	}
	runServer(t, s)
	waitFor(t, "sync", s.Ready)
	for _, path := range []string{"/health", "/ready"} {
		resp, err := http.Get("http://" + s.Addrs().Ready + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s = %d, want 200", path, resp.StatusCode)
		}
	}
}

func TestRunOnceAndClose(t *testing.T) {
	s, err := New(Config{Client: fakeClient(), Address: "127.0.0.1:0", Upstreams: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addrs().UDP
	s.Close()
	s.Close()
	// Closed: the port can be bound again.
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Errorf("port still held after Close: %v", err)
	} else {
		pc.Close()
	}

	s, _ = startServer(t, Config{})
	if err := s.Run(context.Background()); err == nil {
		t.Error("second Run succeeded")
	}
}

func TestConfig(t *testing.T) {
	client := fakeClient()
	for _, tt := range []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"no client", Config{}, "Client is required"},
		{"bad address", Config{Client: client, Address: "nope"}, "address"},
		{"bad ttl", Config{Client: client, TTL: 2 * time.Hour}, "ttl"},
		{"bad upstream", Config{Client: client, Upstreams: []string{"dns.google"}}, "upstream"},
		{"bad domain", Config{Client: client, ClusterDomain: "a..b"}, "cluster domain"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cfg.withDefaults()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want one about %q", err, tt.wantErr)
			}
		})
	}
	c, err := Config{Client: client, Upstreams: []string{"10.0.0.1", "10.0.0.2:5353", "fd00::1", "[fd00::2]:53"}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.1:53", "10.0.0.2:5353", "[fd00::1]:53", "[fd00::2]:53"}
	if diff := cmp.Diff(want, c.Upstreams); diff != "" {
		t.Errorf("upstreams (-want +got):\n%s", diff)
	}
}

func TestResolvConf(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(path, []byte("# comment\nnameserver 10.0.0.1\nnameserver fd00::53\nsearch example.com\noptions ndots:5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := resolvConfUpstreams(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"10.0.0.1:53", "[fd00::53]:53"}, got); diff != "" {
		t.Errorf("upstreams (-want +got):\n%s", diff)
	}
	got, err = resolvConfUpstreams(filepath.Join(dir, "missing"))
	if err != nil || got != nil {
		t.Errorf("missing file: %v, %v; want no upstreams and no error", got, err)
	}
}

// TestConcurrentQueries runs queries from several clients while the API
// changes, for the race detector, and checks every answer is sane.
func TestConcurrentQueries(t *testing.T) {
	up := startUpstream(t)
	s, client := startServer(t, Config{Upstreams: []string{up.addr}}, fixture()...)
	addr := s.Addrs().UDP
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	churned := make(chan struct{})
	go func() {
		defer close(churned)
		for i := 0; ctx.Err() == nil; i++ {
			svc := clusterIPService("default", fmt.Sprintf("churn-%d", i%5), []string{fmt.Sprintf("10.96.9.%d", i%5+1)}, port("http", 80, "TCP"))
			_, _ = client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{})
			_ = client.CoreV1().Services("default").Delete(ctx, svc.Name, metav1.DeleteOptions{})
		}
	}()
	names := []struct {
		name  string
		qtype uint16
	}{
		{"web.default.svc.cluster.local.", mdns.TypeA},
		{"_pg._tcp.db.default.svc.cluster.local.", mdns.TypeSRV},
		{"churn-1.default.svc.cluster.local.", mdns.TypeA},
		{"example.com.", mdns.TypeA},
		{"ext.default.svc.cluster.local.", mdns.TypeA},
	}
	errc := make(chan error, 8)
	for w := range 8 {
		go func() {
			network := []string{"udp", "tcp"}[w%2]
			c := &mdns.Client{Net: network, Timeout: 10 * time.Second}
			for i := range 50 {
				n := names[(w+i)%len(names)]
				resp, _, err := c.Exchange(query(n.name, n.qtype), addr)
				if err != nil {
					errc <- err
					return
				}
				if resp.Rcode == mdns.RcodeServerFailure {
					errc <- fmt.Errorf("%s: SERVFAIL", n.name)
					return
				}
			}
			errc <- nil
		}()
	}
	for range 8 {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
	cancel()
	<-churned
}
