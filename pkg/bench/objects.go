package bench

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/json"
)

// payloadBytes pads the ConfigMaps so that each is about 200 bytes as JSON.
const payloadBytes = 50

// newConfigMap returns the small ConfigMap the benchmarks write; seq makes
// successive versions of one object differ.
func newConfigMap(namespace, name string, seq int) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: namespace,
			Name:      name,
			Labels:    map[string]string{"app.kubernetes.io/managed-by": "skiff-bench"},
		},
		Data: map[string]string{"payload": strings.Repeat("x", payloadBytes), "seq": strconv.Itoa(seq)},
	}
}

// objectSize returns the JSON size of cm as a client sends it, or 0 if it
// cannot be encoded.
func objectSize(cm *corev1.ConfigMap) int {
	b, err := json.Marshal(cm)
	if err != nil {
		return 0
	}
	return len(b)
}

// parallel calls do for i in [0, n) from up to workers goroutines and
// returns the first error; after an error no new calls start.
func parallel(ctx context.Context, n, workers int, do func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range min(max(1, workers), n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := do(ctx, i); err != nil {
					once.Do(func() { first = err })
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}
