// Package job is the Job controller: it runs a Job's pods to completion
// (parallelism, completions, Indexed completion mode, suspend, pod
// replacement policy), fails the Job past its backoff limit or active
// deadline, and reports status.
//
// Pod accounting follows upstream's finalizer scheme, so a finished pod is
// counted exactly once even if it is deleted right after finishing: every
// pod is created with the batch.kubernetes.io/job-tracking finalizer; a
// finished pod's UID is first written to status.uncountedTerminatedPods,
// then its finalizer is removed, then the UID moves into the
// succeeded/failed counters. A crash between any two steps leaves state the
// next sync completes without double counting. Indexed Jobs count
// successes by index (status.completedIndexes) instead of by UID.
//
// Unlike upstream the controller does not adopt orphaned pods matching a
// Job's selector (the API server generates a controller-uid selector, so
// only manual selectors could have such orphans), and derives the pod
// failure backoff from the pods still present rather than keeping it in
// memory; podFailurePolicy, successPolicy and backoffLimitPerIndex are not
// implemented.
package job

import (
	"context"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	batchinformers "k8s.io/client-go/informers/batch/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/skiff-project/skiff/pkg/controller"
)

// EventSource is the component name upstream uses for this controller.
const EventSource = "job-controller"

var jobKind = batchv1.SchemeGroupVersion.WithKind("Job")

// Controller reconciles Jobs with their pods. Create it with New and start
// it with Run.
type Controller struct {
	client       kubernetes.Interface   // immutable
	jobLister    batchlisters.JobLister // immutable
	podLister    corelisters.PodLister  // immutable
	recorder     record.EventRecorder   // immutable
	clock        clock.PassiveClock     // immutable
	expectations *expectations          // internally synchronised
	loop         *controller.Loop       // immutable
	synced       []cache.InformerSynced // immutable after New
	// enqueueAfter is loop.EnqueueAfter except in tests, which record
	// delays instead of waiting. Immutable.
	enqueueAfter func(key string, d time.Duration)
}

// New returns the Job controller. recorder should report as EventSource.
// It registers event handlers on both informers; the caller starts them.
func New(client kubernetes.Interface, jobInformer batchinformers.JobInformer, podInformer coreinformers.PodInformer, recorder record.EventRecorder, clk clock.PassiveClock) (*Controller, error) {
	c := &Controller{
		client:       client,
		jobLister:    jobInformer.Lister(),
		podLister:    podInformer.Lister(),
		recorder:     recorder,
		clock:        clk,
		expectations: newExpectations(clk),
	}
	c.loop = controller.NewLoop("job", c.sync)
	c.enqueueAfter = c.loop.EnqueueAfter
	jobInf := jobInformer.Informer()
	if _, err := jobInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.loop.Enqueue,
		UpdateFunc: func(_, cur interface{}) { c.loop.Enqueue(cur) },
		DeleteFunc: func(obj interface{}) {
			// A recreated Job with the same name must not inherit the old
			// one's outstanding expectations.
			if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
				c.expectations.forget(key)
			}
			c.loop.Enqueue(obj)
		},
	}); err != nil {
		return nil, fmt.Errorf("watching jobs: %w", err)
	}
	podInf := podInformer.Informer()
	if _, err := podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.addPod,
		UpdateFunc: c.updatePod,
		DeleteFunc: c.deletePod,
	}); err != nil {
		return nil, fmt.Errorf("watching pods: %w", err)
	}
	c.synced = []cache.InformerSynced{jobInf.HasSynced, podInf.HasSynced}
	return c, nil
}

// Run waits for the informer caches, then syncs Jobs with workers
// goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) error {
	if !cache.WaitForNamedCacheSync(c.loop.Name(), ctx.Done(), c.synced...) {
		return fmt.Errorf("%s: caches did not sync: %w", c.loop.Name(), ctx.Err())
	}
	c.loop.Run(ctx, workers)
	return nil
}

// jobKeyFor returns the key of the Job controlling pod, or "" if none (or
// the controller is not a Job this cache knows under that UID).
func (c *Controller) jobKeyFor(pod *corev1.Pod) string {
	ref := metav1.GetControllerOf(pod)
	if ref == nil || ref.Kind != jobKind.Kind || ref.APIVersion != jobKind.GroupVersion().String() {
		return ""
	}
	job, err := c.jobLister.Jobs(pod.Namespace).Get(ref.Name)
	if err != nil || job.UID != ref.UID {
		return ""
	}
	return pod.Namespace + "/" + ref.Name
}

func (c *Controller) addPod(obj interface{}) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	key := c.jobKeyFor(pod)
	if key == "" {
		return
	}
	c.expectations.creationObserved(key)
	if pod.DeletionTimestamp != nil {
		c.expectations.deletionObserved(key, pod.UID)
	}
	if !hasFinalizer(pod) {
		c.expectations.finalizerRemovalObserved(key, pod.UID)
	}
	c.loop.EnqueueKey(key)
}

func (c *Controller) updatePod(oldObj, curObj interface{}) {
	old, ok1 := oldObj.(*corev1.Pod)
	cur, ok2 := curObj.(*corev1.Pod)
	if !ok1 || !ok2 || old.ResourceVersion == cur.ResourceVersion {
		return
	}
	key := c.jobKeyFor(cur)
	if key == "" {
		return
	}
	// A pod marked for deletion is as good as gone for manageJob.
	if cur.DeletionTimestamp != nil {
		c.expectations.deletionObserved(key, cur.UID)
	}
	if !hasFinalizer(cur) {
		c.expectations.finalizerRemovalObserved(key, cur.UID)
	}
	c.loop.EnqueueKey(key)
}

func (c *Controller) deletePod(obj interface{}) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	key := c.jobKeyFor(pod)
	if key == "" {
		return
	}
	c.expectations.deletionObserved(key, pod.UID)
	c.expectations.finalizerRemovalObserved(key, pod.UID)
	c.loop.EnqueueKey(key)
}

func hasFinalizer(pod *corev1.Pod) bool {
	for _, f := range pod.Finalizers {
		if f == batchv1.JobTrackingFinalizer {
			return true
		}
	}
	return false
}
