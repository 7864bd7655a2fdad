package dns

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Defaults of Config, the values of CoreDNS's stock kube-system Corefile
// (kubernetes plugin ttl 5, cache 30, health :8080, ready :8181).
const (
	DefaultAddress        = ":53"
	DefaultClusterDomain  = "cluster.local"
	DefaultTTL            = 5 * time.Second
	DefaultResolvConf     = "/etc/resolv.conf"
	DefaultHealthAddress  = ":8080"
	DefaultReadyAddress   = ":8181"
	DefaultCacheSize      = 10000
	DefaultCacheMaxTTL    = 30 * time.Second
	DefaultForwardTimeout = 2 * time.Second
)

// Config is what New needs. Zero values mean the default named on each
// field, so Config{Client: c} is a working server on :53.
type Config struct {
	// Client reads Services, EndpointSlices and Namespaces (list and watch);
	// required.
	Client kubernetes.Interface

	// Address is the host:port served over both UDP and TCP (default
	// DefaultAddress). With port 0 one free port is picked for both.
	Address string
	// ClusterDomain is the zone answered from the API (default
	// cluster.local); matched case-insensitively.
	ClusterDomain string
	// TTL of every in-zone record and of the SOA's negative-caching TTL,
	// whole seconds (default 5 s, like CoreDNS; at most one hour).
	TTL time.Duration
	// DNSService names the Service whose ClusterIPs are the A/AAAA records
	// of ns.dns.<zone>, the zone's NS target (default kube-system/kube-dns,
	// kubeadm's name for CoreDNS's Service).
	DNSService types.NamespacedName

	// Upstreams are the resolvers queries outside the zone are forwarded
	// to, as IP or IP:port (port 53 when absent). Nil reads the
	// nameservers of ResolvConf; empty (non-nil) forwards nothing. Upstreams that are this server's own
	// listening address are dropped, so the server never forwards to
	// itself; with none left, such queries get SERVFAIL.
	Upstreams []string
	// ResolvConf is read when Upstreams is nil (default /etc/resolv.conf).
	// A missing file means no upstreams, not an error.
	ResolvConf string
	// ForwardTimeout bounds one forwarded query over all upstreams and
	// attempts (default 2 s), so an unreachable upstream yields SERVFAIL
	// well before a stub resolver's own 5 s timeout.
	ForwardTimeout time.Duration
	// CacheSize is the number of forwarded answers kept (default 10000);
	// negative disables the cache. In-zone answers are never cached: they
	// come from memory and must follow informer updates.
	CacheSize int
	// CacheMaxTTL caps how long a forwarded answer, positive or negative,
	// is cached (default 30 s, CoreDNS "cache 30").
	CacheMaxTTL time.Duration

	// HealthAddress serves GET /health (200 while the process serves) and
	// /metrics; empty disables it (the command's default is :8080).
	HealthAddress string
	// ReadyAddress serves GET /ready: 200 once the informers have synced,
	// 503 before; empty disables it (the command's default is :8181). It
	// may equal HealthAddress.
	ReadyAddress string
}

// withDefaults returns c with zero fields defaulted and everything checked.
func (c Config) withDefaults() (Config, error) {
	if c.Client == nil {
		return c, errors.New("dns config: Client is required")
	}
	if c.Address == "" {
		c.Address = DefaultAddress
	}
	if _, _, err := net.SplitHostPort(c.Address); err != nil {
		return c, fmt.Errorf("dns config: address %q: %w", c.Address, err)
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = DefaultClusterDomain
	}
	c.ClusterDomain = mdns.CanonicalName(strings.TrimSuffix(c.ClusterDomain, "."))
	if _, ok := mdns.IsDomainName(c.ClusterDomain); !ok || c.ClusterDomain == "." {
		return c, fmt.Errorf("dns config: cluster domain %q is not a domain name", c.ClusterDomain)
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.TTL < time.Second || c.TTL > time.Hour {
		return c, fmt.Errorf("dns config: ttl %v must be between 1s and 1h", c.TTL)
	}
	if c.DNSService.Name == "" {
		c.DNSService = types.NamespacedName{Namespace: "kube-system", Name: "kube-dns"}
	}
	if c.ResolvConf == "" {
		c.ResolvConf = DefaultResolvConf
	}
	if c.ForwardTimeout == 0 {
		c.ForwardTimeout = DefaultForwardTimeout
	}
	if c.ForwardTimeout < 0 {
		return c, fmt.Errorf("dns config: negative forward timeout %v", c.ForwardTimeout)
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	if c.CacheMaxTTL == 0 {
		c.CacheMaxTTL = DefaultCacheMaxTTL
	}
	if c.CacheMaxTTL < 0 {
		return c, fmt.Errorf("dns config: negative cache max ttl %v", c.CacheMaxTTL)
	}
	for _, a := range []string{c.HealthAddress, c.ReadyAddress} {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return c, fmt.Errorf("dns config: http address %q: %w", a, err)
		}
	}
	if c.Upstreams != nil {
		ups := make([]string, 0, len(c.Upstreams))
		for _, u := range c.Upstreams {
			ap, err := parseUpstream(u)
			if err != nil {
				return c, fmt.Errorf("dns config: %w", err)
			}
			ups = append(ups, ap.String())
		}
		c.Upstreams = ups
	}
	return c, nil
}

// parseUpstream accepts "IP" or "IP:port" (IPv6 in brackets with a port)
// and returns the address with port 53 when none was given.
func parseUpstream(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("upstream %q: want IP or IP:port", s)
	}
	return netip.AddrPortFrom(a.Unmap(), 53), nil
}

// resolvConfUpstreams returns the nameservers of a resolv.conf file as
// IP:port strings; a missing file yields none.
func resolvConfUpstreams(path string) ([]string, error) {
	cc, err := mdns.ClientConfigFromFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("read upstreams from %s: %w", path, err)
	}
	port := uint16(53)
	if p, err := strconv.ParseUint(cc.Port, 10, 16); err == nil && p != 0 {
		port = uint16(p)
	}
	var ups []string
	for _, s := range cc.Servers {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("read upstreams from %s: nameserver %q: %w", path, s, err)
		}
		ups = append(ups, netip.AddrPortFrom(a.Unmap(), port).String())
	}
	return ups, nil
}
