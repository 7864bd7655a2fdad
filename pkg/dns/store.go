package dns

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// Index names of the informers' indexers.
const (
	// byIP indexes Services by their ClusterIPs and EndpointSlices by the
	// addresses of their ready endpoints, for PTR answers.
	byIP = "ip"
	// byService indexes EndpointSlices by "<namespace>/<service name>".
	byService = "service"
)

// store is the in-memory view of the API objects DNS answers from: the
// caches of three informers (Services, EndpointSlices, Namespaces). Reads
// are safe from any goroutine; objects read must not be modified.
type store struct {
	client     kubernetes.Interface
	factory    informers.SharedInformerFactory
	services   cache.SharedIndexInformer
	slices     cache.SharedIndexInformer
	namespaces cache.SharedIndexInformer

	// synced is set once all three caches have their initial list.
	synced atomic.Bool
	// modified is the Unix time in seconds of the last informer event,
	// the zone's SOA serial as CoreDNS computes it.
	modified atomic.Int64
	// now is the clock for modified.
	now func() time.Time
}

// newStore creates the informers and their indexes; nothing runs until
// start.
func newStore(client kubernetes.Interface, now func() time.Time) (*store, error) {
	// No resync: answers are read from the cache at query time, so a
	// periodic replay of every object would only cost CPU.
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(stripObject))
	s := &store{
		client:     client,
		factory:    f,
		services:   f.Core().V1().Services().Informer(),
		slices:     f.Discovery().V1().EndpointSlices().Informer(),
		namespaces: f.Core().V1().Namespaces().Informer(),
		now:        now,
	}
	if err := s.services.AddIndexers(cache.Indexers{byIP: serviceIPs}); err != nil {
		return nil, fmt.Errorf("service informer index: %w", err)
	}
	if err := s.slices.AddIndexers(cache.Indexers{byIP: sliceIPs, byService: sliceService}); err != nil {
		return nil, fmt.Errorf("endpointslice informer index: %w", err)
	}
	touch := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.touch() },
		UpdateFunc: func(any, any) { s.touch() },
		DeleteFunc: func(any) { s.touch() },
	}
	for _, inf := range []cache.SharedIndexInformer{s.services, s.slices, s.namespaces} {
		if _, err := inf.AddEventHandler(touch); err != nil {
			return nil, fmt.Errorf("informer event handler: %w", err)
		}
	}
	s.touch()
	return s, nil
}

func (s *store) touch() { s.modified.Store(s.now().Unix()) }

// serial is the SOA serial: the time of the last change, in seconds.
func (s *store) serial() uint32 { return uint32(s.modified.Load()) }

// run starts the informers, marks the store synced once their caches are
// filled and returns when ctx is done and the informers have stopped.
func (s *store) run(ctx context.Context) {
	s.waitForAPI(ctx)
	s.factory.Start(ctx.Done())
	if cache.WaitForCacheSync(ctx.Done(), s.services.HasSynced, s.slices.HasSynced, s.namespaces.HasSynced) {
		s.synced.Store(true)
	}
	<-ctx.Done()
	s.factory.Shutdown()
}

// apiPollInterval is how often waitForAPI asks the API server.
const apiPollInterval = 250 * time.Millisecond

