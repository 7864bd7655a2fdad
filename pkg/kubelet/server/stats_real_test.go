package server

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"

	"github.com/skiff-project/skiff/pkg/apiserver/apiservertest"
)

// TestRealStats runs a pod with a busy and an idle container on a private
// containerd, checks the CRI runtime's stats summary, then has a real API
// server scrape this kubelet server and serve the pod's usage through
// metrics.k8s.io.
func TestRealStats(t *testing.T) {
	env := newRealEnv(t)
	ctx := context.Background()
	grace := int64(1)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "burn", Namespace: "default", UID: types.UID("uid-stats-burn")},
		Spec: corev1.PodSpec{
			NodeName:                      "node1",
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{
				{Name: "busy", Image: "docker.io/library/busybox:1.36", ImagePullPolicy: corev1.PullIfNotPresent,
					Command: []string{"sh", "-c", "while true; do :; done"}},
				{Name: "idle", Image: "docker.io/library/busybox:1.36", ImagePullPolicy: corev1.PullIfNotPresent,
					Command: []string{"sleep", "3600"}},
			},
		},
	}
	env.runPod(t, pod, 2)

	find := func(sum *statsapi.Summary) *statsapi.PodStats {
		for i := range sum.Pods {
			if sum.Pods[i].PodRef.UID == string(pod.UID) {
				return &sum.Pods[i]
			}
		}
		t.Fatalf("pod %s not in the summary: %+v", pod.UID, sum.Pods)
		return nil
	}
	s1, err := env.runtime.Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	s2, err := env.runtime.Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p1, p2 := find(s1), find(s2)
	if p2.PodRef.Name != "burn" || p2.PodRef.Namespace != "default" || len(p2.Containers) != 2 ||
		p2.Containers[0].Name != "busy" || p2.Containers[1].Name != "idle" {
		t.Fatalf("pod stats: %+v", p2)
	}
	busy1, busy2 := p1.Containers[0], p2.Containers[0]
	if busy1.CPU == nil || busy2.CPU == nil || busy1.Memory == nil || busy2.Memory.WorkingSetBytes == nil || *busy2.Memory.WorkingSetBytes == 0 {
		t.Fatalf("busy container stats: cpu %+v memory %+v", busy2.CPU, busy2.Memory)
	}
	dt := busy2.CPU.Time.Sub(busy1.CPU.Time.Time)
	rate := float64(*busy2.CPU.UsageCoreNanoSeconds-*busy1.CPU.UsageCoreNanoSeconds) / dt.Seconds() / 1e9
	if dt <= 0 || rate < 0.2 {
		t.Errorf("busy container used %.2f cores over %v, want a busy loop's share of a CPU", rate, dt)
	}
	if busy2.CPU.UsageNanoCores == nil {
		t.Error("no usageNanoCores on the second summary")
	}
	if p2.CPU == nil || *p2.CPU.UsageCoreNanoSeconds < *busy2.CPU.UsageCoreNanoSeconds/2 || p2.Memory == nil {
		t.Errorf("pod cpu %+v memory %+v", p2.CPU, p2.Memory)
	}
	if n := s2.Node; n.CPU == nil || *n.CPU.UsageCoreNanoSeconds <= *s1.Node.CPU.UsageCoreNanoSeconds || n.Memory == nil || *n.Memory.WorkingSetBytes == 0 || n.Fs == nil {
		t.Errorf("node stats: %+v", n)
	}

	// The chain kubectl top uses: API server → kubelet /metrics/resource.
	ca := newTestCA(t)
	serving := ca.issue(t, pkix.Name{CommonName: "node1"}, true)
	ks, err := New(Config{Runtime: CRI{Runtime: env.conn.Runtime}, Stats: env.runtime, NodeName: "node1", Certificate: &serving, ClientCAs: ca.pool})
	if err != nil {
		t.Fatal(err)
	}
	port := startKubeletServer(t, ks)
	api := apiservertest.StartWith(t, apiservertest.Options{MetricsResolution: time.Second})
	apiClientCert := ca.issue(t, pkix.Name{CommonName: APIServerClientCN}, false)
	api.API.SetKubeletClient(&tls.Config{Certificates: []tls.Certificate{apiClientCert}, RootCAs: ca.pool})
	client := api.Client
	node, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(port)
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	apiPod := pod.DeepCopy()
	apiPod.UID = ""
	created, err := client.CoreV1().Pods("default").Create(ctx, apiPod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	created.Status.Phase = corev1.PodRunning
	if _, err := client.CoreV1().Pods("default").UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	mc, err := metricsclient.NewForConfig(api.Config)
	if err != nil {
		t.Fatal(err)
	}
	var pm *metricsv1beta1.PodMetrics
	deadline := time.Now().Add(30 * time.Second)
	for {
		pm, err = mc.MetricsV1beta1().PodMetricses("default").Get(ctx, "burn", metav1.GetOptions{})
		if err == nil {
			break
		}
		if !apierrors.IsNotFound(err) || time.Now().After(deadline) {
			t.Fatalf("pod metrics: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	usage := map[string]string{}
	for _, c := range pm.Containers {
		cpu, mem := c.Usage[corev1.ResourceCPU], c.Usage[corev1.ResourceMemory]
		usage[c.Name] = cpu.String() + " " + mem.String()
		if c.Name == "busy" && (cpu.MilliValue() < 200 || mem.Value() == 0) {
			t.Errorf("busy container usage %s, want ≥200m CPU and some memory", usage[c.Name])
		}
	}
	if len(usage) != 2 {
		t.Errorf("pod metrics containers = %v", usage)
	}
	nm, err := mc.MetricsV1beta1().NodeMetricses().Get(ctx, "node1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Node CPU comes from /proc/stat in 10 ms ticks, so the rate may well
	// be a whole number of millicores: only its size is checked.
	if cpu := nm.Usage[corev1.ResourceCPU]; cpu.MilliValue() < 200 {
		t.Errorf("node cpu %s, want ≥200m", cpu.String())
	}
	t.Logf("pod usage %v; node usage cpu %s memory %s over %v", usage, nm.Usage.Cpu(), nm.Usage.Memory(), nm.Window.Duration)
}
