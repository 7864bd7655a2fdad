// Package queue is the scheduler's pod queue, modelled on upstream's
// PriorityQueue: an activeQ of pods ready to be tried (highest priority
// first, then oldest), a backoffQ of pods waiting out an exponential backoff
// after a failure, and a map of unschedulable pods that wait for a cluster
// event that might let them fit.
package queue

import (
	"context"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/utils/clock"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
)

// Defaults match upstream kube-scheduler.
const (
	DefaultInitialBackoff = 1 * time.Second
	DefaultMaxBackoff     = 10 * time.Second
	// DefaultMaxUnschedulableDuration is how long a pod may sit in the
	// unschedulable map without any matching event before it is retried
	// anyway, to recover from a missed or unregistered event.
	DefaultMaxUnschedulableDuration = 5 * time.Minute
	// backoffFlushInterval and unschedulableFlushInterval are the periods of
	// the flush loops started by Run.
	backoffFlushInterval       = 1 * time.Second
	unschedulableFlushInterval = 30 * time.Second
)

// QueuedPodInfo is a pod with its queueing history.
type QueuedPodInfo struct {
	*framework.PodInfo
	// Timestamp is when the pod was added or last failed; it orders the
	// activeQ among equal priorities and starts the backoff.
	Timestamp time.Time
	// Attempts counts scheduling attempts; it drives the backoff length.
	Attempts int
	// InitialAttemptTimestamp is when the pod was first popped.
	InitialAttemptTimestamp time.Time
	// UnschedulablePlugins are the plugins that rejected the pod in its
	// last attempt; empty after an internal error.
	UnschedulablePlugins sets.Set[string]
}

// Options configures a PriorityQueue. Zero durations take the defaults.
type Options struct {
	InitialBackoff           time.Duration
	MaxBackoff               time.Duration
	MaxUnschedulableDuration time.Duration
	// PluginEvents maps plugin name to the events after which a pod it
	// rejected may become schedulable.
	PluginEvents map[string][]framework.ClusterEvent
}

// PriorityQueue is safe for concurrent use.
type PriorityQueue struct {
	clock clock.WithTicker
	opts  Options

	mu   sync.Mutex
	cond *sync.Cond // signalled on activeQ push and on Close; uses mu
	// Everything below is guarded by mu.
	activeQ       *podHeap
	backoffQ      *podHeap
	unschedulable map[types.UID]*QueuedPodInfo
	inFlight      sets.Set[types.UID]
	// schedulingCycle counts Pops; moveRequestCycle is the cycle at which the
	// last move event arrived. A pod that fails in a cycle that started
	// before a move event goes to backoffQ, not unschedulable, because the
	// event it may have needed has already happened.
	schedulingCycle  int64
	moveRequestCycle int64
	closed           bool
	nominated        map[string][]*framework.PodInfo // node → pods nominated there
	nominatedNode    map[types.UID]string
}

