package proxy

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// conntrackNothingDeleted is what conntrack prints, with exit status 1,
// when no entry matched: not a failure for the proxy.
const conntrackNothingDeleted = "0 flow entries have been deleted"

// conntrackFlushes returns the `conntrack` argument lists that delete the
// UDP flows the change from old to new ports of one Service leaves stale,
// as upstream does:
//
//   - flows DNATed to an endpoint that is gone: UDP has no connection
//     end, so a client (a DNS resolver reusing its port) would keep
//     sending to the dead endpoint forever;
//   - flows to a service IP or NodePort that had no endpoint and now has:
//     the packets rejected before created entries that would bypass the
//     new DNAT rules.
func conntrackFlushes(old, cur []*servicePort) [][]string {
	var out [][]string
	find := func(ports []*servicePort, sp *servicePort) *servicePort {
		for _, p := range ports {
			if p.name == sp.name && p.protocol == sp.protocol {
				return p
			}
		}
		return nil
	}
	for _, sp := range cur {
		if sp.protocol != corev1.ProtocolUDP || len(sp.endpoints) == 0 {
			continue
		}
		if o := find(old, sp); o == nil || len(o.endpoints) == 0 {
			for _, vip := range serviceVIPs(sp) {
				out = append(out, []string{"-D", "-p", "udp", "--orig-dst", vip.String(), "--orig-port-dst", itoa(sp.port)})
			}
			if sp.nodePort != 0 {
				out = append(out, []string{"-D", "-p", "udp", "--orig-port-dst", itoa(sp.nodePort)})
			}
		}
	}
	for _, o := range old {
		if o.protocol != corev1.ProtocolUDP {
			continue
		}
		var keep []endpoint
		if sp := find(cur, o); sp != nil {
			keep = sp.endpoints
		}
		for _, ep := range o.endpoints {
			if slices.Contains(keep, ep) {
				continue
			}
			for _, vip := range serviceVIPs(o) {
				out = append(out, []string{"-D", "-p", "udp", "--orig-dst", vip.String(), "--orig-port-dst", itoa(o.port), "--dst-nat", ep.ip.String()})
			}
			if o.nodePort != 0 {
				out = append(out, []string{"-D", "-p", "udp", "--orig-port-dst", itoa(o.nodePort), "--dst-nat", ep.ip.String()})
			}
		}
	}
	return out
}

// serviceVIPs are the addresses a service port is reached at besides
// NodePorts.
func serviceVIPs(sp *servicePort) []netip.Addr {
	return append([]netip.Addr{sp.clusterIP}, sp.externalIPs...)
}

// runConntrack deletes flows with `conntrack args...`; deleting nothing is
// success.
func runConntrack(ctx context.Context, exec Executor, args []string) error {
	_, err := exec.Run(ctx, nil, "conntrack", args...)
	if err != nil && !errors.Is(err, ErrToolMissing) && strings.Contains(err.Error(), conntrackNothingDeleted) {
		return nil
	}
	return err
}
