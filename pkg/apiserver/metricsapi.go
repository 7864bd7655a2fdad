package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"time"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"

	"github.com/skiff-project/skiff/pkg/storage"
)

// The resource metrics API, metrics.k8s.io/v1beta1, served in-process the
// way metrics-server serves it as an aggregated API: nodes and pods,
// get and list (label and field selectors of the underlying Nodes and
// Pods), in JSON, protobuf or as a Table. Usage comes from
// resourceMetrics (metricsscrape.go); a node or pod without two samples
// yet is left out of lists and is NotFound on get, with metrics-server's
// messages.

const metricsGroup = "metrics.k8s.io"

var (
	metricsGV           = schema.GroupVersion{Group: metricsGroup, Version: "v1beta1"}
	nodeMetricsResource = schema.GroupResource{Group: metricsGroup, Resource: "nodemetrics"}
	podMetricsResource  = schema.GroupResource{Group: metricsGroup, Resource: "podmetrics"}
)

// addMetricsDiscovery adds metrics.k8s.io/v1beta1 to the discovery
// documents (after the other groups, where aggregated APIs appear) when
// the server serves it.
func (s *Server) addMetricsDiscovery(d *discoveryDoc) {
	if s.resourceMetrics == nil {
		return
	}
	verbs := []string{"get", "list"}
	gv := metricsGV.String()
	group := metav1.APIGroup{
		TypeMeta:         metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"},
		Name:             metricsGroup,
		Versions:         []metav1.GroupVersionForDiscovery{{GroupVersion: gv, Version: metricsGV.Version}},
		PreferredVersion: metav1.GroupVersionForDiscovery{GroupVersion: gv, Version: metricsGV.Version},
	}
	d.groups.Groups = append(d.groups.Groups, group)
	d.groupByName[metricsGroup] = group
	d.resourceLists[metricsGV] = &metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: gv,
		APIResources: []metav1.APIResource{
			{Name: "nodes", Namespaced: false, Kind: "NodeMetrics", Verbs: verbs},
			{Name: "pods", Namespaced: true, Kind: "PodMetrics", Verbs: verbs},
		},
	}
	d.aggregatedGroups.Items = append(d.aggregatedGroups.Items, apidiscoveryv2.APIGroupDiscovery{
		ObjectMeta: metav1.ObjectMeta{Name: metricsGroup},
		Versions: []apidiscoveryv2.APIVersionDiscovery{{
			Version:   metricsGV.Version,
			Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent,
			Resources: []apidiscoveryv2.APIResourceDiscovery{
				{Resource: "nodes", Scope: apidiscoveryv2.ScopeCluster, Verbs: verbs,
					ResponseKind: &metav1.GroupVersionKind{Group: metricsGroup, Version: metricsGV.Version, Kind: "NodeMetrics"}},
				{Resource: "pods", Scope: apidiscoveryv2.ScopeNamespace, Verbs: verbs,
					ResponseKind: &metav1.GroupVersionKind{Group: metricsGroup, Version: metricsGV.Version, Kind: "PodMetrics"}},
			},
		}},
	})
}

