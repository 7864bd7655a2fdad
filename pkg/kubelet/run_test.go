package kubelet_test

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/skiff-project/skiff/pkg/kubelet"
	"github.com/skiff-project/skiff/pkg/kubelet/simruntime"
)

func newSimKubelet(t testing.TB, client kubernetes.Interface, clk *clocktesting.FakeClock, name string, i int, pods *kubelet.PodSource) *kubelet.Kubelet {
	t.Helper()
	rt, err := simruntime.New(simruntime.Config{
		Clock: clk, NodeIP: fmt.Sprintf("100.64.%d.%d", i>>8, i&255), JobDuration: 2 * time.Second,
		FallbackCIDR: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(128 + i>>8), byte(i), 0}), 24),
	})
	if err != nil {
		t.Fatal(err)
	}
	k, err := kubelet.New(kubelet.Config{
		NodeName: name, Client: client, Runtime: rt, Clock: clk, Pods: pods,
		Recorder: &record.FakeRecorder{},
		Capacity: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("110"), corev1.ResourceCPU: resource.MustParse("4")},
		Workers:  1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestRunRunsBoundPodAndStopsCleanly drives a whole Kubelet through Run
// with the simulated runtime: registration, Lease, a pod going Running,
// and a clean stop that leaves no goroutine behind.
func TestRunRunsBoundPodAndStopsCleanly(t *testing.T) {
	before := runtime.NumGoroutine()
	client := fake.NewClientset()
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	k := newSimKubelet(t, client, clk, "node-a", 1, nil)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := client.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	<-k.Registered()

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "uid-1"},
		Spec:       corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "c", Image: "nginx:1.25"}}},
	}
	if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got *corev1.Pod
	for ev := range w.ResultChan() {
		if p, ok := ev.Object.(*corev1.Pod); ok && ev.Type == watch.Modified && p.Status.Phase == corev1.PodRunning {
			got = p
			break
		}
	}
	if got == nil {
		t.Fatal("watch closed before the pod was Running")
	}
	if diff := cmp.Diff([]corev1.PodIP{{IP: "10.128.1.2"}}, got.Status.PodIPs); diff != "" {
		t.Errorf("pod IPs (-want +got):\n%s", diff)
	}
	// The Lease was created at registration.
	lease, err := client.CoordinationV1().Leases("kube-node-lease").Get(ctx, "node-a", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("lease: %v", err)
	}
	if diff := cmp.Diff("node-a", *lease.Spec.HolderIdentity); diff != "" {
		t.Errorf("lease holder (-want +got):\n%s", diff)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v, want nil", err)
	}
	w.Stop()
	// Every goroutine Run started has exited (fake clientset watchers
	// may take a moment to unwind, hence the bounded wait on the count).
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("goroutines: %d before Run, %d after it returned", before, n)
	}
}

// BenchmarkHollowNodes measures memory and allocations of many kubelets
// sharing one pod source, each registered with pods running: the cost
// `skiff sim` pays per node. Reports bytes of live heap per node.
func BenchmarkHollowNodes(b *testing.B) {
	const nodes, podsPerNode = 100, 10
	for b.Loop() {
		client := fake.NewClientset()
		clk := clocktesting.NewFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
		pods := kubelet.NewPodSource(client, "")
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { pods.Run(ctx) })

		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		ks := make([]*kubelet.Kubelet, nodes)
		for i := range ks {
			ks[i] = newSimKubelet(b, client, clk, fmt.Sprintf("hollow-%d", i), i, pods)
			wg.Go(func() { _ = ks[i].Run(ctx) })
		}
		for _, k := range ks {
			<-k.Registered()
		}
		w, err := client.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		// Drain the watch concurrently: the fake watcher's buffer is small.
		allRunning := make(chan struct{})
		go func() {
			running := 0
			for ev := range w.ResultChan() {
				if p, ok := ev.Object.(*corev1.Pod); ok && ev.Type == watch.Modified && p.Status.Phase == corev1.PodRunning {
					if running++; running == nodes*podsPerNode {
						close(allRunning)
					}
				}
			}
		}()
		for i := range nodes * podsPerNode {
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%d", i), Namespace: "default", UID: types.UID(fmt.Sprint("u", i))},
				Spec:       corev1.PodSpec{NodeName: fmt.Sprintf("hollow-%d", i%nodes), Containers: []corev1.Container{{Name: "c", Image: "pause"}}},
			}
			if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		<-allRunning
		w.Stop()
		runtime.GC()
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/nodes, "heapB/node")
		b.ReportMetric(float64(runtime.NumGoroutine())/nodes, "goroutines/node")
		cancel()
		wg.Wait()
	}
}
