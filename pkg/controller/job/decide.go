package job

import (
	"sort"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// Pod failure backoff, as upstream: a replacement for the n-th consecutive
// failed pod waits DefaultPodFailureBackoff·2^(n-1), at most
// MaxPodFailureBackoff, after the last failure.
const (
	DefaultPodFailureBackoff = 10 * time.Second
	MaxPodFailureBackoff     = 6 * time.Minute
)

// MaxPodCreateDeletePerSync bounds the pod writes of one sync, as upstream;
// larger steps are spread over several syncs.
const MaxPodCreateDeletePerSync = 500

// Condition reasons and messages, as upstream.
const (
	messageBackoffLimitExceeded = "Job has reached the specified backoff limit"
	messageDeadlineExceeded     = "Job was active longer than specified deadline"
	messageCompletionsReached   = "Reached expected number of succeeded pods"
)

// plan is what manageJob must do to the Job's pods in one sync. At most one
// of deletes and creations is non-empty: deletions take precedence, as
// upstream, so one sync never both shrinks and grows the Job.
type plan struct {
	// Delete are the active pods to delete.
	Delete []*corev1.Pod
	// Create is the number of pods to create (non-indexed Jobs).
	Create int
	// Indexes are the completion indexes to create pods for (indexed Jobs).
	Indexes []int
	// BackoffWait is set when pods are missing but the failure backoff has
	// not elapsed: nothing is created and the Job is synced again then.
	BackoffWait time.Duration
}

// manage decides how the active pods of job change. succeeded is the
// Job's success count including this sync's newly finished pods;
// succeededIndexes the completed indexes (indexed Jobs); terminating the
// pods being deleted that have not finished; backoff the remaining failure
// backoff. active is not modified.
func manage(job *batchv1.Job, active []*corev1.Pod, succeeded int32, succeededIndexes intervals, terminating int32, backoff time.Duration) plan {
	if isSuspended(job) {
		return plan{Delete: capped(rankForDeletion(active))}
	}
	parallelism := int32(1)
	if job.Spec.Parallelism != nil {
		parallelism = *job.Spec.Parallelism
	}
	indexed := isIndexed(job)
	keep := active
	var del []*corev1.Pod
	if indexed {
		// Pods without a usable index, for an index already completed, or
		// duplicating another active pod's index are never useful.
		keep, del = splitIndexedPods(active, succeededIndexes, int(*job.Spec.Completions))
	}
	n := int32(len(keep))

	var want int32
	switch {
	case job.Spec.Completions == nil && succeeded > 0:
		// Some pod succeeded: the work is done once the others finish.
		// Let them run, start nothing new.
		want = n
	case job.Spec.Completions == nil:
		want = parallelism
	default:
		remaining := *job.Spec.Completions - succeeded
		if indexed {
			remaining = *job.Spec.Completions - int32(succeededIndexes.total())
		}
		want = max(0, min(remaining, parallelism))
	}
	if n > want {
		del = append(del, rankForDeletion(keep)[:n-want]...)
	}
	if len(del) > 0 {
		return plan{Delete: capped(del)}
	}
	// With podReplacementPolicy Failed a terminating pod still holds its
	// slot until it has fully failed.
	if job.Spec.PodReplacementPolicy != nil && *job.Spec.PodReplacementPolicy == batchv1.Failed {
		n += terminating
	}
	diff := int(want - n)
	if diff <= 0 {
		return plan{}
	}
	if backoff > 0 {
		return plan{BackoffWait: backoff}
	}
	diff = min(diff, MaxPodCreateDeletePerSync)
	if !indexed {
		return plan{Create: diff}
	}
	return plan{Indexes: pendingIndexes(keep, succeededIndexes, int(*job.Spec.Completions), diff)}
}

func capped(pods []*corev1.Pod) []*corev1.Pod {
	if len(pods) > MaxPodCreateDeletePerSync {
		return pods[:MaxPodCreateDeletePerSync]
	}
	return pods
}

// splitIndexedPods returns the active pods worth keeping (one per valid,
// uncompleted index, the best-ranked) and the rest, to delete.
func splitIndexedPods(active []*corev1.Pod, succeeded intervals, completions int) (keep, del []*corev1.Pod) {
	byIndex := map[int][]*corev1.Pod{}
	for _, p := range active {
		i := completionIndex(p)
		if i == noIndex || i >= completions || succeeded.has(i) {
			del = append(del, p)
			continue
		}
		byIndex[i] = append(byIndex[i], p)
	}
	idx := make([]int, 0, len(byIndex))
	for i := range byIndex {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	for _, i := range idx {
		pods := rankForDeletion(byIndex[i])
		// The last-ranked pod is the one most worth keeping.
		keep = append(keep, pods[len(pods)-1])
		del = append(del, pods[:len(pods)-1]...)
	}
	return keep, del
}

// pendingIndexes returns the n lowest indexes below completions that are
// neither completed nor held by an active pod.
func pendingIndexes(active []*corev1.Pod, succeeded intervals, completions, n int) []int {
	held := map[int]bool{}
	for _, p := range active {
		held[completionIndex(p)] = true
	}
	var out []int
	for i := 0; i < completions && len(out) < n; i++ {
		if !held[i] && !succeeded.has(i) {
			out = append(out, i)
		}
	}
	return out
}

// rankForDeletion returns a copy of pods ordered from most to least
// deletable, upstream's order in short: unscheduled, then pending, then not
// ready, then newest first.
func rankForDeletion(pods []*corev1.Pod) []*corev1.Pod {
	out := append([]*corev1.Pod(nil), pods...)
	phase := map[corev1.PodPhase]int{corev1.PodPending: 0, corev1.PodUnknown: 1, corev1.PodRunning: 2}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if (a.Spec.NodeName == "") != (b.Spec.NodeName == "") {
			return a.Spec.NodeName == ""
		}
		if pa, pb := phase[a.Status.Phase], phase[b.Status.Phase]; pa != pb {
			return pa < pb
		}
		if ra, rb := isReady(a), isReady(b); ra != rb {
			return !ra
		}
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.After(b.CreationTimestamp.Time)
		}
		return a.Name < b.Name
	})
	return out
}

