package validation

import (
	"fmt"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// selectorAndTemplate validates a workload's selector (required, valid,
// non-empty) and that it selects the template's labels. kind names the
// resource in upstream's "empty selector is invalid for <kind>" message.
func selectorAndTemplate(sel *metav1.LabelSelector, tmplLabels map[string]string, kind string, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	selPath := fldPath.Child("selector")
	if sel == nil {
		return append(errs, field.Required(selPath, ""))
	}
	errs = append(errs, metav1validation.ValidateLabelSelector(sel, metav1validation.LabelSelectorValidationOptions{}, selPath)...)
	if len(sel.MatchLabels)+len(sel.MatchExpressions) == 0 {
		errs = append(errs, field.Invalid(selPath, sel, "empty selector is invalid for "+kind))
	}
	selector, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		// Already reported by ValidateLabelSelector.
		return errs
	}
	if !selector.Empty() && !selector.Matches(labels.Set(tmplLabels)) {
		errs = append(errs, field.Invalid(fldPath.Child("template", "metadata", "labels"), tmplLabels, selectorMismatchMsg))
	}
	return errs
}

// intOrPercent validates a non-negative integer or a "N%" string of at
// most 100%.
func intOrPercent(v *intstr.IntOrString, fldPath *field.Path) field.ErrorList {
	if v == nil {
		return nil
	}
	var errs field.ErrorList
	switch v.Type {
	case intstr.String:
		for _, msg := range validation.IsValidPercent(v.StrVal) {
			errs = append(errs, field.Invalid(fldPath, v.StrVal, msg))
		}
		if len(errs) == 0 {
			if n, err := strconv.Atoi(strings.TrimSuffix(v.StrVal, "%")); err == nil && n > 100 {
				errs = append(errs, field.Invalid(fldPath, v.StrVal, "must not be greater than 100%"))
			}
		}
	case intstr.Int:
		errs = append(errs, apivalidation.ValidateNonnegativeField(int64(v.IntValue()), fldPath)...)
	default:
		errs = append(errs, field.Invalid(fldPath, v, "must be an integer or percentage (e.g '5%')"))
	}
	return errs
}

// isZero reports whether v is 0 or "0%".
func isZero(v *intstr.IntOrString) bool {
	if v == nil {
		return true
	}
	if v.Type == intstr.String {
		return v.StrVal == "0%"
	}
	return v.IntVal == 0
}

func nonneg32(v *int32, fldPath *field.Path) field.ErrorList {
	if v == nil {
		return nil
	}
	return apivalidation.ValidateNonnegativeField(int64(*v), fldPath)
}

// --- Deployment ---

func validateDeployment(d *appsv1.Deployment) field.ErrorList {
	errs := objectMeta(&d.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	return append(errs, deploymentSpec(&d.Spec, field.NewPath("spec"))...)
}

func deploymentSpec(s *appsv1.DeploymentSpec, fldPath *field.Path) field.ErrorList {
	errs := nonneg32(s.Replicas, fldPath.Child("replicas"))
	errs = append(errs, selectorAndTemplate(s.Selector, s.Template.Labels, "deployment", fldPath)...)
	// Deployments share the ReplicaSet template rules: they create them.
	errs = append(errs, replicatedPodTemplate(&s.Template, "ReplicaSet", fldPath.Child("template"))...)
	errs = append(errs, deploymentStrategy(&s.Strategy, fldPath.Child("strategy"))...)
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(s.MinReadySeconds), fldPath.Child("minReadySeconds"))...)
	errs = append(errs, nonneg32(s.RevisionHistoryLimit, fldPath.Child("revisionHistoryLimit"))...)
	if s.ProgressDeadlineSeconds != nil {
		errs = append(errs, nonneg32(s.ProgressDeadlineSeconds, fldPath.Child("progressDeadlineSeconds"))...)
		if *s.ProgressDeadlineSeconds <= s.MinReadySeconds {
			errs = append(errs, field.Invalid(fldPath.Child("progressDeadlineSeconds"), *s.ProgressDeadlineSeconds, "must be greater than minReadySeconds"))
		}
	}
	return errs
}

