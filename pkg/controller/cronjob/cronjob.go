// Package cronjob is the CronJob controller: it creates a Job for every
// schedule time of each CronJob (within its starting deadline and
// concurrency policy), tracks the active Jobs in status, and deletes
// finished Jobs beyond the history limits.
package cronjob

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	batchinformers "k8s.io/client-go/informers/batch/v1"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/skiff-project/skiff/pkg/controller"
)

// EventSource is the component name upstream uses for this controller.
const EventSource = "cronjob-controller"

// Event reasons, as upstream.
const (
	ReasonSuccessfulCreate    = "SuccessfulCreate"
	ReasonFailedCreate        = "FailedCreate"
	ReasonSuccessfulDelete    = "SuccessfulDelete"
	ReasonFailedDelete        = "FailedDelete"
	ReasonSawCompletedJob     = "SawCompletedJob"
	ReasonMissingJob          = "MissingJob"
	ReasonUnexpectedJob       = "UnexpectedJob"
	ReasonMissSchedule        = "MissSchedule"
	ReasonJobAlreadyActive    = "JobAlreadyActive"
	ReasonTooManyMissedTimes  = "TooManyMissedTimes"
	ReasonUnparseableSchedule = "UnparseableSchedule"
	ReasonInvalidSchedule     = "InvalidSchedule"
	ReasonUnknownTimeZone     = "UnknownTimeZone"
	ReasonUnsupportedSchedule = "UnsupportedSchedule"
)

var cronJobKind = batchv1.SchemeGroupVersion.WithKind("CronJob")

// Controller reconciles CronJobs with their Jobs. Create it with New and
// start it with Run.
type Controller struct {
	client    kubernetes.Interface       // immutable
	cjLister  batchlisters.CronJobLister // immutable
	jobLister batchlisters.JobLister     // immutable
	recorder  record.EventRecorder       // immutable
	clock     clock.PassiveClock         // immutable
	// location evaluates schedules of CronJobs without spec.timeZone;
	// upstream uses the controller manager's local zone. Immutable.
	location *time.Location
	loop     *controller.Loop // immutable
	synced   []cache.InformerSynced
	// enqueueAfter is loop.EnqueueAfter except in tests, which record
	// delays instead of waiting. Immutable.
	enqueueAfter func(key string, d time.Duration)
}

// New returns the CronJob controller. recorder should report as
// EventSource. Schedules without spec.timeZone are evaluated in the local
// time zone, as upstream. It registers event handlers on both informers;
// the caller starts them.
func New(client kubernetes.Interface, cjInformer batchinformers.CronJobInformer, jobInformer batchinformers.JobInformer, recorder record.EventRecorder, clk clock.PassiveClock) (*Controller, error) {
	c := &Controller{
		client:    client,
		cjLister:  cjInformer.Lister(),
		jobLister: jobInformer.Lister(),
		recorder:  recorder,
		clock:     clk,
		location:  time.Local,
	}
	c.loop = controller.NewLoop("cronjob", c.sync)
	c.enqueueAfter = c.loop.EnqueueAfter
	cjInf := cjInformer.Informer()
	if _, err := cjInf.AddEventHandler(c.loop.Handlers()); err != nil {
		return nil, fmt.Errorf("watching cronjobs: %w", err)
	}
	jobInf := jobInformer.Informer()
	if _, err := jobInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueueOwner,
		UpdateFunc: func(_, cur interface{}) { c.enqueueOwner(cur) },
		DeleteFunc: c.enqueueOwner,
	}); err != nil {
		return nil, fmt.Errorf("watching jobs: %w", err)
	}
	c.synced = []cache.InformerSynced{cjInf.HasSynced, jobInf.HasSynced}
	return c, nil
}

// Run waits for the informer caches, then syncs CronJobs with workers
// goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) error {
	if !cache.WaitForNamedCacheSync(c.loop.Name(), ctx.Done(), c.synced...) {
		return fmt.Errorf("%s: caches did not sync: %w", c.loop.Name(), ctx.Err())
	}
	c.loop.Run(ctx, workers)
	return nil
}

// enqueueOwner enqueues the CronJob controlling a Job (or its tombstone).
func (c *Controller) enqueueOwner(obj interface{}) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	job, ok := obj.(*batchv1.Job)
	if !ok {
		return
	}
	ref := metav1.GetControllerOf(job)
	if ref == nil || ref.Kind != cronJobKind.Kind || ref.APIVersion != cronJobKind.GroupVersion().String() {
		return
	}
	c.loop.EnqueueKey(job.Namespace + "/" + ref.Name)
}

