package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-project/skiff/pkg/apiserver/apiservertest"
	skiffbench "github.com/skiff-project/skiff/pkg/bench"
)

// namespace is where the benchmarks put their objects.
const namespace = "bench"

// parallelism multiplies GOMAXPROCS into the client goroutines of the
// parallel sub-benchmarks (16 on 2 cores, as `skiff bench api` uses).
const parallelism = 8

// startServer starts an in-process API server with a namespace to work in
// and returns a client without client-side rate limit.
func startServer(b *testing.B) kubernetes.Interface {
	b.Helper()
	s := apiservertest.Start(b)
	cfg := rest.CopyConfig(s.Config)
	cfg.QPS, cfg.Burst = -1, 0
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatalf("client: %v", err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if _, err := client.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		b.Fatalf("create namespace: %v", err)
	}
	return client
}

// configMap returns a ConfigMap of about 200 bytes; seq makes versions differ.
func configMap(name string, seq int) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{"app": "bench"}},
		Data:       map[string]string{"payload": strings.Repeat("x", 50), "seq": strconv.Itoa(seq)},
	}
}

// seed creates n ConfigMaps named prefix-0 .. prefix-(n-1).
func seed(b *testing.B, client kubernetes.Interface, prefix string, n int) {
	b.Helper()
	for i := range n {
		if _, err := client.CoreV1().ConfigMaps(namespace).Create(context.Background(), configMap(fmt.Sprintf("%s-%d", prefix, i), i), metav1.CreateOptions{}); err != nil {
			b.Fatalf("seed: %v", err)
		}
	}
}

// reportLatency adds the latency percentiles of lat to b's results.
func reportLatency(b *testing.B, lat *skiffbench.Latencies) {
	s := lat.Summary()
	b.ReportMetric(s.P50Ms, "p50-ms")
	b.ReportMetric(s.P90Ms, "p90-ms")
	b.ReportMetric(s.P99Ms, "p99-ms")
}

// runRequests measures do, which the i-th request calls with its own i
// (unique across the whole benchmark run thanks to next): "serial" sends one
// request at a time (pure latency), "parallel" keeps GOMAXPROCS×parallelism
// in flight (throughput; ns/op is then wall time per request).
func runRequests(b *testing.B, do func(ctx context.Context, i int) error) {
	var next atomic.Int64
	b.Run("serial", func(b *testing.B) {
		var lat skiffbench.Latencies
		ctx := context.Background()
		for b.Loop() {
			i := int(next.Add(1))
			t0 := time.Now()
			if err := do(ctx, i); err != nil {
				b.Fatal(err)
			}
			lat.Record(time.Since(t0))
		}
		reportLatency(b, &lat)
	})
	b.Run("parallel", func(b *testing.B) {
		var lat skiffbench.Latencies
		b.SetParallelism(parallelism)
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			for pb.Next() {
				i := int(next.Add(1))
				t0 := time.Now()
				if err := do(ctx, i); err != nil {
					b.Error(err)
					return
				}
				lat.Record(time.Since(t0))
			}
		})
		reportLatency(b, &lat)
	})
}

func BenchmarkCreateConfigMap(b *testing.B) {
	cms := startServer(b).CoreV1().ConfigMaps(namespace)
	runRequests(b, func(ctx context.Context, i int) error {
		_, err := cms.Create(ctx, configMap(fmt.Sprintf("cm-%d", i), i), metav1.CreateOptions{})
		return err
	})
}

func BenchmarkGetConfigMap(b *testing.B) {
	client := startServer(b)
	seed(b, client, "cm", 100)
	cms := client.CoreV1().ConfigMaps(namespace)
	runRequests(b, func(ctx context.Context, i int) error {
		_, err := cms.Get(ctx, fmt.Sprintf("cm-%d", i%100), metav1.GetOptions{})
		return err
	})
}

// BenchmarkUpdateConfigMap updates unconditionally (no resourceVersion), so
// parallel updates of one object never conflict.
func BenchmarkUpdateConfigMap(b *testing.B) {
	client := startServer(b)
	seed(b, client, "cm", 100)
	cms := client.CoreV1().ConfigMaps(namespace)
	runRequests(b, func(ctx context.Context, i int) error {
		_, err := cms.Update(ctx, configMap(fmt.Sprintf("cm-%d", i%100), i), metav1.UpdateOptions{})
		return err
	})
}

// BenchmarkListConfigMaps100 lists a namespace of 100 ConfigMaps, reading
// the latest state (resourceVersion "", as kubectl does).
func BenchmarkListConfigMaps100(b *testing.B) {
	client := startServer(b)
	seed(b, client, "cm", 100)
	cms := client.CoreV1().ConfigMaps(namespace)
	runRequests(b, func(ctx context.Context, _ int) error {
		l, err := cms.List(ctx, metav1.ListOptions{})
		if err == nil && len(l.Items) != 100 {
			err = fmt.Errorf("listed %d ConfigMaps, want 100", len(l.Items))
		}
		return err
	})
}

// BenchmarkWatchFanout creates one ConfigMap per iteration and waits until
// each of W watchers received its ADDED event. ns/op is the time for an
// event to reach all W; p50-ms and p99-ms are per delivery, from just
// before the create to one watcher's receipt.
func BenchmarkWatchFanout(b *testing.B) {
	client := startServer(b)
	cms := client.CoreV1().ConfigMaps(namespace)
	var next atomic.Int64
	for _, watchers := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("watchers=%d", watchers), func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			list, err := cms.List(ctx, metav1.ListOptions{})
			if err != nil {
				b.Fatal(err)
			}
			// Each received event's latency, from any watcher.
			received := make(chan time.Duration, watchers)
			start := time.Now()
			var wg sync.WaitGroup
			defer wg.Wait() // after cancel and Stop, deferred below
			for range watchers {
				w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
				if err != nil {
					b.Fatalf("watch: %v", err)
				}
				defer w.Stop()
				wg.Go(func() { forwardLatencies(ctx, w, start, received) })
			}

			var lat skiffbench.Latencies
			for b.Loop() {
				i := int(next.Add(1))
				cm := configMap(fmt.Sprintf("watched-%d", i), i)
				cm.Annotations = map[string]string{"sent-ns": strconv.FormatInt(int64(time.Since(start)), 10)}
				if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
					b.Fatal(err)
				}
				for range watchers {
					select {
					case d := <-received:
						lat.Record(d)
					case <-time.After(30 * time.Second):
						b.Fatalf("event %d: only some of %d watchers received it within 30s", i, watchers)
					}
				}
			}
			reportLatency(b, &lat)
			cancel()
		})
	}
}

// forwardLatencies sends to out, for each ADDED event on w, the time from
// the event's "sent-ns" annotation (nanoseconds since start) to now. It
// returns when w ends or ctx is done.
func forwardLatencies(ctx context.Context, w watch.Interface, start time.Time, out chan<- time.Duration) {
	for ev := range w.ResultChan() {
		cm, ok := ev.Object.(*corev1.ConfigMap)
		if ev.Type != watch.Added || !ok {
			continue
		}
		sent, err := strconv.ParseInt(cm.Annotations["sent-ns"], 10, 64)
		if err != nil {
			continue
		}
		select {
		case out <- time.Since(start) - time.Duration(sent):
		case <-ctx.Done():
			return
		}
	}
}
