package job

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// expectationsTTL bounds how long a sync waits for its own pod creations
// and deletions to show in the informer cache; after it a lost watch event
// cannot wedge a Job.
const expectationsTTL = 5 * time.Minute

// expectations remembers, per Job key, the pod writes the controller issued
// but has not yet observed. Outstanding creations or deletions stop
// manageJob (the cache would show the old pods and the same pods would be
// created twice). Outstanding finalizer removals stop the pods concerned
// from being counted again: once counted and stripped of the finalizer, a
// pod whose update is not yet in the cache still shows the finalizer.
type expectations struct {
	clock clock.PassiveClock // immutable; never nil

	mu         sync.Mutex
	records    map[string]*expectation       // guarded by mu
	finalizers map[string]map[types.UID]bool // guarded by mu
}

type expectation struct {
	adds      int
	deletes   map[types.UID]bool
	timestamp time.Time
}

func newExpectations(clk clock.PassiveClock) *expectations {
	return &expectations{clock: clk, records: map[string]*expectation{}, finalizers: map[string]map[types.UID]bool{}}
}

// satisfied reports whether key has no outstanding creations or deletions
// (or they expired).
func (e *expectations) satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.records[key]
	if !ok || (r.adds <= 0 && len(r.deletes) == 0) {
		return true
	}
	return e.clock.Since(r.timestamp) > expectationsTTL
}

// expect replaces key's record with adds creations and the given
// deletions.
func (e *expectations) expect(key string, adds int, deletes []types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := make(map[types.UID]bool, len(deletes))
	for _, uid := range deletes {
		d[uid] = true
	}
	e.records[key] = &expectation{adds: adds, deletes: d, timestamp: e.clock.Now()}
}

// creationObserved lowers key's outstanding creations by one; also called
// for a failed create, which will never be observed.
func (e *expectations) creationObserved(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r, ok := e.records[key]; ok && r.adds > 0 {
		r.adds--
	}
}

// deletionObserved drops uid from key's outstanding deletions.
func (e *expectations) deletionObserved(key string, uid types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r, ok := e.records[key]; ok {
		delete(r.deletes, uid)
	}
}

// expectFinalizerRemoved records that uid's tracking finalizer was removed.
func (e *expectations) expectFinalizerRemoved(key string, uid types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.finalizers[key]
	if s == nil {
		s = map[types.UID]bool{}
		e.finalizers[key] = s
	}
	s[uid] = true
}

// finalizerRemovalObserved forgets uid once a pod without the finalizer (or
// its deletion) has been observed.
func (e *expectations) finalizerRemovalObserved(key string, uid types.UID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.finalizers[key], uid)
	if len(e.finalizers[key]) == 0 {
		delete(e.finalizers, key)
	}
}

// finalizerRemovalPending reports whether uid's finalizer removal has not
// been observed yet.
func (e *expectations) finalizerRemovalPending(key string, uid types.UID) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.finalizers[key][uid]
}

// forget drops all of key's records (the Job is gone).
func (e *expectations) forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.records, key)
	delete(e.finalizers, key)
}
