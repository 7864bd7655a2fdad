package validation

import (
	"strings"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

const crdGroup = "apiextensions.k8s.io"

func isCRD(u *unstructured.Unstructured) bool {
	gvk := u.GroupVersionKind()
	return gvk.Group == crdGroup && gvk.Kind == "CustomResourceDefinition"
}

// validateUnstructured validates an object Skiff handles as unstructured.
// CRDs get their metadata (cluster-scoped, name == plural.group) and basic
// spec checked. Custom resources get metadata only; their scope comes from
// their CRD, which is not known here, so a namespace is validated when
// present and never required or forbidden: the API server enforces scope
// from the URL.
func validateUnstructured(u *unstructured.Unstructured) field.ErrorList {
	if !isCRD(u) {
		return apivalidation.ValidateObjectMetaAccessor(u, u.GetNamespace() != "", apivalidation.NameIsDNSSubdomain, metaPath)
	}
	spec := readCRDSpec(u)
	// The name must be <plural>.<group>: that is how the API server finds
	// the CRD for a request path.
	nameFn := func(name string, prefix bool) []string {
		msgs := apivalidation.NameIsDNSSubdomain(name, prefix)
		if name != spec.plural+"."+spec.group {
			msgs = append(msgs, `must be spec.names.plural+"."+spec.group`)
		}
		return msgs
	}
	errs := apivalidation.ValidateObjectMetaAccessor(u, false, nameFn, metaPath)
	return append(errs, spec.validate()...)
}

func validateUnstructuredUpdate(u, old *unstructured.Unstructured) field.ErrorList {
	errs := apivalidation.ValidateObjectMetaAccessorUpdate(u, old, metaPath)
	if !isCRD(u) {
		return errs
	}
	spec, oldSpec := readCRDSpec(u), readCRDSpec(old)
	errs = append(errs, spec.validate()...)
	sp := field.NewPath("spec")
	// Scope and group decide every stored object's key; changing them would
	// strand the stored custom resources.
	errs = append(errs, apivalidation.ValidateImmutableField(spec.scope, oldSpec.scope, sp.Child("scope"))...)
	errs = append(errs, apivalidation.ValidateImmutableField(spec.group, oldSpec.group, sp.Child("group"))...)
	return append(errs, apivalidation.ValidateImmutableField(spec.plural, oldSpec.plural, sp.Child("names", "plural"))...)
}

// crdSpec is the part of a CRD spec this package checks, read leniently:
// a field of the wrong JSON type reads as absent and is reported as such.
type crdSpec struct {
	group, scope                     string
	plural, singular, kind, listKind string
	versions                         []crdVersion
	versionsPresent                  bool
}

type crdVersion struct {
	name            string
	served, storage bool
}

func readCRDSpec(u *unstructured.Unstructured) crdSpec {
	str := func(path ...string) string {
		v, _, _ := unstructured.NestedString(u.Object, path...)
		return v
	}
	s := crdSpec{
		group:    str("spec", "group"),
		scope:    str("spec", "scope"),
		plural:   str("spec", "names", "plural"),
		singular: str("spec", "names", "singular"),
		kind:     str("spec", "names", "kind"),
		listKind: str("spec", "names", "listKind"),
	}
	vs, found, _ := unstructured.NestedSlice(u.Object, "spec", "versions")
	s.versionsPresent = found
	for _, v := range vs {
		m, ok := v.(map[string]interface{})
		if !ok {
			s.versions = append(s.versions, crdVersion{})
			continue
		}
		name, _, _ := unstructured.NestedString(m, "name")
		served, _, _ := unstructured.NestedBool(m, "served")
		storage, _, _ := unstructured.NestedBool(m, "storage")
		s.versions = append(s.versions, crdVersion{name: name, served: served, storage: storage})
	}
	return s
}

func (s crdSpec) validate() field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("spec")
	gp := sp.Child("group")
	if s.group == "" {
		errs = append(errs, field.Required(gp, ""))
	} else {
		for _, msg := range validation.IsDNS1123Subdomain(s.group) {
			errs = append(errs, field.Invalid(gp, s.group, msg))
		}
		if len(strings.Split(s.group, ".")) < 2 {
			errs = append(errs, field.Invalid(gp, s.group, "should be a domain with at least one dot"))
		}
	}
	switch s.scope {
	case "Cluster", "Namespaced":
	case "":
		errs = append(errs, field.Required(sp.Child("scope"), ""))
	default:
		errs = append(errs, field.NotSupported(sp.Child("scope"), s.scope, []string{"Cluster", "Namespaced"}))
	}

	np := sp.Child("names")
	if s.plural == "" {
		errs = append(errs, field.Required(np.Child("plural"), ""))
	} else if msgs := validation.IsDNS1035Label(s.plural); len(msgs) > 0 {
		errs = append(errs, field.Invalid(np.Child("plural"), s.plural, strings.Join(msgs, ",")))
	}
	if s.singular != "" {
		if msgs := validation.IsDNS1035Label(s.singular); len(msgs) > 0 {
			errs = append(errs, field.Invalid(np.Child("singular"), s.singular, strings.Join(msgs, ",")))
		}
	}
	if s.kind == "" {
		errs = append(errs, field.Required(np.Child("kind"), ""))
	} else if msgs := validation.IsDNS1035Label(strings.ToLower(s.kind)); len(msgs) > 0 {
		errs = append(errs, field.Invalid(np.Child("kind"), s.kind, "may have mixed case, but should otherwise match: "+strings.Join(msgs, ",")))
	}
	if s.listKind != "" {
		if msgs := validation.IsDNS1035Label(strings.ToLower(s.listKind)); len(msgs) > 0 {
			errs = append(errs, field.Invalid(np.Child("listKind"), s.listKind, "may have mixed case, but should otherwise match: "+strings.Join(msgs, ",")))
		}
		if s.listKind == s.kind {
			errs = append(errs, field.Invalid(np.Child("listKind"), s.listKind, "kind and listKind may not be the same"))
		}
	}

	vp := sp.Child("versions")
	if len(s.versions) == 0 {
		return append(errs, field.Required(vp, "must have exactly one version marked as storage version"))
	}
	names := map[string]bool{}
	unique := true
	storage, served := 0, 0
	for i, v := range s.versions {
		if v.storage {
			storage++
		}
		if v.served {
			served++
		}
		if names[v.name] {
			unique = false
		}
		names[v.name] = true
		if msgs := validation.IsDNS1035Label(v.name); len(msgs) > 0 {
			errs = append(errs, field.Invalid(vp.Index(i).Child("name"), v.name, strings.Join(msgs, ",")))
		}
	}
	versionNames := make([]string, len(s.versions))
	for i, v := range s.versions {
		versionNames[i] = v.name
	}
	if !unique {
		errs = append(errs, field.Invalid(vp, versionNames, "must contain unique version names"))
	}
	if storage != 1 {
		errs = append(errs, field.Invalid(vp, versionNames, "must have exactly one version marked as storage version"))
	}
	if served == 0 {
		errs = append(errs, field.Invalid(vp, versionNames, "must have at least one version marked as served"))
	}
	return errs
}
