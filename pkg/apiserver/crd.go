package apiserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/jsonpath"
	"k8s.io/klog/v2"

	"github.com/skiff-project/skiff/pkg/apiserver/openapi"
	"github.com/skiff-project/skiff/pkg/registry"
	"github.com/skiff-project/skiff/pkg/registry/printers"
	"github.com/skiff-project/skiff/pkg/storage"
)

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// crdState is what the server installed for one CRD.
type crdState struct {
	uid  string
	rv   string
	gvrs []schema.GroupVersionResource
	// prefix is where the custom resources live in etcd.
	prefix string
	// crs describes each served version for OpenAPI.
	crs []openapi.CustomResource
}

// crdVersion is the per-version information of a custom resource endpoint.
type crdVersion struct {
	printer *printers.Printer
}

// validateCustom checks what the generic path cannot for custom resources:
// apiVersion and kind must name this resource. (Schema validation of
// custom resources is not implemented yet; they are stored as sent.)
func (ep *endpoint) validateCustom(obj runtime.Object) error {
	if ep.custom == nil {
		return nil
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return apierrors.NewBadRequest(fmt.Sprintf("expected an unstructured object, got %T", obj))
	}
	gvk := ep.res.GroupVersionKind()
	if u.GetAPIVersion() != gvk.GroupVersion().String() || u.GetKind() != gvk.Kind {
		return apierrors.NewBadRequest(fmt.Sprintf("the object's apiVersion/kind %s/%s do not match %s/%s", u.GetAPIVersion(), u.GetKind(), gvk.GroupVersion(), gvk.Kind))
	}
	return nil
}

// loadCRDs installs the custom resources of every stored CRD.
func (s *Server) loadCRDs(ctx context.Context) error {
	ep, ok := s.lookup(crdGVR)
	if !ok {
		return nil
	}
	res, err := ep.store.List(ctx, ep.prefix, storage.ListOptions{})
	if err != nil {
		return err
	}
	for _, item := range res.Items {
		if err := s.installCRD(item.(*unstructured.Unstructured)); err != nil {
			klog.ErrorS(err, "skipping custom resource definition", "name", item.(*unstructured.Unstructured).GetName())
		}
	}
	return nil
}

// watchCRDs keeps the installed custom resources in step with CRDs written
// through any API server sharing this etcd. It returns when ctx is done.
func (s *Server) watchCRDs(ctx context.Context) {
	ep, ok := s.lookup(crdGVR)
	if !ok {
		return
	}
	for ctx.Err() == nil {
		w, err := ep.store.Watch(ctx, ep.prefix, storage.WatchOptions{ResourceVersion: "0"})
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
				continue
			}
		}
		for ev := range w.ResultChan() {
			u, ok := ev.Object.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			switch ev.Type {
			case watch.Added, watch.Modified:
				if err := s.installCRD(u); err != nil {
					klog.ErrorS(err, "install custom resource definition", "name", u.GetName())
				}
			case watch.Deleted:
				s.uninstallCRD(u.GetName())
			}
		}
		w.Stop()
	}
}

