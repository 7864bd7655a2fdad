package proxy

import (
	"context"
	"time"

	"k8s.io/utils/clock"
)

// maxRetryInterval caps the backoff between failed syncs.
const maxRetryInterval = 30 * time.Second

// syncRunner calls a sync function when asked to, but at most once per
// minInterval (requests in between coalesce into one call), at least once
// per maxInterval, and again after a failure with a backoff that starts at
// minInterval (1 s at least) and doubles up to maxRetryInterval. It is
// upstream's BoundedFrequencyRunner reduced to what the proxy needs.
type syncRunner struct {
	fn          func(context.Context) error // immutable
	minInterval time.Duration               // immutable
	maxInterval time.Duration               // immutable
	clock       clock.Clock                 // immutable
	// kick holds at most one pending request.
	kick chan struct{}
}

func newSyncRunner(fn func(context.Context) error, minInterval, maxInterval time.Duration, clk clock.Clock) *syncRunner {
	return &syncRunner{fn: fn, minInterval: minInterval, maxInterval: maxInterval, clock: clk, kick: make(chan struct{}, 1)}
}

// request asks for a sync; it never blocks. Safe for concurrent use.
func (r *syncRunner) request() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// loop runs syncs until ctx is done; the first one at once. Errors of fn
// are reported through onError and retried.
func (r *syncRunner) loop(ctx context.Context, onError func(error)) {
	var last time.Time // end of the last call; zero before the first
	pending := true
	retry := time.Duration(0) // current backoff; 0 when the last call succeeded
	for {
		var wait time.Duration
		switch {
		case retry > 0 && pending:
			wait = retry - r.clock.Since(last)
		case pending:
			wait = r.minInterval - r.clock.Since(last)
		default:
			wait = r.maxInterval - r.clock.Since(last)
		}
		if last.IsZero() {
			wait = 0
		}
		if wait > 0 {
			t := r.clock.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-r.kick:
				t.Stop()
				pending = true
				continue
			case <-t.C():
			}
		} else {
			// Drain a request that the coming call covers anyway.
			select {
			case <-r.kick:
			default:
			}
		}
		if ctx.Err() != nil {
			return
		}
		err := r.fn(ctx)
		last = r.clock.Now()
		pending = false
		if err == nil {
			retry = 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		onError(err)
		pending = true
		retry = min(max(2*retry, r.minInterval, time.Second), maxRetryInterval)
	}
}
