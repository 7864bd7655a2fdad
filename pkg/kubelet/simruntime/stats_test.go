package simruntime

import (
	"context"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestSyntheticUsage(t *testing.T) {
	p := pod("u1", corev1.RestartPolicyAlways)
	p.Spec.Containers = []corev1.Container{
		{Name: "req", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("256Mi")}}},
		{Name: "capped", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("1Gi")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")}}},
		{Name: "none"},
	}
	got := syntheticUsage(p)
	if len(got) != 3 {
		t.Fatalf("usage of %d containers, want 3", len(got))
	}
	if u := got[0]; u.nanoCores < 150e6 || u.nanoCores >= 350e6 || u.memory < 256<<20*3/10 || u.memory >= 256<<20*7/10 {
		t.Errorf("usage of 500m/256Mi requests = %d nanocores, %d bytes; want 30-70%% of the requests", u.nanoCores, u.memory)
	}
	if u := got[1]; u.nanoCores != 100e6 || u.memory != 64<<20 {
		t.Errorf("usage above the limits = %d nanocores, %d bytes; want the limits", u.nanoCores, u.memory)
	}
	if u := got[2]; u.nanoCores < bestEffortMinNanoCores || u.nanoCores >= bestEffortMaxNanoCores || u.memory < bestEffortMinMemory || u.memory >= bestEffortMaxMemory {
		t.Errorf("best-effort usage = %d nanocores, %d bytes", u.nanoCores, u.memory)
	}
	if again := syntheticUsage(p); again[0] != got[0] {
		t.Errorf("usage not stable: %+v then %+v", got[0], again[0])
	}
	other := p.DeepCopy()
	other.UID = "u2"
	if syntheticUsage(other)[0] == got[0] {
		t.Errorf("two pods with the same requests use exactly the same: %+v", got[0])
	}
}

func cpuRate(t *testing.T, a, b *statsapi.CPUStats) uint64 {
	t.Helper()
	dt := b.Time.Sub(a.Time.Time)
	if dt <= 0 || *b.UsageCoreNanoSeconds < *a.UsageCoreNanoSeconds {
		t.Fatalf("samples %v@%v then %v@%v: no rate", *a.UsageCoreNanoSeconds, a.Time, *b.UsageCoreNanoSeconds, b.Time)
	}
	return uint64(float64(*b.UsageCoreNanoSeconds-*a.UsageCoreNanoSeconds) / dt.Seconds())
}

func TestSummary(t *testing.T) {
	ctx := context.Background()
	clk := clocktesting.NewFakeClock(t0)
	r, err := New(Config{Clock: clk, FallbackCIDR: netip.MustParsePrefix("10.0.0.0/24"), StartupDelay: time.Second, JobDuration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	web := pod("web", corev1.RestartPolicyAlways)
	web.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")}
	job := pod("job", corev1.RestartPolicyNever)
	for _, p := range []*corev1.Pod{web, job} {
		if _, err := r.SyncPod(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	s0, err := r.Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(s0.Pods) != 0 {
		t.Errorf("pods before their containers started: %+v", s0.Pods)
	}

	clk.Step(10 * time.Second)
	s1, _ := r.Summary(ctx)
	clk.Step(20 * time.Second)
	s2, _ := r.Summary(ctx)
	if len(s2.Pods) != 2 || s2.Pods[0].PodRef.Name != "job" || s2.Pods[1].PodRef.Name != "web" {
		t.Fatalf("pods = %+v, want job and web", s2.Pods)
	}
	want := syntheticUsage(web)[0]
	w1, w2 := s1.Pods[1], s2.Pods[1]
	if got := cpuRate(t, w1.Containers[0].CPU, w2.Containers[0].CPU); got < want.nanoCores-1 || got > want.nanoCores+1 {
		t.Errorf("container CPU rate over 20 s = %d nanocores, want %d", got, want.nanoCores)
	}
	if got := *w2.Containers[0].Memory.WorkingSetBytes; got != want.memory || *w2.Memory.WorkingSetBytes != want.memory {
		t.Errorf("working set = %d (pod %d), want %d", got, *w2.Memory.WorkingSetBytes, want.memory)
	}
	// 9 s of running at the synthetic rate after the 1 s startup delay.
	if got, wantCPU := *w1.Containers[0].CPU.UsageCoreNanoSeconds, uint64(float64(want.nanoCores)*9); got < wantCPU-1 || got > wantCPU+1 {
		t.Errorf("cumulative CPU after 9 s = %d, want %d", got, wantCPU)
	}
	if !w2.Containers[0].StartTime.Time.Equal(t0.Add(time.Second)) {
		t.Errorf("container start %v, want %v", w2.Containers[0].StartTime, t0.Add(time.Second))
	}
	nodeRate := cpuRate(t, s1.Node.CPU, s2.Node.CPU)
	podsRate := want.nanoCores + syntheticUsage(job)[0].nanoCores
	if nodeRate < nodeBaseNanoCores+podsRate-2 || nodeRate > nodeBaseNanoCores+podsRate+2 {
		t.Errorf("node CPU rate = %d, want 50m + pods' %d", nodeRate, podsRate)
	}

	// The job ends after a minute: it leaves the summary, the node's CPU
	// keeps growing, and killing the pods never makes it decrease.
	clk.Step(time.Minute)
	s3, _ := r.Summary(ctx)
	if len(s3.Pods) != 1 || s3.Pods[0].PodRef.Name != "web" {
		t.Errorf("pods after the job finished: %+v", s3.Pods)
	}
	for _, p := range []*corev1.Pod{web, job} {
		if err := r.KillPod(ctx, p, 0); err != nil {
			t.Fatal(err)
		}
	}
	s4, _ := r.Summary(ctx)
	if len(s4.Pods) != 0 {
		t.Errorf("pods after KillPod: %+v", s4.Pods)
	}
	if *s4.Node.CPU.UsageCoreNanoSeconds < *s3.Node.CPU.UsageCoreNanoSeconds {
		t.Errorf("node CPU decreased from %d to %d when pods were killed", *s3.Node.CPU.UsageCoreNanoSeconds, *s4.Node.CPU.UsageCoreNanoSeconds)
	}
	if *s4.Node.Memory.WorkingSetBytes != nodeBaseMemory {
		t.Errorf("node working set without pods = %d, want %d", *s4.Node.Memory.WorkingSetBytes, nodeBaseMemory)
	}
}
