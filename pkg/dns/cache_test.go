package dns

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mdns "github.com/miekg/dns"
)

// fakeClock is a settable clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func reply(req *mdns.Msg, rcode int, answer, ns []string) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetReply(req)
	m.Rcode = rcode
	for _, s := range answer {
		m.Answer = append(m.Answer, mustRR(s))
	}
	for _, s := range ns {
		m.Ns = append(m.Ns, mustRR(s))
	}
	return m
}

func TestAnswerCache(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	c := newAnswerCache(100, 30*time.Second, clock.now)

	// Positive: kept for the smallest TTL, capped at 30 s, TTLs aging.
	req := query("example.com.", mdns.TypeA)
	c.put(req, reply(req, mdns.RcodeSuccess, []string{"example.com. 300 IN A 192.0.2.1", "example.com. 20 IN A 192.0.2.2"}, nil))
	clock.t = clock.t.Add(7 * time.Second)
	again := query("EXAMPLE.com.", mdns.TypeA)
	got := c.get(again)
	if got == nil {
		t.Fatal("cache miss after 7 s of a 20 s answer")
	}
	if got.Id != again.Id || got.Question[0].Name != "EXAMPLE.com." {
		t.Errorf("id %d question %q, want the asker's %d and %q", got.Id, got.Question[0].Name, again.Id, "EXAMPLE.com.")
	}
	want := []string{"example.com. 13 IN A 192.0.2.2", "example.com. 293 IN A 192.0.2.1"}
	if diff := cmp.Diff(want, rrStrings(got.Answer)); diff != "" {
		t.Errorf("aged answer (-want +got):\n%s", diff)
	}
	clock.t = clock.t.Add(13 * time.Second)
	if c.get(again) != nil {
		t.Error("hit after the smallest TTL ran out")
	}

	// Capped at maxTTL.
	req = query("long.example.", mdns.TypeA)
	c.put(req, reply(req, mdns.RcodeSuccess, []string{"long.example. 86400 IN A 192.0.2.3"}, nil))
	clock.t = clock.t.Add(29 * time.Second)
	if c.get(req) == nil {
		t.Error("miss before the 30 s cap")
	}
	clock.t = clock.t.Add(time.Second)
	if c.get(req) != nil {
		t.Error("hit after the 30 s cap")
	}

	// Negative: the SOA's min(TTL, MINIMUM).
	req = query("nx.example.", mdns.TypeA)
	c.put(req, reply(req, mdns.RcodeNameError, nil, []string{"example. 60 IN SOA ns.example. admin.example. 1 7200 1800 86400 10"}))
	clock.t = clock.t.Add(9 * time.Second)
	if got := c.get(req); got == nil || got.Rcode != mdns.RcodeNameError {
		t.Errorf("negative answer within its 10 s: %v", got)
	}
	clock.t = clock.t.Add(time.Second)
	if c.get(req) != nil {
		t.Error("negative answer kept past the SOA minimum")
	}

	// Not cached: SERVFAIL, truncated, TTL 0, negative without SOA.
	for _, m := range []*mdns.Msg{
		reply(req, mdns.RcodeServerFailure, nil, nil),
		func() *mdns.Msg {
			m := reply(req, mdns.RcodeSuccess, []string{"nx.example. 60 IN A 192.0.2.4"}, nil)
			m.Truncated = true
			return m
		}(),
		reply(req, mdns.RcodeSuccess, []string{"nx.example. 0 IN A 192.0.2.4"}, nil),
		reply(req, mdns.RcodeNameError, nil, nil),
	} {
		c.put(req, m)
		if got := c.get(req); got != nil {
			t.Errorf("cached %v", m)
		}
	}

	// DO bit separates entries.
	plain := query("example.org.", mdns.TypeA)
	c.put(plain, reply(plain, mdns.RcodeSuccess, []string{"example.org. 60 IN A 192.0.2.5"}, nil))
	withDO := query("example.org.", mdns.TypeA)
	withDO.SetEdns0(1232, true)
	if c.get(withDO) != nil {
		t.Error("DO query answered from a non-DO entry")
	}
}

func TestAnswerCacheSize(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	c := newAnswerCache(10, 30*time.Second, clock.now)
	for i := range 50 {
		req := query(string(rune('a'+i%26))+string(rune('a'+i/26))+".example.", mdns.TypeA)
		c.put(req, reply(req, mdns.RcodeSuccess, []string{req.Question[0].Name + " 60 IN A 192.0.2.1"}, nil))
		if n := len(c.entries); n > 10 {
			t.Fatalf("%d entries, size 10", n)
		}
	}
}
