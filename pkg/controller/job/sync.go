package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-project/skiff/pkg/controller"
)

// Event reasons, as upstream.
const (
	ReasonSuccessfulCreate     = "SuccessfulCreate"
	ReasonFailedCreate         = "FailedCreate"
	ReasonSuccessfulDelete     = "SuccessfulDelete"
	ReasonFailedDelete         = "FailedDelete"
	ReasonCompleted            = "Completed"
	ReasonTooManySucceededPods = "TooManySucceededPods"
	ReasonSuspended            = "Suspended"
	ReasonResumed              = "Resumed"
)

// completionIndexEnvName is the variable Indexed Jobs' containers get
// their index in, unless they define it themselves.
const completionIndexEnvName = "JOB_COMPLETION_INDEX"

// state is one sync's view of a Job and its pods; the sync edits job (a
// copy) and the counters as it acts.
type state struct {
	job         *batchv1.Job
	pods        []*corev1.Pod // owned by job
	active      []*corev1.Pod // owned, neither finished nor being deleted
	terminating int32
	ready       int32
	// stripped are pods whose tracking finalizer this sync removed while
	// deleting them.
	stripped map[types.UID]bool
	// finished is the condition the Job is heading for, nil while it runs.
	finished *batchv1.JobCondition
	// prevIndexes are the completed indexes recorded in status; indexes
	// adds those of succeeded pods (Indexed Jobs only).
	prevIndexes, indexes intervals
}