func deploymentStrategy(s *appsv1.DeploymentStrategy, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch s.Type {
	case appsv1.RecreateDeploymentStrategyType:
		if s.RollingUpdate != nil {
			errs = append(errs, field.Forbidden(fldPath.Child("rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'"))
		}
	case appsv1.RollingUpdateDeploymentStrategyType:
		// RollingUpdate may be nil only before defaulting.
		if s.RollingUpdate != nil {
			errs = append(errs, rollingUpdate(s.RollingUpdate.MaxUnavailable, s.RollingUpdate.MaxSurge, fldPath.Child("rollingUpdate"))...)
		}
	case "":
		errs = append(errs, field.Required(fldPath.Child("type"), ""))
	default:
		errs = append(errs, field.NotSupported(fldPath.Child("type"), s.Type,
			[]appsv1.DeploymentStrategyType{appsv1.RecreateDeploymentStrategyType, appsv1.RollingUpdateDeploymentStrategyType}))
	}
	return errs
}

// rollingUpdate validates maxUnavailable/maxSurge: a rollout must be able
// to make progress, so both cannot be zero.
func rollingUpdate(maxUnavailable, maxSurge *intstr.IntOrString, fldPath *field.Path) field.ErrorList {
	errs := intOrPercent(maxUnavailable, fldPath.Child("maxUnavailable"))
	errs = append(errs, intOrPercent(maxSurge, fldPath.Child("maxSurge"))...)
	if isZero(maxUnavailable) && isZero(maxSurge) {
		errs = append(errs, field.Invalid(fldPath.Child("maxUnavailable"), maxUnavailable, "may not be 0 when `maxSurge` is 0"))
	}
	return errs
}

func validateDeploymentUpdate(d, old *appsv1.Deployment) field.ErrorList {
	errs := metaUpdate(&d.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, deploymentSpec(&d.Spec, field.NewPath("spec"))...)
	// apps/v1 made selectors immutable: changing one would orphan pods.
	return append(errs, apivalidation.ValidateImmutableField(d.Spec.Selector, old.Spec.Selector, field.NewPath("spec", "selector"))...)
}

func deploymentStatus(s *appsv1.DeploymentStatus, fldPath *field.Path) field.ErrorList {
	errs := apivalidation.ValidateNonnegativeField(s.ObservedGeneration, fldPath.Child("observedGeneration"))
	errs = append(errs, replicaCounts(fldPath, map[string]int32{
		"replicas": s.Replicas, "updatedReplicas": s.UpdatedReplicas, "readyReplicas": s.ReadyReplicas,
		"availableReplicas": s.AvailableReplicas, "unavailableReplicas": s.UnavailableReplicas,
	})...)
	if s.CollisionCount != nil {
		errs = append(errs, apivalidation.ValidateNonnegativeField(int64(*s.CollisionCount), fldPath.Child("collisionCount"))...)
	}
	if s.UpdatedReplicas > s.Replicas {
		errs = append(errs, field.Invalid(fldPath.Child("updatedReplicas"), int64(s.UpdatedReplicas), "cannot be greater than status.replicas"))
	}
	if s.ReadyReplicas > s.Replicas {
		errs = append(errs, field.Invalid(fldPath.Child("readyReplicas"), int64(s.ReadyReplicas), "cannot be greater than status.replicas"))
	}
	if s.AvailableReplicas > s.Replicas {
		errs = append(errs, field.Invalid(fldPath.Child("availableReplicas"), int64(s.AvailableReplicas), "cannot be greater than status.replicas"))
	}
	if s.AvailableReplicas > s.ReadyReplicas {
		errs = append(errs, field.Invalid(fldPath.Child("availableReplicas"), int64(s.AvailableReplicas), "cannot be greater than readyReplicas"))
	}
	return errs
}

// --- ReplicaSet ---

func validateReplicaSet(rs *appsv1.ReplicaSet) field.ErrorList {
	errs := objectMeta(&rs.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	return append(errs, replicaSetSpec(&rs.Spec, field.NewPath("spec"))...)
}

func replicaSetSpec(s *appsv1.ReplicaSetSpec, fldPath *field.Path) field.ErrorList {
	errs := nonneg32(s.Replicas, fldPath.Child("replicas"))
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(s.MinReadySeconds), fldPath.Child("minReadySeconds"))...)
	// Upstream's ReplicaSet message really says "deployment".
	errs = append(errs, selectorAndTemplate(s.Selector, s.Template.Labels, "deployment", fldPath)...)
	return append(errs, replicatedPodTemplate(&s.Template, "ReplicaSet", fldPath.Child("template"))...)
}

