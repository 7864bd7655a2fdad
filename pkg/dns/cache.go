package dns

import (
	"sync"
	"time"

	mdns "github.com/miekg/dns"
)

// answerCache keeps forwarded answers, positive and negative, for their TTL
// capped at maxTTL, like CoreDNS's "cache 30". Safe for concurrent use.
type answerCache struct {
	// size is the maximum number of entries; immutable.
	size int
	// maxTTL caps how long an answer is kept; immutable.
	maxTTL time.Duration
	now    func() time.Time

	mu      sync.Mutex
	entries map[cacheKey]cacheEntry // guarded by mu
}

// cacheKey identifies a question; the DO and CD bits change the answer.
type cacheKey struct {
	name          string // canonical
	qtype, qclass uint16
	do, cd        bool
}

type cacheEntry struct {
	msg     *mdns.Msg // never modified once stored
	stored  time.Time
	expires time.Time
}

func newAnswerCache(size int, maxTTL time.Duration, now func() time.Time) *answerCache {
	return &answerCache{size: size, maxTTL: maxTTL, now: now, entries: make(map[cacheKey]cacheEntry)}
}

func keyOf(req *mdns.Msg) cacheKey {
	q := req.Question[0]
	k := cacheKey{name: mdns.CanonicalName(q.Name), qtype: q.Qtype, qclass: q.Qclass, cd: req.CheckingDisabled}
	if opt := req.IsEdns0(); opt != nil {
		k.do = opt.Do()
	}
	return k
}

// get returns a copy of the cached answer to req with its TTLs lowered by
// the time spent in the cache and req's ID and question, or nil.
func (c *answerCache) get(req *mdns.Msg) *mdns.Msg {
	k := keyOf(req)
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[k]
	if ok && !now.Before(e.expires) {
		delete(c.entries, k)
		ok = false
	}
	c.mu.Unlock()
	if !ok {
		return nil
	}
	m := e.msg.Copy()
	m.Id = req.Id
	m.Question = []mdns.Question{req.Question[0]}
	age := uint32(now.Sub(e.stored) / time.Second)
	for _, section := range [][]mdns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range section {
			if h := rr.Header(); h.Rrtype != mdns.TypeOPT {
				h.Ttl -= min(age, h.Ttl)
			}
		}
	}
	return m
}

// put stores resp as the answer to req when it is cacheable: a complete
// NOERROR or NXDOMAIN answer with a non-zero TTL. Negative answers live
// as long as their SOA says (RFC 2308).
func (c *answerCache) put(req, resp *mdns.Msg) {
	if resp.Truncated || (resp.Rcode != mdns.RcodeSuccess && resp.Rcode != mdns.RcodeNameError) {
		return
	}
	ttl, ok := cacheTTL(resp)
	if !ok || ttl == 0 {
		return
	}
	d := min(time.Duration(ttl)*time.Second, c.maxTTL)
	now := c.now()
	k := keyOf(req)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, exists := c.entries[k]; !exists && len(c.entries) >= c.size {
		// Full: evict the expired entries among a few, or else one of
		// them; map iteration starts at a random place.
		var victim cacheKey
		seen, evicted := 0, false
		for ek, e := range c.entries {
			if seen == 0 {
				victim = ek
			}
			if !now.Before(e.expires) {
				delete(c.entries, ek)
				evicted = true
			}
			if seen++; seen == 16 {
				break
			}
		}
		if !evicted {
			delete(c.entries, victim)
		}
	}
	c.entries[k] = cacheEntry{msg: resp.Copy(), stored: now, expires: now.Add(d)}
}

// cacheTTL is the TTL of an answer: the smallest of its records for a
// positive one, the SOA's negative TTL (min of its TTL and MINIMUM) for a
// negative one. ok is false when there is nothing to base it on.
func cacheTTL(m *mdns.Msg) (ttl uint32, ok bool) {
	if m.Rcode == mdns.RcodeSuccess && len(m.Answer) > 0 {
		ttl = ^uint32(0)
		for _, section := range [][]mdns.RR{m.Answer, m.Ns, m.Extra} {
			for _, rr := range section {
				if h := rr.Header(); h.Rrtype != mdns.TypeOPT {
					ttl = min(ttl, h.Ttl)
				}
			}
		}
		return ttl, true
	}
	for _, rr := range m.Ns {
		if soa, isSOA := rr.(*mdns.SOA); isSOA {
			return min(soa.Hdr.Ttl, soa.Minttl), true
		}
	}
	return 0, false
}