// sync reconciles the Job named by key.
func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return controller.Terminal(fmt.Errorf("invalid key %q: %w", key, err))
	}
	cached, err := c.jobLister.Jobs(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		c.expectations.forget(key)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading job %s: %w", key, err)
	}
	// Read expectations before listing pods: a pod observed after this
	// point is at worst seen twice, never missed.
	satisfied := c.expectations.satisfied(key)
	all, err := c.podLister.Pods(namespace).List(labels.Everything())
	if err != nil {
		return fmt.Errorf("listing pods in %s: %w", namespace, err)
	}
	s := &state{job: cached.DeepCopy(), stripped: map[types.UID]bool{}}
	for _, p := range all {
		if ref := metav1.GetControllerOf(p); ref != nil && ref.UID == cached.UID {
			s.pods = append(s.pods, p)
		}
	}
	if isFinished(cached) {
		// Everything is counted; only stragglers' finalizers remain.
		var left []*corev1.Pod
		for _, p := range s.pods {
			if hasFinalizer(p) && !c.expectations.finalizerRemovalPending(key, p.UID) {
				left = append(left, p)
			}
		}
		_, err := c.stripFinalizers(ctx, key, left)
		return err
	}

	now := c.clock.Now()
	job := s.job
	if job.Status.UncountedTerminatedPods == nil {
		job.Status.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{}
	}
	uncountedSucceeded := uidSet(job.Status.UncountedTerminatedPods.Succeeded)
	uncountedFailed := uidSet(job.Status.UncountedTerminatedPods.Failed)
	for _, p := range s.pods {
		switch {
		case isActive(p):
			s.active = append(s.active, p)
			if isReady(p) {
				s.ready++
			}
		case isTerminating(p):
			s.terminating++
		}
	}
	// The counts including pods that finished since the last sync decide
	// completion and failure now; the status counters catch up as the
	// pods are accounted for in trackPods.
	succeeded := job.Status.Succeeded + int32(len(uncountedSucceeded))
	failed := job.Status.Failed + int32(len(uncountedFailed))
	for _, p := range s.pods {
		if !hasFinalizer(p) || c.expectations.finalizerRemovalPending(key, p.UID) || uncountedSucceeded[p.UID] || uncountedFailed[p.UID] {
			continue
		}
		switch {
		case p.Status.Phase == corev1.PodSucceeded:
			succeeded++
		case isPodFailed(job, p):
			failed++
		}
	}
	if isIndexed(job) {
		completions := int(*job.Spec.Completions)
		s.prevIndexes = parseIntervals(job.Status.CompletedIndexes, completions)
		var idx []int
		for _, p := range s.pods {
			if i := completionIndex(p); p.Status.Phase == corev1.PodSucceeded && i != noIndex && i < completions {
				idx = append(idx, i)
			}
		}
		s.indexes = s.prevIndexes.with(idx)
		succeeded = int32(s.indexes.total())
	}

	if job.Status.StartTime == nil && !isSuspended(job) {
		job.Status.StartTime = &metav1.Time{Time: now}
	}

	switch {
	case findCondition(job, batchv1.JobFailureTarget) != nil:
		s.finished = findCondition(job, batchv1.JobFailureTarget).DeepCopy()
	case findCondition(job, batchv1.JobSuccessCriteriaMet) != nil:
		s.finished = findCondition(job, batchv1.JobSuccessCriteriaMet).DeepCopy()
	default:
		if reason, msg := failure(job, failed, s.pods, now); reason != "" {
			s.finished = newCondition(batchv1.JobFailureTarget, reason, msg, now)
		} else if left, ok := deadlineLeft(job, now); ok {
			c.enqueueAfter(key, left)
		}
	}

	var manageErr error
	active := int32(len(s.active))
	if s.finished != nil {
		// A finishing Job keeps no pod running.
		deletedReady, deleted, err := c.deletePods(ctx, key, job, s.active, s.stripped)
		if int(deleted) != len(s.active) || !satisfied {
			// Pods may remain, or may not be in the cache yet: the Job
			// cannot be declared finished in this sync.
			s.finished = nil
		}
		active -= deleted
		s.terminating += deleted
		s.ready -= deletedReady
		manageErr = err
	} else {
		managed := false
		if satisfied && job.DeletionTimestamp == nil {
			active, manageErr = c.manageJob(ctx, key, s, succeeded, backoffLeft(job, s.pods, now))
			managed = true
		}
		complete := false
		switch {
		case job.Spec.Completions == nil:
			// Any success means the work is done once the rest finish.
			complete = succeeded > 0 && active == 0
		default:
			complete = succeeded >= *job.Spec.Completions && active == 0
		}
		switch {
		case complete:
			s.finished = newCondition(batchv1.JobSuccessCriteriaMet, batchv1.JobReasonCompletionsReached, messageCompletionsReached, now)
		case managed && isSuspended(job):
			if setCondition(job, batchv1.JobSuspended, corev1.ConditionTrue, "JobSuspended", "Job suspended", now) {
				c.recorder.Event(job, corev1.EventTypeNormal, ReasonSuspended, "Job suspended")
			}
		case managed:
			if setCondition(job, batchv1.JobSuspended, corev1.ConditionFalse, "JobResumed", "Job resumed", now) {
				c.recorder.Event(job, corev1.EventTypeNormal, ReasonResumed, "Job resumed")
				// activeDeadlineSeconds counts continuous activity, so the
				// clock restarts on resume.
				job.Status.StartTime = &metav1.Time{Time: now}
			}
		}
	}
	job.Status.Active = active
	job.Status.Ready = &s.ready
	job.Status.Terminating = &s.terminating
	trackErr := c.trackPods(ctx, key, cached, s, uncountedSucceeded, uncountedFailed, now)
	return errors.Join(manageErr, trackErr)
}