// New returns an empty queue using clk for all timestamps and tickers.
func New(clk clock.WithTicker, opts Options) *PriorityQueue {
	if opts.InitialBackoff <= 0 {
		opts.InitialBackoff = DefaultInitialBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.MaxUnschedulableDuration <= 0 {
		opts.MaxUnschedulableDuration = DefaultMaxUnschedulableDuration
	}
	q := &PriorityQueue{
		clock:         clk,
		opts:          opts,
		unschedulable: map[types.UID]*QueuedPodInfo{},
		inFlight:      sets.New[types.UID](),
		nominated:     map[string][]*framework.PodInfo{},
		nominatedNode: map[types.UID]string{},
	}
	q.cond = sync.NewCond(&q.mu)
	q.activeQ = newPodHeap(func(a, b *QueuedPodInfo) bool {
		pa, pb := corev1helpers.PodPriority(a.Pod), corev1helpers.PodPriority(b.Pod)
		return pa > pb || (pa == pb && a.Timestamp.Before(b.Timestamp))
	})
	q.backoffQ = newPodHeap(func(a, b *QueuedPodInfo) bool {
		return q.backoffExpiry(a).Before(q.backoffExpiry(b))
	})
	return q
}

// backoffDuration is initial·2^(attempts-1), capped at max.
func (q *PriorityQueue) backoffDuration(qp *QueuedPodInfo) time.Duration {
	d := q.opts.InitialBackoff
	for i := 1; i < qp.Attempts; i++ {
		if d >= q.opts.MaxBackoff/2 {
			return q.opts.MaxBackoff
		}
		d *= 2
	}
	return min(d, q.opts.MaxBackoff)
}

func (q *PriorityQueue) backoffExpiry(qp *QueuedPodInfo) time.Time {
	return qp.Timestamp.Add(q.backoffDuration(qp))
}

func (q *PriorityQueue) isBackingOff(qp *QueuedPodInfo) bool {
	return qp.Attempts > 0 && q.backoffExpiry(qp).After(q.clock.Now())
}

// Add enqueues a new pending pod into activeQ.
func (q *PriorityQueue) Add(pod *v1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	qp := &QueuedPodInfo{PodInfo: framework.NewPodInfo(pod), Timestamp: q.clock.Now()}
	delete(q.unschedulable, pod.UID)
	q.backoffQ.delete(pod.UID)
	q.activeQ.addOrUpdate(qp)
	q.nominateFromStatus(qp.PodInfo)
	q.cond.Broadcast()
}

// Update replaces a queued pod. A pod waiting as unschedulable whose spec or
// labels changed is moved to be retried, since the change may make it fit.
func (q *PriorityQueue) Update(oldPod, newPod *v1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	uid := newPod.UID
	pi := framework.NewPodInfo(newPod)
	q.nominateFromStatus(pi)
	if qp, ok := q.activeQ.get(uid); ok {
		q.activeQ.addOrUpdate(q.withPod(qp, pi))
		return
	}
	if qp, ok := q.backoffQ.get(uid); ok {
		q.backoffQ.addOrUpdate(q.withPod(qp, pi))
		return
	}
	if qp, ok := q.unschedulable[uid]; ok {
		nqp := q.withPod(qp, pi)
		if oldPod != nil && !specOrLabelsChanged(oldPod, newPod) {
			q.unschedulable[uid] = nqp
			return
		}
		delete(q.unschedulable, uid)
		q.requeueLocked(nqp)
		return
	}
	if q.inFlight.Has(uid) {
		// Being scheduled right now; the cycle's outcome decides.
		return
	}
	q.activeQ.addOrUpdate(&QueuedPodInfo{PodInfo: pi, Timestamp: q.clock.Now()})
	q.cond.Broadcast()
}

func (q *PriorityQueue) withPod(qp *QueuedPodInfo, pi *framework.PodInfo) *QueuedPodInfo {
	n := *qp
	n.PodInfo = pi
	return &n
}

func specOrLabelsChanged(a, b *v1.Pod) bool {
	return !equality.Semantic.DeepEqual(a.Spec, b.Spec) || !equality.Semantic.DeepEqual(a.Labels, b.Labels)
}

// Delete removes a pod from every sub-queue and from the nominator.
func (q *PriorityQueue) Delete(pod *v1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.activeQ.delete(pod.UID)
	q.backoffQ.delete(pod.UID)
	delete(q.unschedulable, pod.UID)
	q.deleteNominatedLocked(pod.UID)
}

// Pop blocks until a pod is in activeQ or the queue is closed; ok is false
// only after Close. The caller must call Done(uid) when the cycle ends.
func (q *PriorityQueue) Pop() (qp *QueuedPodInfo, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.activeQ.len() == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return nil, false
	}
	qp = q.activeQ.pop()
	q.schedulingCycle++
	qp.Attempts++
	if qp.InitialAttemptTimestamp.IsZero() {
		qp.InitialAttemptTimestamp = q.clock.Now()
	}
	q.inFlight.Insert(qp.Pod.UID)
	return qp, true
}

// SchedulingCycle returns the number of Pops so far.
func (q *PriorityQueue) SchedulingCycle() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.schedulingCycle
}

// Done marks the end of the pod's scheduling attempt.
func (q *PriorityQueue) Done(uid types.UID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.inFlight.Delete(uid)
}

// AddUnschedulableIfNotPresent re-queues a pod after a failed attempt that
// started in podSchedulingCycle. Pods rejected by plugins wait in the
// unschedulable map for a relevant event; pods that hit an internal error,
// or for which a move event arrived during their attempt, go to backoffQ.
// It does nothing if the pod was re-added meanwhile.
func (q *PriorityQueue) AddUnschedulableIfNotPresent(qp *QueuedPodInfo, podSchedulingCycle int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	uid := qp.Pod.UID
	if _, ok := q.activeQ.get(uid); ok {
		return
	}
	if _, ok := q.backoffQ.get(uid); ok {
		return
	}
	if _, ok := q.unschedulable[uid]; ok {
		return
	}
	qp.Timestamp = q.clock.Now()
	if len(qp.UnschedulablePlugins) == 0 || q.moveRequestCycle >= podSchedulingCycle {
		q.backoffQ.addOrUpdate(qp)
		return
	}
	q.unschedulable[uid] = qp
}

// requeueLocked puts qp in backoffQ if it is still backing off, else activeQ.
func (q *PriorityQueue) requeueLocked(qp *QueuedPodInfo) {
	if q.isBackingOff(qp) {
		q.backoffQ.addOrUpdate(qp)
		return
	}
	q.activeQ.addOrUpdate(qp)
	q.cond.Broadcast()
}

