package kubelet

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// probingFake is fakeRuntime with exec probes: every command exits with
// the current exit code and prints "nope".
type probingFake struct {
	*fakeRuntime

	mu     sync.Mutex
	code   int32    // guarded by mu
	killed []string // container IDs; guarded by mu
}

func (p *probingFake) ExecSync(context.Context, string, []string, time.Duration) ([]byte, int32, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return []byte("nope"), p.code, nil
}

func (p *probingFake) KillContainer(_ context.Context, _ *corev1.Pod, id string, _ time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.killed = append(p.killed, id)
	return nil
}

func (p *probingFake) setCode(c int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.code = c
}

func (p *probingFake) killedIDs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.killed)
}

func newProbeHarness(t *testing.T, code int32) (*harness, *probingFake) {
	h := newHarness(t)
	pf := &probingFake{fakeRuntime: h.rt, code: code}
	cfg := h.k.cfg
	cfg.Runtime = pf
	k, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.k = k
	t.Cleanup(k.probes.Stop)
	return h, pf
}

// eventually syncs the pod, advancing the fake clock a second at a time,
// until cond holds of its stored status.
func eventually(t *testing.T, h *harness, cond func(*corev1.Pod) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err := h.k.syncPod(context.Background(), "default/web"); err != nil {
			t.Fatal(err)
		}
		if cond(h.refreshCache(t, "default", "web")) {
			return
		}
		time.Sleep(5 * time.Millisecond)
		h.clock.Step(time.Second)
	}
	t.Fatal("condition not reached")
}

func podCondition(p *corev1.Pod, typ corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range p.Status.Conditions {
		if c.Type == typ {
			return c.Status
		}
	}
	return ""
}

func TestReadinessProbeFlipsReady(t *testing.T) {
	h, pf := newProbeHarness(t, 1)
	pod := nginxPod(corev1.RestartPolicyAlways)
	pod.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/ready"}}},
		PeriodSeconds: 1,
	}
	h.seedPod(t, pod)

	eventually(t, h, func(p *corev1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].State.Running != nil && !cs[0].Ready && *cs[0].Started &&
			podCondition(p, corev1.PodReady) == corev1.ConditionFalse && podCondition(p, corev1.ContainersReady) == corev1.ConditionFalse
	})
	pf.setCode(0)
	eventually(t, h, func(p *corev1.Pod) bool {
		return p.Status.ContainerStatuses[0].Ready && podCondition(p, corev1.PodReady) == corev1.ConditionTrue &&
			podCondition(p, corev1.ContainersReady) == corev1.ConditionTrue
	})
	pf.setCode(1)
	eventually(t, h, func(p *corev1.Pod) bool {
		return !p.Status.ContainerStatuses[0].Ready && podCondition(p, corev1.PodReady) == corev1.ConditionFalse
	})
	if !slices.Contains(h.rec.take(), "Pod/web Unhealthy spec.containers{nginx}: Readiness probe failed: nope") {
		t.Error("no Unhealthy event for the failed readiness probe")
	}
	if k := pf.killedIDs(); len(k) != 0 {
		t.Errorf("readiness failure killed %v", k)
	}
}

func TestLivenessProbeFailureKillsContainer(t *testing.T) {
	h, pf := newProbeHarness(t, 1)
	pod := nginxPod(corev1.RestartPolicyAlways)
	pod.Spec.Containers[0].LivenessProbe = &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"false"}}},
		PeriodSeconds:    1,
		FailureThreshold: 2,
	}
	h.seedPod(t, pod)

	eventually(t, h, func(*corev1.Pod) bool { return len(pf.killedIDs()) > 0 })
	if diff := slices.Compare([]string{"fake://pod-uid/nginx"}, pf.killedIDs()); diff != 0 {
		t.Errorf("killed %v, want the nginx container once", pf.killedIDs())
	}
	events := h.rec.take()
	for _, want := range []string{
		"Pod/web Unhealthy spec.containers{nginx}: Liveness probe failed: nope",
		"Pod/web Killing spec.containers{nginx}: Container nginx failed liveness probe, will be restarted",
	} {
		if !slices.Contains(events, want) {
			t.Errorf("no event %q in %q", want, events)
		}
	}
}