// manageJob creates or deletes pods per manage's plan and returns the
// resulting number of active pods.
func (c *Controller) manageJob(ctx context.Context, key string, s *state, succeeded int32, backoff time.Duration) (int32, error) {
	job := s.job
	p := manage(job, s.active, succeeded, s.indexes, s.terminating, backoff)
	active := int32(len(s.active))
	switch {
	case len(p.Delete) > 0:
		deletedReady, deleted, err := c.deletePods(ctx, key, job, p.Delete, s.stripped)
		s.terminating += deleted
		s.ready -= deletedReady
		return active - deleted, err
	case p.BackoffWait > 0:
		c.enqueueAfter(key, p.BackoffWait)
		return active, nil
	}
	n := p.Create
	if isIndexed(job) {
		n = len(p.Indexes)
	}
	if n == 0 {
		return active, nil
	}
	c.expectations.expect(key, n, nil)
	created, err := slowStartBatch(n, func(i int) error {
		ix := noIndex
		if isIndexed(job) {
			ix = p.Indexes[i]
		}
		return c.createPod(ctx, job, ix)
	})
	// Creations that never happened will never be observed.
	for range n - created {
		c.expectations.creationObserved(key)
	}
	return active + int32(created), err
}

// trackPods accounts for finished pods with upstream's three steps (record
// UIDs as uncounted, remove finalizers, move UIDs to the counters), then
// declares the Job finished once nothing is left uncounted or running.
// Status is written only when it differs from what the server has.
func (c *Controller) trackPods(ctx context.Context, key string, cached *batchv1.Job, s *state, uncountedSucceeded, uncountedFailed map[types.UID]bool, now time.Time) error {
	job := s.job
	indexed := isIndexed(job)
	failing := s.finished != nil && s.finished.Type != batchv1.JobSuccessCriteriaMet
	uncounted := job.Status.UncountedTerminatedPods
	var toStrip []*corev1.Pod
	for _, p := range s.pods {
		// A pod stripped by this sync's deletions is pending too, but not
		// yet counted.
		if !hasFinalizer(p) || (c.expectations.finalizerRemovalPending(key, p.UID) && !s.stripped[p.UID]) {
			continue
		}
		podFailed := isPodFailed(job, p)
		if !s.stripped[p.UID] && !(job.DeletionTimestamp != nil || s.finished != nil || p.Status.Phase == corev1.PodSucceeded || podFailed) {
			continue
		}
		ix := completionIndex(p)
		validIndex := ix != noIndex && indexed && ix < int(*job.Spec.Completions)
		switch {
		case p.Status.Phase == corev1.PodSucceeded && !uncountedFailed[p.UID]:
			// Indexed successes are counted by index, already in s.indexes.
			if !indexed && !uncountedSucceeded[p.UID] {
				uncounted.Succeeded = append(uncounted.Succeeded, p.UID)
				uncountedSucceeded[p.UID] = true
			}
		case podFailed || failing:
			// A failing Job's remaining pods fail with it.
			if !uncountedFailed[p.UID] && (!indexed || validIndex) {
				uncounted.Failed = append(uncounted.Failed, p.UID)
				uncountedFailed[p.UID] = true
			}
		}
		if !s.stripped[p.UID] {
			toStrip = append(toStrip, p)
		}
	}
	if indexed {
		job.Status.CompletedIndexes = s.indexes.String()
		job.Status.Succeeded = int32(s.indexes.total())
	}
	// The interim condition (FailureTarget, SuccessCriteriaMet) is written
	// before finalizers go, so the outcome survives a crash; the terminal
	// one (Failed, Complete) waits until every pod is accounted for.
	var final *batchv1.JobCondition
	if s.finished != nil {
		if findCondition(job, s.finished.Type) == nil {
			job.Status.Conditions = append(job.Status.Conditions, *s.finished)
		}
		finalType := batchv1.JobFailed
		if s.finished.Type == batchv1.JobSuccessCriteriaMet {
			finalType = batchv1.JobComplete
		}
		final = newCondition(finalType, s.finished.Reason, s.finished.Message, now)
	}

	// Step 1: record the newly finished pods as uncounted.
	written := cached
	if !equality.Semantic.DeepEqual(cached.Status, job.Status) {
		updated, err := c.client.BatchV1().Jobs(job.Namespace).UpdateStatus(ctx, job, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("adding uncounted pods to status of job %s: %w", key, err)
		}
		written, job = updated, updated.DeepCopy()
		s.job = job
	}
	// Step 2: remove their finalizers.
	removed, stripErr := c.stripFinalizers(ctx, key, toStrip)
	// Step 3: count every uncounted pod that no longer has a finalizer.
	withFinalizer := map[types.UID]bool{}
	for _, p := range s.pods {
		if hasFinalizer(p) && !removed[p.UID] && !s.stripped[p.UID] && !c.expectations.finalizerRemovalPending(key, p.UID) {
			withFinalizer[p.UID] = true
		}
	}
	uncounted = job.Status.UncountedTerminatedPods
	uncounted.Succeeded, job.Status.Succeeded = countOut(uncounted.Succeeded, withFinalizer, job.Status.Succeeded)
	uncounted.Failed, job.Status.Failed = countOut(uncounted.Failed, withFinalizer, job.Status.Failed)

	finishedNow := false
	if final != nil && stripErr == nil && len(uncounted.Succeeded)+len(uncounted.Failed) == 0 && *job.Status.Terminating == 0 {
		finishedNow = setCondition(job, final.Type, corev1.ConditionTrue, final.Reason, final.Message, now)
		if final.Type == batchv1.JobComplete && job.Status.CompletionTime == nil {
			job.Status.CompletionTime = &metav1.Time{Time: now}
		}
	}
	if !equality.Semantic.DeepEqual(written.Status, job.Status) {
		if _, err := c.client.BatchV1().Jobs(job.Namespace).UpdateStatus(ctx, job, metav1.UpdateOptions{}); err != nil {
			return errors.Join(stripErr, fmt.Errorf("counting finished pods in status of job %s: %w", key, err))
		}
	}
	if finishedNow {
		c.recordFinished(job, final)
	}
	return stripErr
}

