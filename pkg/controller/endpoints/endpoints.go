// Package endpoints holds the two controllers that publish the pods behind a
// Service: the Endpoints controller (core/v1 Endpoints named like the
// Service) and the EndpointSlice controller (discovery.k8s.io/v1 slices of at
// most MaxEndpointsPerSlice endpoints, named <service>-<random>).
//
// Both only manage Services with a selector; a selector-less Service's
// endpoints belong to whoever wrote them. Both compute the desired object as
// a pure function of the Service and its pods and write only when it differs
// from what is stored, so a converged cluster costs no writes on resync.
package endpoints

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/skiff-project/skiff/pkg/controller"
)

// EndpointsEventSource is the component the Endpoints controller's events
// are recorded under.
const EndpointsEventSource = "endpoint-controller"

// MaxEndpointsPerEndpoints caps the addresses of one Endpoints object, as
// upstream: beyond it the object is truncated and annotated with
// OverCapacityAnnotation (EndpointSlices have no such limit).
const MaxEndpointsPerEndpoints = 1000

// OverCapacityAnnotation marks an Endpoints object whose addresses were
// truncated to MaxEndpointsPerEndpoints.
const OverCapacityAnnotation = "endpoints.kubernetes.io/over-capacity"

// Event reasons, as upstream.
const (
	ReasonFailedToCreateEndpoint = "FailedToCreateEndpoint"
	ReasonFailedToUpdateEndpoint = "FailedToUpdateEndpoint"
)

// Controller keeps one Endpoints object per selector Service. Create it with
// New and start it with Run.
type Controller struct {
	client    kubernetes.Interface        // immutable
	svcLister corelisters.ServiceLister   // immutable
	podLister corelisters.PodLister       // immutable
	epLister  corelisters.EndpointsLister // immutable
	recorder  record.EventRecorder        // immutable; reports as EndpointsEventSource
	clock     clock.PassiveClock          // immutable
	loop      *controller.Loop            // immutable
	synced    []cache.InformerSynced
}

// New returns the Endpoints controller and registers its handlers on the
// informers; the caller starts the informers, then calls Run.
func New(client kubernetes.Interface, svcInformer coreinformers.ServiceInformer, podInformer coreinformers.PodInformer, epInformer coreinformers.EndpointsInformer, recorder record.EventRecorder, clk clock.PassiveClock) (*Controller, error) {
	c := &Controller{
		client:    client,
		svcLister: svcInformer.Lister(),
		podLister: podInformer.Lister(),
		epLister:  epInformer.Lister(),
		recorder:  recorder,
		clock:     clk,
	}
	c.loop = controller.NewLoop("endpoint", c.sync)
	if err := register(c.loop, &c.synced, svcInformer.Informer(), podInformer.Informer(), svcInformer.Lister()); err != nil {
		return nil, err
	}
	// A deleted or hand-edited Endpoints object is repaired by resyncing
	// its service (same namespace/name).
	inf := epInformer.Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, cur interface{}) { c.loop.Enqueue(cur) },
		DeleteFunc: c.loop.Enqueue,
	}); err != nil {
		return nil, fmt.Errorf("watching endpoints: %w", err)
	}
	c.synced = append(c.synced, inf.HasSynced)
	return c, nil
}

// register wires the service and pod watches shared by both controllers:
// a service change syncs that service, a pod change syncs every service
// whose selector matches the pod's old or new labels.
func register(loop *controller.Loop, synced *[]cache.InformerSynced, svcInf, podInf cache.SharedIndexInformer, svcLister corelisters.ServiceLister) error {
	if _, err := svcInf.AddEventHandler(loop.Handlers()); err != nil {
		return fmt.Errorf("watching services: %w", err)
	}
	enqueuePod := func(obj interface{}) {
		if pod, ok := podFromEvent(obj); ok {
			for _, k := range servicesForPod(svcLister, pod) {
				loop.EnqueueKey(k)
			}
		}
	}
	if _, err := podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueuePod,
		UpdateFunc: func(oldObj, curObj interface{}) {
			old, ok1 := oldObj.(*corev1.Pod)
			cur, ok2 := curObj.(*corev1.Pod)
			if !ok1 || !ok2 || !podChangeAffectsEndpoints(old, cur) {
				return
			}
			enqueuePod(cur)
			if !equality.Semantic.DeepEqual(old.Labels, cur.Labels) {
				enqueuePod(old)
			}
		},
		DeleteFunc: enqueuePod,
	}); err != nil {
		return fmt.Errorf("watching pods: %w", err)
	}
	*synced = append(*synced, svcInf.HasSynced, podInf.HasSynced)
	return nil
}

// Run waits for the informer caches, then syncs services with workers
// goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) error {
	if !cache.WaitForNamedCacheSync(c.loop.Name(), ctx.Done(), c.synced...) {
		return fmt.Errorf("%s: caches did not sync: %w", c.loop.Name(), ctx.Err())
	}
	c.loop.Run(ctx, workers)
	return nil
}

