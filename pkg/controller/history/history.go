// Package history holds what the DaemonSet and StatefulSet controllers share
// about ControllerRevisions: the revision's data (a patch replacing the pod
// template, as upstream stores it) and how two revisions are compared.
package history

import (
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
)

// TemplatePatch is the data of a ControllerRevision for a workload's pod
// template: {"spec":{"template":{..., "$patch":"replace"}}}. kind, namespace
// and name only label errors.
func TemplatePatch(kind, namespace, name string, tmpl *corev1.PodTemplateSpec) ([]byte, error) {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(tmpl)
	if err != nil {
		return nil, fmt.Errorf("converting template of %s %s/%s: %w", kind, namespace, name, err)
	}
	u["$patch"] = "replace"
	b, err := json.Marshal(map[string]any{"spec": map[string]any{"template": u}})
	if err != nil {
		return nil, fmt.Errorf("encoding revision of %s %s/%s: %w", kind, namespace, name, err)
	}
	return b, nil
}

// EqualJSON reports whether a and b hold the same JSON value, whatever
// their key order and spacing; invalid JSON is never equal.
func EqualJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return equality.Semantic.DeepEqual(x, y)
}