// countOut removes the uids that no longer carry a finalizer and adds them
// to counter.
func countOut(uids []types.UID, withFinalizer map[types.UID]bool, counter int32) ([]types.UID, int32) {
	var left []types.UID
	for _, uid := range uids {
		if withFinalizer[uid] {
			left = append(left, uid)
		} else {
			counter++
		}
	}
	return left, counter
}

func (c *Controller) recordFinished(job *batchv1.Job, cond *batchv1.JobCondition) {
	if cond.Type != batchv1.JobComplete {
		c.recorder.Event(job, corev1.EventTypeWarning, cond.Reason, cond.Message)
		return
	}
	if job.Spec.Completions != nil && job.Status.Succeeded > *job.Spec.Completions {
		c.recorder.Event(job, corev1.EventTypeWarning, ReasonTooManySucceededPods, "Too many succeeded pods running after completion count reached")
	}
	c.recorder.Event(job, corev1.EventTypeNormal, ReasonCompleted, "Job completed")
}

// finalizerPatch is a strategic merge patch removing the tracking
// finalizer from a pod's list without touching other finalizers.
func finalizerPatch() []byte {
	// Marshalling a map of strings cannot fail.
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"$deleteFromPrimitiveList/finalizers": []string{batchv1.JobTrackingFinalizer},
	}})
	return b
}

// stripFinalizers removes the tracking finalizer from pods in parallel and
// returns the pods it succeeded for (a pod already gone counts).
func (c *Controller) stripFinalizers(ctx context.Context, key string, pods []*corev1.Pod) (map[types.UID]bool, error) {
	removed := make([]bool, len(pods))
	errs := make([]error, len(pods))
	patch := finalizerPatch()
	var wg sync.WaitGroup
	for i, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
			switch {
			case err == nil:
				c.expectations.expectFinalizerRemoved(key, p.UID)
				removed[i] = true
			case apierrors.IsNotFound(err):
				removed[i] = true
			default:
				errs[i] = fmt.Errorf("removing tracking finalizer from pod %s/%s: %w", p.Namespace, p.Name, err)
			}
		}()
	}
	wg.Wait()
	out := map[types.UID]bool{}
	for i, p := range pods {
		if removed[i] {
			out[p.UID] = true
		}
	}
	return out, errors.Join(errs...)
}

