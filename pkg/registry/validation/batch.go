package validation

import (
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// maxCronJobNameLength leaves room for the 11-character "-<minutes>"
// suffix of the Jobs a CronJob creates within a 63-character label value.
const maxCronJobNameLength = 52

// --- Job ---

func validateJob(j *batchv1.Job) field.ErrorList {
	errs := objectMeta(&j.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	return append(errs, jobSpec(&j.Spec, field.NewPath("spec"))...)
}

// jobSpec validates a Job's spec, including the selector that the Job
// strategy generates (batch.kubernetes.io/controller-uid) before
// validation unless spec.manualSelector is true.
func jobSpec(s *batchv1.JobSpec, fldPath *field.Path) field.ErrorList {
	errs := jobSpecCommon(s, fldPath)
	if s.Selector == nil {
		errs = append(errs, field.Required(fldPath.Child("selector"), ""))
	} else {
		errs = append(errs, metav1validation.ValidateLabelSelector(s.Selector, metav1validation.LabelSelectorValidationOptions{}, fldPath.Child("selector"))...)
		if sel, err := metav1.LabelSelectorAsSelector(s.Selector); err == nil && !sel.Matches(labels.Set(s.Template.Labels)) {
			errs = append(errs, field.Invalid(fldPath.Child("template", "metadata", "labels"), s.Template.Labels, selectorMismatchMsg))
		}
	}
	return errs
}

// jobSpecCommon is what a Job and a CronJob's job template share.
func jobSpecCommon(s *batchv1.JobSpec, fldPath *field.Path) field.ErrorList {
	errs := nonneg32(s.Parallelism, fldPath.Child("parallelism"))
	errs = append(errs, nonneg32(s.Completions, fldPath.Child("completions"))...)
	if s.ActiveDeadlineSeconds != nil {
		errs = append(errs, apivalidation.ValidateNonnegativeField(*s.ActiveDeadlineSeconds, fldPath.Child("activeDeadlineSeconds"))...)
	}
	errs = append(errs, nonneg32(s.BackoffLimit, fldPath.Child("backoffLimit"))...)
	errs = append(errs, nonneg32(s.TTLSecondsAfterFinished, fldPath.Child("ttlSecondsAfterFinished"))...)
	errs = append(errs, nonneg32(s.BackoffLimitPerIndex, fldPath.Child("backoffLimitPerIndex"))...)
	if s.CompletionMode != nil {
		switch *s.CompletionMode {
		case batchv1.NonIndexedCompletion:
		case batchv1.IndexedCompletion:
			if s.Completions == nil {
				errs = append(errs, field.Required(fldPath.Child("completions"), "when completion mode is Indexed"))
			}
		default:
			errs = append(errs, field.NotSupported(fldPath.Child("completionMode"), *s.CompletionMode,
				[]batchv1.CompletionMode{batchv1.NonIndexedCompletion, batchv1.IndexedCompletion}))
		}
	}
	if s.BackoffLimitPerIndex != nil && (s.CompletionMode == nil || *s.CompletionMode != batchv1.IndexedCompletion) {
		errs = append(errs, field.Invalid(fldPath.Child("backoffLimitPerIndex"), *s.BackoffLimitPerIndex, "requires indexed completion mode"))
	}
	if p := s.PodReplacementPolicy; p != nil {
		switch *p {
		case batchv1.TerminatingOrFailed:
			if s.PodFailurePolicy != nil {
				errs = append(errs, field.NotSupported(fldPath.Child("podReplacementPolicy"), *p, []batchv1.PodReplacementPolicy{batchv1.Failed}))
			}
		case batchv1.Failed:
		default:
			errs = append(errs, field.NotSupported(fldPath.Child("podReplacementPolicy"), *p,
				[]batchv1.PodReplacementPolicy{batchv1.TerminatingOrFailed, batchv1.Failed}))
		}
	}
	errs = append(errs, podTemplateSpec(&s.Template, fldPath.Child("template"))...)
	// A Job's pods must end, so they may not restart forever.
	if rp := s.Template.Spec.RestartPolicy; rp != corev1.RestartPolicyOnFailure && rp != corev1.RestartPolicyNever {
		errs = append(errs, field.NotSupported(fldPath.Child("template", "spec", "restartPolicy"), rp,
			[]corev1.RestartPolicy{corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever}))
	}
	return errs
}

func validateJobUpdate(j, old *batchv1.Job) field.ErrorList {
	fldPath := field.NewPath("spec")
	errs := metaUpdate(&j.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, jobSpec(&j.Spec, fldPath)...)
	// Indexed jobs may scale completions together with parallelism.
	elastic := j.Spec.CompletionMode != nil && *j.Spec.CompletionMode == batchv1.IndexedCompletion &&
		j.Spec.Completions != nil && j.Spec.Parallelism != nil && *j.Spec.Completions == *j.Spec.Parallelism
	if !elastic {
		errs = append(errs, apivalidation.ValidateImmutableField(j.Spec.Completions, old.Spec.Completions, fldPath.Child("completions"))...)
	}
	errs = append(errs, apivalidation.ValidateImmutableField(j.Spec.Selector, old.Spec.Selector, fldPath.Child("selector"))...)
	errs = append(errs, apivalidation.ValidateImmutableField(j.Spec.CompletionMode, old.Spec.CompletionMode, fldPath.Child("completionMode"))...)
	errs = append(errs, apivalidation.ValidateImmutableField(j.Spec.PodFailurePolicy, old.Spec.PodFailurePolicy, fldPath.Child("podFailurePolicy"))...)
	errs = append(errs, apivalidation.ValidateImmutableField(j.Spec.BackoffLimitPerIndex, old.Spec.BackoffLimitPerIndex, fldPath.Child("backoffLimitPerIndex"))...)
	// The template is fixed once pods may exist; a suspended job that
	// never started may still have its scheduling directives changed.
	if !apiequality.Semantic.DeepEqual(j.Spec.Template, old.Spec.Template) {
		suspendedNeverStarted := old.Spec.Suspend != nil && *old.Spec.Suspend && old.Status.StartTime == nil
		munged := old.Spec.Template.DeepCopy()
		if suspendedNeverStarted {
			munged.Labels = j.Spec.Template.Labels
			munged.Annotations = j.Spec.Template.Annotations
			munged.Spec.NodeSelector = j.Spec.Template.Spec.NodeSelector
			munged.Spec.Affinity = j.Spec.Template.Spec.Affinity
			munged.Spec.Tolerations = j.Spec.Template.Spec.Tolerations
			munged.Spec.SchedulingGates = j.Spec.Template.Spec.SchedulingGates
		}
		if !apiequality.Semantic.DeepEqual(*munged, j.Spec.Template) {
			errs = append(errs, field.Invalid(fldPath.Child("template"), j.Spec.Template, immutableMsg))
		}
	}
	return errs
}

func jobStatus(s *batchv1.JobStatus, fldPath *field.Path) field.ErrorList {
	counts := map[string]int32{"active": s.Active, "succeeded": s.Succeeded, "failed": s.Failed}
	if s.Ready != nil {
		counts["ready"] = *s.Ready
	}
	if s.Terminating != nil {
		counts["terminating"] = *s.Terminating
	}
	return replicaCounts(fldPath, counts)
}

// --- CronJob ---

func validateCronJob(cj *batchv1.CronJob) field.ErrorList {
	errs := objectMeta(&cj.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	if len(cj.Name) > maxCronJobNameLength {
		errs = append(errs, field.Invalid(metaPath.Child("name"), cj.Name, "must be no more than 52 characters"))
	}
	return append(errs, cronJobSpec(&cj.Spec, field.NewPath("spec"))...)
}

func cronJobSpec(s *batchv1.CronJobSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	schedPath := fldPath.Child("schedule")
	if s.Schedule == "" {
		errs = append(errs, field.Required(schedPath, ""))
	} else {
		if err := parseSchedule(s.Schedule); err != nil {
			errs = append(errs, field.Invalid(schedPath, s.Schedule, err.Error()))
		}
		// Time zones belong in spec.timeZone, where they are validated.
		if strings.Contains(s.Schedule, "TZ") {
			errs = append(errs, field.Invalid(schedPath, s.Schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
		}
	}
	if tz := s.TimeZone; tz != nil {
		tzPath := fldPath.Child("timeZone")
		switch {
		case *tz == "":
			errs = append(errs, field.Invalid(tzPath, *tz, "timeZone must be nil or non-empty string"))
		case strings.EqualFold(*tz, "Local"):
			errs = append(errs, field.Invalid(tzPath, *tz, "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"))
		default:
			if _, err := time.LoadLocation(*tz); err != nil {
				errs = append(errs, field.Invalid(tzPath, *tz, "unknown time zone "+*tz))
			}
		}
	}
	if s.StartingDeadlineSeconds != nil {
		errs = append(errs, apivalidation.ValidateNonnegativeField(*s.StartingDeadlineSeconds, fldPath.Child("startingDeadlineSeconds"))...)
	}
	switch s.ConcurrencyPolicy {
	case batchv1.AllowConcurrent, batchv1.ForbidConcurrent, batchv1.ReplaceConcurrent:
	case "":
		errs = append(errs, field.Required(fldPath.Child("concurrencyPolicy"), ""))
	default:
		errs = append(errs, field.NotSupported(fldPath.Child("concurrencyPolicy"), s.ConcurrencyPolicy,
			[]batchv1.ConcurrencyPolicy{batchv1.AllowConcurrent, batchv1.ForbidConcurrent, batchv1.ReplaceConcurrent}))
	}
	errs = append(errs, nonneg32(s.SuccessfulJobsHistoryLimit, fldPath.Child("successfulJobsHistoryLimit"))...)
	errs = append(errs, nonneg32(s.FailedJobsHistoryLimit, fldPath.Child("failedJobsHistoryLimit"))...)

	jt := fldPath.Child("jobTemplate")
	errs = append(errs, metav1validation.ValidateLabels(s.JobTemplate.Labels, jt.Child("metadata", "labels"))...)
	errs = append(errs, apivalidation.ValidateAnnotations(s.JobTemplate.Annotations, jt.Child("metadata", "annotations"))...)
	errs = append(errs, jobSpecCommon(&s.JobTemplate.Spec, jt.Child("spec"))...)
	// Each Job the CronJob creates gets its own generated selector.
	if s.JobTemplate.Spec.Selector != nil {
		errs = append(errs, field.Invalid(jt.Child("spec", "selector"), s.JobTemplate.Spec.Selector, "`selector` will be auto-generated"))
	}
	if ms := s.JobTemplate.Spec.ManualSelector; ms != nil && *ms {
		errs = append(errs, field.NotSupported(jt.Child("spec", "manualSelector"), *ms, []string{"nil", "false"}))
	}
	return errs
}
