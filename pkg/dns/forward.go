package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
)

// upstreamUDPSize is the EDNS buffer size offered to upstreams and clients:
// the DNS flag day 2020 value, which avoids IP fragmentation.
const upstreamUDPSize = 1232

// forwarder sends questions outside the zone to upstream resolvers, like
// CoreDNS's "forward . /etc/resolv.conf": UDP first, TCP when the answer
// was truncated, the next upstream on error, all within one deadline.
type forwarder struct {
	// upstreams are IP:port strings; immutable, never empty.
	upstreams []string
	// timeout bounds one exchange over all upstreams.
	timeout time.Duration
	// next rotates the first upstream tried, spreading the load.
	next atomic.Uint32
	udp  *mdns.Client
	tcp  *mdns.Client
}

func newForwarder(upstreams []string, timeout time.Duration) *forwarder {
	return &forwarder{
		upstreams: upstreams,
		timeout:   timeout,
		// The read buffer takes any UDP answer whole; what the query's
		// OPT allows decides how big the upstream makes it.
		udp: &mdns.Client{Net: "udp", UDPSize: mdns.MaxMsgSize},
		tcp: &mdns.Client{Net: "tcp"},
	}
}

// exchange forwards q (which it does not modify) and returns the first
// upstream answer. The answer has q's ID.
func (f *forwarder) exchange(ctx context.Context, q *mdns.Msg) (*mdns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	out := q.Copy()
	var errs []error
	first := int(f.next.Add(1))
	n := len(f.upstreams)
	for i := range n {
		up := f.upstreams[(first+i)%n]
		// Split what is left of the deadline between the upstreams not
		// yet tried, so one black hole cannot use all of it.
		deadline, _ := ctx.Deadline()
		actx, acancel := context.WithTimeout(ctx, time.Until(deadline)/time.Duration(n-i))
		resp, err := f.exchangeOne(actx, out, up)
		acancel()
		if err == nil {
			resp.Id = q.Id
			return resp, nil
		}
		errs = append(errs, fmt.Errorf("upstream %s: %w", up, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// exchangeOne asks one upstream, over TCP again when the UDP answer is
// truncated.
func (f *forwarder) exchangeOne(ctx context.Context, q *mdns.Msg, upstream string) (*mdns.Msg, error) {
	// A fresh ID per attempt: answers to an earlier, timed-out attempt
	// cannot be taken for this one.
	q.Id = mdns.Id()
	resp, _, err := f.udp.ExchangeContext(ctx, q, upstream)
	if err == nil && resp.Truncated {
		q.Id = mdns.Id()
		resp, _, err = f.tcp.ExchangeContext(ctx, q, upstream)
	}
	if err != nil {
		return nil, err
	}
	if !sameQuestion(q, resp) {
		return nil, fmt.Errorf("answer for %v does not match the question %v", resp.Question, q.Question)
	}
	return resp, nil
}

// sameQuestion reports whether resp answers q's question (names compared
// case-insensitively), a check against spoofed or stray answers.
func sameQuestion(q, resp *mdns.Msg) bool {
	if len(q.Question) != len(resp.Question) {
		return false
	}
	for i, a := range q.Question {
		b := resp.Question[i]
		if a.Qtype != b.Qtype || a.Qclass != b.Qclass || !strings.EqualFold(a.Name, b.Name) {
			return false
		}
	}
	return true
}

// withoutSelf drops the upstreams that are this server: a local address
// (loopback or an interface's) on the port the server listens on, when it
// listens on that address or on all of them. Forwarding to those would
// loop until every query timed out.
func withoutSelf(upstreams []string, bound netip.AddrPort, localAddrs []netip.Addr) (kept, dropped []string) {
	isLocal := func(a netip.Addr) bool {
		if a.IsLoopback() || a.IsUnspecified() {
			return true
		}
		for _, l := range localAddrs {
			if l == a {
				return true
			}
		}
		return false
	}
	for _, u := range upstreams {
		ap, err := netip.ParseAddrPort(u)
		if err == nil && ap.Port() == bound.Port() && isLocal(ap.Addr()) &&
			(bound.Addr().IsUnspecified() || bound.Addr().Unmap() == ap.Addr().Unmap()) {
			dropped = append(dropped, u)
			continue
		}
		kept = append(kept, u)
	}
	return kept, dropped
}

// interfaceAddrs returns the addresses of this machine's interfaces.
func interfaceAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out
}
