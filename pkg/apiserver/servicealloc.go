package apiserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/klog/v2"

	"github.com/skiff-project/skiff/pkg/storage"
)

// defaultServiceNodePortRange is upstream's --service-node-port-range
// default, 30000-32767.
func defaultServiceNodePortRange() utilnet.PortRange {
	return utilnet.PortRange{Base: 30000, Size: 2768}
}

// Upstream repairs the Service IP and port bitmaps every three minutes and
// frees an allocation no Service holds only when three passes in a row saw
// it so, giving creates in flight (allocated, not yet stored) time to land.
const (
	defaultRangeRepairInterval = 3 * time.Minute
	repairsBeforeLeakCleanup   = 3
	// releaseTimeout bounds giving allocations back after a request ended;
	// if it fails the repair loop reclaims them.
	releaseTimeout = 30 * time.Second
)

var coreServices = schema.GroupVersionResource{Version: "v1", Resource: "services"}

// ipRange maps a Service CIDR onto bitmap offsets as upstream does: offset
// 0 is the address after the network address; an IPv4 range excludes its
// broadcast address; an IPv6 range is capped at 65535 addresses.
type ipRange struct {
	cidr   netip.Prefix
	family corev1.IPFamily
	base   netip.Addr // offset 0
	size   int
	static int // upstream: min(max(16, cidr size/16), 256), 0 for tiny ranges
}

func newIPRange(n *net.IPNet) (ipRange, error) {
	addr, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return ipRange{}, fmt.Errorf("service cluster IP range %v: not an IP network", n)
	}
	ones, _ := n.Mask.Size()
	addr = addr.Unmap()
	p := netip.PrefixFrom(addr, ones).Masked()
	host := addr.BitLen() - ones
	r := ipRange{cidr: p, family: corev1.IPv4Protocol, base: p.Addr().Next()}
	if addr.Is6() {
		r.family = corev1.IPv6Protocol
	}
	switch {
	case addr.Is4() && host < 2, addr.Is6() && host < 1:
		return ipRange{}, fmt.Errorf("service cluster IP range %s is too small", p)
	case addr.Is4() && host > 20:
		// The bitmap would outgrow etcd's request size limit.
		return ipRange{}, fmt.Errorf("specified service cluster IP range %s is too large; for 32-bit addresses, the mask must be >= 12", p)
	case addr.Is4():
		r.size = 1<<host - 2
	case host > 16:
		r.size = 1<<16 - 1
	default:
		r.size = 1<<host - 1
	}
	cidrSize := int64(1) << min(host, 62)
	r.static = staticBand(cidrSize, 16, 256, 16)
	return r, nil
}

// staticBand is upstream's calculateRangeOffset: min(max(lo, size/step), hi)
// addresses (or ports) at the start of a range kept for explicit requests;
// none when the range has at most lo entries.
func staticBand(size int64, lo, hi, step int64) int {
	if size <= lo {
		return 0
	}
	return int(min(max(lo, size/step), hi))
}

// addr returns the address at off.
func (r ipRange) addr(off int) netip.Addr {
	b := r.base.As16()
	lo := binary.BigEndian.Uint64(b[8:])
	sum, carry := bits.Add64(lo, uint64(off), 0)
	binary.BigEndian.PutUint64(b[8:], sum)
	binary.BigEndian.PutUint64(b[:8], binary.BigEndian.Uint64(b[:8])+carry)
	a := netip.AddrFrom16(b)
	if r.family == corev1.IPv4Protocol {
		return a.Unmap()
	}
	return a
}

// offset returns ip's offset, or false when ip is not an allocatable
// address of the range.
func (r ipRange) offset(ip netip.Addr) (int, bool) {
	ip = ip.Unmap()
	if !r.cidr.Contains(ip) {
		return 0, false
	}
	a, b := ip.As16(), r.base.As16()
	lo, borrow := bits.Sub64(binary.BigEndian.Uint64(a[8:]), binary.BigEndian.Uint64(b[8:]), 0)
	hi, _ := bits.Sub64(binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8]), borrow)
	if hi != 0 || lo >= uint64(r.size) {
		return 0, false
	}
	return int(lo), true
}