// deletePods deletes pods in parallel, first removing their tracking
// finalizer so that pods the controller removes itself are never counted
// as failures. It returns how many ready and how many pods in all it
// deleted, and marks each stripped pod in stripped.
func (c *Controller) deletePods(ctx context.Context, key string, job *batchv1.Job, pods []*corev1.Pod, stripped map[types.UID]bool) (int32, int32, error) {
	if len(pods) == 0 {
		return 0, 0, nil
	}
	uids := make([]types.UID, len(pods))
	for i, p := range pods {
		uids[i] = p.UID
	}
	c.expectations.expect(key, 0, uids)
	type result struct {
		deleted, stripped bool
		err               error
	}
	results := make([]result, len(pods))
	patch := finalizerPatch()
	var wg sync.WaitGroup
	for i, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[i]
			if hasFinalizer(p) {
				if _, err := c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
					c.expectations.deletionObserved(key, p.UID)
					if !apierrors.IsNotFound(err) {
						r.err = fmt.Errorf("removing tracking finalizer from pod %s/%s: %w", p.Namespace, p.Name, err)
						c.recorder.Eventf(job, corev1.EventTypeWarning, ReasonFailedDelete, "Error deleting: %v", r.err)
					}
					return
				}
				c.expectations.expectFinalizerRemoved(key, p.UID)
				r.stripped = true
			}
			if err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil {
				c.expectations.deletionObserved(key, p.UID)
				if !apierrors.IsNotFound(err) {
					r.err = fmt.Errorf("deleting pod %s/%s: %w", p.Namespace, p.Name, err)
					c.recorder.Eventf(job, corev1.EventTypeWarning, ReasonFailedDelete, "Error deleting: %v", err)
				}
				return
			}
			r.deleted = true
			c.recorder.Eventf(job, corev1.EventTypeNormal, ReasonSuccessfulDelete, "Deleted pod: %v", p.Name)
		}()
	}
	wg.Wait()
	var ready, deleted int32
	var errs []error
	for i, r := range results {
		if r.stripped {
			stripped[pods[i].UID] = true
		}
		if r.deleted {
			deleted++
			if isReady(pods[i]) {
				ready++
			}
		}
		if r.err != nil {
			errs = append(errs, r.err)
		}
	}
	return ready, deleted, errors.Join(errs...)
}

// createPod creates one pod for job; index is its completion index, or
// noIndex for a non-indexed Job.
func (c *Controller) createPod(ctx context.Context, job *batchv1.Job, index int) error {
	pod := podFromTemplate(job, index)
	created, err := c.client.CoreV1().Pods(job.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			// Every create fails until the namespace is gone; not the
			// Job's failure.
			return nil
		}
		c.recorder.Eventf(job, corev1.EventTypeWarning, ReasonFailedCreate, "Error creating: %v", err)
		return fmt.Errorf("creating pod for job %s/%s: %w", job.Namespace, job.Name, err)
	}
	c.recorder.Eventf(job, corev1.EventTypeNormal, ReasonSuccessfulCreate, "Created pod: %v", created.Name)
	return nil
}

