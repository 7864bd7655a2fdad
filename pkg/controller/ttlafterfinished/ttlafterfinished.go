// Package ttlafterfinished is the TTL-after-finished controller: it deletes a
// finished Job (one with a true Complete or Failed condition) once
// spec.ttlSecondsAfterFinished have passed since it finished, with Foreground
// propagation so its pods go first.
package ttlafterfinished

import (
	"context"
	"errors"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	batchinformers "k8s.io/client-go/informers/batch/v1"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/skiff-project/skiff/pkg/controller"
)

// EventSource is the component name upstream uses for this controller.
const EventSource = "ttl-after-finished-controller"

// Controller deletes expired finished Jobs. Create it with New and start it
// with Run.
type Controller struct {
	client kubernetes.Interface   // immutable
	lister batchlisters.JobLister // immutable
	clock  clock.PassiveClock     // immutable
	loop   *controller.Loop       // immutable
	synced cache.InformerSynced   // immutable
	// enqueueAfter schedules a key; loop.EnqueueAfter except in tests,
	// which record the delay instead of waiting for it. Immutable.
	enqueueAfter func(key string, d time.Duration)
}

// New returns the controller. It registers event handlers on jobInformer;
// the caller starts the informer.
func New(client kubernetes.Interface, jobInformer batchinformers.JobInformer, clk clock.PassiveClock) (*Controller, error) {
	c := &Controller{client: client, lister: jobInformer.Lister(), clock: clk}
	c.loop = controller.NewLoop("ttlafterfinished", c.sync)
	c.enqueueAfter = c.loop.EnqueueAfter
	enqueue := func(obj interface{}) {
		// Only Jobs that can ever expire are worth a sync.
		if job, ok := obj.(*batchv1.Job); ok && needsCleanup(job) {
			c.loop.Enqueue(job)
		}
	}
	inf := jobInformer.Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, cur interface{}) { enqueue(cur) },
	}); err != nil {
		return nil, fmt.Errorf("watching jobs: %w", err)
	}
	c.synced = inf.HasSynced
	return c, nil
}

// Run waits for the Job cache, then processes Jobs with workers goroutines
// until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) error {
	if !cache.WaitForNamedCacheSync(c.loop.Name(), ctx.Done(), c.synced) {
		return fmt.Errorf("%s: caches did not sync: %w", c.loop.Name(), ctx.Err())
	}
	c.loop.Run(ctx, workers)
	return nil
}

// sync deletes the Job named by key if its TTL has expired, or requeues it
// for the moment it will.
func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return controller.Terminal(fmt.Errorf("invalid key %q: %w", key, err))
	}
	job, err := c.lister.Jobs(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading job %s: %w", key, err)
	}
	if expired, err := c.checkExpired(ctx, key, job); err != nil || !expired {
		return err
	}
	// The cache may be stale (the TTL changed, the Job was restarted or
	// recreated): decide again on the server's copy before deleting.
	fresh, err := c.client.BatchV1().Jobs(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("re-reading job %s: %w", key, err)
	}
	if expired, err := c.checkExpired(ctx, key, fresh); err != nil || !expired {
		return err
	}
	policy := metav1.DeletePropagationForeground
	err = c.client.BatchV1().Jobs(namespace).Delete(ctx, name, metav1.DeleteOptions{
		PropagationPolicy: &policy,
		// Never delete a same-named Job created after the check.
		Preconditions: &metav1.Preconditions{UID: &fresh.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting expired job %s: %w", key, err)
	}
	klog.FromContext(ctx).V(4).Info("deleted finished job after its TTL", "job", key)
	return nil
}

// checkExpired reports whether job is due for deletion; a Job that expires
// later is requeued for that moment.
func (c *Controller) checkExpired(ctx context.Context, key string, job *batchv1.Job) (bool, error) {
	if job.DeletionTimestamp != nil || !needsCleanup(job) {
		return false, nil
	}
	now := c.clock.Now()
	left, err := timeLeft(job, now)
	if err != nil {
		// A finished condition without a transition time cannot be fixed
		// by retrying; the next update of the Job brings it back.
		return false, controller.Terminal(fmt.Errorf("job %s: %w", key, err))
	}
	if left > 0 {
		if fin, _ := finishTime(job); fin.After(now) {
			klog.FromContext(ctx).Info("job finished in the future, likely clock skew; deferring cleanup", "job", key)
		}
		c.enqueueAfter(key, left)
		return false, nil
	}
	return true, nil
}

// needsCleanup reports whether job has a TTL and has finished.
func needsCleanup(job *batchv1.Job) bool {
	return job.Spec.TTLSecondsAfterFinished != nil && isFinished(job)
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

var errNoFinishTime = errors.New("unable to find the time when the job finished")

// finishTime is the latest transition time of job's true Complete or
// Failed condition.
func finishTime(job *batchv1.Job) (time.Time, error) {
	var fin time.Time
	for _, c := range job.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			if c.LastTransitionTime.IsZero() {
				return time.Time{}, errNoFinishTime
			}
			if c.LastTransitionTime.After(fin) {
				fin = c.LastTransitionTime.Time
			}
		}
	}
	if fin.IsZero() {
		return time.Time{}, errNoFinishTime
	}
	return fin, nil
}

// timeLeft returns how long until the finished job with a TTL expires at
// now; zero or less means it has expired.
func timeLeft(job *batchv1.Job, now time.Time) (time.Duration, error) {
	fin, err := finishTime(job)
	if err != nil {
		return 0, err
	}
	expireAt := fin.Add(time.Duration(*job.Spec.TTLSecondsAfterFinished) * time.Second)
	return expireAt.Sub(now), nil
}
