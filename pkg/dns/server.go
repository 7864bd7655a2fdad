// Package dns is the cluster DNS server: it answers the names of the
// Kubernetes DNS specification (<svc>.<ns>.svc.<zone> and friends) from
// Service, EndpointSlice and Namespace informers, and forwards every other
// name to upstream resolvers. Its behaviour is modelled on CoreDNS with the
// stock kube-system Corefile: "kubernetes cluster.local in-addr.arpa
// ip6.arpa { pods insecure; fallthrough in-addr.arpa ip6.arpa }",
// "forward . /etc/resolv.conf", "cache 30", "health", "ready" and
// "loadbalance".
package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
	"k8s.io/klog/v2"
)

// maxChase bounds how many ExternalName CNAMEs inside the zone are
// followed for one question, so that two Services naming each other
// cannot loop.
const maxChase = 8

// Server is a cluster DNS server bound to its addresses. Create it with
// New, then call Run once; all methods are safe for concurrent use.
type Server struct {
	cfg   Config
	st    *store
	res   *resolver
	fwd   *forwarder   // nil when there is no upstream
	cache *answerCache // nil when disabled
	m     metrics

	// Listeners, bound by New and closed by Run's return or Close.
	udp    net.PacketConn
	tcp    net.Listener
	health net.Listener // nil when disabled
	ready  net.Listener // nil when disabled or shared with health

	// rotate turns address answers round (CoreDNS's "loadbalance").
	rotate atomic.Uint32
	// warnedAt is the Unix time of the last forwarding warning, to log
	// at most one every forwardWarnEvery.
	warnedAt atomic.Int64
	now      func() time.Time

	started   atomic.Bool
	closeOnce sync.Once
}

// forwardWarnEvery rate-limits the warnings for failed forwarding: an
// unreachable upstream fails every query.
const forwardWarnEvery = 30 * time.Second

// Addrs are the addresses a Server is bound to, as host:port; Health and
// Ready are empty when disabled.
type Addrs struct {
	UDP, TCP      string
	Health, Ready string
}

// New validates cfg, reads the upstreams and binds every listener, so
// that a port already in use is reported here and Addrs is known before
// Run. The caller must call Run or Close to release the listeners.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	upstreams := cfg.Upstreams
	if upstreams == nil {
		if upstreams, err = resolvConfUpstreams(cfg.ResolvConf); err != nil {
			return nil, err
		}
	}
	st, err := newStore(cfg.Client, time.Now)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg,
		st:  st,
		res: newResolver(cfg.ClusterDomain, uint32(cfg.TTL/time.Second), cfg.DNSService, st),
		now: time.Now,
	}
	if cfg.CacheSize > 0 {
		s.cache = newAnswerCache(cfg.CacheSize, cfg.CacheMaxTTL, time.Now)
	}
	if s.udp, s.tcp, err = listenDNS(cfg.Address); err != nil {
		return nil, err
	}
	if err := s.listenHTTP(); err != nil {
		s.Close()
		return nil, err
	}

	bound, err := netip.ParseAddrPort(s.udp.LocalAddr().String())
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("dns: bound address %s: %w", s.udp.LocalAddr(), err)
	}
	kept, dropped := withoutSelf(upstreams, bound, interfaceAddrs())
	if len(dropped) > 0 {
		klog.V(1).InfoS("Not forwarding to upstreams that are this server", "upstreams", dropped)
	}
	switch {
	case len(kept) > 0:
		s.fwd = newForwarder(kept, cfg.ForwardTimeout)
	case cfg.Upstreams != nil && len(cfg.Upstreams) == 0:
		klog.V(1).InfoS("No upstreams configured: names outside the zone get SERVFAIL", "zone", cfg.ClusterDomain)
	case cfg.Upstreams != nil:
		klog.Warningf("dns: every upstream in %v is this server: names outside %s will get SERVFAIL", cfg.Upstreams, cfg.ClusterDomain)
	default:
		klog.Warningf("dns: no usable nameserver in %s (found %v): names outside %s will get SERVFAIL", cfg.ResolvConf, upstreams, cfg.ClusterDomain)
	}
	return s, nil
}