func validateReplicaSetUpdate(rs, old *appsv1.ReplicaSet) field.ErrorList {
	errs := metaUpdate(&rs.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, replicaSetSpec(&rs.Spec, field.NewPath("spec"))...)
	return append(errs, apivalidation.ValidateImmutableField(rs.Spec.Selector, old.Spec.Selector, field.NewPath("spec", "selector"))...)
}

func replicaSetStatus(s *appsv1.ReplicaSetStatus, fldPath *field.Path) field.ErrorList {
	errs := apivalidation.ValidateNonnegativeField(s.ObservedGeneration, fldPath.Child("observedGeneration"))
	errs = append(errs, replicaCounts(fldPath, map[string]int32{
		"replicas": s.Replicas, "fullyLabeledReplicas": s.FullyLabeledReplicas,
		"readyReplicas": s.ReadyReplicas, "availableReplicas": s.AvailableReplicas,
	})...)
	if s.ReadyReplicas > s.Replicas {
		errs = append(errs, field.Invalid(fldPath.Child("readyReplicas"), int64(s.ReadyReplicas), "cannot be greater than status.replicas"))
	}
	if s.AvailableReplicas > s.ReadyReplicas {
		errs = append(errs, field.Invalid(fldPath.Child("availableReplicas"), int64(s.AvailableReplicas), "cannot be greater than readyReplicas"))
	}
	return errs
}

// --- StatefulSet ---

func validateStatefulSet(ss *appsv1.StatefulSet) field.ErrorList {
	// Pod names are <statefulset>-<ordinal> and become hostnames, so the
	// StatefulSet's name must be a DNS label.
	errs := objectMeta(&ss.ObjectMeta, true, apivalidation.NameIsDNSLabel)
	return append(errs, statefulSetSpec(&ss.Spec, field.NewPath("spec"))...)
}

