package apiserver

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/klog/v2"
)

// bootstrapManager is the field manager recorded on objects the server
// creates itself.
const bootstrapManager = "skiff-apiserver"

// bootstrap creates what every cluster has from its first second: the
// default namespaces, the built-in priority classes and the "kubernetes"
// Service with its Endpoints. Existing objects are left alone, so a restart
// changes nothing.
func (s *Server) bootstrap(ctx context.Context) error {
	opts := requestOptions{fieldManager: bootstrapManager}
	for _, name := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
		if err := s.ensure(ctx, coreNamespaces, "", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, opts); err != nil {
			return err
		}
	}
	for name, value := range builtinPriorityClasses() {
		pc := &schedulingv1.PriorityClass{
			ObjectMeta:  metav1.ObjectMeta{Name: name},
			Value:       value,
			Description: "Used for system critical pods that must not be moved from their current node.",
		}
		if err := s.ensure(ctx, schedPriorityClasses, "", pc, opts); err != nil {
			return err
		}
	}
	host, portStr, err := net.SplitHostPort(s.cfg.ExternalAddress)
	if err != nil || net.ParseIP(host) == nil {
		return nil
	}
	port, _ := strconv.Atoi(portStr)
	firstIP := s.ips.firstIP()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default",
			Labels: map[string]string{"component": "apiserver", "provider": "kubernetes"}},
		Spec: corev1.ServiceSpec{
			ClusterIP: firstIP,
			Ports:     []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(int32(port))}},
		},
	}
	if err := s.ensure(ctx, coreServices, "default", svc, opts); err != nil {
		return err
	}
	live, err := s.announceMaster(ctx, host)
	if err != nil {
		return err
	}
	return s.reconcileMasterEndpoints(ctx, host, int32(port), live, opts)
}

// Master leases: every API server sharing the etcd keeps a key with its
// advertised address under masterLeasePrefix, bound to an etcd lease it
// renews every masterLeaseRenew; the "kubernetes" Service's endpoints are
// the addresses whose keys are alive (upstream's lease endpoint
// reconciler). A crashed server's address leaves them within
// masterLeaseTTL; a stopped one removes itself at once.
const (
	masterLeasePrefix = "/registry/masterleases/"
	masterLeaseTTL    = 15 * time.Second
	masterLeaseRenew  = 5 * time.Second
)

// announceMaster renews this server's master lease and returns the
// addresses of every live server, this one included.
func (s *Server) announceMaster(ctx context.Context, host string) ([]string, error) {
	if err := s.cfg.Store.PutLeased(ctx, masterLeasePrefix+host, []byte(host), masterLeaseTTL); err != nil {
		return nil, fmt.Errorf("renew master lease: %w", err)
	}
	vals, err := s.cfg.Store.Values(ctx, masterLeasePrefix)
	if err != nil {
		return nil, fmt.Errorf("list master leases: %w", err)
	}
	live := make([]string, 0, len(vals))
	for _, v := range vals {
		live = append(live, string(v))
	}
	return live, nil
}

// runMasterLeases keeps this server's master lease and the "kubernetes"
// endpoints current until ctx is done, then withdraws this server from
// both, so clients stop being sent to a server that is going away.
func (s *Server) runMasterLeases(ctx context.Context) {
	host, portStr, err := net.SplitHostPort(s.cfg.ExternalAddress)
	if err != nil || net.ParseIP(host) == nil {
		return
	}
	port, _ := strconv.Atoi(portStr)
	opts := requestOptions{fieldManager: bootstrapManager}
	t := time.NewTicker(s.leaseRenew)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.withdrawMaster(host, int32(port), opts)
			return
		case <-t.C:
		}
		live, err := s.announceMaster(ctx, host)
		if err == nil {
			err = s.reconcileMasterEndpoints(ctx, host, int32(port), live, opts)
		}
		if err != nil && ctx.Err() == nil {
			klog.ErrorS(err, "Keeping the kubernetes Service's endpoints current")
		}
	}
}

// withdrawMaster deletes this server's master lease and takes its address
// out of the "kubernetes" endpoints, best effort: the lease expires anyway.
func (s *Server) withdrawMaster(host string, port int32, opts requestOptions) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.cfg.Store.DeleteKey(ctx, masterLeasePrefix+host); err != nil {
		klog.V(1).InfoS("Withdrawing the master lease", "err", err)
		return
	}
	vals, err := s.cfg.Store.Values(ctx, masterLeasePrefix)
	if err != nil {
		klog.V(1).InfoS("Withdrawing from the kubernetes endpoints", "err", err)
		return
	}
	var live []string
	for _, v := range vals {
		live = append(live, string(v))
	}
	if err := s.reconcileMasterEndpoints(ctx, "", port, live, opts); err != nil {
		klog.V(1).InfoS("Withdrawing from the kubernetes endpoints", "err", err)
	}
}

