package storage

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/google/btree"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

// WatchOptions select what Watch streams; field semantics follow
// metav1.ListOptions.
type WatchOptions struct {
	// ResourceVersion: "" begins with ADDED events for the current state,
	// consistent with etcd at the time of the call; "0" the same from
	// whatever state the cache has; "N" streams the events after N.
	ResourceVersion string
	// Predicate selects objects; nil selects all. An object that stops
	// matching is reported DELETED, one that starts matching ADDED.
	Predicate func(runtime.Object) bool
	// AllowBookmarks enables periodic BOOKMARK events (see
	// Options.BookmarkInterval) whose object is empty but for its
	// resourceVersion.
	AllowBookmarks bool
	// SendInitialEvents (the WatchList protocol): when true, the watch begins
	// with ADDED events for the state at ResourceVersion ("" = consistent,
	// "0" = any, "N" = not older than N) followed by a BOOKMARK annotated
	// k8s.io/initial-events-end: "true". When nil or false, "" and "0"
	// still begin with ADDED events (classic watch) and "N" does not.
	SendInitialEvents *bool
}

// Watch streams events for the keys under prefix, or for the one key prefix
// names when it does not end in "/". Events come from the resource's watch
// cache; the objects are the caller's own copies. The result channel closes
// when ctx is done, Stop is called, the Store is closed, the watcher falls
// too far behind, or the cache relists after losing its etcd watch; clients
// then resume from the last resourceVersion they saw. Errors: ErrExpired for
// a resourceVersion older than the cache's history ("too old resource
// version: N (M)"), ErrTooLargeResourceVersion when initial events are asked
// for at a revision not reached within three seconds, ErrInvalid, ErrClosed.
func (r *Resource) Watch(ctx context.Context, prefix string, opts WatchOptions) (watch.Interface, error) {
	if !strings.HasPrefix(prefix, r.prefix) {
		return nil, fmt.Errorf("watch %s: %w: prefix outside resource %s", prefix, ErrInvalid, r.prefix)
	}
	explicitInitial := opts.SendInitialEvents != nil && *opts.SendInitialEvents
	w := &cacheWatcher{
		prefix:         prefix,
		pred:           opts.Predicate,
		allowBookmarks: opts.AllowBookmarks,
		endBookmark:    explicitInitial,
		newFunc:        r.newFunc,
		input:          make(chan *cacheEvent, watcherBufferSize),
		result:         make(chan watch.Event),
		done:           make(chan struct{}),
	}
	var minRev int64 // the revision the cache must reach first
	var err error
	switch opts.ResourceVersion {
	case "":
		w.initial = true
		if minRev, err = r.store.CurrentRevision(ctx); err != nil {
			return nil, fmt.Errorf("watch %s: %w", prefix, err)
		}
	case "0":
		w.initial = true
	default:
		rv, err := parseResourceVersion(opts.ResourceVersion)
		if err != nil {
			return nil, fmt.Errorf("watch %s: %w", prefix, err)
		}
		w.initial = explicitInitial
		w.startRev = rv
		if w.initial {
			minRev = rv
		}
	}
	// A cache started by this watch lists at the watch's revision, so the
	// usual "list from etcd, then watch from its revision" finds the history
	// it needs even though the cache did not exist at list time.
	c, err := r.watchCache(w.startRev)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", prefix, err)
	}
	w.cache = c
	for {
		if err := c.waitUntil(ctx, minRev, freshnessTimeout); err != nil {
			return nil, fmt.Errorf("watch %s: %w", prefix, err)
		}
		registered, err := c.register(w)
		if err != nil {
			return nil, fmt.Errorf("watch %s: %w", prefix, err)
		}
		if registered {
			break
		}
		// The cache started relisting between waiting and registering.
	}
	go w.run(ctx)
	return w, nil
}

// register adds w to the cache and captures where its stream starts: a
// snapshot for initial events, or the recorded events after w.lastRev. It
// reports false if the cache is not ready (relisting) any more.
func (c *watchCache) register(w *cacheWatcher) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return false, ErrClosed
	}
	if !c.ready {
		return false, nil
	}
	if w.initial {
		w.snapshot = c.items.Clone()
		w.startRev = c.rev
	} else {
		if w.startRev < c.oldest {
			return false, tooOldError(w.startRev, c.oldest)
		}
		w.replay = c.eventsAfterLocked(w.startRev)
	}
	w.lastRev = w.startRev
	c.clients[w] = true
	c.watchers.Add(1)
	return true, nil
}

// unregister forgets w; called by w's goroutine as it exits.
func (c *watchCache) unregister(w *cacheWatcher) {
	c.mu.Lock()
	delete(c.clients, w)
	c.mu.Unlock()
	c.watchers.Done()
}

