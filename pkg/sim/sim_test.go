package sim

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
)

// lineWriter forwards each written line to a channel.
type lineWriter struct {
	mu    sync.Mutex
	lines chan string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		w.lines <- l
	}
	return len(p), nil
}

var _ io.Writer = (*lineWriter)(nil)

func TestRunRegistersNodesAndRunsPods(t *testing.T) {
	client := fake.NewClientset()
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	o := DefaultOptions()
	o.Nodes, o.NamePrefix, o.Events = 3, "t", false
	// The clock is fake: no startup delay, or the pod would wait for it.
	o.PodStartupDelay = 0
	out := &lineWriter{lines: make(chan string, 16)}

	// The deadline ends the watch (and so the test) if the pod never runs.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w, err := client.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	done := make(chan error, 1)
	go func() { done <- run(ctx, client, clk, o, out) }()

	var progress []string
	for l := range out.lines {
		progress = append(progress, l)
		if l == "registered 3/3 nodes" {
			break
		}
	}
	if diff := cmp.Diff([]string{"registered 1/3 nodes", "registered 2/3 nodes", "registered 3/3 nodes"}, progress); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range nodes.Items {
		names = append(names, n.Name+" "+n.Status.NodeInfo.ContainerRuntimeVersion+" "+n.Status.Addresses[0].Address)
	}
	base := prefixBase("t")
	want := []string{
		"t-0 sim://1.0.0 " + nodeAddr(base, 0).String(),
		"t-1 sim://1.0.0 " + nodeAddr(base, 1).String(),
		"t-2 sim://1.0.0 " + nodeAddr(base, 2).String(),
	}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "u1"},
		Spec:       corev1.PodSpec{NodeName: "t-1", Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
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
	if diff := cmp.Diff(fallbackCIDR(base, 1).Addr().Next().Next().String(), got.Status.PodIP); diff != "" {
		t.Errorf("pod IP (-want +got):\n%s", diff)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run returned %v, want nil", err)
	}
}

func TestAddressesAreDistinct(t *testing.T) {
	seenNode := map[string]int{}
	seenCIDR := map[string]int{}
	for i := range 1024 {
		n, c := nodeAddr(prefixBase("sim"), i).String(), fallbackCIDR(prefixBase("sim"), i).String()
		if j, dup := seenNode[n]; dup {
			t.Fatalf("nodes %d and %d share address %s", j, i, n)
		}
		if j, dup := seenCIDR[c]; dup {
			t.Fatalf("nodes %d and %d share fallback CIDR %s", j, i, c)
		}
		seenNode[n], seenCIDR[c] = i, i
	}
}

func TestNewCommandFlags(t *testing.T) {
	cmd := NewCommand()
	if err := cmd.ParseFlags([]string{"--kubeconfig", "k", "--nodes", "5", "--name-prefix", "b", "--cpu", "8", "--job-duration", "3s"}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range []string{"kubeconfig", "nodes", "name-prefix", "cpu", "memory", "pods", "job-duration", "pod-startup-delay", "qps", "burst"} {
		got = append(got, f+"="+cmd.Flags().Lookup(f).Value.String())
	}
	want := []string{"kubeconfig=k", "nodes=5", "name-prefix=b", "cpu=8", "memory=8Gi", "pods=110", "job-duration=3s", "pod-startup-delay=100ms", "qps=1000", "burst=2000"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("flags (-want +got):\n%s", diff)
	}
}
