package criruntime

import (
	"strings"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// backoff is upstream's per-key exponential backoff (flowcontrol.Backoff):
// the first Next allows an action at once and sets the delay to initial;
// each later Next doubles it up to max. An entry is reset when the failure
// came more than 2*max after the last Next. Keys start with "<pod uid>/" so a pod's entries can be forgotten
// together. It is safe for concurrent use.
type backoff struct {
	clock        clock.PassiveClock // immutable
	initial, max time.Duration      // immutable

	mu      sync.Mutex
	entries map[string]backoffEntry // guarded by mu
}

type backoffEntry struct {
	delay      time.Duration
	lastUpdate time.Time
}

func newBackoff(c clock.PassiveClock, initial, max time.Duration) *backoff {
	return &backoff{clock: c, initial: initial, max: max, entries: map[string]backoffEntry{}}
}

// next records an action for key at eventTime and grows the delay.
func (b *backoff) next(key string, eventTime time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[key]
	switch {
	case !ok || eventTime.Sub(e.lastUpdate) > 2*b.max:
		e.delay = b.initial
	default:
		e.delay = min(2*e.delay, b.max)
	}
	e.lastUpdate = b.clock.Now()
	b.entries[key] = e
}

// remaining returns how long key stays in backoff counted from eventTime
// (the last failure), and the current delay; zero remaining means an
// action may happen now.
func (b *backoff) remaining(key string, eventTime time.Time) (left, delay time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[key]
	if !ok {
		return 0, 0
	}
	if eventTime.Sub(e.lastUpdate) > 2*b.max {
		return 0, e.delay
	}
	if left = e.delay - b.clock.Now().Sub(eventTime); left < 0 {
		left = 0
	}
	return left, e.delay
}

// sinceUpdate returns how long key stays in backoff counted from its last
// next (upstream's IsInBackOffSinceUpdate); zero means an action may
// happen now.
func (b *backoff) sinceUpdate(key string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[key]
	if !ok {
		return 0
	}
	return max(0, e.delay-b.clock.Now().Sub(e.lastUpdate))
}

// forget drops every entry whose key starts with prefix + "/".
func (b *backoff) forget(prefix string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k := range b.entries {
		if strings.HasPrefix(k, prefix+"/") {
			delete(b.entries, k)
		}
	}
}
