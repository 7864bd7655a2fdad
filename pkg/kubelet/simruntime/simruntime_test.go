package simruntime

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/skiff-project/skiff/pkg/kubelet"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func pod(uid types.UID, restart corev1.RestartPolicy) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: string(uid), Namespace: "default", UID: uid},
		Spec:       corev1.PodSpec{RestartPolicy: restart, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
}

// summary is the part of a status the table checks.
type summary struct {
	IPs       []string
	State     string
	NextSync  time.Duration
	NumEvents int
}

func summarize(rs kubelet.PodRuntimeStatus) summary {
	s := summary{IPs: rs.PodIPs, NextSync: rs.NextSyncAfter, NumEvents: len(rs.Events), State: "none"}
	if len(rs.Containers) > 0 {
		switch st := rs.Containers[0].State; {
		case st.Running != nil:
			s.State = "running"
		case st.Terminated != nil:
			s.State = "terminated:" + st.Terminated.Reason
		}
	}
	return s
}

func TestSyncPodTimeline(t *testing.T) {
	steps := []struct {
		name    string
		advance time.Duration
		pod     *corev1.Pod
		want    summary
	}{
		{name: "service pod waits for the startup delay", pod: pod("svc", corev1.RestartPolicyAlways),
			want: summary{IPs: []string{"10.0.0.2"}, State: "none", NextSync: time.Second}},
		{name: "job pod too", pod: pod("job", corev1.RestartPolicyNever),
			want: summary{IPs: []string{"10.0.0.3"}, State: "none", NextSync: time.Second}},
		{name: "service pod starts with Pulled/Created/Started", advance: time.Second, pod: pod("svc", corev1.RestartPolicyAlways),
			want: summary{IPs: []string{"10.0.0.2"}, State: "running", NumEvents: 3}},
		{name: "converged service pod: no events", pod: pod("svc", corev1.RestartPolicyAlways),
			want: summary{IPs: []string{"10.0.0.2"}, State: "running"}},
		{name: "job pod runs for the job duration", pod: pod("job", corev1.RestartPolicyNever),
			want: summary{IPs: []string{"10.0.0.3"}, State: "running", NextSync: 5 * time.Second, NumEvents: 3}},
		{name: "job pod completes", advance: 5 * time.Second, pod: pod("job", corev1.RestartPolicyNever),
			want: summary{IPs: []string{"10.0.0.3"}, State: "terminated:Completed"}},
		{name: "service pod still runs", pod: pod("svc", corev1.RestartPolicyAlways),
			want: summary{IPs: []string{"10.0.0.2"}, State: "running"}},
	}
	clk := clocktesting.NewFakeClock(t0)
	rt, err := New(Config{Clock: clk, FallbackCIDR: netip.MustParsePrefix("10.0.0.0/24"), StartupDelay: time.Second, JobDuration: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		clk.Step(s.advance)
		rs, err := rt.SyncPod(context.Background(), s.pod)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if diff := cmp.Diff(s.want, summarize(rs)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", s.name, diff)
		}
	}
}

func TestKillReleasesIPAndUpdatePodCIDR(t *testing.T) {
	ctx := context.Background()
	rt, err := New(Config{Clock: clocktesting.NewFakeClock(t0), FallbackCIDR: netip.MustParsePrefix("10.0.0.0/30")})
	if err != nil {
		t.Fatal(err)
	}
	// A /30 has a single usable pod address after network and gateway.
	if _, err := rt.SyncPod(ctx, pod("a", corev1.RestartPolicyAlways)); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.SyncPod(ctx, pod("b", corev1.RestartPolicyAlways)); err == nil {
		t.Fatal("second pod in a /30 got an address, want exhaustion error")
	}
	if err := rt.KillPod(ctx, pod("a", ""), 0); err != nil {
		t.Fatal(err)
	}
	rs, err := rt.SyncPod(ctx, pod("b", corev1.RestartPolicyAlways))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"10.0.0.2"}, rs.PodIPs); diff != "" {
		t.Errorf("reused IP (-want +got):\n%s", diff)
	}
	if err := rt.UpdatePodCIDR(ctx, "10.244.3.0/24"); err != nil {
		t.Fatal(err)
	}
	rs, err = rt.SyncPod(ctx, pod("c", corev1.RestartPolicyAlways))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"10.244.3.2"}, rs.PodIPs); diff != "" {
		t.Errorf("IP from the allocated pod CIDR (-want +got):\n%s", diff)
	}
	pods, err := rt.ListPods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 2 {
		t.Errorf("ListPods = %v, want pods b and c", pods)
	}
}