// offsetOf parses ip and returns its offset.
func (r ipRange) offsetOf(ip string) (int, bool) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return 0, false
	}
	return r.offset(a)
}

// serviceAllocator gives Services their ClusterIPs and node ports from two
// ranges persisted in etcd, and repairs those records from the stored
// Services at start and periodically.
type serviceAllocator struct {
	ipRange   ipRange           // immutable
	portRange utilnet.PortRange // immutable
	ips       *rangeAllocator   // immutable
	ports     *rangeAllocator   // immutable
	services  *storage.Resource // the Services' store, for the repair; immutable
	svcPrefix string            // immutable

	// repairInterval and leakRounds are upstream's values, changed only by
	// tests before Start.
	repairInterval time.Duration
	leakRounds     int

	repairMu sync.Mutex
	// ipLeaks and portLeaks count, per offset set in the record but held by
	// no Service, the repair passes left before it is freed; guarded by
	// repairMu.
	ipLeaks, portLeaks map[int]int

	// loops tracks the repair goroutine, which stops with Start's context.
	loops sync.WaitGroup
}

func newServiceAllocator(store *storage.Store, scheme *runtime.Scheme, services *endpoint, cidr *net.IPNet, ports utilnet.PortRange) (*serviceAllocator, error) {
	ipr, err := newIPRange(cidr)
	if err != nil {
		return nil, err
	}
	if ports.Size <= 0 || ports.Base <= 0 || ports.Base+ports.Size-1 > 65535 {
		return nil, fmt.Errorf("service node port range %q is not a valid port range", ports.String())
	}
	codec := storage.NewProtobufCodec(scheme, corev1.SchemeGroupVersion.WithKind("RangeAllocation"))
	res := store.Resource(rangesPrefix, codec, func() runtime.Object { return &corev1.RangeAllocation{} })
	randN := func(n int) int { return rand.IntN(n) }
	return &serviceAllocator{
		ipRange:   ipr,
		portRange: ports,
		ips: &rangeAllocator{res: res, key: rangesPrefix + "serviceips", spec: ipr.cidr.String(),
			size: ipr.size, static: ipr.static, randN: randN},
		ports: &rangeAllocator{res: res, key: rangesPrefix + "servicenodeports", spec: ports.String(),
			size: ports.Size, static: staticBand(int64(ports.Size), 16, 128, 32), randN: randN},
		services:       services.store,
		svcPrefix:      services.prefix,
		repairInterval: defaultRangeRepairInterval,
		leakRounds:     repairsBeforeLeakCleanup,
		ipLeaks:        map[int]int{},
		portLeaks:      map[int]int{},
	}, nil
}

// firstIP is the kubernetes Service's ClusterIP: the range's first address.
func (a *serviceAllocator) firstIP() string { return a.ipRange.addr(0).String() }

// needsClusterIP: every type but ExternalName has ClusterIPs (or None).
func needsClusterIP(svc *corev1.Service) bool {
	return svc.Spec.Type != corev1.ServiceTypeExternalName
}

// needsNodePorts: NodePort and LoadBalancer services get node ports, the
// latter unless spec.allocateLoadBalancerNodePorts is false.
func needsNodePorts(svc *corev1.Service) bool {
	switch svc.Spec.Type {
	case corev1.ServiceTypeNodePort:
		return true
	case corev1.ServiceTypeLoadBalancer:
		p := svc.Spec.AllocateLoadBalancerNodePorts
		return p == nil || *p
	}
	return false
}

// needsHealthCheckNodePort: LoadBalancers that keep traffic on the
// receiving node.
func needsHealthCheckNodePort(svc *corev1.Service) bool {
	return svc.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
}

// realClusterIPs returns the allocated addresses of svc (not None).
func realClusterIPs(svc *corev1.Service) []string {
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	var out []string
	for _, ip := range ips {
		if ip != "" && ip != corev1.ClusterIPNone {
			out = append(out, ip)
		}
	}
	return out
}

// heldNodePorts returns every node port svc holds: its ports' and its
// health check's.
func heldNodePorts(svc *corev1.Service) []int {
	var out []int
	for _, p := range svc.Spec.Ports {
		if p.NodePort != 0 {
			out = append(out, int(p.NodePort))
		}
	}
	if svc.Spec.HealthCheckNodePort != 0 {
		out = append(out, int(svc.Spec.HealthCheckNodePort))
	}
	return out
}

