package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/btree"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
)

// Tuning of the watch cache's fan-out.
const (
	// watcherBufferSize is how many events a watcher may fall behind before
	// the cache waits for it.
	watcherBufferSize = 100
	// dispatchTimeout is how long one event's dispatch waits, in total, for
	// watchers whose buffer is full; those still full afterwards are
	// terminated, so one slow client cannot stall everyone (as upstream).
	dispatchTimeout = 100 * time.Millisecond
	// relistBackoffMax caps the wait between failed attempts to (re)list.
	relistBackoffMax = 5 * time.Second
)

// cacheEvent is one change recorded by the watch cache. Its objects are
// shared by all watchers and never modified; watchers hand out copies.
type cacheEvent struct {
	typ  watch.EventType // Added, Modified, Deleted, or Bookmark (dispatch only)
	key  string
	obj  runtime.Object // the new state; for Deleted the last state at the deletion's revision
	prev runtime.Object // the state before; nil for Added
	rev  int64
}

// entry is one object in the cache's ordered map.
type entry struct {
	key string
	obj runtime.Object
}

func entryLess(a, b entry) bool { return a.key < b.key }

// watchCache mirrors one resource prefix from a single etcd watch and fans
// its events out to cacheWatchers. run owns the etcd watch; everything else
// is guarded by mu.
type watchCache struct {
	res    *Resource
	client *clientv3.Client

	// progress asks run to request an etcd progress notification, which
	// advances rev when this resource is idle; capacity 1 coalesces requests.
	progress chan struct{}
	startRev int64         // revision of the first list (0 = latest); owned by run
	done     chan struct{} // closed when run has returned and all watchers exited
	watchers sync.WaitGroup

	mu      sync.Mutex
	ready   bool                   // items reflect rev; false while (re)listing
	stopped bool                   // run returned; no new watchers
	rev     int64                  // revision the cache is consistent at
	items   *btree.BTreeG[entry]   // current objects by key
	ring    []*cacheEvent          // recent events, oldest at ring[start]
	start   int                    // index of the oldest event in ring
	size    int                    // number of events in ring
	oldest  int64                  // watches from a revision >= oldest can be replayed
	changed chan struct{}          // closed and replaced when ready, rev or stopped change
	clients map[*cacheWatcher]bool // registered watchers
}

func newWatchCache(res *Resource, capacity int) *watchCache {
	return &watchCache{
		res:      res,
		client:   res.store.client,
		progress: make(chan struct{}, 1),
		done:     make(chan struct{}),
		items:    btree.NewG(32, entryLess),
		ring:     make([]*cacheEvent, capacity),
		changed:  make(chan struct{}),
		clients:  map[*cacheWatcher]bool{},
	}
}

