package apiserver

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"

	"github.com/skiff-project/skiff/pkg/registry"
	"github.com/skiff-project/skiff/pkg/registry/printers"
	"github.com/skiff-project/skiff/pkg/storage"
)

// endpoint is everything the handlers need to serve one resource in one
// version: its description, strategy, storage and conversions.
type endpoint struct {
	res        *registry.Resource
	strategy   *registry.Strategy
	store      *storage.Resource
	prefix     string // etcd key prefix, ends in "/"
	storageGVK schema.GroupVersionKind
	// conv is nil when the served version is the storage version.
	conv    *versionConverter
	printer *printers.Printer
	// fieldManager tracks managedFields for the main resource and
	// statusFieldManager for the status subresource.
	fieldManager       *managedfields.FieldManager
	statusFieldManager *managedfields.FieldManager
	// custom is set for custom resources (and only for them).
	custom *crdVersion
}

func (s *Server) newBuiltinEndpoint(r *registry.Resource) (*endpoint, error) {
	ep := &endpoint{res: r, strategy: registry.StrategyFor(r), storageGVK: r.GroupVersionKind()}
	prefix := registry.KeyPrefix(r.Group, r.Resource, false)
	var codec storage.Codec
	newStored := r.New
	switch {
	case r.Group == "events.k8s.io":
		ep.storageGVK = schema.GroupVersionKind{Version: "v1", Kind: "Event"}
		c := eventsConverter()
		ep.conv = &c
		newStored = func() runtime.Object { return newTyped(s.scheme, ep.storageGVK) }
	case r.StorageVersion != "":
		ep.storageGVK = schema.GroupVersionKind{Group: r.Group, Version: r.StorageVersion, Kind: r.Kind}
		c := hpaConverter()
		ep.conv = &c
		newStored = func() runtime.Object { return newTyped(s.scheme, ep.storageGVK) }
	}
	if r.New == nil {
		// CustomResourceDefinitions are handled as unstructured objects.
		codec = storage.NewJSONCodec()
		newStored = func() runtime.Object { return &unstructured.Unstructured{} }
	} else {
		codec = storage.NewProtobufCodec(s.scheme, ep.storageGVK)
	}
	ep.prefix = prefix
	ep.store = s.cfg.Store.Resource(prefix, codec, newStored)
	if p, ok := printers.For(r.GroupResource()); ok {
		ep.printer = p
	} else {
		ep.printer = printers.Default()
	}
	if r.New != nil && hasVerb(r, "patch") {
		var err error
		ep.fieldManager, err = managedfields.NewDefaultFieldManager(s.typeConverter, s.scheme, s.scheme, s.scheme, r.GroupVersionKind(), r.GroupVersionKind().GroupVersion(), "", nil)
		if err != nil {
			return nil, fmt.Errorf("field manager for %s: %w", r.GroupResource(), err)
		}
		if r.HasSubresource("status") {
			ep.statusFieldManager, err = managedfields.NewDefaultFieldManager(s.typeConverter, s.scheme, s.scheme, s.scheme, r.GroupVersionKind(), r.GroupVersionKind().GroupVersion(), "status", nil)
			if err != nil {
				return nil, fmt.Errorf("status field manager for %s: %w", r.GroupResource(), err)
			}
		}
	} else if r.New == nil {
		if err := s.setDeducedFieldManagers(ep); err != nil {
			return nil, err
		}
	}
	return ep, nil
}

// setDeducedFieldManagers gives unstructured resources (CRDs, custom
// resources) field managers that deduce the schema from the objects.
func (s *Server) setDeducedFieldManagers(ep *endpoint) error {
	tc := managedfields.NewDeducedTypeConverter()
	conv := unstructuredConverter{}
	gvk := ep.res.GroupVersionKind()
	var err error
	ep.fieldManager, err = managedfields.NewDefaultCRDFieldManager(tc, conv, conv, conv, gvk, gvk.GroupVersion(), "", nil)
	if err != nil {
		return fmt.Errorf("field manager for %s: %w", ep.res.GroupResource(), err)
	}
	if ep.res.HasSubresource("status") {
		ep.statusFieldManager, err = managedfields.NewDefaultCRDFieldManager(tc, conv, conv, conv, gvk, gvk.GroupVersion(), "status", nil)
		if err != nil {
			return fmt.Errorf("status field manager for %s: %w", ep.res.GroupResource(), err)
		}
	}
	return nil
}

func hasVerb(r *registry.Resource, verb string) bool {
	for _, v := range r.Verbs {
		if v == verb {
			return true
		}
	}
	return false
}

func newTyped(s *runtime.Scheme, gvk schema.GroupVersionKind) runtime.Object {
	obj, err := s.New(gvk)
	if err != nil {
		return &unstructured.Unstructured{}
	}
	return obj
}