// reconcileMasterEndpoints makes the endpoints of the "kubernetes"
// Service, in its Endpoints and in its EndpointSlice (which service
// proxies read), the addresses of the live API servers: live (from the
// master leases) plus host, this server, unless host is empty (it is
// leaving). Loopback addresses, which no pod can reach and older versions
// wrote, are dropped unless this server advertises one itself. A converged
// object is not written.
func (s *Server) reconcileMasterEndpoints(ctx context.Context, host string, port int32, live []string, opts requestOptions) error {
	desired := []string{}
	for _, ip := range append(slices.Clone(live), host) {
		if parsed := net.ParseIP(ip); parsed != nil && (!parsed.IsLoopback() || ip == host) {
			desired = append(desired, ip)
		}
	}
	slices.Sort(desired)
	desired = slices.Compact(desired)
	epPort := corev1.EndpointPort{Name: "https", Port: port, Protocol: corev1.ProtocolTCP}
	endpointsFor := func(ips []string) *corev1.Endpoints {
		eps := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default",
			Labels: map[string]string{"endpointslice.kubernetes.io/skip-mirror": "true"}}}
		if len(ips) == 0 {
			return eps // a subset needs an address
		}
		sub := corev1.EndpointSubset{Ports: []corev1.EndpointPort{epPort}}
		for _, ip := range ips {
			sub.Addresses = append(sub.Addresses, corev1.EndpointAddress{IP: ip})
		}
		eps.Subsets = []corev1.EndpointSubset{sub}
		return eps
	}
	epGVR := schema.GroupVersionResource{Version: "v1", Resource: "endpoints"}
	ep, ok := s.lookup(epGVR)
	if !ok {
		return fmt.Errorf("no endpoint for %s", epGVR)
	}
	_, _, err := s.update(ctx, ep, "default", "kubernetes", "", opts, func(cur runtime.Object) (runtime.Object, error) {
		eps := cur.(*corev1.Endpoints)
		eps.Subsets = endpointsFor(desired).Subsets
		if eps.Labels == nil {
			eps.Labels = map[string]string{}
		}
		eps.Labels["endpointslice.kubernetes.io/skip-mirror"] = "true"
		return eps, nil
	}, func() (runtime.Object, error) { return endpointsFor(desired), nil })
	if err != nil {
		return fmt.Errorf("reconcile the kubernetes Endpoints: %w", err)
	}

	family := discoveryv1.AddressTypeIPv4
	if len(desired) > 0 && net.ParseIP(desired[0]).To4() == nil {
		family = discoveryv1.AddressTypeIPv6
	}
	ready := true
	name, proto := "https", corev1.ProtocolTCP
	sliceFor := func(ips []string) *discoveryv1.EndpointSlice {
		es := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default",
				Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}},
			AddressType: family,
			Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &proto}},
		}
		for _, ip := range ips {
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip},
				Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
		}
		return es
	}
	esGVR := schema.GroupVersionResource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"}
	es, ok := s.lookup(esGVR)
	if !ok {
		return fmt.Errorf("no endpoint for %s", esGVR)
	}
	_, _, err = s.update(ctx, es, "default", "kubernetes", "", opts, func(cur runtime.Object) (runtime.Object, error) {
		slice := cur.(*discoveryv1.EndpointSlice)
		want := sliceFor(desired)
		slice.AddressType, slice.Endpoints, slice.Ports = want.AddressType, want.Endpoints, want.Ports
		if slice.Labels == nil {
			slice.Labels = map[string]string{}
		}
		slice.Labels[discoveryv1.LabelServiceName] = "kubernetes"
		return slice, nil
	}, func() (runtime.Object, error) { return sliceFor(desired), nil })
	if err != nil {
		return fmt.Errorf("reconcile the kubernetes EndpointSlice: %w", err)
	}
	return nil
}

// ensure creates obj unless it already exists.
func (s *Server) ensure(ctx context.Context, gvr schema.GroupVersionResource, ns string, obj runtime.Object, opts requestOptions) error {
	ep, ok := s.lookup(gvr)
	if !ok {
		return fmt.Errorf("no endpoint for %s", gvr)
	}
	obj.GetObjectKind().SetGroupVersionKind(ep.res.GroupVersionKind())
	name := obj.(metav1.Object).GetName()
	if _, err := ep.store.Get(ctx, ep.key(ns, name)); err == nil {
		return nil
	}
	_, err := s.create(ctx, ep, ns, obj, opts)
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create %s: %w", gvr.Resource, err)
	}
	return nil
}