func statefulSetSpec(s *appsv1.StatefulSetSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch s.PodManagementPolicy {
	case appsv1.OrderedReadyPodManagement, appsv1.ParallelPodManagement:
	case "":
		errs = append(errs, field.Required(fldPath.Child("podManagementPolicy"), ""))
	default:
		errs = append(errs, field.Invalid(fldPath.Child("podManagementPolicy"), s.PodManagementPolicy,
			fmt.Sprintf("must be '%s' or '%s'", appsv1.OrderedReadyPodManagement, appsv1.ParallelPodManagement)))
	}
	us := fldPath.Child("updateStrategy")
	switch s.UpdateStrategy.Type {
	case appsv1.OnDeleteStatefulSetStrategyType:
		if s.UpdateStrategy.RollingUpdate != nil {
			errs = append(errs, field.Invalid(us.Child("rollingUpdate"), s.UpdateStrategy.RollingUpdate,
				fmt.Sprintf("only allowed for updateStrategy '%s'", appsv1.RollingUpdateStatefulSetStrategyType)))
		}
	case appsv1.RollingUpdateStatefulSetStrategyType:
		if ru := s.UpdateStrategy.RollingUpdate; ru != nil {
			errs = append(errs, nonneg32(ru.Partition, us.Child("rollingUpdate", "partition"))...)
			if ru.MaxUnavailable != nil {
				errs = append(errs, intOrPercent(ru.MaxUnavailable, us.Child("rollingUpdate", "maxUnavailable"))...)
				if isZero(ru.MaxUnavailable) {
					errs = append(errs, field.Invalid(us.Child("rollingUpdate", "maxUnavailable"), ru.MaxUnavailable, "must be greater than 0"))
				}
			}
		}
	case "":
		errs = append(errs, field.Required(us, ""))
	default:
		errs = append(errs, field.Invalid(us, s.UpdateStrategy,
			fmt.Sprintf("must be '%s' or '%s'", appsv1.RollingUpdateStatefulSetStrategyType, appsv1.OnDeleteStatefulSetStrategyType)))
	}
	if p := s.PersistentVolumeClaimRetentionPolicy; p != nil {
		pp := fldPath.Child("persistentVolumeClaimRetentionPolicy")
		for name, v := range map[string]appsv1.PersistentVolumeClaimRetentionPolicyType{"whenDeleted": p.WhenDeleted, "whenScaled": p.WhenScaled} {
			if v != appsv1.RetainPersistentVolumeClaimRetentionPolicyType && v != appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
				errs = append(errs, field.NotSupported(pp.Child(name), v, []appsv1.PersistentVolumeClaimRetentionPolicyType{
					appsv1.RetainPersistentVolumeClaimRetentionPolicyType, appsv1.DeletePersistentVolumeClaimRetentionPolicyType}))
			}
		}
	}
	if s.Ordinals != nil {
		errs = append(errs, apivalidation.ValidateNonnegativeField(int64(s.Ordinals.Start), fldPath.Child("ordinals", "start"))...)
	}
	if s.ServiceName != "" {
		for _, msg := range validation.IsDNS1123Label(s.ServiceName) {
			errs = append(errs, field.Invalid(fldPath.Child("serviceName"), s.ServiceName, msg))
		}
	}
	errs = append(errs, nonneg32(s.Replicas, fldPath.Child("replicas"))...)
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(s.MinReadySeconds), fldPath.Child("minReadySeconds"))...)
	errs = append(errs, nonneg32(s.RevisionHistoryLimit, fldPath.Child("revisionHistoryLimit"))...)
	errs = append(errs, selectorAndTemplate(s.Selector, s.Template.Labels, "statefulset", fldPath)...)
	errs = append(errs, replicatedPodTemplate(&s.Template, "StatefulSet", fldPath.Child("template"))...)
	for i := range s.VolumeClaimTemplates {
		t := &s.VolumeClaimTemplates[i]
		p := fldPath.Child("volumeClaimTemplates").Index(i)
		for _, msg := range apivalidation.NameIsDNSSubdomain(t.Name, false) {
			errs = append(errs, field.Invalid(p.Child("metadata", "name"), t.Name, msg))
		}
		errs = append(errs, persistentVolumeClaimSpec(&t.Spec, p.Child("spec"))...)
	}
	return errs
}

func validateStatefulSetUpdate(ss, old *appsv1.StatefulSet) field.ErrorList {
	errs := metaUpdate(&ss.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, statefulSetSpec(&ss.Spec, field.NewPath("spec"))...)
	// Everything but the listed fields is fixed: identities and volumes of
	// the pods derive from it.
	munged := ss.Spec.DeepCopy()
	munged.Replicas = old.Spec.Replicas
	munged.Ordinals = old.Spec.Ordinals
	munged.Template = old.Spec.Template
	munged.UpdateStrategy = old.Spec.UpdateStrategy
	munged.RevisionHistoryLimit = old.Spec.RevisionHistoryLimit
	munged.PersistentVolumeClaimRetentionPolicy = old.Spec.PersistentVolumeClaimRetentionPolicy
	munged.MinReadySeconds = old.Spec.MinReadySeconds
	if !apiequality.Semantic.DeepEqual(*munged, old.Spec) {
		errs = append(errs, field.Forbidden(field.NewPath("spec"),
			"updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"))
	}
	return errs
}

func statefulSetStatus(s *appsv1.StatefulSetStatus, fldPath *field.Path) field.ErrorList {
	errs := apivalidation.ValidateNonnegativeField(s.ObservedGeneration, fldPath.Child("observedGeneration"))
	errs = append(errs, replicaCounts(fldPath, map[string]int32{
		"replicas": s.Replicas, "readyReplicas": s.ReadyReplicas, "currentReplicas": s.CurrentReplicas,
		"updatedReplicas": s.UpdatedReplicas, "availableReplicas": s.AvailableReplicas,
	})...)
	if s.CollisionCount != nil {
		errs = append(errs, apivalidation.ValidateNonnegativeField(int64(*s.CollisionCount), fldPath.Child("collisionCount"))...)
	}
	for name, v := range map[string]int32{"readyReplicas": s.ReadyReplicas, "currentReplicas": s.CurrentReplicas, "updatedReplicas": s.UpdatedReplicas} {
		if v > s.Replicas {
			errs = append(errs, field.Invalid(fldPath.Child(name), int64(v), "cannot be greater than status.replicas"))
		}
	}
	return errs
}