// watchCache returns the resource's watch cache, starting it on first use.
// A new cache first lists at startRev if that is positive and still in etcd,
// so that watches from startRev can be served.
func (r *Resource) watchCache(startRev int64) (*watchCache, error) {
	s := r.store
	r.cacheMu.Lock()
	defer r.cacheMu.Unlock()
	if r.cache != nil {
		return r.cache, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	c := newWatchCache(r, s.opts.WatchCacheCapacity)
	c.startRev = startRev
	r.cache = c
	s.caches.Add(1)
	go func() {
		defer s.caches.Done()
		c.run(s.ctx)
	}()
	return c, nil
}

// notifyLocked wakes everyone waiting on a change. Callers hold mu.
func (c *watchCache) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// run lists and watches until ctx is done, relisting whenever the etcd watch
// breaks (for example after compaction). On return all watchers are
// terminated and have exited.
func (c *watchCache) run(ctx context.Context) {
	defer close(c.done)
	defer c.watchers.Wait()
	backoff := time.Duration(0)
	for {
		err := c.listAndWatch(ctx)
		c.reset()
		if ctx.Err() != nil {
			c.mu.Lock()
			c.stopped = true
			c.notifyLocked()
			c.mu.Unlock()
			return
		}
		if errors.Is(err, errListed) {
			backoff = 0 // the list worked; the watch broke: relist at once
		} else {
			c.res.store.opts.Logger.Warn("watch cache list failed", "prefix", c.res.prefix, "err", err)
			backoff = min(max(2*backoff, 100*time.Millisecond), relistBackoffMax)
		}
		if backoff > 0 {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
	}
}

// errListed wraps errors that ended a watch after a successful list.
var errListed = errors.New("watch ended")

// reset marks the cache unready and terminates all watchers: their clients
// resume from their last resourceVersion, as with upstream's cacher.
func (c *watchCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ready = false
	for w := range c.clients {
		w.terminate()
	}
	clear(c.clients)
	c.notifyLocked()
}

func (c *watchCache) listAndWatch(ctx context.Context) error {
	prefix := c.res.prefix
	kvs, rev, err := c.listEtcd(ctx)
	if err != nil {
		return err
	}
	items := btree.NewG(32, entryLess)
	for _, kv := range kvs {
		obj, err := c.res.decode(kv.Value, kv.ModRevision)
		if err != nil {
			c.res.store.opts.Logger.Error("skipping undecodable value", "key", string(kv.Key), "err", err)
			continue
		}
		items.ReplaceOrInsert(entry{key: string(kv.Key), obj: obj})
	}
	c.mu.Lock()
	c.items = items
	c.rev = rev
	c.oldest = rev
	clear(c.ring)
	c.start, c.size = 0, 0
	c.ready = true
	c.notifyLocked()
	c.mu.Unlock()

	// A private gRPC stream per cache (the client groups watches by outgoing
	// metadata) so that RequestProgress reaches only this watch.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(
		metadata.AppendToOutgoingContext(ctx, "skiff-watch-cache", prefix)))
	defer cancel()
	wch := c.client.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	bookmarks := time.NewTicker(c.res.store.opts.BookmarkInterval)
	defer bookmarks.Stop()
	bookmarkDue := false
	var progressRev int64 // revision of the last progress notification
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case wr, ok := <-wch:
			if !ok {
				return fmt.Errorf("%w: etcd watch channel closed", errListed)
			}
			if err := wr.Err(); err != nil {
				return fmt.Errorf("%w: %w", errListed, err)
			}
			if wr.IsProgressNotify() {
				progressRev = max(progressRev, wr.Header.Revision)
				c.advance(wr.Header.Revision)
				if bookmarkDue {
					c.dispatchBookmark()
					bookmarkDue = false
				}
				continue
			}
			if len(wr.Events) > 0 && wr.Events[0].Kv.ModRevision <= progressRev {
				// etcd promised nothing at or below progressRev was
				// pending (older etcd 3.4 could break that): the order
				// watchers rely on is lost, so start over.
				return fmt.Errorf("%w: event at revision %d after progress notification at %d",
					errListed, wr.Events[0].Kv.ModRevision, progressRev)
			}
			c.dispatch(c.apply(wr.Events))
		case <-c.progress:
			// Errors only delay freshness; waiters re-request or time out.
			_ = c.client.RequestProgress(wctx)
		case <-bookmarks.C:
			if bookmarkDue {
				// etcd did not answer the last progress request in a whole
				// interval: send what we have.
				c.dispatchBookmark()
			}
			bookmarkDue = true
			_ = c.client.RequestProgress(wctx)
		}
	}
}

// listEtcd reads the prefix at startRev the first time and at the latest
// revision afterwards (relists follow a broken watch and must catch up). It
// returns the values and the revision they are at.
func (c *watchCache) listEtcd(ctx context.Context) ([]*mvccpb.KeyValue, int64, error) {
	prefix := c.res.prefix
	if c.startRev > 0 {
		rev := c.startRev
		c.startRev = 0
		resp, err := c.client.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev))
		if err == nil {
			// The header holds etcd's current revision, not the one read.
			return resp.Kvs, rev, nil
		}
		if ctx.Err() != nil {
			return nil, 0, fmt.Errorf("list %s at %d: %w", prefix, rev, err)
		}
		// Compacted or future: the latest state is the best start.
	}
	resp, err := c.client.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("list %s: %w", prefix, err)
	}
	return resp.Kvs, resp.Header.Revision, nil
}

// apply records etcd events in the cache and returns them as cacheEvents,
// along with the watchers registered at that moment.
func (c *watchCache) apply(events []*clientv3.Event) ([]*cacheEvent, []*cacheWatcher) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*cacheEvent, 0, len(events))
	for _, e := range events {
		key := string(e.Kv.Key)
		rev := e.Kv.ModRevision
		prev, hadPrev := c.items.Get(entry{key: key})
		ev := &cacheEvent{key: key, rev: rev}
		switch e.Type {
		case clientv3.EventTypePut:
			obj, err := c.res.decode(e.Kv.Value, rev)
			if err != nil {
				c.res.store.opts.Logger.Error("skipping undecodable value", "key", key, "err", err)
				continue
			}
			ev.obj = obj
			ev.typ = watch.Added
			if hadPrev {
				ev.typ = watch.Modified
				ev.prev = prev.obj
			}
			c.items.ReplaceOrInsert(entry{key: key, obj: obj})
		case clientv3.EventTypeDelete:
			if !hadPrev {
				continue // an undecodable value we never cached
			}
			obj := prev.obj.DeepCopyObject()
			if err := setResourceVersion(obj, rev); err != nil {
				continue
			}
			ev.typ, ev.obj, ev.prev = watch.Deleted, obj, prev.obj
			c.items.Delete(entry{key: key})
		}
		c.appendLocked(ev)
		out = append(out, ev)
	}
	if len(events) > 0 {
		c.rev = max(c.rev, events[len(events)-1].Kv.ModRevision)
		c.notifyLocked()
	}
	return out, c.watcherListLocked()
}