// serveMetricsAPI answers everything under /apis/metrics.k8s.io/.
func (s *Server) serveMetricsAPI(w http.ResponseWriter, r *http.Request) {
	info := requestInfoFrom(r.Context())
	if info == nil {
		info = parseRequestInfo(r)
	}
	if !info.IsResource || info.Resource == "" {
		s.serveDiscoveryPath(w, r)
		return
	}
	if s.resourceMetrics == nil || info.Version != metricsGV.Version || info.Subresource != "" {
		s.writeError(w, r, notFoundPath())
		return
	}
	var gr schema.GroupResource
	switch info.Resource {
	case "nodes":
		if info.Namespace != "" {
			s.writeError(w, r, notFoundPath())
			return
		}
		gr = nodeMetricsResource
	case "pods":
		gr = podMetricsResource
	default:
		s.writeError(w, r, notFoundPath())
		return
	}
	if info.Verb != "get" && info.Verb != "list" {
		s.writeError(w, r, apierrors.NewMethodNotSupported(schema.GroupResource{Group: metricsGroup, Resource: info.Resource}, info.Verb))
		return
	}
	mt, err := s.negotiate(r, func(as, g, v string) bool { return as == "Table" && tableOrMeta(as, g, v) })
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := withTimeout(r.Context(), r)
	defer cancel()
	var obj runtime.Object
	switch {
	case gr == nodeMetricsResource && info.Verb == "get":
		obj, err = s.getNodeMetrics(ctx, info.Name)
	case gr == nodeMetricsResource:
		obj, err = s.listNodeMetrics(ctx, r)
	case info.Verb == "get":
		obj, err = s.getPodMetrics(ctx, info.Namespace, info.Name)
	default:
		obj, err = s.listPodMetrics(ctx, r, info.Namespace)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if mt.as == "Table" {
		t, err := metricsTable(obj, mt)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		obj = t
	}
	s.writeObject(w, r, http.StatusOK, mt, obj)
}

// coreEndpoint is the built-in core/v1 endpoint of resource.
func (s *Server) coreEndpoint(resource string) (*endpoint, error) {
	ep, ok := s.lookup(schema.GroupVersionResource{Version: "v1", Resource: resource})
	if !ok {
		return nil, apierrors.NewInternalError(fmt.Errorf("%s are not served", resource))
	}
	return ep, nil
}

// listCore lists the Nodes or Pods (of namespace; all when empty) that
// the request's label and field selectors match, from the watch cache.
func (s *Server) listCore(ctx context.Context, r *http.Request, resource, namespace string) ([]runtime.Object, error) {
	ep, err := s.coreEndpoint(resource)
	if err != nil {
		return nil, err
	}
	pred, err := s.listPredicate(ep, r.URL.Query())
	if err != nil {
		return nil, err
	}
	res, err := ep.store.List(ctx, ep.listPrefix(namespace), storage.ListOptions{ResourceVersion: "0", Predicate: pred})
	if err != nil {
		return nil, storageError(err, ep.groupResource(), "")
	}
	return res.Items, nil
}

func (s *Server) nodeMetrics(node *corev1.Node, now time.Time) (metricsv1beta1.NodeMetrics, bool) {
	st := s.resourceMetrics.node(node.Name)
	if st == nil {
		return metricsv1beta1.NodeMetrics{}, false
	}
	u, ok := st.node.usage()
	if !ok {
		return metricsv1beta1.NodeMetrics{}, false
	}
	return metricsv1beta1.NodeMetrics{
		TypeMeta:   metav1.TypeMeta{APIVersion: metricsGV.String(), Kind: "NodeMetrics"},
		ObjectMeta: metav1.ObjectMeta{Name: node.Name, Labels: node.Labels, CreationTimestamp: metav1.NewTime(now)},
		Timestamp:  metav1.NewTime(u.timestamp),
		Window:     metav1.Duration{Duration: u.window},
		Usage:      u.resourceList(),
	}, true
}

func (s *Server) getNodeMetrics(ctx context.Context, name string) (runtime.Object, error) {
	ep, err := s.coreEndpoint("nodes")
	if err != nil {
		return nil, err
	}
	obj, err := s.getServed(ctx, ep, "", name)
	if err != nil {
		return nil, err
	}
	node, ok := obj.(*corev1.Node)
	if !ok {
		return nil, apierrors.NewInternalError(fmt.Errorf("stored node is a %T", obj))
	}
	m, ok := s.nodeMetrics(node, time.Now())
	if !ok {
		return nil, apierrors.NewNotFound(nodeMetricsResource, name)
	}
	return &m, nil
}

func (s *Server) listNodeMetrics(ctx context.Context, r *http.Request) (runtime.Object, error) {
	items, err := s.listCore(ctx, r, "nodes", "")
	if err != nil {
		return nil, err
	}
	now := time.Now()
	list := &metricsv1beta1.NodeMetricsList{
		TypeMeta: metav1.TypeMeta{APIVersion: metricsGV.String(), Kind: "NodeMetricsList"},
		Items:    []metricsv1beta1.NodeMetrics{},
	}
	for _, obj := range items {
		if node, ok := obj.(*corev1.Node); ok {
			if m, ok := s.nodeMetrics(node, now); ok {
				list.Items = append(list.Items, m)
			}
		}
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	return list, nil
}

// podMetrics reports a Running pod's usage from its node's scrapes.
func (s *Server) podMetrics(pod *corev1.Pod, now time.Time) (metricsv1beta1.PodMetrics, bool) {
	if pod.Status.Phase != corev1.PodRunning || pod.Spec.NodeName == "" {
		return metricsv1beta1.PodMetrics{}, false
	}
	st := s.resourceMetrics.node(pod.Spec.NodeName)
	if st == nil {
		return metricsv1beta1.PodMetrics{}, false
	}
	containers, earliest, ok := st.podUsage(pod.Namespace, pod.Name)
	if !ok {
		return metricsv1beta1.PodMetrics{}, false
	}
	m := metricsv1beta1.PodMetrics{
		TypeMeta:   metav1.TypeMeta{APIVersion: metricsGV.String(), Kind: "PodMetrics"},
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, Labels: pod.Labels, CreationTimestamp: metav1.NewTime(now)},
		Timestamp:  metav1.NewTime(earliest.timestamp),
		Window:     metav1.Duration{Duration: earliest.window},
		Containers: make([]metricsv1beta1.ContainerMetrics, 0, len(containers)),
	}
	for name, u := range containers {
		m.Containers = append(m.Containers, metricsv1beta1.ContainerMetrics{Name: name, Usage: u.resourceList()})
	}
	sort.Slice(m.Containers, func(i, j int) bool { return m.Containers[i].Name < m.Containers[j].Name })
	return m, true
}

func (s *Server) getPodMetrics(ctx context.Context, namespace, name string) (runtime.Object, error) {
	ep, err := s.coreEndpoint("pods")
	if err != nil {
		return nil, err
	}
	obj, err := s.getServed(ctx, ep, namespace, name)
	if err != nil {
		return nil, err
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, apierrors.NewInternalError(fmt.Errorf("stored pod is a %T", obj))
	}
	m, ok := s.podMetrics(pod, time.Now())
	if !ok {
		// metrics-server names the pod namespace/name here.
		return nil, apierrors.NewNotFound(podMetricsResource, namespace+"/"+name)
	}
	return &m, nil
}

func (s *Server) listPodMetrics(ctx context.Context, r *http.Request, namespace string) (runtime.Object, error) {
	items, err := s.listCore(ctx, r, "pods", namespace)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	list := &metricsv1beta1.PodMetricsList{
		TypeMeta: metav1.TypeMeta{APIVersion: metricsGV.String(), Kind: "PodMetricsList"},
		Items:    []metricsv1beta1.PodMetrics{},
	}
	for _, obj := range items {
		if pod, ok := obj.(*corev1.Pod); ok {
			if m, ok := s.podMetrics(pod, now); ok {
				list.Items = append(list.Items, m)
			}
		}
	}
	sort.Slice(list.Items, func(i, j int) bool {
		a, b := list.Items[i], list.Items[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return list, nil
}

// metricsTable renders node or pod metrics as metrics-server's Table:
// Name, cpu, memory and Window, a pod's usage summed over its containers.
func metricsTable(obj runtime.Object, mt mediaType) (*metav1.Table, error) {
	t := &metav1.Table{
		TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/" + mt.version, Kind: "Table"},
		ColumnDefinitions: []metav1.TableColumnDefinition{
			{Name: "Name", Type: "string", Format: "name", Description: "Name of the resource"},
			{Name: "cpu", Type: "string", Format: "quantity"},
			{Name: "memory", Type: "string", Format: "quantity"},
			{Name: "Window", Type: "string", Format: "duration"},
		},
		Rows: []metav1.TableRow{},
	}
	add := func(item runtime.Object, name string, usage corev1.ResourceList, window time.Duration) error {
		m, err := partialMetadata(item, "v1")
		if err != nil {
			return apierrors.NewInternalError(err)
		}
		raw, err := runtime.Encode(mt.info.Serializer, m)
		if err != nil {
			return apierrors.NewInternalError(err)
		}
		cpu, mem := usage[corev1.ResourceCPU], usage[corev1.ResourceMemory]
		t.Rows = append(t.Rows, metav1.TableRow{
			Cells:  []interface{}{name, cpu.String(), mem.String(), window.String()},
			Object: runtime.RawExtension{Raw: raw},
		})
		return nil
	}
	podUsage := func(p *metricsv1beta1.PodMetrics) corev1.ResourceList {
		sum := corev1.ResourceList{}
		for _, c := range p.Containers {
			for k, v := range c.Usage {
				q := sum[k]
				if q.IsZero() {
					q = resource.Quantity{Format: v.Format}
				}
				q.Add(v)
				sum[k] = q
			}
		}
		return sum
	}
	var err error
	switch o := obj.(type) {
	case *metricsv1beta1.NodeMetrics:
		err = add(o, o.Name, o.Usage, o.Window.Duration)
	case *metricsv1beta1.NodeMetricsList:
		for i := range o.Items {
			if err = add(&o.Items[i], o.Items[i].Name, o.Items[i].Usage, o.Items[i].Window.Duration); err != nil {
				break
			}
		}
	case *metricsv1beta1.PodMetrics:
		err = add(o, o.Name, podUsage(o), o.Window.Duration)
	case *metricsv1beta1.PodMetricsList:
		for i := range o.Items {
			if err = add(&o.Items[i], o.Items[i].Name, podUsage(&o.Items[i]), o.Items[i].Window.Duration); err != nil {
				break
			}
		}
	default:
		err = apierrors.NewInternalError(fmt.Errorf("no table for %T", obj))
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}
