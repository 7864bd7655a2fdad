package proxy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
)

// routeProto marks the routes the proxy installs (`ip route ... proto
// 212`, a number iproute2 reserves for no one), so that it finds its own
// routes after a restart and Cleanup removes exactly those.
const routeProto = "212"

// routeSyncer keeps a route to every other Node's pod range via that
// Node's InternalIP, for Nodes on a directly connected network (a flat L2
// network between the machines, as flannel's host-gw assumes). Not safe
// for concurrent use: only the sync loop calls it.
type routeSyncer struct {
	exec     Executor
	nodeName string

	// candidates is the last computed pod range → node IP over all
	// other Nodes, before the reachability filter.
	candidates map[netip.Prefix]netip.Addr
	// applied is what the kernel holds of our routes; nil means unknown
	// (the next sync reads it).
	applied map[netip.Prefix]netip.Addr
}

// sync installs and removes routes so that the kernel holds a route for
// every reachable other Node's pod range. full re-reads the kernel's
// state instead of trusting the last one.
func (r *routeSyncer) sync(ctx context.Context, nodes []*corev1.Node, full bool) error {
	candidates := map[netip.Prefix]netip.Addr{}
	for _, n := range nodes {
		if n.Name == r.nodeName {
			continue
		}
		ip, ok := nodeInternalIPv4(n)
		if !ok {
			continue
		}
		cidrs := n.Spec.PodCIDRs
		if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
			cidrs = []string{n.Spec.PodCIDR}
		}
		for _, c := range cidrs {
			if p, err := netip.ParsePrefix(c); err == nil && p.Addr().Is4() {
				candidates[p.Masked()] = ip
			}
		}
	}
	if !full && r.applied != nil && maps.Equal(candidates, r.candidates) {
		// Node heartbeats and other updates that change no route.
		return nil
	}
	net, err := r.readNetwork(ctx)
	if err != nil {
		return err
	}
	want := map[netip.Prefix]netip.Addr{}
	logger := klog.FromContext(ctx)
	for p, ip := range candidates {
		switch {
		case net.local[ip]:
			logger.V(4).Info("Not routing a node's pod range: its address is local", "podCIDR", p, "nodeIP", ip)
		case !net.connected(ip):
			logger.V(4).Info("Not routing a node's pod range: its address is not on a directly connected network", "podCIDR", p, "nodeIP", ip)
		default:
			want[p] = ip
		}
	}
	var errs []error
	for _, p := range slices.SortedFunc(maps.Keys(want), netip.Prefix.Compare) {
		if gw, ok := net.ours[p]; ok && gw == want[p] {
			continue
		}
		if _, err := r.exec.Run(ctx, nil, "ip", "-4", "route", "replace", p.String(), "via", want[p].String(), "proto", routeProto); err != nil {
			errs = append(errs, fmt.Errorf("route pod range %s via %s: %w", p, want[p], err))
			continue
		}
		logger.V(2).Info("Added route to a node's pod range", "podCIDR", p, "via", want[p])
	}
	for _, p := range slices.SortedFunc(maps.Keys(net.ours), netip.Prefix.Compare) {
		if _, ok := want[p]; ok {
			continue
		}
		if _, err := r.exec.Run(ctx, nil, "ip", "-4", "route", "del", p.String(), "proto", routeProto); err != nil {
			errs = append(errs, fmt.Errorf("delete route to pod range %s: %w", p, err))
			continue
		}
		logger.V(2).Info("Removed route to a pod range", "podCIDR", p, "via", net.ours[p])
	}
	if len(errs) > 0 {
		r.applied = nil
		return errors.Join(errs...)
	}
	r.candidates, r.applied = candidates, want
	return nil
}

// nodeInternalIPv4 returns the Node's first IPv4 InternalIP.
func nodeInternalIPv4(n *corev1.Node) (netip.Addr, bool) {
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil && ip.Is4() {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// hostNetwork is what the routing decision needs of the machine's network.
type hostNetwork struct {
	local map[netip.Addr]bool
	// links are the directly connected IPv4 networks (routes without a
	// gateway in the main table).
	links []netip.Prefix
	// ours are the routes with routeProto: pod range → gateway.
	ours map[netip.Prefix]netip.Addr
}

func (h hostNetwork) connected(ip netip.Addr) bool {
	return slices.ContainsFunc(h.links, func(p netip.Prefix) bool { return p.Contains(ip) })
}

// readNetwork reads the local addresses and the main routing table.
func (r *routeSyncer) readNetwork(ctx context.Context) (hostNetwork, error) {
	h := hostNetwork{local: map[netip.Addr]bool{}, ours: map[netip.Prefix]netip.Addr{}}
	addrs, err := r.exec.Run(ctx, nil, "ip", "-4", "-o", "addr", "show")
	if err != nil {
		return h, fmt.Errorf("list addresses: %w", err)
	}
	for line := range strings.Lines(string(addrs)) {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" {
				if p, err := netip.ParsePrefix(f[i+1]); err == nil {
					h.local[p.Addr()] = true
				}
			}
		}
	}
	routes, err := r.exec.Run(ctx, nil, "ip", "-4", "route", "show", "table", "main")
	if err != nil {
		return h, fmt.Errorf("list routes: %w", err)
	}
	for line := range strings.Lines(string(routes)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		dst, ok := parseRouteDst(f[0])
		if !ok {
			continue
		}
		via, proto := "", ""
		for i := 1; i+1 < len(f); i++ {
			switch f[i] {
			case "via":
				via = f[i+1]
			case "proto":
				proto = f[i+1]
			}
		}
		switch {
		case proto == routeProto:
			if gw, err := netip.ParseAddr(via); err == nil {
				h.ours[dst] = gw
			}
		case via == "":
			h.links = append(h.links, dst)
		}
	}
	return h, nil
}

// parseRouteDst parses the destination of an `ip route show` line
// ("10.0.0.0/24", or "10.0.0.5" for a host route). "default" and route
// types (unreachable, blackhole, ...) are not destinations.
func parseRouteDst(s string) (netip.Prefix, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	return netip.Prefix{}, false
}

// cleanupRoutes deletes every route with routeProto. It succeeds when ip
// is not installed.
func cleanupRoutes(ctx context.Context, exec Executor) error {
	out, err := exec.Run(ctx, nil, "ip", "-4", "route", "show", "table", "main", "proto", routeProto)
	if errors.Is(err, ErrToolMissing) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	var errs []error
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if _, err := exec.Run(ctx, nil, "ip", "-4", "route", "del", f[0], "proto", routeProto); err != nil {
			errs = append(errs, fmt.Errorf("delete route %s: %w", f[0], err))
		}
	}
	return errors.Join(errs...)
}