// --- DaemonSet ---

func validateDaemonSet(ds *appsv1.DaemonSet) field.ErrorList {
	errs := objectMeta(&ds.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	return append(errs, daemonSetSpec(&ds.Spec, field.NewPath("spec"))...)
}

func daemonSetSpec(s *appsv1.DaemonSetSpec, fldPath *field.Path) field.ErrorList {
	errs := selectorAndTemplate(s.Selector, s.Template.Labels, "daemonset", fldPath)
	errs = append(errs, replicatedPodTemplate(&s.Template, "DaemonSet", fldPath.Child("template"))...)
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(s.MinReadySeconds), fldPath.Child("minReadySeconds"))...)
	errs = append(errs, nonneg32(s.RevisionHistoryLimit, fldPath.Child("revisionHistoryLimit"))...)
	us := fldPath.Child("updateStrategy")
	switch s.UpdateStrategy.Type {
	case appsv1.OnDeleteDaemonSetStrategyType:
	case appsv1.RollingUpdateDaemonSetStrategyType:
		if ru := s.UpdateStrategy.RollingUpdate; ru != nil {
			errs = append(errs, rollingUpdate(ru.MaxUnavailable, ru.MaxSurge, us.Child("rollingUpdate"))...)
		}
	case "":
		errs = append(errs, field.Required(us.Child("type"), ""))
	default:
		errs = append(errs, field.NotSupported(us.Child("type"), s.UpdateStrategy.Type,
			[]appsv1.DaemonSetUpdateStrategyType{appsv1.OnDeleteDaemonSetStrategyType, appsv1.RollingUpdateDaemonSetStrategyType}))
	}
	return errs
}

func validateDaemonSetUpdate(ds, old *appsv1.DaemonSet) field.ErrorList {
	errs := metaUpdate(&ds.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, daemonSetSpec(&ds.Spec, field.NewPath("spec"))...)
	return append(errs, apivalidation.ValidateImmutableField(ds.Spec.Selector, old.Spec.Selector, field.NewPath("spec", "selector"))...)
}

func daemonSetStatus(s *appsv1.DaemonSetStatus, fldPath *field.Path) field.ErrorList {
	errs := apivalidation.ValidateNonnegativeField(s.ObservedGeneration, fldPath.Child("observedGeneration"))
	errs = append(errs, replicaCounts(fldPath, map[string]int32{
		"currentNumberScheduled": s.CurrentNumberScheduled, "numberMisscheduled": s.NumberMisscheduled,
		"desiredNumberScheduled": s.DesiredNumberScheduled, "numberReady": s.NumberReady,
		"updatedNumberScheduled": s.UpdatedNumberScheduled, "numberAvailable": s.NumberAvailable,
		"numberUnavailable": s.NumberUnavailable,
	})...)
	if s.CollisionCount != nil {
		errs = append(errs, apivalidation.ValidateNonnegativeField(int64(*s.CollisionCount), fldPath.Child("collisionCount"))...)
	}
	return errs
}

// --- ControllerRevision ---

func validateControllerRevision(r *appsv1.ControllerRevision) field.ErrorList {
	errs := objectMeta(&r.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	if r.Data.Raw == nil && r.Data.Object == nil {
		errs = append(errs, field.Required(field.NewPath("data"), "data is mandatory"))
	}
	return append(errs, apivalidation.ValidateNonnegativeField(r.Revision, field.NewPath("revision"))...)
}

func validateControllerRevisionUpdate(r, old *appsv1.ControllerRevision) field.ErrorList {
	errs := metaUpdate(&r.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, apivalidation.ValidateNonnegativeField(r.Revision, field.NewPath("revision"))...)
	if !apiequality.Semantic.DeepEqual(r.Data, old.Data) {
		errs = append(errs, field.Invalid(field.NewPath("data"), "<omitted>", immutableMsg))
	}
	return errs
}
