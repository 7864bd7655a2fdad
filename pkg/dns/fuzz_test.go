package dns

import (
	"context"
	"testing"

	mdns "github.com/miekg/dns"
)

// FuzzHandle feeds arbitrary packets to the query handler, as the server
// would after parsing them: it must never panic, drop only responses, and
// always produce an answer that packs, parses back, carries the query's ID
// and fits the client's UDP buffer. The seed corpus (testdata/fuzz) holds
// one query per record shape and the malformed kinds.
func FuzzHandle(f *testing.F) {
	s, _ := startServer(f, Config{}, fixture()...)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		req := new(mdns.Msg)
		if err := req.Unpack(data); err != nil {
			return // the server never hands such packets to the handler
		}
		for _, udp := range []bool{true, false} {
			resp := s.handle(ctx, req, udp)
			if resp == nil {
				if !req.Response {
					t.Fatalf("query dropped: %v", req)
				}
				continue
			}
			if resp.Id != req.Id || !resp.Response {
				t.Fatalf("answer id %d response %v to query id %d", resp.Id, resp.Response, req.Id)
			}
			out, err := resp.Pack()
			if err != nil {
				t.Fatalf("answer does not pack: %v\n%v", err, resp)
			}
			if udp {
				limit := mdns.MinMsgSize
				if opt := req.IsEdns0(); opt != nil {
					limit = max(int(opt.UDPSize()), mdns.MinMsgSize)
				}
				if len(out) > limit {
					t.Fatalf("UDP answer of %d bytes for a %d-byte buffer", len(out), limit)
				}
			}
			if err := new(mdns.Msg).Unpack(out); err != nil {
				t.Fatalf("answer does not parse back: %v", err)
			}
		}
	})
}
