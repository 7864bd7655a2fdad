package storage

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// PutLeased writes value at key bound to a new etcd lease of ttl (whole
// seconds, at least one): the key disappears ttl after the last PutLeased
// unless written again. Servers sharing the etcd announce that they are
// alive this way (upstream's master leases); a crashed one stops renewing
// and its key expires by itself.
func (s *Store) PutLeased(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	secs := max(int64(ttl/time.Second), 1)
	lease, err := s.client.Grant(ctx, secs)
	if err != nil {
		return fmt.Errorf("grant a %ds lease for %s: %w", secs, key, err)
	}
	if _, err := s.client.Put(ctx, key, string(value), clientv3.WithLease(lease.ID)); err != nil {
		return fmt.Errorf("put leased %s: %w", key, err)
	}
	return nil
}

// Values returns the values of every key under prefix, in key order, with
// a linearizable read. It is meant for small sets of raw keys such as the
// ones PutLeased writes, not for API objects.
func (s *Store) Values(ctx context.Context, prefix string) ([][]byte, error) {
	resp, err := s.client.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	out := make([][]byte, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out = append(out, kv.Value)
	}
	return out, nil
}

// DeleteKey removes a raw key (one PutLeased wrote); a missing key is not
// an error.
func (s *Store) DeleteKey(ctx context.Context, key string) error {
	if _, err := s.client.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}
