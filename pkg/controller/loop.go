// Package controller holds the one queue/worker runner every Skiff controller uses.
//
// A controller is a SyncFunc plus the informer watches that feed keys into a Loop.
// The queue holds keys, never objects: the sync re-reads the object from its
// informer cache, so a burst of events for one object collapses into one sync
// and a sync always acts on the latest state (level-triggered reconciliation).
package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

// MaxRetries is how many times a key whose sync keeps failing is requeued
// (with per-item exponential backoff) before the Loop drops it. A dropped key
// is synced again at the next informer event or resync for its object, so
// dropping bounds the retry storm for a persistently broken object without
// losing it for good.
const MaxRetries = 15

// SyncFunc reconciles the object named by key ("ns/name" or "name").
// It must be level-triggered and idempotent: it may be called any number of
// times for the same key, including after the object is gone.
type SyncFunc func(ctx context.Context, key string) error

// Loop is one controller's queue of keys plus the sync that drains it.
// Enqueue methods are safe for concurrent use (informer handlers call them);
// Run may be called at most once.
type Loop struct {
	name  string                                       // immutable; used in logs and queue metrics
	sync  SyncFunc                                     // immutable; never nil
	queue workqueue.TypedRateLimitingInterface[string] // immutable; never nil
	// synced are the caches RunSynced waits for; appended by Watch, which
	// only constructors call, before Run.
	synced []cache.InformerSynced
}

// NewLoop returns a Loop named name (used in logs) that calls sync for every
// key it dequeues. The queue is a rate-limited typed workqueue with the
// client-go default controller rate limiter (per-item exponential backoff
// combined with an overall token bucket).
func NewLoop(name string, sync SyncFunc) *Loop {
	return &Loop{
		name: name,
		sync: sync,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: name},
		),
	}
}

// Name returns the name the Loop was created with.
func (l *Loop) Name() string { return l.name }

// Enqueue adds the namespace/name key of obj (a metav1.Object or a
// cache.DeletedFinalStateUnknown tombstone) to the queue. Objects without a
// usable key are reported via utilruntime.HandleError and ignored.
func (l *Loop) Enqueue(obj interface{}) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		utilruntime.HandleError(fmt.Errorf("%s: cannot compute key for %T: %w", l.name, obj, err))
		return
	}
	l.queue.Add(key)
}

// EnqueueKey adds key to the queue. Keys already queued but not yet being
// processed are deduplicated.
func (l *Loop) EnqueueKey(key string) { l.queue.Add(key) }

// EnqueueAfter adds key to the queue once d has elapsed; used for work that
// becomes due at a known time (minReadySeconds, progress deadlines).
func (l *Loop) EnqueueAfter(key string, d time.Duration) { l.queue.AddAfter(key, d) }

// Len returns the number of keys waiting to be processed (not counting
// delayed keys); intended for tests and metrics.
func (l *Loop) Len() int { return l.queue.Len() }

// Handlers returns informer event handlers that enqueue the object on add and
// delete and the new object on update.
func (l *Loop) Handlers() cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    l.Enqueue,
		UpdateFunc: func(_, newObj interface{}) { l.Enqueue(newObj) },
		DeleteFunc: l.Enqueue,
	}
}

// Watch registers h on inf and makes RunSynced wait for inf's cache. Call it
// while constructing the controller, before the informers start and before
// RunSynced; it is not safe for concurrent use.
func (l *Loop) Watch(inf cache.SharedIndexInformer, h cache.ResourceEventHandler) error {
	if _, err := inf.AddEventHandler(h); err != nil {
		return err
	}
	l.synced = append(l.synced, inf.HasSynced)
	return nil
}

// Watched is one informer a controller reads, with the handler its events
// go to; an empty cache.ResourceEventHandlerFuncs for a cache the sync only
// reads.
type Watched struct {
	Informer cache.SharedIndexInformer
	Handler  cache.ResourceEventHandler
}

