package apiserver

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-project/skiff/pkg/storage"
)

// Service node ports come from upstream's default range.
const (
	nodePortMin = 30000
	nodePortMax = 32767
)

var coreServices = schema.GroupVersionResource{Version: "v1", Resource: "services"}

// ipAllocator hands out Service ClusterIPs and NodePorts. Its state is
// rebuilt from the stored Services at start, so it survives restarts;
// allocations are checked under one lock so an IP is never given twice by
// this server.
type ipAllocator struct {
	network *net.IPNet
	base    uint32
	size    uint32
	// static is the low band reserved for requested IPs (the kubernetes
	// service at .1, DNS at .10), like upstream's static/dynamic split.
	static uint32

	mu    sync.Mutex
	ips   map[uint32]bool // guarded by mu
	ports map[int32]bool  // guarded by mu
}

func newIPAllocator(network *net.IPNet) *ipAllocator {
	ones, bits := network.Mask.Size()
	size := uint32(1) << uint(bits-ones)
	static := size / 16
	if static < 16 {
		static = 16
	}
	if static > 256 {
		static = 256
	}
	return &ipAllocator{
		network: network, base: binary.BigEndian.Uint32(network.IP.To4()), size: size, static: static,
		ips: map[uint32]bool{}, ports: map[int32]bool{},
	}
}

// load marks every stored Service's IP and node ports as used.
func (a *ipAllocator) load(ctx context.Context, s *Server) error {
	ep, ok := s.lookup(coreServices)
	if !ok {
		return nil
	}
	res, err := ep.store.List(ctx, ep.prefix, storage.ListOptions{})
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, item := range res.Items {
		svc := item.(*corev1.Service)
		if off, ok := a.offset(svc.Spec.ClusterIP); ok {
			a.ips[off] = true
		}
		for _, p := range svc.Spec.Ports {
			if p.NodePort != 0 {
				a.ports[p.NodePort] = true
			}
		}
	}
	return nil
}

func (a *ipAllocator) offset(ip string) (uint32, bool) {
	parsed := net.ParseIP(ip).To4()
	if parsed == nil || !a.network.Contains(parsed) {
		return 0, false
	}
	return binary.BigEndian.Uint32(parsed) - a.base, true
}

func (a *ipAllocator) ipAt(off uint32) string {
	b := make(net.IP, 4)
	binary.BigEndian.PutUint32(b, a.base+off)
	return b.String()
}

