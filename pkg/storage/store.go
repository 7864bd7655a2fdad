package storage

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/runtime"
)

// Defaults for Options; see the fields for the reasoning.
const (
	DefaultCompactionInterval = 5 * time.Minute
	DefaultWatchCacheCapacity = 10000
	DefaultBookmarkInterval   = time.Minute
)

// compactRevKey is the key upstream kube-apiservers use to agree on who
// compacts; sharing it lets several Skiff servers on one etcd cluster (and
// mixed deployments) compact once per interval instead of once per server.
const compactRevKey = "compact_rev_key"

// Options tunes a Store. The zero value gives the defaults.
type Options struct {
	// CompactionInterval is how often Run compacts etcd. Each compaction
	// removes history older than the revision seen one interval earlier, so
	// clients always have at least one interval to resume a watch or finish a
	// paged list. 0 means DefaultCompactionInterval (upstream's 5m); negative
	// disables compaction (another apiserver or etcd itself does it).
	CompactionInterval time.Duration
	// WatchCacheCapacity is the number of recent events each resource's watch
	// cache keeps for watch resumption; a watch from an older resourceVersion
	// gets ErrExpired. 0 means DefaultWatchCacheCapacity (10000): events share
	// the cached objects, so the cost is mostly deleted and superseded objects,
	// and 10000 covers minutes of churn even for pods on a large cluster.
	WatchCacheCapacity int
	// BookmarkInterval is how often watchers that allow bookmarks receive a
	// BOOKMARK carrying the cache's current revision, so that they can resume
	// after compaction without a relist. 0 means DefaultBookmarkInterval (one
	// minute, as upstream's cacher).
	BookmarkInterval time.Duration
	// Logger receives errors that have no caller to return to, such as a value
	// in etcd that does not decode. nil means slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.CompactionInterval == 0 {
		o.CompactionInterval = DefaultCompactionInterval
	}
	if o.WatchCacheCapacity <= 0 {
		o.WatchCacheCapacity = DefaultWatchCacheCapacity
	}
	if o.BookmarkInterval <= 0 {
		o.BookmarkInterval = DefaultBookmarkInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Store is the cluster store over one etcd client. It is safe for concurrent
// use. The client stays owned by the caller: Close does not close it.
type Store struct {
	client *clientv3.Client
	opts   Options // immutable

	// ctx is the parent of every watch cache; cancelled by Close.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	resources map[string]*Resource // by prefix; guarded by mu
	closed    bool                 // guarded by mu
	caches    sync.WaitGroup       // one per running watch cache
}

// New returns a Store using client. Watch caches start lazily; call Run for
// compaction and Close to stop the caches.
func New(client *clientv3.Client, opts Options) *Store {
	ctx, cancel := context.WithCancel(context.Background())
	return &Store{
		client:    client,
		opts:      opts.withDefaults(),
		ctx:       ctx,
		cancel:    cancel,
		resources: map[string]*Resource{},
	}
}

// Close stops every watch cache and closes their watchers' result channels,
// and waits for their goroutines to exit. It is idempotent. Direct etcd
// operations (Create, Get, consistent List, ...) keep working afterwards;
// operations that need a watch cache return ErrClosed.
func (s *Store) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.caches.Wait()
}

// Resource returns the store for one resource type, whose keys all start with
// prefix (for example "/registry/pods/"; a missing trailing "/" is added so
// that "/registry/pods" never matches "/registry/podtemplates"). codec encodes
// its values and newFunc returns an empty object of the type (the body of
// BOOKMARK events). Resources are memoized by prefix: later calls return the
// first Resource and ignore their codec and newFunc.
func (s *Store) Resource(prefix string, codec Codec, newFunc func() runtime.Object) *Resource {
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.resources[prefix]; ok {
		return r
	}
	r := &Resource{store: s, prefix: prefix, codec: codec, newFunc: newFunc}
	s.resources[prefix] = r
	return r
}

// CurrentRevision returns etcd's latest revision with a linearizable read, so
// it is at least the revision of every write that completed before the call.
func (s *Store) CurrentRevision(ctx context.Context) (int64, error) {
	// A point read of a key that cannot exist is the cheapest linearizable
	// request that returns the header revision.
	resp, err := s.client.Get(ctx, "\x00", clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("read current revision: %w", wrapEtcdError(err))
	}
	return resp.Header.Revision, nil
}

// Run compacts etcd every CompactionInterval until ctx is done. Like upstream,
// each round compacts to the revision observed in the previous round, so one
// full interval of history is always kept; a compare-and-swap on
// compact_rev_key ensures that of several servers sharing etcd only one
// compacts per interval. Errors are logged and retried next interval.
func (s *Store) Run(ctx context.Context) {
	interval := s.opts.CompactionInterval
	if interval < 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var version, rev int64 // compact_rev_key's version and revision seen last round
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var err error
		version, rev, err = s.compactOnce(ctx, version, rev)
		if err != nil && ctx.Err() == nil {
			s.opts.Logger.Warn("etcd compaction failed", "revision", rev, "err", err)
		}
	}
}

// compactOnce claims this round by bumping compact_rev_key if its version is
// still lastVersion, and if it won and has a previous revision, compacts to
// it. It returns the key's version and the current revision for next round.
func (s *Store) compactOnce(ctx context.Context, lastVersion, lastRev int64) (int64, int64, error) {
	resp, err := s.client.Txn(ctx).If(
		clientv3.Compare(clientv3.Version(compactRevKey), "=", lastVersion),
	).Then(
		clientv3.OpPut(compactRevKey, strconv.FormatInt(lastRev, 10)),
	).Else(
		clientv3.OpGet(compactRevKey),
	).Commit()
	if err != nil {
		return lastVersion, lastRev, fmt.Errorf("claim compaction: %w", err)
	}
	curRev := resp.Header.Revision
	if !resp.Succeeded {
		// Another server compacted this round; follow its clock.
		kvs := resp.Responses[0].GetResponseRange().GetKvs()
		if len(kvs) == 0 {
			return 0, curRev, nil
		}
		return kvs[0].Version, curRev, nil
	}
	if lastRev == 0 {
		// First round: nothing observed one interval ago yet.
		return lastVersion + 1, curRev, nil
	}
	if _, err := s.client.Compact(ctx, lastRev); err != nil && !isCompacted(err) {
		return lastVersion + 1, curRev, fmt.Errorf("compact to %d: %w", lastRev, err)
	}
	return lastVersion + 1, curRev, nil
}