// listenDNS binds UDP and TCP on the same address; with port 0 it finds a
// port free for both.
func listenDNS(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dns: address %q: %w", addr, err)
	}
	attempts := 1
	if port == "0" || port == "" {
		attempts = 20
	}
	var lastErr error
	for range attempts {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dns: listen udp %s: %w", addr, err)
		}
		_, p, _ := net.SplitHostPort(pc.LocalAddr().String())
		ln, err := net.Listen("tcp", net.JoinHostPort(host, p))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		lastErr = err
	}
	return nil, nil, fmt.Errorf("dns: listen tcp %s: %w", addr, lastErr)
}

func (s *Server) listenHTTP() error {
	var err error
	if a := s.cfg.HealthAddress; a != "" {
		if s.health, err = net.Listen("tcp", a); err != nil {
			return fmt.Errorf("dns: listen health %s: %w", a, err)
		}
	}
	if a := s.cfg.ReadyAddress; a != "" && a != s.cfg.HealthAddress {
		if s.ready, err = net.Listen("tcp", a); err != nil {
			return fmt.Errorf("dns: listen ready %s: %w", a, err)
		}
	}
	return nil
}

// Addrs returns the bound addresses (with the ports picked for port 0).
func (s *Server) Addrs() Addrs {
	a := Addrs{UDP: s.udp.LocalAddr().String(), TCP: s.tcp.Addr().String()}
	if s.health != nil {
		a.Health = s.health.Addr().String()
	}
	switch {
	case s.ready != nil:
		a.Ready = s.ready.Addr().String()
	case s.cfg.ReadyAddress != "":
		a.Ready = a.Health
	}
	return a
}

// Ready reports whether the informers have synced, so in-zone answers are
// complete; before that in-zone questions get SERVFAIL, as CoreDNS does.
func (s *Server) Ready() bool { return s.st.synced.Load() }

// Close releases the listeners of a Server that Run was not called on;
// it is idempotent, and a no-op once Run has returned.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		for _, c := range []interface{ Close() error }{s.udp, s.tcp, s.health, s.ready} {
			if c != nil {
				_ = c.Close() // already closed by a shutdown: nothing to report
			}
		}
	})
}

// Run starts the informers and serves DNS (UDP and TCP) and the health
// endpoints until ctx is done, then shuts everything down and returns nil;
// it returns an error if a listener fails. It may be called once.
func (s *Server) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("dns: Run called twice")
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { s.st.run(ctx) })

	h := handler{s: s, ctx: ctx}
	errc := make(chan error, 4)
	udpStarted, tcpStarted := make(chan struct{}), make(chan struct{})
	udpSrv := &mdns.Server{PacketConn: s.udp, Handler: h, UDPSize: mdns.DefaultMsgSize,
		NotifyStartedFunc: func() { close(udpStarted) }}
	tcpSrv := &mdns.Server{Listener: s.tcp, Handler: h,
		NotifyStartedFunc: func() { close(tcpStarted) }}
	wg.Go(func() {
		if err := udpSrv.ActivateAndServe(); err != nil {
			errc <- fmt.Errorf("dns: serve udp %s: %w", s.udp.LocalAddr(), err)
		}
	})
	wg.Go(func() {
		if err := tcpSrv.ActivateAndServe(); err != nil {
			errc <- fmt.Errorf("dns: serve tcp %s: %w", s.tcp.Addr(), err)
		}
	})
	var httpSrvs []*http.Server
	for _, ln := range []net.Listener{s.health, s.ready} {
		if ln == nil {
			continue
		}
		hs := &http.Server{Handler: s.httpHandler(ln == s.health), ReadHeaderTimeout: 5 * time.Second}
		httpSrvs = append(httpSrvs, hs)
		wg.Go(func() {
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("dns: serve http %s: %w", ln.Addr(), err)
			}
		})
	}
	klog.V(1).InfoS("Cluster DNS serving", "zone", s.res.zone, "udp", s.udp.LocalAddr(), "tcp", s.tcp.Addr(), "upstreams", s.upstreams())

	// Shutting a miekg server down before it started would leave it
	// serving forever, so wait for both to start (or fail).
	var runErr error
	for _, started := range []chan struct{}{udpStarted, tcpStarted} {
		select {
		case <-started:
		case runErr = <-errc:
		}
		if runErr != nil {
			break
		}
	}
	if runErr == nil {
		select {
		case <-ctx.Done():
		case runErr = <-errc:
		}
	}
	cancel()

	shutCtx, shutCancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer shutCancel()
	var errs []error
	for _, srv := range []*mdns.Server{udpSrv, tcpSrv} {
		if err := srv.ShutdownContext(shutCtx); err != nil && runErr == nil {
			errs = append(errs, fmt.Errorf("dns: shutdown: %w", err))
		}
	}
	for _, hs := range httpSrvs {
		if err := hs.Shutdown(shutCtx); err != nil {
			errs = append(errs, fmt.Errorf("dns: shutdown http: %w", err))
		}
	}
	// A miekg server that failed to start ignores its shutdown; closing
	// its socket ends it.
	s.Close()
	return errors.Join(append([]error{runErr}, errs...)...)
}