// sync reconciles the CronJob named by key: history cleanup, active-list
// bookkeeping, then at most one Job creation; status is written once, and
// only if it changed.
func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return controller.Terminal(fmt.Errorf("invalid key %q: %w", key, err))
	}
	cached, err := c.cjLister.CronJobs(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading cronjob %s: %w", key, err)
	}
	all, err := c.jobLister.Jobs(namespace).List(labels.Everything())
	if err != nil {
		return fmt.Errorf("listing jobs in %s: %w", namespace, err)
	}
	var jobs []*batchv1.Job
	for _, j := range all {
		if ref := metav1.GetControllerOf(j); ref != nil && ref.UID == cached.UID {
			jobs = append(jobs, j)
		}
	}

	// A running Job missing from the active list usually means the cache
	// has our Job but not yet our status write that listed it; the
	// server's copy settles that before anything is called unexpected.
	for _, j := range jobs {
		if finished, _ := finishedCondition(j); !finished && !inActiveList(cached, j.UID) {
			fresh, err := c.client.BatchV1().CronJobs(namespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("re-reading cronjob %s: %w", key, err)
			}
			if fresh.UID != cached.UID {
				return nil // deleted and recreated; the new one has its own sync
			}
			cached = fresh
			break
		}
	}

	cj := cached.DeepCopy()
	c.cleanupFinishedJobs(ctx, cj, jobs)
	requeue, syncErr := c.syncCronJob(ctx, cj, jobs)
	if !equality.Semantic.DeepEqual(cached.Status, cj.Status) {
		if _, err := c.client.BatchV1().CronJobs(namespace).UpdateStatus(ctx, cj, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("updating status of cronjob %s: %w", key, err)
		}
	}
	if requeue > 0 {
		c.enqueueAfter(key, requeue)
		// The requeue retries whatever failed, at the next schedule time.
		return nil
	}
	return syncErr
}