// installCRD (re)installs the endpoints of one CRD. Idempotent: a CRD at
// the same resourceVersion is a no-op.
func (s *Server) installCRD(crd *unstructured.Unstructured) error {
	s.mu.RLock()
	existing := s.crds[crd.GetName()]
	s.mu.RUnlock()
	if existing != nil && existing.rv == crd.GetResourceVersion() && existing.uid == string(crd.GetUID()) {
		return nil
	}
	group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
	plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
	singular, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "singular")
	kind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "kind")
	listKind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "listKind")
	shortNames, _, _ := unstructured.NestedStringSlice(crd.Object, "spec", "names", "shortNames")
	categories, _, _ := unstructured.NestedStringSlice(crd.Object, "spec", "names", "categories")
	scope, _, _ := unstructured.NestedString(crd.Object, "spec", "scope")
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	if group == "" || plural == "" || kind == "" {
		return fmt.Errorf("custom resource definition %s lacks group, plural or kind", crd.GetName())
	}
	if singular == "" {
		singular = strings.ToLower(kind)
	}
	if listKind == "" {
		listKind = kind + "List"
	}
	state := &crdState{uid: string(crd.GetUID()), rv: crd.GetResourceVersion(), prefix: registry.KeyPrefix(group, plural, true)}
	newEndpoints := map[schema.GroupVersionResource]*endpoint{}
	for _, v := range versions {
		vm, ok := v.(map[string]interface{})
		if !ok {
			continue
		}
		name, _ := vm["name"].(string)
		if served, _ := vm["served"].(bool); !served || name == "" {
			continue
		}
		r := &registry.Resource{
			Group: group, Version: name, Resource: plural, Singular: singular, Kind: kind, ListKind: listKind,
			Namespaced: scope != "Cluster", ShortNames: shortNames, Categories: categories,
			Verbs: []string{"delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"},
		}
		if _, ok, _ := unstructured.NestedMap(vm, "subresources", "status"); ok {
			r.Subresources = append(r.Subresources, "status")
		}
		if _, ok, _ := unstructured.NestedMap(vm, "subresources", "scale"); ok {
			r.Subresources = append(r.Subresources, "scale")
		}
		ep := &endpoint{
			res: r, strategy: registry.StrategyFor(r), storageGVK: r.GroupVersionKind(), prefix: state.prefix,
			store:  s.cfg.Store.Resource(state.prefix, storage.NewJSONCodec(), func() runtime.Object { return &unstructured.Unstructured{} }),
			custom: &crdVersion{printer: customPrinter(vm)},
		}
		ep.printer = ep.custom.printer
		if err := s.setDeducedFieldManagers(ep); err != nil {
			return err
		}
		gvr := r.GroupVersionResource()
		newEndpoints[gvr] = ep
		state.gvrs = append(state.gvrs, gvr)
		schemaMap, _, _ := unstructured.NestedMap(vm, "schema", "openAPIV3Schema")
		state.crs = append(state.crs, openapi.CustomResource{Group: group, Version: name, Kind: kind, ListKind: listKind, Plural: plural,
			Namespaced: r.Namespaced, Schema: schemaMap})
	}
	s.mu.Lock()
	if old := s.crds[crd.GetName()]; old != nil {
		for _, gvr := range old.gvrs {
			delete(s.endpoints, gvr)
		}
	}
	for gvr, ep := range newEndpoints {
		if builtin, ok := s.endpoints[gvr]; ok && builtin.custom == nil {
			continue // a CRD may not shadow a built-in resource
		}
		s.endpoints[gvr] = ep
	}
	s.crds[crd.GetName()] = state
	s.discovery = s.buildDiscovery()
	crs := s.allCustomResources()
	s.mu.Unlock()
	s.openapi.SetCustomResources(crs)
	return nil
}

// allCustomResources lists the OpenAPI view of every CRD. Callers hold s.mu.
func (s *Server) allCustomResources() []openapi.CustomResource {
	var out []openapi.CustomResource
	for _, st := range s.crds {
		out = append(out, st.crs...)
	}
	return out
}

// uninstallCRD removes a deleted CRD's endpoints.
func (s *Server) uninstallCRD(name string) *crdState {
	s.mu.Lock()
	st := s.crds[name]
	if st == nil {
		s.mu.Unlock()
		return nil
	}
	for _, gvr := range st.gvrs {
		if ep, ok := s.endpoints[gvr]; ok && ep.custom != nil {
			delete(s.endpoints, gvr)
		}
	}
	delete(s.crds, name)
	s.discovery = s.buildDiscovery()
	crs := s.allCustomResources()
	s.mu.Unlock()
	s.openapi.SetCustomResources(crs)
	return st
}