func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return controller.Terminal(fmt.Errorf("invalid key %q: %w", key, err))
	}
	svc, err := c.svcLister.Services(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		// The service is gone: its Endpoints go too (they carry no owner
		// reference for the garbage collector). Only delete what we see, so
		// repeated syncs of a deleted service cost nothing.
		if _, err := c.epLister.Endpoints(namespace).Get(name); err != nil {
			return nil
		}
		err := c.client.CoreV1().Endpoints(namespace).Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting endpoints %s: %w", key, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading service %s: %w", key, err)
	}
	pods, managed, err := selectedPods(c.podLister, svc)
	if err != nil || !managed {
		return err
	}

	current, err := c.epLister.Endpoints(namespace).Get(name)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading endpoints %s: %w", key, err)
	}
	desired := DesiredEndpoints(svc, pods)
	if current != nil && endpointsEqual(current, desired) {
		return nil
	}
	if current == nil {
		if _, err := c.client.CoreV1().Endpoints(namespace).Create(ctx, desired, metav1.CreateOptions{}); err != nil {
			if apierrors.IsAlreadyExists(err) || apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				// Our cache is behind, or the namespace is going away:
				// the next event brings the truth.
				return nil
			}
			c.recorder.Eventf(svc, corev1.EventTypeWarning, ReasonFailedToCreateEndpoint, "Failed to create endpoint for service %s/%s: %v", namespace, name, err)
			return fmt.Errorf("creating endpoints %s: %w", key, err)
		}
		return nil
	}
	updated := current.DeepCopy()
	updated.Labels = desired.Labels
	updated.Subsets = desired.Subsets
	// Keep annotations other writers put there; own only ours.
	if updated.Annotations == nil {
		updated.Annotations = map[string]string{}
	}
	for _, k := range []string{LastChangeTriggerTimeAnnotation, OverCapacityAnnotation} {
		if v, ok := desired.Annotations[k]; ok {
			updated.Annotations[k] = v
		} else {
			delete(updated.Annotations, k)
		}
	}
	if _, err := c.client.CoreV1().Endpoints(namespace).Update(ctx, updated, metav1.UpdateOptions{}); err != nil {
		c.recorder.Eventf(svc, corev1.EventTypeWarning, ReasonFailedToUpdateEndpoint, "Failed to update endpoint %s/%s: %v", namespace, name, err)
		return fmt.Errorf("updating endpoints %s: %w", key, err)
	}
	return nil
}

// endpointsEqual reports whether current already says what desired says:
// same subsets, labels and over-capacity mark. The trigger-time annotation is
// deliberately not compared: it documents a write, it never causes one.
func endpointsEqual(current, desired *corev1.Endpoints) bool {
	return equality.Semantic.DeepEqual(current.Subsets, desired.Subsets) &&
		equality.Semantic.DeepEqual(nonEmpty(current.Labels), nonEmpty(desired.Labels)) &&
		current.Annotations[OverCapacityAnnotation] == desired.Annotations[OverCapacityAnnotation]
}

func nonEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// DesiredEndpoints returns the Endpoints object svc should have given the
// pods its selector matches: the service's labels (plus
// service.kubernetes.io/headless for headless services), the trigger-time
// annotation and the subsets from Subsets.
func DesiredEndpoints(svc *corev1.Service, pods []*corev1.Pod) *corev1.Endpoints {
	subsets, truncated := Subsets(svc, pods)
	lbls := map[string]string{}
	for k, v := range svc.Labels {
		lbls[k] = v
	}
	if isHeadless(svc) {
		lbls[corev1.IsHeadlessService] = ""
	} else {
		delete(lbls, corev1.IsHeadlessService)
	}
	ep := &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{
			Name:        svc.Name,
			Namespace:   svc.Namespace,
			Labels:      nonEmpty(lbls),
			Annotations: map[string]string{},
		},
		Subsets: subsets,
	}
	var included []*corev1.Pod
	for _, p := range pods {
		if shouldPodBeInEndpoints(p, svc.Spec.PublishNotReadyAddresses) {
			included = append(included, p)
		}
	}
	if t := triggerTime(svc, included); !t.IsZero() {
		ep.Annotations[LastChangeTriggerTimeAnnotation] = formatTriggerTime(t)
	}
	if truncated {
		ep.Annotations[OverCapacityAnnotation] = "truncated"
	}
	return ep
}