// appendLocked adds ev to the ring, evicting the oldest event when full.
func (c *watchCache) appendLocked(ev *cacheEvent) {
	capacity := len(c.ring)
	if c.size == capacity {
		evicted := c.ring[c.start]
		c.ring[c.start] = nil
		c.start = (c.start + 1) % capacity
		c.size--
		// Events at evicted.rev may remain, but a watch from below it would
		// miss this one.
		c.oldest = evicted.rev
	}
	c.ring[(c.start+c.size)%capacity] = ev
	c.size++
}

// eventsAfterLocked returns the recorded events with a revision above rev.
func (c *watchCache) eventsAfterLocked(rev int64) []*cacheEvent {
	var out []*cacheEvent
	for i := 0; i < c.size; i++ {
		if ev := c.ring[(c.start+i)%len(c.ring)]; ev.rev > rev {
			out = append(out, ev)
		}
	}
	return out
}

func (c *watchCache) watcherListLocked() []*cacheWatcher {
	ws := make([]*cacheWatcher, 0, len(c.clients))
	for w := range c.clients {
		ws = append(ws, w)
	}
	return ws
}

// advance moves the cache's revision to rev after etcd reported progress.
func (c *watchCache) advance(rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rev > c.rev {
		c.rev = rev
		c.notifyLocked()
	}
}

// dispatch delivers events, in order, to the watchers registered when they
// were applied. A watcher whose buffer stays full for dispatchTimeout is
// terminated.
func (c *watchCache) dispatch(events []*cacheEvent, ws []*cacheWatcher) {
	for _, ev := range events {
		var blocked []*cacheWatcher
		for _, w := range ws {
			select {
			case w.input <- ev:
			case <-w.done:
			default:
				blocked = append(blocked, w)
			}
		}
		if len(blocked) == 0 {
			continue
		}
		timer := time.NewTimer(dispatchTimeout)
		expired := false
		for _, w := range blocked {
			if expired {
				// The budget is spent: whoever is still full is too slow.
				select {
				case w.input <- ev:
				case <-w.done:
				default:
					w.terminate()
				}
				continue
			}
			select {
			case w.input <- ev:
			case <-w.done:
			case <-timer.C:
				expired = true
				w.terminate()
			}
		}
		timer.Stop()
	}
}

// dispatchBookmark offers a bookmark at the cache's revision to watchers that
// asked for bookmarks. Bookmarks are optional, so a full buffer skips one.
func (c *watchCache) dispatchBookmark() {
	c.mu.Lock()
	ev := &cacheEvent{typ: watch.Bookmark, rev: c.rev}
	ws := c.watcherListLocked()
	c.mu.Unlock()
	for _, w := range ws {
		if !w.allowBookmarks {
			continue
		}
		select {
		case w.input <- ev:
		default:
		}
	}
}

// requestProgress asks run for an etcd progress notification.
func (c *watchCache) requestProgress() {
	select {
	case c.progress <- struct{}{}:
	default:
	}
}

// waitUntil blocks until the cache is ready at a revision >= minRev. A
// positive minRev waits at most timeout and then fails with
// ErrTooLargeResourceVersion; readiness alone (minRev 0) waits for ctx.
func (c *watchCache) waitUntil(ctx context.Context, minRev int64, timeout time.Duration) error {
	var deadline <-chan time.Time
	if minRev > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	for {
		c.mu.Lock()
		ready, rev, stopped, changed := c.ready, c.rev, c.stopped, c.changed
		c.mu.Unlock()
		switch {
		case stopped:
			return ErrClosed
		case ready && rev >= minRev:
			return nil
		case ready:
			// This resource may simply be idle while etcd moved on.
			c.requestProgress()
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return tooLargeError(minRev, rev)
		}
	}
}

// list returns copies of the cached objects under prefix that pass pred.
func (c *watchCache) list(prefix string, pred func(runtime.Object) bool) ([]runtime.Object, int64) {
	c.mu.Lock()
	// Clone is O(1) copy-on-write: the copying below runs without the lock.
	snapshot, rev := c.items.Clone(), c.rev
	c.mu.Unlock()
	var items []runtime.Object
	ascendPrefix(snapshot, prefix, func(obj runtime.Object) bool {
		if pred == nil || pred(obj) {
			items = append(items, obj.DeepCopyObject())
		}
		return true
	})
	return items, rev
}

// ascendPrefix calls fn in key order for the objects under prefix, or for the
// one object at prefix if it does not end in "/", until fn returns false.
func ascendPrefix(t *btree.BTreeG[entry], prefix string, fn func(runtime.Object) bool) {
	if !strings.HasSuffix(prefix, "/") {
		if e, ok := t.Get(entry{key: prefix}); ok {
			fn(e.obj)
		}
		return
	}
	t.AscendRange(entry{key: prefix}, entry{key: clientv3.GetPrefixRangeEnd(prefix)}, func(e entry) bool {
		return fn(e.obj)
	})
}
