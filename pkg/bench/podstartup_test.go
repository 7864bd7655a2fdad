package bench

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// startupPod is a pod as the watch shows it.
func startupPod(name, node string, phase corev1.PodPhase, ready bool, created, readyAt time.Time) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(created)},
		Spec:       corev1.PodSpec{NodeName: node},
		Status:     corev1.PodStatus{Phase: phase},
	}
	if ready {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(readyAt)}}
	} else {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}
	}
	return p
}

func TestPodStartupTracker(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	tr := newPodStartupTracker()
	// 100 pods created 10 ms apart; pod i is scheduled 5 ms after its
	// create, Running 100+i ms after, Ready 10 ms later (with the API's
	// 1 s timestamps).
	for i := range 100 {
		name := fmt.Sprintf("pod-%d", i)
		created := ms(10 * i)
		tr.created(name, created)
		tr.observe(startupPod(name, "", corev1.PodPending, false, t0, time.Time{}), created.Add(time.Millisecond))
		tr.observe(startupPod(name, "node", corev1.PodPending, false, t0, time.Time{}), created.Add(5*time.Millisecond))
		tr.observe(startupPod(name, "node", corev1.PodRunning, false, t0, time.Time{}), created.Add(time.Duration(100+i)*time.Millisecond))
		// A repeated observation changes nothing.
		tr.observe(startupPod(name, "node", corev1.PodRunning, false, t0, time.Time{}), created.Add(time.Hour))
		tr.observe(startupPod(name, "node", corev1.PodRunning, true, t0, t0.Add(time.Second)), created.Add(time.Duration(110+i)*time.Millisecond))
		tr.observe(startupPod(name, "node", corev1.PodRunning, true, t0, t0.Add(time.Second)), created.Add(time.Hour))
	}
	// A pod of someone else's (no create recorded) does not count.
	tr.observe(startupPod("stranger", "node", corev1.PodRunning, true, t0, t0), ms(99999))

	if r, ready, f := tr.counts(); r != 101 || ready != 101 || f != 0 {
		t.Errorf("counts = %d, %d, %d", r, ready, f)
	}
	got := tr.results()
	// Nearest rank over 100 samples: p50 is the 50th smallest, p90 the
	// 90th, p99 the 99th.
	want := podStartupResult{
		Scheduled:           Summary{Count: 100, MinMs: 5, MeanMs: 5, P50Ms: 5, P90Ms: 5, P99Ms: 5, MaxMs: 5},
		Running:             Summary{Count: 100, MinMs: 100, MeanMs: 149.5, P50Ms: 149, P90Ms: 189, P99Ms: 198, MaxMs: 199},
		Ready:               Summary{Count: 100, MinMs: 110, MeanMs: 159.5, P50Ms: 159, P90Ms: 199, P99Ms: 208, MaxMs: 209},
		ReadyFromTimestamps: Summary{Count: 100, MinMs: 1000, MeanMs: 1000, P50Ms: 1000, P90Ms: 1000, P99Ms: 1000, MaxMs: 1000},
		// The last pod, created at 990 ms, is Running at 990+199 ms and
		// Ready at 990+209 ms after the first create.
		AllRunningSeconds: 1.189,
		AllReadySeconds:   1.199,
		RunningPerSecond:  100 / 1.189,
		ReadyPerSecond:    100 / 1.199,
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}

	// A failed pod is counted, and the rates only count what got there.
	tr = newPodStartupTracker()
	tr.created("a", t0)
	tr.created("b", t0)
	tr.observe(startupPod("a", "node", corev1.PodFailed, false, t0, time.Time{}), ms(50))
	tr.observe(startupPod("b", "node", corev1.PodRunning, true, t0, t0), ms(500))
	got = tr.results()
	if got.Failed != 1 || got.Ready.Count != 1 || got.ReadyPerSecond != 2 || got.Running.Count != 1 {
		t.Errorf("with a failed pod: %+v", got)
	}
	if _, _, f := tr.counts(); f != 1 {
		t.Errorf("failed count = %d", f)
	}
}

func TestPodsReportTable(t *testing.T) {
	r := &podsReport{
		Server: "https://127.0.0.1:6443", Node: "n1", Namespace: "ns", Workload: "sleep", Image: "busybox:1.36", Count: 100,
		CreateSeconds: 0.5,
		Startup: podStartupResult{
			Running:           Summary{Count: 100, P50Ms: 400, P90Ms: 700, P99Ms: 900, MaxMs: 950},
			Ready:             Summary{Count: 100, P50Ms: 410, P90Ms: 710, P99Ms: 910, MaxMs: 960},
			AllRunningSeconds: 1, AllReadySeconds: 1.25, RunningPerSecond: 100, ReadyPerSecond: 80,
		},
		Kubelet:       &kubeletStat{PID: 42, Process: "skiff server", RSSBeforeKiB: 100 * 1024, RSSWithPodsKiB: 150 * 1024, PeakRSSKiB: 160 * 1024, CPUSeconds: 3.5},
		DeleteSeconds: 2,
	}
	var b bytes.Buffer
	if err := r.writeTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"100 sleep pods (busybox:1.36) created all at once on node n1",
		"100.0 pods/s Running, 80.0 pods/s Ready",
		"create → Ready",
		"skiff server (control plane and kubelet in one process) pid 42: RSS 100.0 MiB before the pods, 150.0 MiB with 100 pods, peak 160.0 MiB",
		"cleanup: pods deleted and gone in 2.0s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// The Ready row: count and percentiles in columns.
	var readyRow string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "create → Ready") {
			readyRow = l
		}
	}
	if diff := cmp.Diff([]string{"create", "→", "Ready", "100", "410", "710", "910", "960"}, strings.Fields(readyRow)); diff != "" {
		t.Errorf("Ready row (-want +got):\n%s", diff)
	}
}

func TestPodStartupPod(t *testing.T) {
	o := &podsOptions{workload: workloadWeb, image: "docker.io/library/nginx:1.25"}
	p := podStartupPod(o, "ns", "host-1", 7)
	if p.Name != "pod-7" || p.Spec.NodeSelector[corev1.LabelHostname] != "host-1" || p.Spec.NodeName != "" {
		t.Errorf("pod placement: %s %v %q", p.Name, p.Spec.NodeSelector, p.Spec.NodeName)
	}
	if c := p.Spec.Containers[0]; c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.Image != o.image {
		t.Errorf("web container: %+v", c)
	}
	o.workload, o.image = workloadSleep, "busybox"
	if c := podStartupPod(o, "ns", "h", 0).Spec.Containers[0]; c.ReadinessProbe != nil || len(c.Command) == 0 {
		t.Errorf("sleep container: %+v", c)
	}
}