// allocation is what one Service write took from and owes to the ranges.
// revert gives back what it took (the write failed); commit gives back
// what the old object held and the new one does not (the write is
// stored). Both are nil-safe and run at most once between them.
type allocation struct {
	a      *serviceAllocator
	ctx    context.Context // the request's values, without its cancellation
	dryRun bool

	newIPs, newPorts   []int // taken by this write
	freeIPs, freePorts []int // to free once the write is stored
	done               bool
}

func (tx *allocation) revert() {
	if tx == nil || tx.done {
		return
	}
	tx.done = true
	if !tx.dryRun {
		tx.a.release(tx.ctx, tx.newIPs, tx.newPorts)
	}
}

func (tx *allocation) commit() {
	if tx == nil || tx.done {
		return
	}
	tx.done = true
	if !tx.dryRun {
		tx.a.release(tx.ctx, tx.freeIPs, tx.freePorts)
	}
}

// release frees offsets in both ranges; failures are logged, and the
// repair loop frees what is left.
func (a *serviceAllocator) release(ctx context.Context, ips, ports []int) {
	if len(ips) == 0 && len(ports) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if err := a.ips.release(ctx, ips); err != nil {
		klog.ErrorS(err, "release service cluster IPs; the repair loop will reclaim them", "offsets", ips)
	}
	if err := a.ports.release(ctx, ports); err != nil {
		klog.ErrorS(err, "release service node ports; the repair loop will reclaim them", "offsets", ports)
	}
}

// releaseService frees what a Service that is gone from etcd held.
func (a *serviceAllocator) releaseService(svc *corev1.Service) {
	var ips, ports []int
	for _, ip := range realClusterIPs(svc) {
		if off, ok := a.ipRange.offsetOf(ip); ok {
			ips = append(ips, off)
		}
	}
	for _, p := range heldNodePorts(svc) {
		if a.portRange.Contains(p) {
			ports = append(ports, p-a.portRange.Base)
		}
	}
	a.release(context.Background(), ips, ports)
}

// allocate gives svc (being created when old is nil, else replacing old)
// what its type needs, like upstream's service REST storage: ClusterIPs
// and ipFamilies, node ports and a health check node port. It fills those
// fields of svc. With dryRun, nothing is persisted.
func (a *serviceAllocator) allocate(ctx context.Context, svc, old *corev1.Service, dryRun bool) (*allocation, error) {
	tx := &allocation{a: a, ctx: context.WithoutCancel(ctx), dryRun: dryRun}
	if err := a.allocateIPs(ctx, tx, svc, old); err != nil {
		tx.revert()
		return nil, err
	}
	if err := a.allocateNodePorts(ctx, tx, svc, old); err != nil {
		tx.revert()
		return nil, err
	}
	return tx, nil
}

func invalidService(svc *corev1.Service, errs ...*field.Error) error {
	return apierrors.NewInvalid(schema.GroupKind{Kind: "Service"}, svc.Name, field.ErrorList(errs))
}

// internalError keeps API errors and wraps anything else in a 500.
func internalError(err error) error {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		return err
	}
	return apierrors.NewInternalError(err)
}