func (s *Server) upstreams() []string {
	if s.fwd == nil {
		return nil
	}
	return s.fwd.upstreams
}

// handler adapts the Server to miekg/dns with the context of Run.
type handler struct {
	s   *Server
	ctx context.Context
}

func (h handler) ServeDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	resp := h.s.handle(h.ctx, req, udp)
	if resp == nil {
		return
	}
	if err := w.WriteMsg(resp); err != nil {
		klog.V(3).InfoS("DNS reply not sent", "client", w.RemoteAddr(), "err", err)
	}
}

// handle answers one query; udp says the answer must fit the client's UDP
// buffer. It returns nil for messages that get no answer (responses).
func (s *Server) handle(ctx context.Context, req *mdns.Msg, udp bool) *mdns.Msg {
	if req.Response {
		return nil
	}
	if udp {
		s.m.requestsUDP.Add(1)
	} else {
		s.m.requestsTCP.Add(1)
	}
	resp := s.answer(ctx, req)
	s.finish(req, resp, udp)
	s.m.rcode(resp.Rcode)
	return resp
}

// answer routes a query: the zone, the reverse zones for known addresses,
// everything else upstream.
func (s *Server) answer(ctx context.Context, req *mdns.Msg) *mdns.Msg {
	m := new(mdns.Msg)
	opts := 0
	for _, rr := range req.Extra {
		if rr.Header().Rrtype == mdns.TypeOPT {
			opts++
		}
	}
	switch {
	case req.Opcode != mdns.OpcodeQuery:
		return m.SetRcode(req, mdns.RcodeNotImplemented)
	case len(req.Question) != 1 || opts > 1:
		return m.SetRcodeFormatError(req)
	case opts == 1 && req.IsEdns0().Version() != 0:
		return m.SetRcode(req, mdns.RcodeBadVers)
	}
	q := req.Question[0]
	name := mdns.CanonicalName(q.Name)
	switch {
	case s.res.inZone(name):
		switch {
		case (q.Qclass != mdns.ClassINET && q.Qclass != mdns.ClassANY) || q.Qtype == mdns.TypeAXFR || q.Qtype == mdns.TypeIXFR:
			return m.SetRcode(req, mdns.RcodeRefused)
		case !s.st.synced.Load():
			return m.SetRcode(req, mdns.RcodeServerFailure)
		}
		res := s.res.resolve(q)
		m = s.reply(req, res)
		if res.chase != "" {
			s.chase(ctx, m, q.Name, res.chase, q.Qtype)
		}
		return m
	case isReverse(name) && s.st.synced.Load():
		if res, ok := s.res.reverse(q); ok {
			return s.reply(req, res)
		}
	}
	return s.forward(ctx, req)
}

