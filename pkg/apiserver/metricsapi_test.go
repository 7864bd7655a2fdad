package apiserver_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"

	"github.com/skiff-project/skiff/pkg/apiserver/apiservertest"
)

// metricsKubelet serves /metrics/resource like a kubelet whose node uses
// 2 cores and whose containers use steady rates since start.
type metricsKubelet struct {
	start time.Time
	// containers are "namespace/pod/container" → cores used.
	containers map[string]float64
}

func (k *metricsKubelet) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/metrics/resource" {
		http.NotFound(w, r)
		return
	}
	now := time.Now()
	ts := now.UnixMilli()
	elapsed := float64(now.UnixMilli()-k.start.UnixMilli()) / 1000
	fmt.Fprintf(w, "# TYPE node_cpu_usage_seconds_total counter\nnode_cpu_usage_seconds_total %g %d\n", 100+2*elapsed, ts)
	fmt.Fprintf(w, "node_memory_working_set_bytes %d %d\n", 3<<30, ts)
	for key, cores := range k.containers {
		p := strings.Split(key, "/")
		labels := fmt.Sprintf(`{container=%q,namespace=%q,pod=%q}`, p[2], p[0], p[1])
		fmt.Fprintf(w, "container_start_time_seconds%s %d %d\n", labels, k.start.Unix(), k.start.UnixMilli())
		fmt.Fprintf(w, "container_cpu_usage_seconds_total%s %g %d\n", labels, cores*elapsed, ts)
		fmt.Fprintf(w, "container_memory_working_set_bytes%s %d %d\n", labels, 10<<20, ts)
	}
	fmt.Fprintf(w, "resource_scrape_error 0\n")
}

func near(got int64, want float64) bool { return math.Abs(float64(got)-want) <= want*0.02 }