func (a *serviceAllocator) allocateIPs(ctx context.Context, tx *allocation, svc, old *corev1.Service) error {
	if old != nil && needsClusterIP(old) {
		if !needsClusterIP(svc) {
			// Becoming an ExternalName: the strategy cleared the IPs.
			for _, ip := range realClusterIPs(old) {
				if off, ok := a.ipRange.offsetOf(ip); ok {
					tx.freeIPs = append(tx.freeIPs, off)
				}
			}
		}
		// Otherwise the IPs are kept: validation refuses changes.
		return nil
	}
	if !needsClusterIP(svc) {
		return nil
	}
	spec := &svc.Spec
	if spec.ClusterIP == "" && len(spec.ClusterIPs) > 0 {
		spec.ClusterIP = spec.ClusterIPs[0]
	}
	if err := a.checkFamilies(svc); err != nil {
		return err
	}
	ipsPath := field.NewPath("spec", "clusterIPs")
	requested := spec.ClusterIPs
	if len(requested) == 0 && spec.ClusterIP != "" {
		requested = []string{spec.ClusterIP}
	}
	switch ip := spec.ClusterIP; ip {
	case corev1.ClusterIPNone:
		spec.ClusterIPs = []string{corev1.ClusterIPNone}
		if len(spec.IPFamilies) == 0 {
			spec.IPFamilies = []corev1.IPFamily{a.ipRange.family}
		}
		return nil
	case "":
		var got int
		err := a.ips.change(ctx, tx.dryRun, func(b *bitmap) error {
			got = a.ips.next(b)
			if got < 0 {
				return errRangeFull
			}
			b.set(got)
			return nil
		})
		if err != nil {
			return internalError(fmt.Errorf("failed to allocate a serviceIP: %w", err))
		}
		tx.newIPs = append(tx.newIPs, got)
		spec.ClusterIP = a.ipRange.addr(got).String()
	default:
		off, ok := a.ipRange.offsetOf(ip)
		if !ok {
			return invalidService(svc, field.Invalid(ipsPath, requested, fmt.Sprintf(
				"failed to allocate IP %s: provided IP is not in the valid range. The range of valid IPs is %s", ip, a.ipRange.cidr)))
		}
		taken := false
		err := a.ips.change(ctx, tx.dryRun, func(b *bitmap) error {
			taken = !b.set(off)
			if taken {
				return errAllocated
			}
			return nil
		})
		if taken {
			return invalidService(svc, field.Invalid(ipsPath, requested, fmt.Sprintf(
				"failed to allocate IP %s: provided IP is already allocated", ip)))
		}
		if err != nil {
			return internalError(fmt.Errorf("failed to allocate IP %s: %w", ip, err))
		}
		tx.newIPs = append(tx.newIPs, off)
	}
	spec.ClusterIPs = []string{spec.ClusterIP}
	spec.IPFamilies = []corev1.IPFamily{a.ipRange.family}
	return nil
}

// errAllocated signals, inside a change, an explicit request for a taken
// offset.
var errAllocated = errors.New("already allocated")

// checkFamilies refuses what this single-stack cluster cannot give, as
// upstream does; headless Services without a selector may ask for any
// family (they get no address).
func (a *serviceAllocator) checkFamilies(svc *corev1.Service) error {
	spec := &svc.Spec
	if spec.ClusterIP == corev1.ClusterIPNone && len(spec.Selector) == 0 {
		return nil
	}
	var errs field.ErrorList
	if p := spec.IPFamilyPolicy; p != nil && *p == corev1.IPFamilyPolicyRequireDualStack {
		errs = append(errs, field.Invalid(field.NewPath("spec", "ipFamilyPolicy"), *p, "this cluster is not configured for dual-stack services"))
	}
	for i, f := range spec.IPFamilies {
		if f != a.ipRange.family {
			errs = append(errs, field.Invalid(field.NewPath("spec", "ipFamilies").Index(i), f, "not configured on this cluster"))
		}
	}
	if len(spec.ClusterIPs) > 1 {
		errs = append(errs, field.Invalid(field.NewPath("spec", "clusterIPs").Index(1), spec.ClusterIPs[1], "this cluster is not configured for dual-stack services"))
	}
	if len(errs) > 0 {
		return invalidService(svc, errs...)
	}
	return nil
}

// portSlot is one node port a Service write needs: a requested number, or
// 0 for "any", written to every target once known.
type portSlot struct {
	want    int
	path    *field.Path // nil for the health check node port
	targets []*int32
}