// reply builds the authoritative answer from a result; several address
// records come rotated, one step per query.
func (s *Server) reply(req *mdns.Msg, res result) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.Rcode = res.rcode
	m.Answer, m.Ns, m.Extra = res.answer, res.ns, res.extra
	if n := len(m.Answer); n > 1 && res.chase == "" {
		k := int(s.rotate.Add(1) % uint32(n))
		rotated := make([]mdns.RR, 0, n)
		m.Answer = append(append(rotated, m.Answer[k:]...), m.Answer[:k]...)
	}
	return m
}

// chase appends the addresses of an ExternalName target: from the zone if
// it is inside, else from upstream. A failure leaves the CNAME alone for
// the client's resolver to follow, as CoreDNS does; a loop of
// ExternalNames inside the zone stops where it closes.
func (s *Server) chase(ctx context.Context, m *mdns.Msg, qname, target string, qtype uint16) {
	seen := map[string]bool{mdns.CanonicalName(qname): true}
	for range maxChase {
		if seen[target] {
			return
		}
		seen[target] = true
		if !s.res.inZone(target) {
			q := new(mdns.Msg)
			q.SetQuestion(target, qtype)
			if resp := s.forward(ctx, q); resp.Rcode == mdns.RcodeSuccess {
				m.Answer = append(m.Answer, resp.Answer...)
			}
			return
		}
		res := s.res.resolve(mdns.Question{Name: target, Qtype: qtype, Qclass: mdns.ClassINET})
		if res.rcode != mdns.RcodeSuccess {
			return
		}
		m.Answer = append(m.Answer, res.answer...)
		if res.chase == "" {
			return
		}
		target = res.chase
	}
}

// forward answers from the cache or an upstream; SERVFAIL when there is
// no upstream or none answered in time.
func (s *Server) forward(ctx context.Context, req *mdns.Msg) *mdns.Msg {
	if s.fwd == nil {
		return new(mdns.Msg).SetRcode(req, mdns.RcodeServerFailure)
	}
	if s.cache != nil {
		if m := s.cache.get(req); m != nil {
			s.m.cacheHits.Add(1)
			return m
		}
		s.m.cacheMisses.Add(1)
	}
	// The upstream query offers a large UDP buffer whatever the client
	// offered: the answer is cut to the client's size on the way back.
	// The client's EDNS options are its business with this server only.
	q := req.Copy()
	q.Extra = nil
	q.SetEdns0(upstreamUDPSize, do(req))
	s.m.forwarded.Add(1)
	resp, err := s.fwd.exchange(ctx, q)
	if err != nil {
		s.m.forwardErrors.Add(1)
		s.warnForward(req.Question[0], err)
		return new(mdns.Msg).SetRcode(req, mdns.RcodeServerFailure)
	}
	if s.cache != nil {
		s.cache.put(req, resp)
	}
	resp.Id = req.Id
	resp.Question = []mdns.Question{req.Question[0]}
	return resp
}

func (s *Server) warnForward(q mdns.Question, err error) {
	now := s.now().Unix()
	last := s.warnedAt.Load()
	if now-last >= int64(forwardWarnEvery/time.Second) && s.warnedAt.CompareAndSwap(last, now) {
		klog.Warningf("dns: forwarding %s %s failed (further failures logged at -v=2 for %v): %v",
			q.Name, mdns.TypeToString[q.Qtype], forwardWarnEvery, err)
		return
	}
	klog.V(2).InfoS("Forwarding failed", "name", q.Name, "type", mdns.TypeToString[q.Qtype], "err", err)
}