// cacheWatcher is one client's watch. Its goroutine (run) owns the result
// channel and converts cache events for the client: prefix and predicate
// filtering, copies, bookmarks.
type cacheWatcher struct {
	cache          *watchCache
	prefix         string // immutable; an exact key if it does not end in "/"
	pred           func(runtime.Object) bool
	allowBookmarks bool
	endBookmark    bool // send the initial-events-end bookmark
	newFunc        func() runtime.Object

	input  chan *cacheEvent // written by the cache
	result chan watch.Event // closed by run
	done   chan struct{}    // closed by terminate
	once   sync.Once

	// Set by register before run starts, then owned by run.
	initial  bool
	snapshot *btree.BTreeG[entry]
	replay   []*cacheEvent
	startRev int64 // the stream holds only events after startRev
	lastRev  int64 // revision of the last event or bookmark sent; bookmarks never go back
}

var _ watch.Interface = (*cacheWatcher)(nil)

// Stop ends the watch; the result channel closes soon after. Idempotent.
func (w *cacheWatcher) Stop() { w.terminate() }

// ResultChan returns the events; it is closed when the watch ends.
func (w *cacheWatcher) ResultChan() <-chan watch.Event { return w.result }

func (w *cacheWatcher) terminate() { w.once.Do(func() { close(w.done) }) }

func (w *cacheWatcher) run(ctx context.Context) {
	defer w.cache.unregister(w)
	defer close(w.result)
	if !w.sendInitial(ctx) {
		return
	}
	for _, ev := range w.replay {
		if !w.process(ctx, ev) {
			return
		}
	}
	w.replay = nil
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.done:
			return
		case ev := <-w.input:
			if !w.process(ctx, ev) {
				return
			}
		}
	}
}

// sendInitial sends ADDED for the snapshot and the initial-events-end
// bookmark. It returns false if the watch ended meanwhile.
func (w *cacheWatcher) sendInitial(ctx context.Context) bool {
	if w.initial {
		ok := true
		ascendPrefix(w.snapshot, w.prefix, func(obj runtime.Object) bool {
			if w.pred != nil && !w.pred(obj) {
				return true
			}
			ok = w.send(ctx, watch.Event{Type: watch.Added, Object: obj.DeepCopyObject()})
			return ok
		})
		w.snapshot = nil
		if !ok {
			return false
		}
	}
	if w.endBookmark {
		obj := w.newFunc()
		if acc, err := meta.Accessor(obj); err == nil {
			acc.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
		}
		if err := setResourceVersion(obj, w.startRev); err == nil {
			return w.send(ctx, watch.Event{Type: watch.Bookmark, Object: obj})
		}
	}
	return true
}

// process converts one cache event for this client and sends it, if any.
func (w *cacheWatcher) process(ctx context.Context, ev *cacheEvent) bool {
	if ev.typ == watch.Bookmark {
		if !w.allowBookmarks || ev.rev < w.lastRev {
			return true
		}
		obj := w.newFunc()
		if err := setResourceVersion(obj, ev.rev); err != nil {
			return true
		}
		w.lastRev = ev.rev
		return w.send(ctx, watch.Event{Type: watch.Bookmark, Object: obj})
	}
	if ev.rev <= w.startRev || !w.keyMatches(ev.key) {
		return true
	}
	out, ok := w.convert(ev)
	if !ok {
		return true
	}
	if !w.send(ctx, out) {
		return false
	}
	w.lastRev = ev.rev
	return true
}

func (w *cacheWatcher) keyMatches(key string) bool {
	if strings.HasSuffix(w.prefix, "/") {
		return strings.HasPrefix(key, w.prefix)
	}
	return key == w.prefix
}

// convert applies the predicate to the event's old and new state, as
// upstream's filtered watch: leaving the selection is a DELETED (with the old
// content at the new revision), entering it an ADDED.
func (w *cacheWatcher) convert(ev *cacheEvent) (watch.Event, bool) {
	if w.pred == nil {
		return watch.Event{Type: ev.typ, Object: ev.obj.DeepCopyObject()}, true
	}
	prevMatch := ev.prev != nil && w.pred(ev.prev)
	if ev.typ == watch.Deleted {
		if !prevMatch {
			return watch.Event{}, false
		}
		return watch.Event{Type: watch.Deleted, Object: ev.obj.DeepCopyObject()}, true
	}
	curMatch := w.pred(ev.obj)
	switch {
	case curMatch && prevMatch:
		return watch.Event{Type: watch.Modified, Object: ev.obj.DeepCopyObject()}, true
	case curMatch:
		return watch.Event{Type: watch.Added, Object: ev.obj.DeepCopyObject()}, true
	case prevMatch:
		obj := ev.prev.DeepCopyObject()
		if err := setResourceVersion(obj, ev.rev); err != nil {
			return watch.Event{}, false
		}
		return watch.Event{Type: watch.Deleted, Object: obj}, true
	}
	return watch.Event{}, false
}

func (w *cacheWatcher) send(ctx context.Context, ev watch.Event) bool {
	select {
	case w.result <- ev:
		return true
	case <-w.done:
		return false
	case <-ctx.Done():
		return false
	}
}