// MoveAllToActiveOrBackoffQueue moves every unschedulable pod rejected by a
// plugin interested in ev. Pods rejected for no recorded plugin move on any
// event. It also makes in-flight pods that fail later go to backoffQ.
func (q *PriorityQueue) MoveAllToActiveOrBackoffQueue(ev framework.ClusterEvent) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for uid, qp := range q.unschedulable {
		if q.interested(qp, ev) {
			delete(q.unschedulable, uid)
			q.requeueLocked(qp)
		}
	}
	q.moveRequestCycle = q.schedulingCycle
}

func (q *PriorityQueue) interested(qp *QueuedPodInfo, ev framework.ClusterEvent) bool {
	if ev.Resource == framework.WildCard || len(qp.UnschedulablePlugins) == 0 {
		return true
	}
	for name := range qp.UnschedulablePlugins {
		evs, ok := q.opts.PluginEvents[name]
		if !ok {
			return true // a plugin that registered nothing is interested in everything
		}
		for _, reg := range evs {
			if reg.Match(ev) {
				return true
			}
		}
	}
	return false
}

// FlushBackoffQCompleted moves pods whose backoff expired to activeQ.
func (q *PriorityQueue) FlushBackoffQCompleted() {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.clock.Now()
	moved := false
	for qp := q.backoffQ.peek(); qp != nil && !q.backoffExpiry(qp).After(now); qp = q.backoffQ.peek() {
		q.activeQ.addOrUpdate(q.backoffQ.pop())
		moved = true
	}
	if moved {
		q.cond.Broadcast()
	}
}

// FlushUnschedulableLeftover retries pods that waited longer than
// MaxUnschedulableDuration for an event.
func (q *PriorityQueue) FlushUnschedulableLeftover() {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.clock.Now()
	for uid, qp := range q.unschedulable {
		if now.Sub(qp.Timestamp) > q.opts.MaxUnschedulableDuration {
			delete(q.unschedulable, uid)
			q.requeueLocked(qp)
		}
	}
}

// Run drives the periodic flushes until ctx is done. It blocks; the caller
// owns the goroutine it runs in.
func (q *PriorityQueue) Run(ctx context.Context) {
	bt := q.clock.NewTicker(backoffFlushInterval)
	defer bt.Stop()
	ut := q.clock.NewTicker(unschedulableFlushInterval)
	defer ut.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-bt.C():
			q.FlushBackoffQCompleted()
		case <-ut.C():
			q.FlushUnschedulableLeftover()
		}
	}
}

// Close wakes every Pop, which then returns ok=false. Idempotent.
func (q *PriorityQueue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.cond.Broadcast()
}

// Lengths returns the sizes of activeQ, backoffQ and the unschedulable map.
func (q *PriorityQueue) Lengths() (active, backoff, unschedulable int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.activeQ.len(), q.backoffQ.len(), len(q.unschedulable)
}

// Where reports which sub-queue holds the pod: "active", "backoff",
// "unschedulable" or "" if none. For tests and debugging.
func (q *PriorityQueue) Where(uid types.UID) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.activeQ.get(uid); ok {
		return "active"
	}
	if _, ok := q.backoffQ.get(uid); ok {
		return "backoff"
	}
	if _, ok := q.unschedulable[uid]; ok {
		return "unschedulable"
	}
	return ""
}

// AddNominatedPod records that pi should run on nodeName once room is made.
func (q *PriorityQueue) AddNominatedPod(pi *framework.PodInfo, nodeName string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addNominatedLocked(pi, nodeName)
}

// DeleteNominatedPodIfExists forgets pod's nomination.
func (q *PriorityQueue) DeleteNominatedPodIfExists(pod *v1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.deleteNominatedLocked(pod.UID)
}

// NominatedPodsForNode implements framework.PodNominator. The returned slice
// is a copy.
func (q *PriorityQueue) NominatedPodsForNode(nodeName string) []*framework.PodInfo {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]*framework.PodInfo(nil), q.nominated[nodeName]...)
}

func (q *PriorityQueue) nominateFromStatus(pi *framework.PodInfo) {
	if n := pi.Pod.Status.NominatedNodeName; n != "" {
		q.addNominatedLocked(pi, n)
	}
}

func (q *PriorityQueue) addNominatedLocked(pi *framework.PodInfo, nodeName string) {
	q.deleteNominatedLocked(pi.Pod.UID)
	q.nominatedNode[pi.Pod.UID] = nodeName
	q.nominated[nodeName] = append(q.nominated[nodeName], pi)
}

func (q *PriorityQueue) deleteNominatedLocked(uid types.UID) {
	node, ok := q.nominatedNode[uid]
	if !ok {
		return
	}
	delete(q.nominatedNode, uid)
	list := q.nominated[node]
	for i, pi := range list {
		if pi.Pod.UID == uid {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(q.nominated, node)
	} else {
		q.nominated[node] = list
	}
}