func (a *serviceAllocator) allocateNodePorts(ctx context.Context, tx *allocation, svc, old *corev1.Service) error {
	held := map[int]bool{}
	if old != nil {
		for _, p := range heldNodePorts(old) {
			held[p] = true
		}
	}
	ports := svc.Spec.Ports
	var slots []*portSlot
	byNumber := map[int]bool{}
	// On create, ports with the same number (TCP and UDP 53) share one
	// node port, as upstream: a requested one, else one allocated.
	requestedFor := map[int32]int32{}
	sharedFor := map[int32]*portSlot{}
	if old == nil {
		for _, p := range ports {
			if p.NodePort != 0 {
				if _, ok := requestedFor[p.Port]; !ok {
					requestedFor[p.Port] = p.NodePort
				}
			}
		}
	}
	for i := range ports {
		p := &ports[i]
		if p.NodePort == 0 && needsNodePorts(svc) && old == nil {
			if np, ok := requestedFor[p.Port]; ok {
				p.NodePort = np
			}
		}
		switch {
		case p.NodePort != 0:
			if !byNumber[int(p.NodePort)] {
				byNumber[int(p.NodePort)] = true
				slots = append(slots, &portSlot{want: int(p.NodePort), path: field.NewPath("spec", "ports").Index(i).Child("nodePort")})
			}
		case !needsNodePorts(svc):
			// Requests are honoured, nothing is allocated.
		case old == nil && sharedFor[p.Port] != nil:
			sharedFor[p.Port].targets = append(sharedFor[p.Port].targets, &p.NodePort)
		default:
			s := &portSlot{path: field.NewPath("spec", "ports").Index(i).Child("nodePort"), targets: []*int32{&p.NodePort}}
			slots = append(slots, s)
			if old == nil {
				sharedFor[p.Port] = s
			}
		}
	}
	if needsHealthCheckNodePort(svc) {
		slots = append(slots, &portSlot{want: int(svc.Spec.HealthCheckNodePort), targets: []*int32{&svc.Spec.HealthCheckNodePort}})
	}

	// Only what the old object did not hold is allocated; without such
	// slots the range record is not touched at all.
	var todo []*portSlot
	for _, s := range slots {
		if s.want == 0 || !held[s.want] {
			todo = append(todo, s)
		}
	}
	if len(todo) > 0 {
		results := make([]int, len(todo))
		var failed *portSlot
		var failure error
		err := a.ports.change(ctx, tx.dryRun, func(b *bitmap) error {
			failed, failure = nil, nil
			for i, s := range todo {
				if s.want != 0 {
					if !a.portRange.Contains(s.want) {
						failed, failure = s, fmt.Errorf("provided port is not in the valid range. The range of valid ports is %s", a.portRange.String())
						return failure
					}
					if !b.set(s.want - a.portRange.Base) {
						failed, failure = s, errors.New("provided port is already allocated")
						return failure
					}
					results[i] = s.want
					continue
				}
				off := a.ports.next(b)
				if off < 0 {
					failed, failure = s, errRangeFull
					return failure
				}
				b.set(off)
				results[i] = a.portRange.Base + off
			}
			return nil
		})
		switch {
		case failed != nil && failed.path == nil && failed.want != 0:
			return internalError(fmt.Errorf("failed to allocate requested HealthCheck NodePort %d: %w", failed.want, failure))
		case failed != nil && failed.path == nil:
			return internalError(fmt.Errorf("failed to allocate a HealthCheck NodePort: %w", failure))
		case failed != nil && failed.want != 0:
			return invalidService(svc, field.Invalid(failed.path, failed.want, failure.Error()))
		case failed != nil:
			return internalError(fmt.Errorf("failed to allocate a nodePort: %w", failure))
		case err != nil:
			return internalError(fmt.Errorf("failed to allocate a nodePort: %w", err))
		}
		for i, s := range todo {
			tx.newPorts = append(tx.newPorts, results[i]-a.portRange.Base)
			for _, t := range s.targets {
				*t = int32(results[i])
			}
		}
	}
	kept := map[int]bool{}
	for _, p := range heldNodePorts(svc) {
		kept[p] = true
	}
	for p := range held {
		if !kept[p] && a.portRange.Contains(p) {
			tx.freePorts = append(tx.freePorts, p-a.portRange.Base)
		}
	}
	return nil
}

// allocate is the server's hook for resources that hold allocations: core
// Services. The caller must revert the result if the write fails and
// commit it once the write is stored.
func (s *Server) allocate(ctx context.Context, ep *endpoint, obj, old runtime.Object, dryRun bool) (*allocation, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok || ep.res.Group != "" {
		return nil, nil
	}
	var oldSvc *corev1.Service
	if old != nil {
		oldSvc, _ = old.(*corev1.Service)
	}
	return s.ips.allocate(ctx, svc, oldSvc, dryRun)
}
