package nodeipam

import (
	"errors"
	"fmt"
	"math/big"
	"net/netip"
)

// ErrExhausted is returned by allocate when every subnet of the cluster CIDR
// is in use.
var ErrExhausted = errors.New("cluster CIDR exhausted")

// maxSubnetBits bounds the bitmap: a cluster CIDR may hold at most 2^20
// per-node subnets, which keeps the in-memory table small on any input.
const maxSubnetBits = 20

// allocator hands out fixed-size subnets of one cluster CIDR. It is the
// deterministic core of the controller: no I/O, no clock. It is not safe for
// concurrent use; the Controller guards it with a mutex.
type allocator struct {
	cluster  netip.Prefix   // immutable; masked
	size     int            // immutable; prefix length of each subnet
	owner    []string       // owner[i] is the node holding subnet i, "" if free
	byNode   map[string]int // node name → subnet index it holds
	nextFree int            // where the next search starts, so freed subnets are reused last
}

// newAllocator returns an allocator of /size subnets of cluster.
func newAllocator(cluster netip.Prefix, size int) (*allocator, error) {
	cluster = cluster.Masked()
	if size < cluster.Bits() || size > cluster.Addr().BitLen() {
		return nil, fmt.Errorf("node CIDR mask /%d must be between /%d and /%d", size, cluster.Bits(), cluster.Addr().BitLen())
	}
	if size-cluster.Bits() > maxSubnetBits {
		return nil, fmt.Errorf("cluster CIDR %s split into /%d holds more than 2^%d subnets", cluster, size, maxSubnetBits)
	}
	return &allocator{
		cluster: cluster,
		size:    size,
		owner:   make([]string, 1<<(size-cluster.Bits())),
		byNode:  map[string]int{},
	}, nil
}

// subnet returns the i-th subnet of the cluster CIDR.
func (a *allocator) subnet(i int) netip.Prefix {
	base := new(big.Int).SetBytes(a.cluster.Addr().AsSlice())
	off := new(big.Int).Lsh(big.NewInt(int64(i)), uint(a.cluster.Addr().BitLen()-a.size))
	b := base.Add(base, off).FillBytes(make([]byte, a.cluster.Addr().BitLen()/8))
	addr, _ := netip.AddrFromSlice(b)
	return netip.PrefixFrom(addr, a.size)
}

// index returns the subnet index of cidr, or false when cidr is not exactly
// one subnet of the cluster CIDR.
func (a *allocator) index(cidr netip.Prefix) (int, bool) {
	if cidr.Bits() != a.size || !a.cluster.Contains(cidr.Addr()) || cidr.Masked() != cidr {
		return 0, false
	}
	base := new(big.Int).SetBytes(a.cluster.Addr().AsSlice())
	off := new(big.Int).Sub(new(big.Int).SetBytes(cidr.Addr().AsSlice()), base)
	return int(off.Rsh(off, uint(a.cluster.Addr().BitLen()-a.size)).Int64()), true
}

// occupy records that node holds cidr (found on the node at start or after a
// cache lag). It returns false when cidr is not a subnet of the cluster CIDR,
// which is not ours to track.
func (a *allocator) occupy(node string, cidr netip.Prefix) bool {
	i, ok := a.index(cidr)
	if !ok {
		return false
	}
	if old, held := a.byNode[node]; held && old != i && a.owner[old] == node {
		a.owner[old] = ""
	}
	a.owner[i] = node
	a.byNode[node] = i
	return true
}

// allocate returns the subnet held by node, assigning the next free one when
// it holds none. It returns ErrExhausted when no subnet is free.
func (a *allocator) allocate(node string) (netip.Prefix, error) {
	if i, ok := a.byNode[node]; ok && a.owner[i] == node {
		return a.subnet(i), nil
	}
	for n := range a.owner {
		i := (a.nextFree + n) % len(a.owner)
		if a.owner[i] == "" {
			a.owner[i] = node
			a.byNode[node] = i
			a.nextFree = (i + 1) % len(a.owner)
			return a.subnet(i), nil
		}
	}
	return netip.Prefix{}, ErrExhausted
}

// release frees the subnet node holds, if any.
func (a *allocator) release(node string) {
	i, ok := a.byNode[node]
	if !ok {
		return
	}
	delete(a.byNode, node)
	if a.owner[i] == node {
		a.owner[i] = ""
	}
}
