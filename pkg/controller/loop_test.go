package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

func TestEnqueueKeys(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"}}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
	tests := []struct {
		name string
		obj  interface{}
		want []string
	}{
		{name: "namespaced object", obj: pod, want: []string{"default/web"}},
		{name: "cluster-scoped object", obj: node, want: []string{"n1"}},
		{name: "tombstone", obj: cache.DeletedFinalStateUnknown{Key: "default/gone", Obj: pod}, want: []string{"default/gone"}},
		{name: "not an object", obj: 42, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			l := NewLoop("test", func(_ context.Context, key string) error {
				got = append(got, key)
				return nil
			})
			l.Enqueue(tt.obj)
			for l.Len() > 0 {
				l.ProcessNextItem(context.Background())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("synced keys (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHandlersEnqueueNewObjectOnUpdate(t *testing.T) {
	var got []string
	l := NewLoop("test", func(_ context.Context, key string) error {
		got = append(got, key)
		return nil
	})
	h := l.Handlers()
	old := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "old"}}
	cur := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "new"}}
	h.OnUpdate(old, cur)
	h.OnAdd(old, false)
	h.OnDelete(cur) // deduplicated with the update's key: only two syncs
	for l.Len() > 0 {
		l.ProcessNextItem(context.Background())
	}
	if diff := cmp.Diff([]string{"a/new", "a/old"}, got); diff != "" {
		t.Errorf("synced keys (-want +got):\n%s", diff)
	}
}

func TestErrorHandling(t *testing.T) {
	tests := []struct {
		name         string
		err          error
		wantRequeues int
	}{
		{name: "success forgets", err: nil, wantRequeues: 0},
		{name: "error is rate-limited", err: errors.New("boom"), wantRequeues: 1},
		{name: "terminal error is forgotten", err: Terminal(errors.New("bad spec")), wantRequeues: 0},
		{name: "wrapped terminal error is forgotten", err: fmt.Errorf("sync: %w", Terminal(errors.New("bad"))), wantRequeues: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLoop("test", func(context.Context, string) error { return tt.err })
			l.EnqueueKey("k")
			l.ProcessNextItem(context.Background())
			if got := l.queue.NumRequeues("k"); got != tt.wantRequeues {
				t.Errorf("NumRequeues = %d, want %d", got, tt.wantRequeues)
			}
		})
	}
}

func TestDropAfterMaxRetries(t *testing.T) {
	l := NewLoop("test", func(context.Context, string) error { return errors.New("boom") })
	// Drive exactly MaxRetries failed syncs through handleErr, then one more.
	for i := range MaxRetries + 1 {
		l.handleErr(context.Background(), "k", errors.New("boom"))
		want := i + 1
		if i == MaxRetries {
			want = 0 // dropped and forgotten
		}
		if got := l.queue.NumRequeues("k"); got != want {
			t.Fatalf("after %d failures NumRequeues = %d, want %d", i+1, got, want)
		}
	}
}

func TestTerminalNil(t *testing.T) {
	if err := Terminal(nil); err != nil {
		t.Errorf("Terminal(nil) = %v, want nil", err)
	}
	if IsTerminal(errors.New("x")) {
		t.Error("IsTerminal(plain error) = true, want false")
	}
}

func TestRunStopsWorkers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var got []string
	synced := make(chan struct{})
	l := NewLoop("test", func(_ context.Context, key string) error {
		mu.Lock()
		got = append(got, key)
		mu.Unlock()
		close(synced)
		return nil
	})
	done := make(chan struct{})
	go func() {
		l.Run(ctx, 2)
		close(done)
	}()
	l.EnqueueKey("ns/a")
	<-synced
	cancel()
	<-done // Run must return only after the queue is shut down and workers exit
	if !l.queue.ShuttingDown() {
		t.Error("queue not shut down after Run returned")
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]string{"ns/a"}, got); diff != "" {
		t.Errorf("synced keys (-want +got):\n%s", diff)
	}
}
