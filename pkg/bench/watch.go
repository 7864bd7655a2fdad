package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// sentAnnotation carries the send time of a watch benchmark object, in
// nanoseconds since the start of the phase on the sender's monotonic clock.
// Only the benchmark process reads it, so no clock synchronization matters.
const sentAnnotation = "bench.skiff.dev/sent-ns"

// deliveryGrace bounds the wait for the last events once writing stopped.
const deliveryGrace = 10 * time.Second

// watchFanout opens watchers watches on the ConfigMaps of namespace (which
// must have none), creates objects there at rate per second for d, and
// measures, for every watcher and object, the time from just before the
// create to the watcher's receipt of the ADDED event.
// Writes are paced like openLoop with at most concurrency in flight.
func watchFanout(ctx context.Context, client kubernetes.Interface, namespace string, watchers int, rate float64, concurrency int, d, timeout time.Duration) (*watchStat, error) {
	cms := client.CoreV1().ConfigMaps(namespace)
	// Watching from the list's resourceVersion delivers every later event
	// even if the server registers a watch after returning its headers.
	listCtx, cancel := context.WithTimeout(ctx, timeout)
	list, err := cms.List(listCtx, metav1.ListOptions{})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("list %s before watching: %w", namespace, err)
	}
	watchCtx, stopWatches := context.WithCancel(ctx)
	defer stopWatches()
	var ws []watch.Interface
	defer func() {
		for _, w := range ws {
			w.Stop()
		}
	}()
	for i := range watchers {
		w, err := cms.Watch(watchCtx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, AllowWatchBookmarks: true})
		if err != nil {
			return nil, fmt.Errorf("open watch %d of %d: %w", i+1, watchers, err)
		}
		ws = append(ws, w)
	}

	var (
		delivery  Latencies
		delivered atomic.Int64
		watchErrs errorCount
		wg        sync.WaitGroup
	)
	start := time.Now()
	for _, w := range ws {
		wg.Go(func() {
			for ev := range w.ResultChan() {
				switch ev.Type {
				case watch.Added:
					cm, ok := ev.Object.(*corev1.ConfigMap)
					if !ok {
						continue
					}
					sent, err := strconv.ParseInt(cm.Annotations[sentAnnotation], 10, 64)
					if err != nil {
						continue
					}
					delivery.Record(time.Since(start) - time.Duration(sent))
					delivered.Add(1)
				case watch.Error:
					if watchCtx.Err() == nil { // else: our own shutdown
						watchErrs.add(fmt.Errorf("watch error event: %v", apierrors.FromObject(ev.Object)))
					}
					return
				}
			}
			if watchCtx.Err() == nil {
				watchErrs.add(fmt.Errorf("watch ended early"))
			}
		})
	}

	write := openLoop(ctx, rate, concurrency, d, func(ctx context.Context, i int) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		cm := newConfigMap(namespace, fmt.Sprintf("event-%d", i), i)
		cm.Annotations = map[string]string{sentAnnotation: strconv.FormatInt(int64(time.Since(start)), 10)}
		_, err := cms.Create(ctx, cm, metav1.CreateOptions{})
		return err
	})
	events := write.Requests - write.Errors
	expected := int64(events * watchers)
	// Wait for the stragglers, then stop the watches and their readers.
	deadline := time.Now().Add(deliveryGrace)
	for delivered.Load() < expected && time.Now().Before(deadline) && ctx.Err() == nil && watchErrs.n.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	stopWatches()
	for _, w := range ws {
		w.Stop()
	}
	wg.Wait()
	ws = nil
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("interrupted during watch fan-out: %w", err)
	}
	return &watchStat{
		Watchers:        watchers,
		Rate:            rate,
		Events:          events,
		Expected:        int(expected),
		Delivered:       int(delivered.Load()),
		Write:           write,
		Delivery:        delivery.Summary(),
		WatchErrors:     int(watchErrs.n.Load()),
		FirstWatchError: watchErrs.first,
	}, nil
}
