package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// request performs the i-th request of a load phase (i counts from 0). It
// must be safe for concurrent use.
type request func(ctx context.Context, i int) error

// loadResult is what one load phase measured.
type loadResult struct {
	// Requests counts completed requests, failed ones included.
	Requests int `json:"requests"`
	// Errors counts failed requests; FirstError is the first failure.
	Errors     int    `json:"errors"`
	FirstError string `json:"firstError,omitempty"`
	// Throughput is completed requests per second of the phase's wall time.
	Throughput float64 `json:"throughputPerSec"`
	// Latency covers successful requests only.
	Latency Summary `json:"latency"`
}

// errorCount gathers failures from concurrent workers.
type errorCount struct {
	n     atomic.Int64
	once  sync.Once
	first string // written once under once; read after the workers stopped
}

func (e *errorCount) add(err error) {
	e.n.Add(1)
	e.once.Do(func() { e.first = err.Error() })
}

// openLoop issues rate requests per second for d, spread evenly, with at most
// concurrency of them in flight, and waits for all of them. Latency is
// measured from the time each request was due, not from when a worker got to
// send it: when the server falls behind, queueing shows up in the latency
// instead of silently lowering the request rate (no coordinated omission).
// It stops early, reporting what completed, when ctx is cancelled.
func openLoop(ctx context.Context, rate float64, concurrency int, d time.Duration, do request) loadResult {
	total := int(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	type job struct {
		i   int
		due time.Time
	}
	jobs := make(chan job, total)
	var lat Latencies
	var errs errorCount
	var wg sync.WaitGroup
	start := time.Now()
	for range max(1, concurrency) {
		wg.Go(func() {
			for j := range jobs {
				if err := do(ctx, j.i); err != nil {
					errs.add(err)
					continue
				}
				lat.Record(time.Since(j.due))
			}
		})
	}
	// Dispatch every request whose time has come, then sleep until the next
	// one is due; the jobs buffer holds the whole phase, so a slow server
	// never delays the schedule.
	timer := time.NewTimer(0)
	defer timer.Stop()
dispatch:
	for i := 0; i < total; {
		now := time.Now()
		for ; i < total; i++ {
			due := start.Add(time.Duration(i) * interval)
			if due.After(now) {
				timer.Reset(due.Sub(now))
				break
			}
			jobs <- job{i: i, due: due}
		}
		if i == total {
			break
		}
		select {
		case <-ctx.Done():
			break dispatch
		case <-timer.C:
		}
	}
	close(jobs)
	wg.Wait()
	return result(&lat, &errs, time.Since(start))
}

// closedLoop runs concurrency workers that each send requests back to back
// for d: the maximum throughput the server sustains at that concurrency.
// Latency is measured per request. It stops early when ctx is cancelled.
func closedLoop(ctx context.Context, concurrency int, d time.Duration, do request) loadResult {
	var lat Latencies
	var errs errorCount
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for range max(1, concurrency) {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(deadline) {
				i := int(next.Add(1) - 1)
				t0 := time.Now()
				if err := do(ctx, i); err != nil {
					errs.add(err)
					continue
				}
				lat.Record(time.Since(t0))
			}
		})
	}
	wg.Wait()
	return result(&lat, &errs, time.Since(start))
}

func result(lat *Latencies, errs *errorCount, elapsed time.Duration) loadResult {
	s := lat.Summary()
	n := s.Count + int(errs.n.Load())
	r := loadResult{Requests: n, Errors: int(errs.n.Load()), FirstError: errs.first, Latency: s}
	if elapsed > 0 {
		r.Throughput = float64(n) / elapsed.Seconds()
	}
	return r
}