// syncCronJob updates cj.Status in place and creates the Job that is due,
// if any. It returns when to sync again (0: no timed requeue).
func (c *Controller) syncCronJob(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job) (time.Duration, error) {
	logger := klog.FromContext(ctx)
	children := map[types.UID]bool{}
	for _, j := range jobs {
		children[j.UID] = true
		active := inActiveList(cj, j.UID)
		finished, cond := finishedCondition(j)
		switch {
		case !active && !finished:
			c.recorder.Eventf(cj, corev1.EventTypeWarning, ReasonUnexpectedJob, "Saw a job that the controller did not create or forgot: %s", j.Name)
		case active && finished:
			deleteFromActiveList(cj, j.UID)
			c.recorder.Eventf(cj, corev1.EventTypeNormal, ReasonSawCompletedJob, "Saw completed job: %s, condition: %v", j.Name, cond)
		}
		if finished && cond == batchv1.JobComplete && j.Status.CompletionTime != nil {
			if last := cj.Status.LastSuccessfulTime; last == nil || j.Status.CompletionTime.After(last.Time) {
				cj.Status.LastSuccessfulTime = j.Status.CompletionTime.DeepCopy()
			}
		}
	}
	// A Job in the active list that the cache does not have may just be
	// new; only the server can tell whether it is really gone.
	for _, ref := range append([]corev1.ObjectReference(nil), cj.Status.Active...) {
		if children[ref.UID] {
			continue
		}
		_, err := c.client.BatchV1().Jobs(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			c.recorder.Eventf(cj, corev1.EventTypeNormal, ReasonMissingJob, "Active job went missing: %v", ref.Name)
			deleteFromActiveList(cj, ref.UID)
		case err != nil:
			return 0, fmt.Errorf("checking active job %s/%s: %w", ref.Namespace, ref.Name, err)
		}
	}

	if cj.DeletionTimestamp != nil || (cj.Spec.Suspend != nil && *cj.Spec.Suspend) {
		return 0, nil
	}
	loc := c.location
	if cj.Spec.TimeZone != nil {
		l, err := time.LoadLocation(*cj.Spec.TimeZone)
		if err != nil {
			c.recorder.Eventf(cj, corev1.EventTypeWarning, ReasonUnknownTimeZone, "invalid timeZone: %q: %s", *cj.Spec.TimeZone, err)
			return 0, nil
		}
		loc = l
	}
	if hasTZPrefix(cj.Spec.Schedule) {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, ReasonUnsupportedSchedule, "CRON_TZ or TZ used in schedule %q is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details", cj.Spec.Schedule)
	}
	sched, err := parseSchedule(cj.Spec.Schedule, loc)
	if err != nil {
		// A user error: nothing to do until the spec changes.
		c.recorder.Eventf(cj, corev1.EventTypeWarning, ReasonUnparseableSchedule, "unparseable schedule: %q : %s", cj.Spec.Schedule, err)
		return 0, nil
	}
	now := c.clock.Now()
	d, err := decide(cj, sched, now)
	if err != nil {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, ReasonInvalidSchedule, "invalid schedule: %s : %s", cj.Spec.Schedule, err)
		return 0, nil
	}
	if d.MissedCount > tooManyMissed {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, ReasonTooManyMissedTimes, "too many missed start times: %d. Set or decrease .spec.startingDeadlineSeconds or check clock skew", d.MissedCount)
	}
	switch {
	case d.Missed != nil:
		c.recorder.Eventf(cj, corev1.EventTypeWarning, ReasonMissSchedule, "Missed scheduled time to start a job: %s", d.Missed.UTC().Format(time.RFC1123Z))
		return d.RequeueAfter, nil
	case d.Forbidden:
		c.recorder.Event(cj, corev1.EventTypeNormal, ReasonJobAlreadyActive, "Not starting job because prior execution is running and concurrency policy is Forbid")
		return d.RequeueAfter, nil
	case d.Start == nil:
		return d.RequeueAfter, nil
	}
	if d.ReplaceActive {
		for _, ref := range append([]corev1.ObjectReference(nil), cj.Status.Active...) {
			if err := c.deleteJob(ctx, cj, ref.Namespace, ref.Name, ref.UID); err != nil {
				return 0, fmt.Errorf("replacing job %s/%s: %w", ref.Namespace, ref.Name, err)
			}
		}
	}

	want, err := jobFromTemplate(cj, *d.Start)
	if err != nil {
		return 0, controller.Terminal(err)
	}
	created, err := c.client.BatchV1().Jobs(cj.Namespace).Create(ctx, want, metav1.CreateOptions{})
	switch {
	case apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause):
		return 0, nil
	case apierrors.IsAlreadyExists(err):
		// Created by an earlier sync whose status write was lost, or by
		// someone else; adopt it into the active list only if it is ours.
		existing, getErr := c.client.BatchV1().Jobs(cj.Namespace).Get(ctx, want.Name, metav1.GetOptions{})
		if getErr != nil {
			return 0, fmt.Errorf("reading existing job %s/%s: %w", cj.Namespace, want.Name, getErr)
		}
		if !metav1.IsControlledBy(existing, cj) || inActiveList(cj, existing.UID) {
			return d.RequeueAfter, nil
		}
		logger.V(2).Info("job already exists", "cronjob", klog.KObj(cj), "job", klog.KObj(existing))
		created = existing
	case err != nil:
		c.recorder.Eventf(cj, corev1.EventTypeWarning, ReasonFailedCreate, "Error creating job: %v", err)
		return 0, fmt.Errorf("creating job %s/%s: %w", cj.Namespace, want.Name, err)
	default:
		c.recorder.Eventf(cj, corev1.EventTypeNormal, ReasonSuccessfulCreate, "Created job %v", created.Name)
	}
	cj.Status.Active = append(cj.Status.Active, corev1.ObjectReference{
		Kind:            "Job",
		Namespace:       created.Namespace,
		Name:            created.Name,
		UID:             created.UID,
		APIVersion:      batchv1.SchemeGroupVersion.String(),
		ResourceVersion: created.ResourceVersion,
	})
	cj.Status.LastScheduleTime = &metav1.Time{Time: *d.Start}
	// Recompute with the new lastScheduleTime, as the decision's delay was
	// computed from the old one.
	return requeueAfter(cj, sched, now), nil
}