// afterWrite reacts to a committed write: CRDs install their resources at
// once, so a custom resource can be created right after its CRD.
func (s *Server) afterWrite(ep *endpoint, obj runtime.Object) {
	if ep.res.GroupVersionResource() != crdGVR {
		return
	}
	if u, ok := obj.(*unstructured.Unstructured); ok {
		if err := s.installCRD(u); err != nil {
			klog.ErrorS(err, "install custom resource definition", "name", u.GetName())
		}
	}
}

// afterDelete releases what a deleted object held: a Service's IPs, a
// CRD's custom resources.
func (s *Server) afterDelete(ep *endpoint, obj runtime.Object) {
	if svc, ok := obj.(*corev1.Service); ok && ep.res.Group == "" {
		s.ips.releaseService(svc)
		return
	}
	if ep.res.GroupVersionResource() != crdGVR {
		return
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	st := s.uninstallCRD(u.GetName())
	if st == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store := s.cfg.Store.Resource(st.prefix, storage.NewJSONCodec(), func() runtime.Object { return &unstructured.Unstructured{} })
	res, err := store.List(ctx, st.prefix, storage.ListOptions{})
	if err != nil {
		klog.ErrorS(err, "list custom resources of deleted definition", "name", u.GetName())
		return
	}
	for _, item := range res.Items {
		a, _ := meta.Accessor(item)
		key := st.prefix + a.GetName()
		if a.GetNamespace() != "" {
			key = st.prefix + a.GetNamespace() + "/" + a.GetName()
		}
		if _, err := store.Delete(ctx, key, nil); err != nil && !errors.Is(err, storage.ErrNotFound) {
			klog.ErrorS(err, "delete custom resource", "key", key)
		}
	}
}

// customPrinter builds the table printer of a CRD version from its
// additionalPrinterColumns (default: Age), like upstream.
func customPrinter(version map[string]interface{}) *printers.Printer {
	type col struct {
		def  metav1.TableColumnDefinition
		path *jsonpath.JSONPath
	}
	var cols []col
	specs, found, _ := unstructured.NestedSlice(version, "additionalPrinterColumns")
	if !found {
		specs = []interface{}{map[string]interface{}{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}}
	}
	for _, c := range specs {
		m, ok := c.(map[string]interface{})
		if !ok {
			continue
		}
		name, _ := m["name"].(string)
		typ, _ := m["type"].(string)
		path, _ := m["jsonPath"].(string)
		desc, _ := m["description"].(string)
		format, _ := m["format"].(string)
		prio, _ := m["priority"].(int64)
		jp := jsonpath.New(name).AllowMissingKeys(true)
		if err := jp.Parse(fmt.Sprintf("{%s}", path)); err != nil {
			continue
		}
		cols = append(cols, col{def: metav1.TableColumnDefinition{Name: name, Type: typ, Format: format, Description: desc, Priority: int32(prio)}, path: jp})
	}
	p := &printers.Printer{Columns: []metav1.TableColumnDefinition{{Name: "Name", Type: "string", Format: "name", Description: "Name must be unique within a namespace."}}}
	for _, c := range cols {
		p.Columns = append(p.Columns, c.def)
	}
	p.Row = func(obj runtime.Object, now time.Time) ([]interface{}, error) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return nil, fmt.Errorf("expected unstructured, got %T", obj)
		}
		cells := []interface{}{u.GetName()}
		for _, c := range cols {
			results, err := c.path.FindResults(u.Object)
			if err != nil || len(results) == 0 || len(results[0]) == 0 {
				cells = append(cells, nil)
				continue
			}
			v := results[0][0].Interface()
			if c.def.Type == "date" {
				if s, ok := v.(string); ok {
					if t, err := time.Parse(time.RFC3339, s); err == nil {
						cells = append(cells, duration.HumanDuration(now.Sub(t)))
						continue
					}
				}
			}
			if c.def.Type == "string" {
				var buf bytes.Buffer
				if err := c.path.PrintResults(&buf, results[0]); err == nil {
					cells = append(cells, buf.String())
					continue
				}
			}
			cells = append(cells, v)
		}
		return cells, nil
	}
	return p
}