// newObject returns an empty object of the served type with its TypeMeta.
func (ep *endpoint) newObject() runtime.Object {
	var obj runtime.Object
	if ep.res.New != nil {
		obj = ep.res.New()
	} else {
		obj = &unstructured.Unstructured{Object: map[string]interface{}{}}
	}
	obj.GetObjectKind().SetGroupVersionKind(ep.res.GroupVersionKind())
	return obj
}

// newList returns an empty list of the served type with its TypeMeta.
func (ep *endpoint) newList() runtime.Object {
	var list runtime.Object
	if ep.res.NewList != nil {
		list = ep.res.NewList()
	} else {
		list = &unstructured.UnstructuredList{Object: map[string]interface{}{}}
	}
	list.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{Group: ep.res.Group, Version: ep.res.Version, Kind: ep.res.ListKind})
	return list
}

// key returns the etcd key of the named object.
func (ep *endpoint) key(ns, name string) string {
	if ep.res.Namespaced {
		return ep.prefix + ns + "/" + name
	}
	return ep.prefix + name
}

// listPrefix returns the key prefix of a namespace's objects (all objects
// when ns is empty or the resource is cluster scoped).
func (ep *endpoint) listPrefix(ns string) string {
	if ep.res.Namespaced && ns != "" {
		return ep.prefix + ns + "/"
	}
	return ep.prefix
}

// toServed converts a stored object (shared with the watch cache: never
// mutated) into a private copy of the served version with TypeMeta set.
func (ep *endpoint) toServed(obj runtime.Object) (runtime.Object, error) {
	var out runtime.Object
	if ep.conv != nil {
		converted, err := ep.conv.toServed(obj.DeepCopyObject())
		if err != nil {
			return nil, err
		}
		out = converted
	} else {
		out = obj.DeepCopyObject()
	}
	out.GetObjectKind().SetGroupVersionKind(ep.res.GroupVersionKind())
	return out, nil
}

// toStorage converts a served object into the storage version.
func (ep *endpoint) toStorage(obj runtime.Object) (runtime.Object, error) {
	if ep.conv == nil {
		return obj, nil
	}
	out, err := ep.conv.toStorage(obj)
	if err != nil {
		return nil, err
	}
	out.GetObjectKind().SetGroupVersionKind(ep.storageGVK)
	return out, nil
}

func (ep *endpoint) groupResource() schema.GroupResource { return ep.res.GroupResource() }

func (ep *endpoint) groupKind() schema.GroupKind {
	return schema.GroupKind{Group: ep.res.Group, Kind: ep.res.Kind}
}

// unstructuredConverter is the identity conversion for unstructured
// objects, which field managers of custom resources need.
type unstructuredConverter struct{}

func (unstructuredConverter) Convert(in, out, context interface{}) error {
	return fmt.Errorf("unstructured conversion of %T is not supported", in)
}

func (unstructuredConverter) ConvertToVersion(in runtime.Object, gv runtime.GroupVersioner) (runtime.Object, error) {
	return in, nil
}

func (unstructuredConverter) ConvertFieldLabel(gvk schema.GroupVersionKind, label, value string) (string, string, error) {
	return label, value, nil
}

func (unstructuredConverter) Default(runtime.Object) {}

func (unstructuredConverter) New(gvk schema.GroupVersionKind) (runtime.Object, error) {
	u := &unstructured.Unstructured{Object: map[string]interface{}{}}
	u.SetGroupVersionKind(gvk)
	return u, nil
}

// partialMetadata returns obj's metadata as a PartialObjectMetadata.
func partialMetadata(obj runtime.Object, version string) (*metav1.PartialObjectMetadata, error) {
	a, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	m := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/" + version, Kind: "PartialObjectMetadata"}}
	if om, ok := a.(*metav1.ObjectMeta); ok {
		m.ObjectMeta = *om
	} else {
		m.ObjectMeta = metav1.ObjectMeta{
			Name: a.GetName(), GenerateName: a.GetGenerateName(), Namespace: a.GetNamespace(), UID: a.GetUID(),
			ResourceVersion: a.GetResourceVersion(), Generation: a.GetGeneration(), CreationTimestamp: a.GetCreationTimestamp(),
			DeletionTimestamp: a.GetDeletionTimestamp(), DeletionGracePeriodSeconds: a.GetDeletionGracePeriodSeconds(),
			Labels: a.GetLabels(), Annotations: a.GetAnnotations(), OwnerReferences: a.GetOwnerReferences(),
			Finalizers: a.GetFinalizers(), ManagedFields: a.GetManagedFields(),
		}
	}
	return m, nil
}