func TestMetricsAPI(t *testing.T) {
	ctx := context.Background()
	s := apiservertest.StartWith(t, apiservertest.Options{MetricsResolution: time.Second})
	client := s.Client

	kubeletCert, _ := selfSigned(t, "node1")
	apiCert, apiPool := selfSigned(t, "kube-apiserver-kubelet-client")
	fk := &metricsKubelet{start: time.Now().Add(-time.Minute), containers: map[string]float64{
		"default/web/nginx": 0.25, "default/web/side": 0.05, "default/idle/c": 0.001, "kube-system/dns/c": 0.01,
		"default/pending/c": 0.5,
	}}
	kl := httptest.NewUnstartedServer(fk)
	kl.TLS = &tls.Config{Certificates: []tls.Certificate{kubeletCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: apiPool}
	kl.StartTLS()
	t.Cleanup(kl.Close)
	s.API.SetKubeletClient(&tls.Config{Certificates: []tls.Certificate{apiCert}, InsecureSkipVerify: true})

	// node1 has the kubelet; node2's kubelet port has nothing behind it.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPort := dead.Addr().(*net.TCPAddr).Port
	dead.Close()
	for name, port := range map[string]int{"node1": kl.Listener.Addr().(*net.TCPAddr).Port, "node2": deadPort} {
		node, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"zone": name}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
		node.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(port)
		if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []struct {
		ns, name string
		phase    corev1.PodPhase
	}{{"default", "web", corev1.PodRunning}, {"default", "idle", corev1.PodRunning}, {"kube-system", "dns", corev1.PodRunning}, {"default", "pending", corev1.PodPending}} {
		pod, err := client.CoreV1().Pods(p.ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: p.name, Labels: map[string]string{"app": p.name}},
			Spec:       corev1.PodSpec{NodeName: "node1", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pod.Status.Phase = p.phase
		if _, err := client.CoreV1().Pods(p.ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	mc, err := metricsclient.NewForConfig(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	var nm *metricsv1beta1.NodeMetrics
	deadline := time.Now().Add(30 * time.Second)
	for {
		nm, err = mc.MetricsV1beta1().NodeMetricses().Get(ctx, "node1", metav1.GetOptions{})
		if err == nil {
			break
		}
		if !apierrors.IsNotFound(err) || time.Now().After(deadline) {
			t.Fatalf("node metrics of node1: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	t.Run("node metrics", func(t *testing.T) {
		cpu, mem := nm.Usage[corev1.ResourceCPU], nm.Usage[corev1.ResourceMemory]
		if !near(cpu.ScaledValue(-9), 2e9) || mem.Value() != 3<<30 {
			t.Errorf("node1 usage cpu %s memory %s, want 2 cores and 3Gi", cpu.String(), mem.String())
		}
		if nm.Window.Duration <= 0 || nm.Timestamp.IsZero() || nm.Labels["zone"] != "node1" {
			t.Errorf("node1 metrics window %v timestamp %v labels %v", nm.Window.Duration, nm.Timestamp, nm.Labels)
		}
		_, err := mc.MetricsV1beta1().NodeMetricses().Get(ctx, "node2", metav1.GetOptions{})
		if !apierrors.IsNotFound(err) || err.Error() != `nodemetrics.metrics.k8s.io "node2" not found` {
			t.Errorf("node without a kubelet: %v", err)
		}
		_, err = mc.MetricsV1beta1().NodeMetricses().Get(ctx, "nope", metav1.GetOptions{})
		if !apierrors.IsNotFound(err) || err.Error() != `nodes "nope" not found` {
			t.Errorf("missing node: %v", err)
		}
		for sel, want := range map[string][]string{"": {"node1"}, "zone=node1": {"node1"}, "zone=node2": nil} {
			list, err := mc.MetricsV1beta1().NodeMetricses().List(ctx, metav1.ListOptions{LabelSelector: sel})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range list.Items {
				got = append(got, m.Name)
			}
			if !cmp.Equal(got, want) {
				t.Errorf("node metrics with selector %q = %v, want %v", sel, got, want)
			}
		}
	})

	t.Run("pod metrics", func(t *testing.T) {
		var web *metricsv1beta1.PodMetrics
		deadline := time.Now().Add(10 * time.Second)
		for {
			web, err = mc.MetricsV1beta1().PodMetricses("default").Get(ctx, "web", metav1.GetOptions{})
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(web.Containers) != 2 || web.Containers[0].Name != "nginx" || web.Containers[1].Name != "side" {
			t.Fatalf("web containers = %+v", web.Containers)
		}
		cpu := web.Containers[0].Usage[corev1.ResourceCPU]
		mem := web.Containers[0].Usage[corev1.ResourceMemory]
		if !near(cpu.ScaledValue(-9), 0.25e9) || mem.Value() != 10<<20 || web.Labels["app"] != "web" || web.Window.Duration <= 0 {
			t.Errorf("web/nginx usage cpu %s memory %s labels %v window %v", cpu.String(), mem.String(), web.Labels, web.Window)
		}
		list, err := mc.MetricsV1beta1().PodMetricses("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, m := range list.Items {
			names = append(names, m.Namespace+"/"+m.Name)
		}
		if want := []string{"default/idle", "default/web"}; !cmp.Equal(names, want) {
			t.Errorf("pod metrics in default = %v, want %v (running pods only)", names, want)
		}
		all, err := mc.MetricsV1beta1().PodMetricses("").List(ctx, metav1.ListOptions{LabelSelector: "app in (dns,web)"})
		if err != nil {
			t.Fatal(err)
		}
		names = nil
		for _, m := range all.Items {
			names = append(names, m.Namespace+"/"+m.Name)
		}
		if want := []string{"default/web", "kube-system/dns"}; !cmp.Equal(names, want) {
			t.Errorf("pod metrics in all namespaces with app in (dns,web) = %v, want %v", names, want)
		}
		byField, err := mc.MetricsV1beta1().PodMetricses("default").List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=idle"})
		if err != nil || len(byField.Items) != 1 || byField.Items[0].Name != "idle" {
			t.Errorf("field selector metadata.name=idle: %+v %v", byField, err)
		}
		_, err = mc.MetricsV1beta1().PodMetricses("default").Get(ctx, "pending", metav1.GetOptions{})
		if !apierrors.IsNotFound(err) || err.Error() != `podmetrics.metrics.k8s.io "default/pending" not found` {
			t.Errorf("pod not running: %v", err)
		}
		_, err = mc.MetricsV1beta1().PodMetricses("default").Get(ctx, "nope", metav1.GetOptions{})
		if !apierrors.IsNotFound(err) || err.Error() != `pods "nope" not found` {
			t.Errorf("missing pod: %v", err)
		}
	})

	t.Run("protobuf as kubectl top asks", func(t *testing.T) {
		cfg := rest.CopyConfig(s.Config)
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
		pc, err := metricsclient.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		list, err := pc.MetricsV1beta1().PodMetricses("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil || len(list.Items) != 1 || len(list.Items[0].Containers) != 2 {
			t.Fatalf("protobuf pod metrics: %+v %v", list, err)
		}
		var ct string
		err = pc.MetricsV1beta1().RESTClient().Get().AbsPath("/apis/metrics.k8s.io/v1beta1/nodes").SetHeader("Accept", "application/vnd.kubernetes.protobuf").Do(ctx).ContentType(&ct).Error()
		if err != nil || ct != "application/vnd.kubernetes.protobuf" {
			t.Errorf("node metrics in protobuf: content type %q, %v", ct, err)
		}
	})

	t.Run("discovery", func(t *testing.T) {
		groups, err := client.Discovery().ServerGroups()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, g := range groups.Groups {
			found = found || (g.Name == "metrics.k8s.io" && g.PreferredVersion.Version == "v1beta1")
		}
		if !found {
			t.Errorf("metrics.k8s.io/v1beta1 not in the (aggregated) group list")
		}
		res, err := client.Discovery().ServerResourcesForGroupVersion("metrics.k8s.io/v1beta1")
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[string]string{}
		for _, r := range res.APIResources {
			kinds[r.Name] = fmt.Sprintf("%s namespaced=%v verbs=%v", r.Kind, r.Namespaced, r.Verbs)
		}
		want := map[string]string{"nodes": "NodeMetrics namespaced=false verbs=[get list]", "pods": "PodMetrics namespaced=true verbs=[get list]"}
		if diff := cmp.Diff(want, kinds); diff != "" {
			t.Errorf("metrics.k8s.io/v1beta1 resources (-want +got):\n%s", diff)
		}
		var legacy metav1.APIGroupList
		b, err := client.Discovery().RESTClient().Get().AbsPath("/apis").SetHeader("Accept", "application/json").DoRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &legacy); err != nil || !strings.Contains(string(b), `"name":"metrics.k8s.io"`) {
			t.Errorf("legacy /apis lacks metrics.k8s.io: %v %s", err, b)
		}
	})

	t.Run("table", func(t *testing.T) {
		b, err := client.Discovery().RESTClient().Get().AbsPath("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods").
			SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json").DoRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var table metav1.Table
		if err := json.Unmarshal(b, &table); err != nil {
			t.Fatal(err)
		}
		var cols []string
		for _, c := range table.ColumnDefinitions {
			cols = append(cols, c.Name)
		}
		if table.Kind != "Table" || !cmp.Equal(cols, []string{"Name", "cpu", "memory", "Window"}) || len(table.Rows) != 2 || table.Rows[1].Cells[0] != "web" || table.Rows[1].Cells[2] != "20Mi" {
			t.Errorf("table: kind %s columns %v rows %+v", table.Kind, cols, table.Rows)
		}
	})

	t.Run("unsupported verbs", func(t *testing.T) {
		err := client.Discovery().RESTClient().Delete().AbsPath("/apis/metrics.k8s.io/v1beta1/nodes/node1").Do(ctx).Error()
		if !apierrors.IsMethodNotSupported(err) {
			t.Errorf("delete node metrics: %v, want 405", err)
		}
		_, err = mc.MetricsV1beta1().NodeMetricses().Watch(ctx, metav1.ListOptions{})
		if !apierrors.IsMethodNotSupported(err) {
			t.Errorf("watch node metrics: %v, want 405", err)
		}
	})
}