// failure returns the reason and message the Job fails with at now, or ""
// if it is not failing. failed counts all failed pods so far.
func failure(job *batchv1.Job, failed int32, pods []*corev1.Pod, now time.Time) (reason, message string) {
	limit := int32(6)
	if job.Spec.BackoffLimit != nil {
		limit = *job.Spec.BackoffLimit
	}
	if failed > limit || pastBackoffLimitOnFailure(job, pods, limit) {
		return batchv1.JobReasonBackoffLimitExceeded, messageBackoffLimitExceeded
	}
	if d, ok := deadlineLeft(job, now); ok && d <= 0 {
		return batchv1.JobReasonDeadlineExceeded, messageDeadlineExceeded
	}
	return "", ""
}

// deadlineLeft returns how long until job passes activeDeadlineSeconds;
// ok is false when no deadline runs (none set, not started, suspended).
func deadlineLeft(job *batchv1.Job, now time.Time) (time.Duration, bool) {
	if job.Spec.ActiveDeadlineSeconds == nil || job.Status.StartTime == nil || isSuspended(job) {
		return 0, false
	}
	end := job.Status.StartTime.Add(time.Duration(*job.Spec.ActiveDeadlineSeconds) * time.Second)
	return end.Sub(now), true
}

// pastBackoffLimitOnFailure applies the backoff limit to container restarts
// of restartPolicy OnFailure pods, whose failures never fail the pod.
func pastBackoffLimitOnFailure(job *batchv1.Job, pods []*corev1.Pod, limit int32) bool {
	if job.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		return false
	}
	var restarts int32
	for _, p := range pods {
		if p.Status.Phase != corev1.PodRunning && p.Status.Phase != corev1.PodPending {
			continue
		}
		for _, s := range p.Status.InitContainerStatuses {
			restarts += s.RestartCount
		}
		for _, s := range p.Status.ContainerStatuses {
			restarts += s.RestartCount
		}
	}
	if limit == 0 {
		return restarts > 0
	}
	return restarts >= limit
}

// backoffLeft returns how long pod creation must still wait at now after
// the pods' failures: the failures since the last success set the delay,
// counted from the last failure. It is derived from the pods still present
// instead of upstream's in-memory record, so it survives a controller
// restart; pods deleted by users or the pod GC simply shorten it.
func backoffLeft(job *batchv1.Job, pods []*corev1.Pod, now time.Time) time.Duration {
	type end struct {
		at     time.Time
		failed bool
	}
	var ends []end
	for _, p := range pods {
		switch {
		case p.Status.Phase == corev1.PodSucceeded:
			ends = append(ends, end{finishTime(p), false})
		case isPodFailed(job, p):
			ends = append(ends, end{finishTime(p), true})
		}
	}
	sort.SliceStable(ends, func(i, j int) bool { return ends[i].at.Before(ends[j].at) })
	failures := 0
	var last time.Time
	for _, e := range ends {
		if !e.failed {
			failures = 0
			continue
		}
		failures++
		last = e.at
	}
	if failures == 0 {
		return 0
	}
	d := DefaultPodFailureBackoff
	for i := 1; i < failures && d < MaxPodFailureBackoff; i++ {
		d *= 2
	}
	d = min(d, MaxPodFailureBackoff)
	return max(0, d-now.Sub(last))
}

// finishTime is when pod finished: its Ready=False transition once
// terminal, else its containers' last termination, else its deletion,
// else its creation — upstream's order.
func finishTime(p *corev1.Pod) time.Time {
	if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionFalse && !c.LastTransitionTime.IsZero() {
				return c.LastTransitionTime.Time
			}
		}
	}
	var last time.Time
	for _, s := range p.Status.ContainerStatuses {
		if t := s.State.Terminated; t != nil && t.FinishedAt.After(last) {
			last = t.FinishedAt.Time
		}
	}
	if !last.IsZero() {
		return last
	}
	if p.DeletionTimestamp != nil {
		return p.DeletionTimestamp.Time
	}
	return p.CreationTimestamp.Time
}

// isPodFailed reports whether pod counts as a failure: phase Failed, or
// (unless podReplacementPolicy is Failed) being deleted before succeeding,
// as an orphaned pod may never reach the Failed phase.
func isPodFailed(job *batchv1.Job, p *corev1.Pod) bool {
	if p.Status.Phase == corev1.PodFailed {
		return true
	}
	if job.Spec.PodReplacementPolicy != nil && *job.Spec.PodReplacementPolicy == batchv1.Failed {
		return false
	}
	return p.DeletionTimestamp != nil && p.Status.Phase != corev1.PodSucceeded
}

func isIndexed(job *batchv1.Job) bool {
	return job.Spec.CompletionMode != nil && *job.Spec.CompletionMode == batchv1.IndexedCompletion && job.Spec.Completions != nil
}

func isSuspended(job *batchv1.Job) bool { return job.Spec.Suspend != nil && *job.Spec.Suspend }

// isActive reports whether pod still runs for the Job: not terminal and
// not being deleted.
func isActive(p *corev1.Pod) bool {
	return p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && p.DeletionTimestamp == nil
}

func isTerminating(p *corev1.Pod) bool {
	return p.DeletionTimestamp != nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