// finish fits the answer to the client: EDNS only if the client used it
// (with this server's own OPT), and no bigger than the client can take.
func (s *Server) finish(req, m *mdns.Msg, udp bool) {
	m.Extra = slices.DeleteFunc(m.Extra, func(rr mdns.RR) bool { return rr.Header().Rrtype == mdns.TypeOPT })
	size := mdns.MaxMsgSize
	if udp {
		size = mdns.MinMsgSize
	}
	if opt := req.IsEdns0(); opt != nil {
		o := &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT}}
		o.SetUDPSize(upstreamUDPSize)
		o.SetDo(opt.Do())
		m.Extra = append(m.Extra, o)
		if udp {
			size = max(int(opt.UDPSize()), mdns.MinMsgSize)
		}
	} else if m.Rcode > 0xF {
		// An extended RCODE needs an OPT the client cannot read.
		m.Rcode = mdns.RcodeServerFailure
	}
	m.Truncate(size)
}

func do(req *mdns.Msg) bool {
	opt := req.IsEdns0()
	return opt != nil && opt.Do()
}

// httpHandler serves /health and /metrics (on the health listener) and
// /ready, with CoreDNS's answers: "OK", or 503 naming what is not ready.
func (s *Server) httpHandler(health bool) http.Handler {
	mux := http.NewServeMux()
	if health {
		mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte("OK"))
		})
		mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			s.m.write(w)
		})
	}
	if !health || s.cfg.ReadyAddress == s.cfg.HealthAddress {
		mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
			if !s.Ready() {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte("kubernetes"))
				return
			}
			_, _ = w.Write([]byte("OK"))
		})
	}
	return mux
}

// metrics are request counters in Prometheus text format.
type metrics struct {
	requestsUDP, requestsTCP atomic.Uint64
	// rcodes counts answers by RCODE; the last slot holds the rest.
	rcodes                   [mdns.RcodeBadCookie + 2]atomic.Uint64
	forwarded, forwardErrors atomic.Uint64
	cacheHits, cacheMisses   atomic.Uint64
}

func (m *metrics) rcode(c int) {
	if c < 0 || c >= len(m.rcodes)-1 {
		c = len(m.rcodes) - 1
	}
	m.rcodes[c].Add(1)
}

func (m *metrics) write(w http.ResponseWriter) {
	p := func(format string, a ...any) { _, _ = fmt.Fprintf(w, format, a...) }
	p("# HELP skiff_dns_requests_total DNS queries received, by transport.\n# TYPE skiff_dns_requests_total counter\n")
	p("skiff_dns_requests_total{proto=\"udp\"} %d\n", m.requestsUDP.Load())
	p("skiff_dns_requests_total{proto=\"tcp\"} %d\n", m.requestsTCP.Load())
	p("# HELP skiff_dns_responses_total DNS answers sent, by RCODE.\n# TYPE skiff_dns_responses_total counter\n")
	for c := range m.rcodes {
		n := m.rcodes[c].Load()
		if n == 0 {
			continue
		}
		name, ok := mdns.RcodeToString[c]
		if !ok || c == len(m.rcodes)-1 {
			name = "other"
		}
		p("skiff_dns_responses_total{rcode=%s} %d\n", strconv.Quote(name), n)
	}
	p("# HELP skiff_dns_forward_requests_total Queries sent upstream.\n# TYPE skiff_dns_forward_requests_total counter\n")
	p("skiff_dns_forward_requests_total %d\n", m.forwarded.Load())
	p("# HELP skiff_dns_forward_failures_total Forwarded queries no upstream answered.\n# TYPE skiff_dns_forward_failures_total counter\n")
	p("skiff_dns_forward_failures_total %d\n", m.forwardErrors.Load())
	p("# HELP skiff_dns_cache_hits_total Forwarded-answer cache hits.\n# TYPE skiff_dns_cache_hits_total counter\n")
	p("skiff_dns_cache_hits_total %d\n", m.cacheHits.Load())
	p("# HELP skiff_dns_cache_misses_total Forwarded-answer cache misses.\n# TYPE skiff_dns_cache_misses_total counter\n")
	p("skiff_dns_cache_misses_total %d\n", m.cacheMisses.Load())
}