// waitForAPI returns once the API server answers (or ctx is done). In a
// pod the DNS reaches the API server through the kubernetes Service,
// whose ClusterIP works only once the service proxy programmed it; an
// informer started before that backs off for up to 30 s per failure,
// which would keep DNS unready long after the path opened.
func (s *store) waitForAPI(ctx context.Context) {
	rc := s.client.Discovery().RESTClient()
	if rc == nil {
		return // a fake clientset: nothing to wait for
	}
	t := time.NewTicker(apiPollInterval)
	defer t.Stop()
	for {
		err := rc.Get().AbsPath("/version").Timeout(2 * time.Second).Do(ctx).Error()
		if err == nil {
			return
		}
		klog.V(2).InfoS("Waiting for the API server", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// namespaceExists reports whether the Namespace is in the cache.
func (s *store) namespaceExists(name string) bool {
	_, ok, err := s.namespaces.GetIndexer().GetByKey(name)
	return err == nil && ok
}

// service returns the Service namespace/name, or nil.
func (s *store) service(namespace, name string) *corev1.Service {
	o, ok, err := s.services.GetIndexer().GetByKey(namespace + "/" + name)
	if err != nil || !ok {
		return nil
	}
	svc, _ := o.(*corev1.Service)
	return svc
}

// slicesOf returns the EndpointSlices of the Service namespace/name.
func (s *store) slicesOf(namespace, name string) []*discoveryv1.EndpointSlice {
	objs, err := s.slices.GetIndexer().ByIndex(byService, namespace+"/"+name)
	if err != nil {
		return nil
	}
	// The index returns a set, in no fixed order: sorted by name, the
	// answers' base order is stable, so rotation visits every address.
	out := toSlices(objs)
	slices.SortFunc(out, func(a, b *discoveryv1.EndpointSlice) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// servicesByIP returns the Services with ip (canonical form) as a ClusterIP.
func (s *store) servicesByIP(ip string) []*corev1.Service {
	objs, err := s.services.GetIndexer().ByIndex(byIP, ip)
	if err != nil {
		return nil
	}
	out := make([]*corev1.Service, 0, len(objs))
	for _, o := range objs {
		if svc, ok := o.(*corev1.Service); ok {
			out = append(out, svc)
		}
	}
	return out
}

// slicesByIP returns the EndpointSlices with ip (canonical form) as the
// address of a ready endpoint.
func (s *store) slicesByIP(ip string) []*discoveryv1.EndpointSlice {
	objs, err := s.slices.GetIndexer().ByIndex(byIP, ip)
	if err != nil {
		return nil
	}
	return toSlices(objs)
}

func toSlices(objs []any) []*discoveryv1.EndpointSlice {
	out := make([]*discoveryv1.EndpointSlice, 0, len(objs))
	for _, o := range objs {
		if es, ok := o.(*discoveryv1.EndpointSlice); ok {
			out = append(out, es)
		}
	}
	return out
}

// stripObject drops what DNS never reads (managed fields, annotations) so
// the caches of a large cluster stay small.
func stripObject(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
		m.SetAnnotations(nil)
	}
	return obj, nil
}

// canonicalIP returns the canonical text of an IP address (IPv4-mapped
// IPv6 unmapped, IPv6 compressed), or "" when s is not one.
func canonicalIP(s string) string {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return ""
	}
	return a.Unmap().String()
}

// headless reports whether svc has no ClusterIP, so its name resolves to
// its endpoints.
func headless(svc *corev1.Service) bool {
	return svc.Spec.ClusterIP == corev1.ClusterIPNone
}

// clusterIPs returns the canonical ClusterIPs of a non-headless Service.
func clusterIPs(svc *corev1.Service) []string {
	if svc.Spec.Type == corev1.ServiceTypeExternalName || headless(svc) {
		return nil
	}
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		if c := canonicalIP(ip); c != "" {
			out = append(out, c)
		}
	}
	return out
}

func serviceIPs(obj any) ([]string, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return nil, nil
	}
	return clusterIPs(svc), nil
}

// ready reports whether DNS publishes the endpoint: the API says a nil
// ready condition means ready (the EndpointSlice controller also sets it
// for Services with publishNotReadyAddresses).
func ready(ep *discoveryv1.Endpoint) bool {
	return ep.Conditions.Ready == nil || *ep.Conditions.Ready
}

func sliceIPs(obj any) ([]string, error) {
	es, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok || es.AddressType == discoveryv1.AddressTypeFQDN {
		return nil, nil
	}
	var out []string
	for i := range es.Endpoints {
		if !ready(&es.Endpoints[i]) {
			continue
		}
		for _, a := range es.Endpoints[i].Addresses {
			if c := canonicalIP(a); c != "" {
				out = append(out, c)
			}
		}
	}
	return out, nil
}

func sliceService(obj any) ([]string, error) {
	es, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, nil
	}
	name := es.Labels[discoveryv1.LabelServiceName]
	if name == "" {
		return nil, nil
	}
	return []string{es.Namespace + "/" + name}, nil
}