// Subsets computes svc's endpoint subsets from the pods its selector
// matches, like upstream: a pod contributes its IPv4 address once per
// service port whose targetPort it resolves, as a ready address when it is
// Ready (or the service publishes not-ready addresses) and as a not-ready
// address otherwise. Terminating pods are left out unless the service
// publishes not-ready addresses. Ports with the same address set share a
// subset; addresses are sorted by IP, ports by name and number, subsets by
// their first port. truncated reports that more than
// MaxEndpointsPerEndpoints addresses were found and the excess (not-ready
// addresses first) was dropped.
func Subsets(svc *corev1.Service, pods []*corev1.Pod) (subsets []corev1.EndpointSubset, truncated bool) {
	type addr struct {
		a     corev1.EndpointAddress
		ready bool
	}
	addrs := map[string]addr{}                // address key → address
	portAddrs := map[string]map[string]bool{} // port key → address keys
	ports := map[string]corev1.EndpointPort{}
	for _, pod := range pods {
		if !shouldPodBeInEndpoints(pod, svc.Spec.PublishNotReadyAddresses) {
			continue
		}
		a := corev1.EndpointAddress{
			IP:        podIPv4(pod),
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		}
		if pod.Spec.NodeName != "" {
			a.NodeName = ptrTo(pod.Spec.NodeName)
		}
		if shouldSetHostname(pod, svc) {
			a.Hostname = pod.Spec.Hostname
		}
		ak := a.IP + "/" + string(pod.UID)
		ready := svc.Spec.PublishNotReadyAddresses || isPodReady(pod)
		if len(svc.Spec.Ports) == 0 {
			// A headless service without ports still publishes its
			// addresses (for DNS); a port-less ClusterIP service has none.
			if isHeadless(svc) {
				addrs[ak] = addr{a, ready}
				if portAddrs[""] == nil {
					portAddrs[""] = map[string]bool{}
				}
				portAddrs[""][ak] = true
			}
			continue
		}
		for i := range svc.Spec.Ports {
			sp := &svc.Spec.Ports[i]
			num, err := findPort(pod, sp)
			if err != nil {
				// Upstream skips the port for this pod; the pod may still
				// serve the service's other ports.
				continue
			}
			proto := sp.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			ep := corev1.EndpointPort{Name: sp.Name, Port: num, Protocol: proto, AppProtocol: sp.AppProtocol}
			pk := fmt.Sprintf("%s/%d/%s", ep.Name, ep.Port, ep.Protocol)
			ports[pk] = ep
			if portAddrs[pk] == nil {
				portAddrs[pk] = map[string]bool{}
			}
			portAddrs[pk][ak] = true
			addrs[ak] = addr{a, ready}
		}
	}
	if len(addrs) > MaxEndpointsPerEndpoints {
		truncated = true
		keys := make([]string, 0, len(addrs))
		for k := range addrs {
			keys = append(keys, k)
		}
		// Keep ready addresses first, then by key for determinism.
		sort.Slice(keys, func(i, j int) bool {
			if addrs[keys[i]].ready != addrs[keys[j]].ready {
				return addrs[keys[i]].ready
			}
			return keys[i] < keys[j]
		})
		for _, k := range keys[MaxEndpointsPerEndpoints:] {
			delete(addrs, k)
			for _, set := range portAddrs {
				delete(set, k)
			}
		}
	}

	// Group ports by the exact set of addresses that serve them.
	groups := map[string][]string{} // sorted address keys joined → port keys
	for pk, set := range portAddrs {
		if len(set) == 0 {
			continue
		}
		aks := make([]string, 0, len(set))
		for ak := range set {
			aks = append(aks, ak)
		}
		sort.Strings(aks)
		gk := strings.Join(aks, ",")
		groups[gk] = append(groups[gk], pk)
	}
	for gk, pks := range groups {
		var ss corev1.EndpointSubset
		for _, ak := range strings.Split(gk, ",") {
			a := addrs[ak]
			if a.ready {
				ss.Addresses = append(ss.Addresses, a.a)
			} else {
				ss.NotReadyAddresses = append(ss.NotReadyAddresses, a.a)
			}
		}
		for _, pk := range pks {
			if pk != "" {
				ss.Ports = append(ss.Ports, ports[pk])
			}
		}
		sortSubset(&ss)
		subsets = append(subsets, ss)
	}
	sort.Slice(subsets, func(i, j int) bool { return subsetKey(subsets[i]) < subsetKey(subsets[j]) })
	return subsets, truncated
}

func sortSubset(ss *corev1.EndpointSubset) {
	byIP := func(as []corev1.EndpointAddress) {
		sort.Slice(as, func(i, j int) bool {
			if as[i].IP != as[j].IP {
				return as[i].IP < as[j].IP
			}
			return as[i].TargetRef.UID < as[j].TargetRef.UID
		})
	}
	byIP(ss.Addresses)
	byIP(ss.NotReadyAddresses)
	sort.Slice(ss.Ports, func(i, j int) bool {
		if ss.Ports[i].Name != ss.Ports[j].Name {
			return ss.Ports[i].Name < ss.Ports[j].Name
		}
		return ss.Ports[i].Port < ss.Ports[j].Port
	})
}

func subsetKey(ss corev1.EndpointSubset) string {
	var b strings.Builder
	for _, p := range ss.Ports {
		fmt.Fprintf(&b, "%s/%d/%s,", p.Name, p.Port, p.Protocol)
	}
	b.WriteString("|")
	for _, as := range [][]corev1.EndpointAddress{ss.Addresses, ss.NotReadyAddresses} {
		if len(as) > 0 {
			b.WriteString(as[0].IP)
			break
		}
	}
	return b.String()
}

func ptrTo[T any](v T) *T { return &v }
