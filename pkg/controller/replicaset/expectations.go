package replicaset

import (
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// expectationsTTL bounds how long a controller waits for its own writes to be
// observed through the informer. After it a lost watch event can no longer
// wedge a ReplicaSet: the next sync recomputes from the cache.
const expectationsTTL = 5 * time.Minute

// expectations remembers, per owner key, how many pod creations and which pod
// deletions the controller has issued but not yet seen in the informer cache.
// While any are outstanding the sync must not manage replicas again: the
// cache would still show the old pod count and the controller would create
// (or delete) the same pods twice.
type expectations struct {
	clock clock.PassiveClock // immutable; never nil

	mu      sync.Mutex
	records map[string]*expectation // guarded by mu
}

type expectation struct {
	adds      int
	deletes   map[string]bool // pod keys whose deletion is not yet observed
	timestamp time.Time
}

func newExpectations(clk clock.PassiveClock) *expectations {
	return &expectations{clock: clk, records: map[string]*expectation{}}
}

// satisfied reports whether key has no outstanding writes (or the record has
// expired, or there never was one).
func (e *expectations) satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.records[key]
	if !ok {
		return true
	}
	if r.adds <= 0 && len(r.deletes) == 0 {
		return true
	}
	return e.clock.Since(r.timestamp) > expectationsTTL
}

// expectCreations replaces key's record with one expecting n creations.
func (e *expectations) expectCreations(key string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.records[key] = &expectation{adds: n, deletes: map[string]bool{}, timestamp: e.clock.Now()}
}

// expectDeletions replaces key's record with one expecting the given pods to
// disappear.
func (e *expectations) expectDeletions(key string, podKeys []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	dels := make(map[string]bool, len(podKeys))
	for _, k := range podKeys {
		dels[k] = true
	}
	e.records[key] = &expectation{deletes: dels, timestamp: e.clock.Now()}
}

// creationObserved lowers key's outstanding creations by one; it is called
// both when the informer shows a new pod and when a create call failed (the
// pod will never be observed).
func (e *expectations) creationObserved(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r, ok := e.records[key]; ok && r.adds > 0 {
		r.adds--
	}
}

// deletionObserved drops podKey from key's outstanding deletions.
func (e *expectations) deletionObserved(key, podKey string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r, ok := e.records[key]; ok {
		delete(r.deletes, podKey)
	}
}

// forget removes key's record (the owner is gone).
func (e *expectations) forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.records, key)
}
