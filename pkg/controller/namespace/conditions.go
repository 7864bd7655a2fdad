package namespace

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// contentResult is what one pass over a terminating namespace observed; it
// is the input of the pure condition computation.
type contentResult struct {
	// discoveryErr is set when discovery failed for some groups.
	discoveryErr error
	// parseErrs are group versions discovery returned that did not parse.
	parseErrs []error
	// deleteErrs are failures to delete or list one resource's content.
	deleteErrs []error
	// remaining counts the objects left per resource.
	remaining map[schema.GroupVersionResource]int
	// finalizers counts the remaining objects carrying each finalizer.
	finalizers map[string]int
}

// conditionTypes returns the namespace conditions this controller owns, in
// the order upstream reports them.
func conditionTypes() []corev1.NamespaceConditionType {
	return []corev1.NamespaceConditionType{
		corev1.NamespaceDeletionDiscoveryFailure,
		corev1.NamespaceDeletionGVParsingFailure,
		corev1.NamespaceDeletionContentFailure,
		corev1.NamespaceContentRemaining,
		corev1.NamespaceFinalizersRemaining,
	}
}

// okCondition is the reason and message upstream reports when a condition
// type does not apply (status False).
func okCondition(t corev1.NamespaceConditionType) (reason, message string) {
	switch t {
	case corev1.NamespaceDeletionDiscoveryFailure:
		return "ResourcesDiscovered", "All resources successfully discovered"
	case corev1.NamespaceDeletionGVParsingFailure:
		return "ParsedGroupVersions", "All legacy kube types successfully parsed"
	case corev1.NamespaceDeletionContentFailure:
		return "ContentDeleted", "All content successfully deleted, may be waiting on finalization"
	default:
		return "ContentRemoved", "All content successfully removed"
	}
}

// failingConditions returns the True conditions r implies, keyed by type;
// types absent from the map are reported with their ok variant.
func failingConditions(r contentResult) map[corev1.NamespaceConditionType]corev1.NamespaceCondition {
	out := map[corev1.NamespaceConditionType]corev1.NamespaceCondition{}
	set := func(t corev1.NamespaceConditionType, reason, msg string) {
		out[t] = corev1.NamespaceCondition{Type: t, Status: corev1.ConditionTrue, Reason: reason, Message: msg}
	}
	if r.discoveryErr != nil {
		set(corev1.NamespaceDeletionDiscoveryFailure, "DiscoveryFailed", r.discoveryErr.Error())
	}
	if len(r.parseErrs) > 0 {
		set(corev1.NamespaceDeletionGVParsingFailure, "GroupVersionParsingFailed", joinErrs(r.parseErrs))
	}
	if len(r.deleteErrs) > 0 {
		set(corev1.NamespaceDeletionContentFailure, "ContentDeletionFailed",
			fmt.Sprintf("Failed to delete all resource types, %d remaining: %s", len(r.deleteErrs), joinErrs(r.deleteErrs)))
	}
	var res []string
	for gvr, n := range r.remaining {
		if n > 0 {
			res = append(res, fmt.Sprintf("%s.%s has %d resource instances", gvr.Resource, gvr.Group, n))
		}
	}
	if len(res) > 0 {
		sort.Strings(res) // stable messages avoid needless status writes
		set(corev1.NamespaceContentRemaining, "SomeResourcesRemain", "Some resources are remaining: "+strings.Join(res, ", "))
	}
	var fin []string
	for f, n := range r.finalizers {
		if n > 0 {
			fin = append(fin, fmt.Sprintf("%s in %d resource instances", f, n))
		}
	}
	if len(fin) > 0 {
		sort.Strings(fin)
		set(corev1.NamespaceFinalizersRemaining, "SomeFinalizersRemain", "Some content in the namespace has finalizers remaining: "+strings.Join(fin, ", "))
	}
	return out
}

func joinErrs(errs []error) string {
	msgs := make([]string, 0, len(errs))
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	sort.Strings(msgs)
	return strings.Join(msgs, ", ")
}

// updateConditions returns status's conditions with every owned type set
// from r. LastTransitionTime moves to now only when a condition's status
// changes. changed is false when the result equals the input, so a converged
// namespace costs no write. The input slice is not modified.
func updateConditions(existing []corev1.NamespaceCondition, r contentResult, now metav1.Time) (out []corev1.NamespaceCondition, changed bool) {
	out = append([]corev1.NamespaceCondition(nil), existing...)
	failing := failingConditions(r)
	for _, t := range conditionTypes() {
		want, ok := failing[t]
		if !ok {
			reason, msg := okCondition(t)
			want = corev1.NamespaceCondition{Type: t, Status: corev1.ConditionFalse, Reason: reason, Message: msg}
		}
		i := indexOf(out, t)
		if i < 0 {
			want.LastTransitionTime = now
			out = append(out, want)
			changed = true
			continue
		}
		old := out[i]
		if old.Status == want.Status && old.Reason == want.Reason && old.Message == want.Message {
			continue
		}
		want.LastTransitionTime = old.LastTransitionTime
		if old.Status != want.Status {
			want.LastTransitionTime = now
		}
		out[i] = want
		changed = true
	}
	return out, changed
}

func indexOf(conds []corev1.NamespaceCondition, t corev1.NamespaceConditionType) int {
	for i := range conds {
		if conds[i].Type == t {
			return i
		}
	}
	return -1
}
