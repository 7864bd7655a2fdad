package agent

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-project/skiff/pkg/apiserver/apiservertest"
	"github.com/skiff-project/skiff/pkg/containerd/containerdtest"
	"github.com/skiff-project/skiff/pkg/images"
)

// BenchmarkPodStartup measures one pod's startup on a real agent and
// containerd, one pod at a time: from the create request to the pod seen
// Running with condition Ready (polled every 5 ms), with the pod already
// bound to the node (there is no scheduler here). `skiff bench pods`
// measures bursts of pods through the whole control plane.
//
//	go test -run '^$' -bench PodStartup -benchtime 20x ./pkg/agent/
func BenchmarkPodStartup(b *testing.B) {
	skipUnlessNodeB(b)
	srv := apiservertest.Start(b)
	client := srv.Client
	ctx := context.Background()
	suffix := containerdtest.RandomHex(b, 3)
	cfg := Config{
		RestConfig:                srv.Config,
		NodeName:                  "bench-node-" + suffix,
		DataDir:                   b.TempDir(),
		BridgeName:                "skb" + suffix,
		NetworkName:               "skiff-bench-" + suffix,
		CgroupRoot:                "/skiff-bench-" + suffix,
		NodeStatusUpdateFrequency: time.Second,
	}
	b.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := Cleanup(cctx, cfg.DataDir, cfg.BridgeName, cfg.CgroupRoot); err != nil {
			b.Errorf("cleanup: %v", err)
		}
	})
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		b.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(runCtx, cfg) }()
	b.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			b.Errorf("agent: %v", err)
		}
	})
	node := pollB(b, 2*time.Minute, "node registered", func() (*corev1.Node, bool) {
		n, err := client.CoreV1().Nodes().Get(ctx, cfg.NodeName, metav1.GetOptions{})
		return n, err == nil
	})
	cidr := containerdtest.FreeCIDR(b, 214).String()
	node.Spec.PodCIDR, node.Spec.PodCIDRs = cidr, []string{cidr}
	if _, err := client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		b.Fatal(err)
	}
	start := func(i int) {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-%d", i), Namespace: "default"},
			Spec: corev1.PodSpec{
				NodeName:                      cfg.NodeName,
				TerminationGracePeriodSeconds: new(int64(1)),
				Containers: []corev1.Container{{
					Name: "main", Image: images.BusyboxRef, ImagePullPolicy: corev1.PullIfNotPresent,
					Command: []string{"sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"},
				}},
			},
		}
		if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		pollB(b, time.Minute, pod.Name+" Ready", func() (string, bool) {
			p, err := client.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
			if err != nil {
				return err.Error(), false
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					return "", true
				}
			}
			return string(p.Status.Phase), false
		})
	}
	start(-1) // warm-up: the first pod's cgroups and bridge
	b.ResetTimer()
	for i := range b.N {
		start(i)
	}
	b.StopTimer()
	if err := client.CoreV1().Pods("default").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		b.Error(err)
	}
	pollB(b, 2*time.Minute, "pods gone", func() (int, bool) {
		l, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		return len(l.Items), err == nil && len(l.Items) == 0
	})
}

// skipUnlessNodeB is skipUnlessNode for benchmarks.
func skipUnlessNodeB(b *testing.B) {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root: runs a private containerd with CNI networking")
	}
	for _, bin := range []string{"containerd", "ctr", "runc", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			b.Skipf("%s not installed (run hack/setup.sh): %v", bin, err)
		}
	}
	for _, f := range []string{"/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/portmap", DefaultBusybox} {
		if _, err := os.Stat(f); err != nil {
			b.Skipf("%s missing (run hack/setup.sh): %v", f, err)
		}
	}
}

// pollB polls f every 5 ms until it reports done, failing the benchmark
// after timeout.
func pollB[T any](b *testing.B, timeout time.Duration, what string, f func() (T, bool)) T {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v, ok := f()
		if ok {
			return v
		}
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %v waiting for %s (last: %+v)", timeout, what, v)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