// podFromTemplate builds a pod of job: the template plus the tracking
// finalizer and job as controller; for an Indexed Job also the completion
// index annotation and label, hostname <job>-<index>, and the
// JOB_COMPLETION_INDEX variable in every container that does not set it.
func podFromTemplate(job *batchv1.Job, index int) *corev1.Pod {
	t := job.Spec.Template.DeepCopy()
	generateName := job.Name + "-"
	if index != noIndex {
		ix := strconv.Itoa(index)
		if t.Annotations == nil {
			t.Annotations = map[string]string{}
		}
		t.Annotations[batchv1.JobCompletionIndexAnnotation] = ix
		if t.Labels == nil {
			t.Labels = map[string]string{}
		}
		t.Labels[batchv1.JobCompletionIndexAnnotation] = ix
		t.Spec.Hostname = job.Name + "-" + ix
		generateName = job.Name + "-" + ix + "-"
		addIndexEnv(t.Spec.InitContainers)
		addIndexEnv(t.Spec.Containers)
	}
	finalizers := t.Finalizers
	if !containsString(finalizers, batchv1.JobTrackingFinalizer) {
		finalizers = append(finalizers, batchv1.JobTrackingFinalizer)
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    generateName,
			Namespace:       job.Namespace,
			Labels:          t.Labels,
			Annotations:     t.Annotations,
			Finalizers:      finalizers,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(job, jobKind)},
		},
		Spec: t.Spec,
	}
}

func addIndexEnv(containers []corev1.Container) {
	for i := range containers {
		c := &containers[i]
		has := false
		for _, e := range c.Env {
			if e.Name == completionIndexEnvName {
				has = true
			}
		}
		if !has {
			c.Env = append(c.Env, corev1.EnvVar{
				Name: completionIndexEnvName,
				ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{
					FieldPath: fmt.Sprintf("metadata.annotations['%s']", batchv1.JobCompletionIndexAnnotation),
				}},
			})
		}
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// slowStartBatch calls fn(0..count-1) in parallel batches of 1, 2, 4, ...,
// stopping after the first batch with a failure, so a quota or admission
// error costs one call, not count calls. It returns the number of
// successful calls.
func slowStartBatch(count int, fn func(i int) error) (int, error) {
	successes, next := 0, 0
	for batch := min(count, 1); batch > 0; batch = min(2*batch, count-next) {
		errs := make([]error, batch)
		var wg sync.WaitGroup
		for i := range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = fn(next + i)
			}()
		}
		wg.Wait()
		next += batch
		var failed []error
		for _, err := range errs {
			if err == nil {
				successes++
			} else {
				failed = append(failed, err)
			}
		}
		if len(failed) > 0 {
			return successes, errors.Join(failed...)
		}
	}
	return successes, nil
}

// isFinished reports whether job has a true Complete or Failed condition.
func isFinished(job *batchv1.Job) bool {
	for _, c := range job.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// findCondition returns job's true condition of type t, or nil.
func findCondition(job *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range job.Status.Conditions {
		if c := &job.Status.Conditions[i]; c.Type == t && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

func newCondition(t batchv1.JobConditionType, reason, message string, now time.Time) *batchv1.JobCondition {
	return &batchv1.JobCondition{
		Type: t, Status: corev1.ConditionTrue, Reason: reason, Message: message,
		LastProbeTime: metav1.Time{Time: now}, LastTransitionTime: metav1.Time{Time: now},
	}
}

// setCondition makes job's condition t have status, reason and message and
// reports whether anything changed. A False condition is never added
// where none exists (a never-suspended Job has no Suspended condition).
func setCondition(job *batchv1.Job, t batchv1.JobConditionType, status corev1.ConditionStatus, reason, message string, now time.Time) bool {
	for i := range job.Status.Conditions {
		c := &job.Status.Conditions[i]
		if c.Type != t {
			continue
		}
		if c.Status == status && c.Reason == reason && c.Message == message {
			return false
		}
		if c.Status != status {
			c.LastTransitionTime = metav1.Time{Time: now}
		}
		c.Status, c.Reason, c.Message, c.LastProbeTime = status, reason, message, metav1.Time{Time: now}
		return true
	}
	if status == corev1.ConditionFalse {
		return false
	}
	job.Status.Conditions = append(job.Status.Conditions, *newCondition(t, reason, message, now))
	return true
}

func uidSet(uids []types.UID) map[types.UID]bool {
	s := make(map[types.UID]bool, len(uids))
	for _, u := range uids {
		s[u] = true
	}
	return s
}
