package storage_test

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/skiff-project/skiff/pkg/storage"
)

func benchResource(b *testing.B) *storage.Resource {
	b.Helper()
	e := startEmbedded(b)
	st := storage.New(e.Client(), storage.Options{})
	b.Cleanup(st.Close)
	s := runtime.NewScheme()
	if err := scheme.AddToScheme(s); err != nil {
		b.Fatal(err)
	}
	codec := storage.NewProtobufCodec(s, corev1.SchemeGroupVersion.WithKind("Pod"))
	return st.Resource("/registry/pods/", codec, func() runtime.Object { return &corev1.Pod{} })
}

func benchPod(i int) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: fmt.Sprintf("pod-%d", i), Labels: map[string]string{"app": "bench"}},
		Spec:       corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}}},
	}
}

func BenchmarkCreate(b *testing.B) {
	r := benchResource(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.Create(ctx, fmt.Sprintf("/registry/pods/default/pod-%d", i), benchPod(i)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGet(b *testing.B) {
	r := benchResource(b)
	ctx := context.Background()
	if _, err := r.Create(ctx, "/registry/pods/default/pod-0", benchPod(0)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.Get(ctx, "/registry/pods/default/pod-0"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkListFromCache1000(b *testing.B) {
	r := benchResource(b)
	ctx := context.Background()
	for i := range 1000 {
		if _, err := r.Create(ctx, fmt.Sprintf("/registry/pods/default/pod-%04d", i), benchPod(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := r.List(ctx, "/registry/pods/", storage.ListOptions{ResourceVersion: "0"})
		if err != nil || len(res.Items) != 1000 {
			b.Fatalf("List: %v (%d items)", err, len(res.Items))
		}
	}
}

// BenchmarkWatchFanout measures one write reaching 100 watchers.
func BenchmarkWatchFanout(b *testing.B) {
	r := benchResource(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const watchers = 100
	received := make(chan int, watchers)
	for range watchers {
		w, err := r.Watch(ctx, "/registry/pods/", storage.WatchOptions{ResourceVersion: "0"})
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			n := 0
			for range w.ResultChan() {
				n++
				if n == b.N {
					break
				}
			}
			received <- n
			w.Stop()
		}()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.Create(ctx, fmt.Sprintf("/registry/pods/default/pod-%d", i), benchPod(i)); err != nil {
			b.Fatal(err)
		}
	}
	for range watchers {
		if n := <-received; n != b.N {
			b.Fatalf("a watcher got %d of %d events", n, b.N)
		}
	}
}
