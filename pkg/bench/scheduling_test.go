package bench

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// benchPod returns a pod named name, bound to node unless it is "", in
// phase, with condition Ready set to ready.
func benchPod(name, node string, phase corev1.PodPhase, ready bool, created time.Time) *corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(created)},
		Spec:       corev1.PodSpec{NodeName: node},
		Status:     corev1.PodStatus{Phase: phase, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
	}
}

func TestPodTrackerMilestones(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sec := func(s float64) time.Time { return start.Add(time.Duration(s * float64(time.Second))) }
	tr := newPodTracker(start)
	// a: created, scheduled, then Running but not yet Ready, then Ready.
	tr.observe(benchPod("a", "", corev1.PodPending, false, start), sec(0.1))
	tr.observe(benchPod("a", "n1", corev1.PodPending, false, start), sec(0.3))
	tr.observe(benchPod("a", "n1", corev1.PodRunning, false, start), sec(0.5))
	tr.observe(benchPod("a", "n1", corev1.PodRunning, true, start), sec(0.7))
	// Later events change no milestone.
	tr.observe(benchPod("a", "n1", corev1.PodRunning, true, start), sec(5))
	// b: first seen already bound (its ADDED event missed), in second 1.
	tr.observe(benchPod("b", "n2", corev1.PodPending, false, start), sec(1.2))
	tr.observe(benchPod("b", "n2", corev1.PodRunning, true, start), sec(1.6))
	// c: never scheduled.
	tr.observe(benchPod("c", "", corev1.PodPending, false, start), sec(1.4))
	// d: failed.
	tr.observe(benchPod("d", "n1", corev1.PodFailed, false, start), sec(1.5))

	r := tr.results()
	if diff := cmp.Diff(podCounts{Created: 4, Scheduled: 3, Running: 2, Failed: 1}, r.Counts); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(milestone{Pods: 4, LastSeconds: 1.5, OverallPerSecond: 4 / 1.5, PeakPerSecond: 3}, r.Created); diff != "" {
		t.Errorf("created (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(milestone{Pods: 2, LastSeconds: 1.6, OverallPerSecond: 2 / 1.6, PeakPerSecond: 1}, r.Running); diff != "" {
		t.Errorf("running (-want +got):\n%s", diff)
	}
	wantTimeline := []timelineSecond{{Second: 0, Created: 1, Scheduled: 1, Running: 1}, {Second: 1, Created: 3, Scheduled: 2, Running: 1}}
	if diff := cmp.Diff(wantTimeline, r.Timeline); diff != "" {
		t.Errorf("timeline (-want +got):\n%s", diff)
	}
	// Scheduling latency: a 200 ms, b 0 and d 0 (first seen bound).
	if r.SchedulingLatency.Count != 3 || r.SchedulingLatency.MaxMs != 200 || r.SchedulingLatency.MinMs != 0 {
		t.Errorf("scheduling latency = %+v, want 3 samples from 0 to 200 ms", r.SchedulingLatency)
	}
	// Startup: a 600 ms, b 400 ms; from creationTimestamp: 700 and 1600 ms.
	if s := r.StartupLatency; s.Count != 2 || s.MinMs != 400 || s.MaxMs != 600 {
		t.Errorf("startup latency = %+v, want 400 and 600 ms", s)
	}
	if s := r.StartupFromCreationTimestamp; s.Count != 2 || s.MinMs != 700 || s.MaxMs != 1600 {
		t.Errorf("startup from creationTimestamp = %+v, want 700 and 1600 ms", s)
	}
}

func TestPodTrackerEmpty(t *testing.T) {
	r := newPodTracker(time.Now()).results()
	if r.Counts != (podCounts{}) || r.Scheduled != (milestone{}) || r.Timeline != nil {
		t.Errorf("results of no events = %+v, want zero", r)
	}
}

func TestSchedulable(t *testing.T) {
	ready := []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	tests := []struct {
		name string
		node corev1.Node
		want bool
	}{
		{"ready", corev1.Node{Status: corev1.NodeStatus{Conditions: ready}}, true},
		{"no conditions yet", corev1.Node{}, false},
		{"not ready", corev1.Node{Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionFalse}}}}, false},
		{"not-ready taint not yet removed", corev1.Node{
			Spec:   corev1.NodeSpec{Taints: []corev1.Taint{{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}}},
			Status: corev1.NodeStatus{Conditions: ready}}, false},
		{"PreferNoSchedule taint is fine", corev1.Node{
			Spec:   corev1.NodeSpec{Taints: []corev1.Taint{{Key: "x", Effect: corev1.TaintEffectPreferNoSchedule}}},
			Status: corev1.NodeStatus{Conditions: ready}}, true},
		{"cordoned", corev1.Node{Spec: corev1.NodeSpec{Unschedulable: true}, Status: corev1.NodeStatus{Conditions: ready}}, false},
	}
	for _, tt := range tests {
		if got := schedulable(&tt.node); got != tt.want {
			t.Errorf("%s: schedulable = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestIsSkiffServer(t *testing.T) {
	tests := []struct {
		args []string
		port string
		want bool
	}{
		{[]string{"/tmp/skiff", "server", "--data-dir", "d", "--secure-port", "16443"}, "16443", true},
		{[]string{"skiff", "server", "--secure-port=16443"}, "16443", true},
		{[]string{"/usr/bin/skiff", "server"}, "6443", true},
		{[]string{"/usr/bin/skiff", "server"}, "16443", false},
		{[]string{"skiff", "server", "--secure-port", "7443"}, "16443", false},
		{[]string{"skiff", "sim", "--secure-port", "16443"}, "16443", false},
		{[]string{"kube-apiserver", "server", "--secure-port", "16443"}, "16443", false},
		{nil, "6443", false},
	}
	for _, tt := range tests {
		if got := isSkiffServer(tt.args, tt.port); got != tt.want {
			t.Errorf("isSkiffServer(%q, %s) = %v, want %v", tt.args, tt.port, got, tt.want)
		}
	}
}

func TestProcCPU(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stat")
	// The command name holds a space and a parenthesis; utime=250, stime=50.
	stat := "1234 (skiff (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 500 1000000 2000\n"
	if err := os.WriteFile(path, []byte(stat), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := procCPU(path); err != nil || got != 3*time.Second {
		t.Errorf("procCPU = %v, %v; want 3s", got, err)
	}
	if err := os.WriteFile(path, []byte("1234 (skiff) S 1"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := procCPU(path); err == nil {
		t.Error("truncated stat: no error")
	}
	if _, err := procCPU("/proc/self/stat"); err != nil {
		t.Errorf("/proc/self/stat: %v", err)
	}
}

func TestSchedulingOptionsValidate(t *testing.T) {
	valid := func() schedulingOptions {
		return schedulingOptions{nodes: 1, replicas: 1, nodeCPU: "4", nodeMemory: "8Gi", nodePods: "110", podCPU: "10m", podMemory: "10Mi",
			simWorkers: 1, createWorkers: 1, nodesTimeout: time.Minute, timeout: time.Minute, cleanup: time.Minute}
	}
	o := valid()
	q, err := o.validate()
	if err != nil {
		t.Fatalf("valid flags: %v", err)
	}
	if want := resource.MustParse("10m"); q.podCPU.Cmp(want) != 0 {
		t.Errorf("pod cpu = %s, want %s", q.podCPU.String(), want.String())
	}
	for name, breakIt := range map[string]func(*schedulingOptions){
		"no nodes":      func(o *schedulingOptions) { o.nodes = 0 },
		"bad quantity":  func(o *schedulingOptions) { o.podMemory = "ten" },
		"no workers":    func(o *schedulingOptions) { o.createWorkers = 0 },
		"no timeout":    func(o *schedulingOptions) { o.timeout = 0 },
		"no replicas":   func(o *schedulingOptions) { o.replicas = -1 },
		"bad node pods": func(o *schedulingOptions) { o.nodePods = "" },
	} {
		o := valid()
		breakIt(&o)
		if _, err := o.validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestSchedulingReportOutput(t *testing.T) {
	start := time.Now()
	tr := newPodTracker(start)
	tr.observe(benchPod("a", "n1", corev1.PodRunning, true, start), start.Add(time.Second))
	rep := &schedulingReport{
		Server: "https://127.0.0.1:6443", Mode: "pods", Nodes: 2, Replicas: 1,
		NodeCapacity:  corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("110")},
		PodRequests:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("10Mi")},
		Pods:          tr.results(),
		ServerProcess: &serverStat{PID: 42, RSSBeforeKiB: 102400, RSSAfterKiB: 204800, PeakRSSKiB: 307200, CPUSeconds: 1.5},
	}
	var b bytes.Buffer
	if err := writeReport(&b, "table", rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1 bare pods (10m CPU, 10Mi memory each) on 2 simulated nodes", "Running and Ready", "creationTimestamp → running", "server pid 42: RSS 100 MiB before the pods, 200 MiB after, peak 300 MiB"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	if err := writeReport(&b, "json", rep); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("JSON report does not parse: %v", err)
	}
	if got["mode"] != "pods" || got["serverProcess"] == nil || got["pods"] == nil {
		t.Errorf("JSON report = %s", b.String())
	}
}
