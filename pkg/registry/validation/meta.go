package validation

import (
	"reflect"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var metaPath = field.NewPath("metadata")

// clusterScopedKinds are the built-in kinds that live outside namespaces;
// every other built-in kind is namespaced. Kinds are unique across the
// built-in groups Skiff serves, so the group is not needed.
var clusterScopedKinds = map[string]bool{
	"Namespace":                      true,
	"Node":                           true,
	"PersistentVolume":               true,
	"ClusterRole":                    true,
	"ClusterRoleBinding":             true,
	"StorageClass":                   true,
	"PriorityClass":                  true,
	"CertificateSigningRequest":      true,
	"IngressClass":                   true,
	"ValidatingWebhookConfiguration": true,
	"MutatingWebhookConfiguration":   true,
	"ComponentStatus":                true,
	"CustomResourceDefinition":       true,
	"APIService":                     true,
	"RuntimeClass":                   true,
	"CSIDriver":                      true,
	"CSINode":                        true,
	"VolumeAttachment":               true,
}

// isClusterScoped reports whether the built-in kind is cluster-scoped. The
// map is read-only after package init, so this is safe for concurrent use.
func isClusterScoped(kind string) bool { return clusterScopedKinds[kind] }

// kindOf returns obj's kind: its TypeMeta kind if set (decoded objects),
// else the Go type name (typed objects built in code carry no TypeMeta).
func kindOf(obj runtime.Object) string {
	if k := obj.GetObjectKind().GroupVersionKind().Kind; k != "" {
		return k
	}
	t := reflect.TypeOf(obj)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}

// objectMeta validates the metadata of a new object.
func objectMeta(m *metav1.ObjectMeta, namespaced bool, nameFn apivalidation.ValidateNameFunc) field.ErrorList {
	return apivalidation.ValidateObjectMeta(m, namespaced, nameFn, metaPath)
}

// metaUpdate validates the metadata of an update.
func metaUpdate(m, old *metav1.ObjectMeta) field.ErrorList {
	return apivalidation.ValidateObjectMetaUpdate(m, old, metaPath)
}
