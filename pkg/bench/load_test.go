package bench

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestOpenLoopSendsRateTimesDurationRequests(t *testing.T) {
	var mu sync.Mutex
	seen := map[int]bool{}
	r := openLoop(context.Background(), 1000, 4, 50*time.Millisecond, func(_ context.Context, i int) error {
		mu.Lock()
		defer mu.Unlock()
		seen[i] = true
		return nil
	})
	if r.Requests != 50 || r.Errors != 0 || r.Latency.Count != 50 {
		t.Errorf("requests=%d errors=%d latency samples=%d, want 50, 0, 50", r.Requests, r.Errors, r.Latency.Count)
	}
	for i := range 50 {
		if !seen[i] {
			t.Errorf("request %d never sent", i)
		}
	}
}

// A server slower than the schedule must show up as latency: each request
// is timed from when it was due, not from when a worker was free to send
// it. With one worker and 5 ms per request, the 50th request (due at 49 ms)
// cannot finish before 250 ms, so its latency is at least 201 ms.
func TestOpenLoopCountsQueueingInLatency(t *testing.T) {
	r := openLoop(context.Background(), 1000, 1, 50*time.Millisecond, func(context.Context, int) error {
		time.Sleep(5 * time.Millisecond)
		return nil
	})
	if r.Latency.MaxMs < 201 {
		t.Errorf("max latency %.1f ms, want >= 201 ms (coordinated omission)", r.Latency.MaxMs)
	}
}

func TestLoadCountsErrorsApartFromLatency(t *testing.T) {
	boom := errors.New("boom")
	do := func(_ context.Context, i int) error {
		if i%2 == 1 {
			return boom
		}
		return nil
	}
	for name, r := range map[string]loadResult{
		"open":   openLoop(context.Background(), 1000, 2, 20*time.Millisecond, do),
		"closed": closedLoop(context.Background(), 2, 20*time.Millisecond, do),
	} {
		if r.Errors == 0 || r.FirstError != "boom" || r.Latency.Count+r.Errors != r.Requests {
			t.Errorf("%s loop: requests=%d errors=%d first=%q latency samples=%d; want errors counted apart",
				name, r.Requests, r.Errors, r.FirstError, r.Latency.Count)
		}
	}
}

func TestLoadStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// A day-long phase returns at once.
	if r := openLoop(ctx, 1, 1, 24*time.Hour, func(context.Context, int) error { return nil }); r.Requests > 1 {
		t.Errorf("open loop sent %d requests after cancellation", r.Requests)
	}
	if r := closedLoop(ctx, 1, 24*time.Hour, func(context.Context, int) error { return nil }); r.Requests != 0 {
		t.Errorf("closed loop sent %d requests after cancellation", r.Requests)
	}
}

func TestParallelReturnsFirstErrorAndStops(t *testing.T) {
	boom := errors.New("boom")
	var mu sync.Mutex
	calls := 0
	err := parallel(context.Background(), 1000, 1, func(_ context.Context, i int) error {
		mu.Lock()
		calls++
		mu.Unlock()
		if i == 3 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || calls != 4 {
		t.Errorf("parallel() = %v after %d calls, want boom after 4", err, calls)
	}
	if err := parallel(context.Background(), 10, 4, func(context.Context, int) error { return nil }); err != nil {
		t.Errorf("parallel() = %v, want nil", err)
	}
}