// cleanupFinishedJobs deletes the oldest finished Jobs beyond the
// successful and failed history limits.
func (c *Controller) cleanupFinishedJobs(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job) {
	if cj.Spec.SuccessfulJobsHistoryLimit == nil && cj.Spec.FailedJobsHistoryLimit == nil {
		return
	}
	var succeeded, failed []*batchv1.Job
	for _, j := range jobs {
		switch _, cond := finishedCondition(j); cond {
		case batchv1.JobComplete:
			succeeded = append(succeeded, j)
		case batchv1.JobFailed:
			failed = append(failed, j)
		}
	}
	if l := cj.Spec.SuccessfulJobsHistoryLimit; l != nil {
		c.removeOldestJobs(ctx, cj, succeeded, int(*l))
	}
	if l := cj.Spec.FailedJobsHistoryLimit; l != nil {
		c.removeOldestJobs(ctx, cj, failed, int(*l))
	}
}

func (c *Controller) removeOldestJobs(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job, keep int) {
	n := len(jobs) - keep
	if n <= 0 {
		return
	}
	sort.Slice(jobs, func(i, k int) bool { return startedBefore(jobs[i], jobs[k]) })
	for _, j := range jobs[:n] {
		// A failure is reported as an event and retried at the next sync.
		_ = c.deleteJob(ctx, cj, j.Namespace, j.Name, j.UID)
	}
}

// startedBefore orders Jobs by start time, unstarted last, then by name.
func startedBefore(a, b *batchv1.Job) bool {
	sa, sb := a.Status.StartTime, b.Status.StartTime
	switch {
	case sa == nil && sb != nil:
		return false
	case sa != nil && sb == nil:
		return true
	case sa == nil && sb == nil, sa.Equal(sb):
		return a.Name < b.Name
	}
	return sa.Before(sb)
}

// deleteJob deletes a Job in the background (the garbage collector removes
// its pods) and drops it from cj's active list.
func (c *Controller) deleteJob(ctx context.Context, cj *batchv1.CronJob, namespace, name string, uid types.UID) error {
	policy := metav1.DeletePropagationBackground
	err := c.client.BatchV1().Jobs(namespace).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &policy})
	if err != nil && !apierrors.IsNotFound(err) {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, ReasonFailedDelete, "Deleted job: %v", err)
		return fmt.Errorf("deleting job %s/%s: %w", namespace, name, err)
	}
	deleteFromActiveList(cj, uid)
	c.recorder.Eventf(cj, corev1.EventTypeNormal, ReasonSuccessfulDelete, "Deleted job %v", name)
	return nil
}

// jobFromTemplate builds the Job for scheduledTime: the template's labels,
// annotations and spec, the deterministic name, the scheduled-timestamp
// annotation in the CronJob's zone, and the CronJob as controller.
func jobFromTemplate(cj *batchv1.CronJob, scheduledTime time.Time) (*batchv1.Job, error) {
	zone := ""
	if cj.Spec.TimeZone != nil {
		zone = *cj.Spec.TimeZone
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return nil, fmt.Errorf("cronjob %s/%s: loading time zone %q: %w", cj.Namespace, cj.Name, zone, err)
	}
	tmpl := cj.Spec.JobTemplate.DeepCopy()
	lbls := tmpl.Labels
	if lbls == nil {
		lbls = map[string]string{}
	}
	annotations := tmpl.Annotations
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[batchv1.CronJobScheduledTimestampAnnotation] = scheduledTime.In(loc).Format(time.RFC3339)
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:              jobName(cj, scheduledTime),
			Namespace:         cj.Namespace,
			Labels:            lbls,
			Annotations:       annotations,
			CreationTimestamp: metav1.Time{Time: scheduledTime},
			OwnerReferences:   []metav1.OwnerReference{*metav1.NewControllerRef(cj, cronJobKind)},
		},
		Spec: tmpl.Spec,
	}, nil
}

// finishedCondition reports whether j has a true Complete or Failed
// condition, and which.
func finishedCondition(j *batchv1.Job) (bool, batchv1.JobConditionType) {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true, c.Type
		}
	}
	return false, ""
}

func inActiveList(cj *batchv1.CronJob, uid types.UID) bool {
	for _, ref := range cj.Status.Active {
		if ref.UID == uid {
			return true
		}
	}
	return false
}

func deleteFromActiveList(cj *batchv1.CronJob, uid types.UID) {
	out := cj.Status.Active[:0:0]
	for _, ref := range cj.Status.Active {
		if ref.UID != uid {
			out = append(out, ref)
		}
	}
	if len(out) == 0 {
		out = nil
	}
	cj.Status.Active = out
}

// hasTZPrefix reports whether the schedule names its own zone, which
// upstream tolerates but does not officially support.
func hasTZPrefix(spec string) bool {
	return strings.Contains(spec, "TZ")
}