// allocate gives a Service being created or updated its ClusterIP and node
// ports. release undoes exactly what this call allocated.
func (a *ipAllocator) allocate(svc, old *corev1.Service) (release func(), err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var gotIP []uint32
	var gotPorts []int32
	release = func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, o := range gotIP {
			delete(a.ips, o)
		}
		for _, p := range gotPorts {
			delete(a.ports, p)
		}
	}
	undo := func(e error) (func(), error) {
		for _, o := range gotIP {
			delete(a.ips, o)
		}
		for _, p := range gotPorts {
			delete(a.ports, p)
		}
		return func() {}, e
	}
	invalid := func(path *field.Path, value interface{}, msg string) error {
		return apierrors.NewInvalid(schema.GroupKind{Kind: "Service"}, svc.Name, field.ErrorList{field.Invalid(path, value, msg)})
	}
	if old == nil && svc.Spec.Type != corev1.ServiceTypeExternalName {
		switch ip := svc.Spec.ClusterIP; ip {
		case corev1.ClusterIPNone:
		case "":
			off, ok := a.freeIP()
			if !ok {
				return undo(apierrors.NewInternalError(fmt.Errorf("failed to allocate a serviceIP: range is full")))
			}
			a.ips[off] = true
			gotIP = append(gotIP, off)
			svc.Spec.ClusterIP = a.ipAt(off)
		default:
			off, ok := a.offset(ip)
			if !ok {
				return undo(invalid(field.NewPath("spec", "clusterIPs"), []string{ip},
					fmt.Sprintf("failed to allocate IP %s: provided IP is not in the valid range. The range of valid IPs is %s", ip, a.network)))
			}
			if a.ips[off] {
				return undo(invalid(field.NewPath("spec", "clusterIPs"), []string{ip},
					fmt.Sprintf("failed to allocate IP %s: provided IP is already allocated", ip)))
			}
			a.ips[off] = true
			gotIP = append(gotIP, off)
		}
		svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
		if svc.Spec.ClusterIP != corev1.ClusterIPNone {
			svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
		} else if len(svc.Spec.IPFamilies) == 0 {
			svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
		}
		if svc.Spec.IPFamilyPolicy == nil {
			p := corev1.IPFamilyPolicySingleStack
			svc.Spec.IPFamilyPolicy = &p
		}
	}
	if svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		held := map[int32]bool{}
		if old != nil {
			for _, p := range old.Spec.Ports {
				held[p.NodePort] = true
			}
		}
		for i := range svc.Spec.Ports {
			p := &svc.Spec.Ports[i]
			switch {
			case p.NodePort == 0:
				port, ok := a.freePort()
				if !ok {
					return undo(apierrors.NewInternalError(fmt.Errorf("failed to allocate a nodePort: range is full")))
				}
				a.ports[port] = true
				gotPorts = append(gotPorts, port)
				p.NodePort = port
			case held[p.NodePort]:
			case p.NodePort < nodePortMin || p.NodePort > nodePortMax:
				return undo(invalid(field.NewPath("spec", "ports").Index(i).Child("nodePort"), p.NodePort,
					fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %d-%d", nodePortMin, nodePortMax)))
			case a.ports[p.NodePort]:
				return undo(invalid(field.NewPath("spec", "ports").Index(i).Child("nodePort"), p.NodePort, "provided port is already allocated"))
			default:
				a.ports[p.NodePort] = true
				gotPorts = append(gotPorts, p.NodePort)
			}
		}
	}
	return release, nil
}

func (a *ipAllocator) freeIP() (uint32, bool) {
	// Dynamic allocations avoid the static band and the network address.
	lo, hi := a.static, a.size-1
	if hi <= lo {
		lo, hi = 1, a.size-1
	}
	n := hi - lo
	start := rand.Uint32N(n)
	for i := uint32(0); i < n; i++ {
		off := lo + (start+i)%n
		if !a.ips[off] {
			return off, true
		}
	}
	for off := uint32(1); off < a.static && off < a.size-1; off++ {
		if !a.ips[off] {
			return off, true
		}
	}
	return 0, false
}

func (a *ipAllocator) freePort() (int32, bool) {
	n := int32(nodePortMax - nodePortMin + 1)
	start := rand.Int32N(n)
	for i := int32(0); i < n; i++ {
		p := nodePortMin + (start+i)%n
		if !a.ports[p] {
			return p, true
		}
	}
	return 0, false
}

// releaseService frees what a deleted Service held.
func (a *ipAllocator) releaseService(svc *corev1.Service) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if off, ok := a.offset(svc.Spec.ClusterIP); ok {
		delete(a.ips, off)
	}
	for _, p := range svc.Spec.Ports {
		delete(a.ports, p.NodePort)
	}
}

// allocate is the server's hook for resources that hold allocations.
func (s *Server) allocate(ep *endpoint, obj, old runtime.Object, dryRun bool) (func(), error) {
	svc, ok := obj.(*corev1.Service)
	if !ok || ep.res.Group != "" {
		return func() {}, nil
	}
	var oldSvc *corev1.Service
	if old != nil {
		oldSvc, _ = old.(*corev1.Service)
	}
	release, err := s.ips.allocate(svc, oldSvc)
	if err != nil {
		return nil, err
	}
	if dryRun {
		release()
		return func() {}, nil
	}
	return release, nil
}
