package apiserver

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/skiff-project/skiff/pkg/storage"
)

// repairAttempts bounds the immediate retries of a repair pass that lost a
// compare-and-swap to a concurrent allocation.
const repairAttempts = 5

// start runs the first repair pass, so the records exist and agree with
// the stored Services before any request is served, then keeps repairing
// every repairInterval until ctx is done.
func (a *serviceAllocator) start(ctx context.Context) error {
	if err := a.repair(ctx); err != nil {
		return err
	}
	a.loops.Go(func() {
		t := time.NewTicker(a.repairInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := a.repair(ctx); err != nil && ctx.Err() == nil {
				klog.ErrorS(err, "repair service IP and node port allocations")
			}
		}
	})
	return nil
}

// repair runs repairOnce, retrying a few times when it raced with an
// allocation (which is normal under load; the next pass catches up anyway).
func (a *serviceAllocator) repair(ctx context.Context) error {
	var err error
	for attempt := 0; attempt < repairAttempts; attempt++ {
		if err = a.repairOnce(ctx); !errors.Is(err, errRepairConflict) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 50 * time.Millisecond):
		}
	}
	return err
}

// repairOnce rebuilds both bitmaps from the Services in etcd, like
// upstream's repair controllers: every address and port a Service holds is
// marked (so it is never handed out again, whatever the record says), and
// an offset the record has but no Service holds is freed only after
// leakRounds passes saw it so (a create in flight has allocated it but not
// stored its Service yet). The records are read before the Services are
// listed and written back with a compare-and-swap on what was read, so an
// allocation or release that happened meanwhile makes the pass fail with
// errRepairConflict instead of being undone.
func (a *serviceAllocator) repairOnce(ctx context.Context) error {
	a.repairMu.Lock()
	defer a.repairMu.Unlock()
	storedIPs, ipRV, ipRangeChanged, err := a.ips.readForRepair(ctx)
	if err != nil {
		return err
	}
	storedPorts, portRV, portRangeChanged, err := a.ports.readForRepair(ctx)
	if err != nil {
		return err
	}
	list, err := a.services.List(ctx, a.svcPrefix, storage.ListOptions{})
	if err != nil {
		return fmt.Errorf("list services: %w", err)
	}
	ips, ports := newBitmap(a.ips.size), newBitmap(a.ports.size)
	for _, item := range list.Items {
		svc, ok := item.(*corev1.Service)
		if !ok {
			continue
		}
		for _, ip := range realClusterIPs(svc) {
			off, ok := a.ipRange.offsetOf(ip)
			switch {
			case !ok:
				klog.InfoS("service cluster IP is not within the service CIDR; please recreate the service", "service", klog.KObj(svc), "ip", ip, "cidr", a.ipRange.cidr)
			case !ips.set(off):
				klog.InfoS("service cluster IP was assigned to multiple services; please recreate the service", "service", klog.KObj(svc), "ip", ip)
			}
		}
		for _, p := range heldNodePorts(svc) {
			switch {
			case !a.portRange.Contains(p):
				klog.InfoS("service node port is not within the port range; please recreate the service", "service", klog.KObj(svc), "nodePort", p, "range", a.portRange.String())
			case !ports.set(p - a.portRange.Base):
				// Ports of one Service may share a number (TCP and UDP).
			}
		}
	}
	a.keepLeaks(storedIPs, ips, a.ipLeaks, "cluster IP", func(off int) string { return a.ipRange.addr(off).String() })
	a.keepLeaks(storedPorts, ports, a.portLeaks, "node port", func(off int) string { return fmt.Sprint(a.portRange.Base + off) })
	if storedIPs == nil || ipRangeChanged || !sameBits(storedIPs, ips) {
		if err := a.ips.replace(ctx, ipRV, ips); err != nil {
			return fmt.Errorf("write %s: %w", a.ips.key, err)
		}
	}
	if storedPorts == nil || portRangeChanged || !sameBits(storedPorts, ports) {
		if err := a.ports.replace(ctx, portRV, ports); err != nil {
			return fmt.Errorf("write %s: %w", a.ports.key, err)
		}
	}
	return nil
}

// keepLeaks keeps in rebuilt, for a few passes, what stored has and no
// Service holds; leaks counts the passes left per offset and forgets
// offsets that are in use again or gone.
func (a *serviceAllocator) keepLeaks(stored, rebuilt *bitmap, leaks map[int]int, what string, name func(int) string) {
	seen := map[int]bool{}
	if stored != nil {
		stored.forEach(func(off int) {
			if rebuilt.has(off) {
				return
			}
			seen[off] = true
			left, ok := leaks[off]
			if !ok {
				klog.InfoS("service "+what+" may have leaked: flagging it for clean-up", what, name(off))
				left = a.leakRounds - 1
			}
			if left > 0 {
				leaks[off] = left - 1
				rebuilt.set(off)
				return
			}
			klog.InfoS("service "+what+" leaked: freeing it", what, name(off))
		})
	}
	for off := range leaks {
		if !seen[off] {
			delete(leaks, off)
		}
	}
}

// sameBits reports whether two bitmaps of one range hold the same offsets.
func sameBits(a, b *bitmap) bool {
	if a.count != b.count || len(a.words) != len(b.words) {
		return false
	}
	for i := range a.words {
		if a.words[i] != b.words[i] {
			return false
		}
	}
	return true
}