// On pairs an informer with its handler for WatchAll.
func On(inf cache.SharedIndexInformer, h cache.ResourceEventHandler) Watched {
	return Watched{Informer: inf, Handler: h}
}

// WatchAll is Watch for each of ws, in order; the error names the loop.
func (l *Loop) WatchAll(ws ...Watched) error {
	for _, w := range ws {
		if err := l.Watch(w.Informer, w.Handler); err != nil {
			return fmt.Errorf("registering %s controller handlers: %w", l.name, err)
		}
	}
	return nil
}

// RunSynced waits for the caches of the informers given to Watch, then runs
// the workers like Run until ctx is done. It returns an error if ctx ends
// before the caches synced.
func (l *Loop) RunSynced(ctx context.Context, workers int) error {
	if !cache.WaitForNamedCacheSync(l.name, ctx.Done(), l.synced...) {
		return fmt.Errorf("%s: caches did not sync: %w", l.name, ctx.Err())
	}
	l.Run(ctx, workers)
	return nil
}

// Run starts workers goroutines draining the queue and blocks until ctx is
// done; it then shuts the queue down and waits for every worker to finish its
// current sync before returning. The caller must have waited for the
// informer caches the sync reads to be synced before calling Run.
func (l *Loop) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	if workers < 1 {
		workers = 1
	}
	logger := klog.FromContext(ctx).WithValues("controller", l.name)
	logger.V(2).Info("starting controller", "workers", workers)

	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// UntilWithContext restarts the worker after a recovered panic
			// inside the sync; it returns once ctx is done.
			wait.UntilWithContext(ctx, l.worker, time.Second)
		}()
	}
	<-ctx.Done()
	// ShutDown makes Get return shutdown=true once the queue is drained of
	// in-flight items, which ends each worker's loop.
	l.queue.ShutDown()
	wg.Wait()
	logger.V(2).Info("stopped controller")
}

func (l *Loop) worker(ctx context.Context) {
	for l.ProcessNextItem(ctx) {
	}
}

// ProcessNextItem takes one key off the queue, syncs it and records the
// outcome; it returns false once the queue has been shut down. Run calls it
// in a loop; tests may call it directly to drive the queue deterministically.
func (l *Loop) ProcessNextItem(ctx context.Context) bool {
	key, shutdown := l.queue.Get()
	if shutdown {
		return false
	}
	defer l.queue.Done(key)
	l.handleErr(ctx, key, l.sync(ctx, key))
	return true
}

func (l *Loop) handleErr(ctx context.Context, key string, err error) {
	logger := klog.FromContext(ctx)
	switch {
	case err == nil:
		l.queue.Forget(key)
	case IsTerminal(err):
		logger.Error(err, "sync failed, not retrying", "controller", l.name, "key", key)
		l.queue.Forget(key)
	case l.queue.NumRequeues(key) < MaxRetries:
		logger.V(2).Info("sync failed, retrying", "controller", l.name, "key", key, "err", err)
		l.queue.AddRateLimited(key)
	default:
		logger.Error(err, "sync failed too often, dropping key", "controller", l.name, "key", key, "retries", MaxRetries)
		l.queue.Forget(key)
	}
}

// terminalError marks an error that no retry can fix.
type terminalError struct{ err error }

func (e *terminalError) Error() string { return e.err.Error() }
func (e *terminalError) Unwrap() error { return e.err }

// Terminal marks err as not retryable (invalid input that no retry can fix):
// the Loop logs it, forgets the key and does not requeue it. Terminal(nil)
// returns nil. The mark survives wrapping with %w.
func Terminal(err error) error {
	if err == nil {
		return nil
	}
	return &terminalError{err: err}
}

// IsTerminal reports whether err, or any error it wraps, was marked with
// Terminal.
func IsTerminal(err error) bool {
	var t *terminalError
	return errors.As(err, &t)
}
