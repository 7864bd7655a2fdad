package criruntime

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiff-project/skiff/pkg/kubelet"
	"github.com/skiff-project/skiff/pkg/kubelet/prober"
)

// TestRealProbes runs upstream's probe handlers against a busybox web
// server, then lets a failing liveness probe get its container restarted
// the way the kubelet does (Sync, KillContainer, SyncPod).
func TestRealProbes(t *testing.T) {
	env := newTestEnv(t)
	r := env.runtime(t, nil)
	ctx := context.Background()
	pod := busyboxPod("probed", corev1.RestartPolicyAlways, `mkdir -p /www; echo ok > /www/index.html; exec httpd -f -p 8080 -h /www`)
	pod.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}
	t.Cleanup(func() {
		if err := r.KillPod(ctx, pod, time.Second); err != nil {
			t.Errorf("KillPod: %v", err)
		}
	})
	rs, _ := syncUntil(t, r, pod, time.Minute, running("main"))
	id := containerState(rs, "main").ID

	t.Run("exec", func(t *testing.T) {
		if out, code, err := r.ExecSync(ctx, id, []string{"sh", "-c", "echo no; exit 3"}, 5*time.Second); err != nil || code != 3 || string(out) != "no\n" {
			t.Errorf("ExecSync(exit 3) = %q, %d, %v; want \"no\\n\", 3, nil", out, code, err)
		}
		if _, code, err := r.ExecSync(ctx, id, []string{"true"}, 5*time.Second); err != nil || code != 0 {
			t.Errorf("ExecSync(true) = %d, %v; want 0, nil", code, err)
		}
		if _, _, err := r.ExecSync(ctx, id, []string{"sleep", "5"}, time.Second); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("ExecSync(sleep 5) with a 1s timeout: err = %v, want DeadlineExceeded", err)
		}
	})

	t.Run("network handlers", func(t *testing.T) {
		ex := prober.NewExecutor(r)
		c := &pod.Spec.Containers[0]
		for _, tc := range []struct {
			name    string
			handler corev1.ProbeHandler
			want    prober.Result
		}{
			{"httpGet by port name", corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/index.html", Port: intstr.FromString("http")}}, prober.Success},
			{"httpGet 404", corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/missing", Port: intstr.FromInt32(8080)}}, prober.Failure},
			{"tcpSocket open", corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}}, prober.Success},
			{"tcpSocket closed", corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8081)}}, prober.Failure},
			{"exec", corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"test", "-f", "/www/index.html"}}}, prober.Success},
		} {
			res, msg := ex.Probe(ctx, prober.Request{Kind: prober.Readiness, Probe: &corev1.Probe{ProbeHandler: tc.handler},
				Container: c, ContainerID: id, PodIP: rs.PodIPs[0], Timeout: 2 * time.Second})
			if res != tc.want {
				t.Errorf("%s: %v (%s), want %v", tc.name, res, msg, tc.want)
			}
		}
	})

	t.Run("failed liveness probe restarts the container", func(t *testing.T) {
		var mu sync.Mutex
		var events []string
		m := prober.New(prober.Config{Executor: prober.NewExecutor(r), Event: func(_ *corev1.Pod, _, _, reason, msg string) {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, reason+": "+msg)
		}})
		defer m.Stop()
		probed := pod.DeepCopy()
		probed.Spec.Containers[0].LivenessProbe = &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"false"}}},
			PeriodSeconds: 1, FailureThreshold: 2,
		}
		observed := func(rs kubelet.PodRuntimeStatus) []prober.Container {
			cs := containerState(rs, "main")
			c := prober.Container{Name: cs.Name, ID: cs.ID, Running: cs.State.Running != nil}
			if c.Running {
				c.StartedAt = cs.State.Running.StartedAt.Time
			}
			return []prober.Container{c}
		}
		var v prober.Verdict
		deadline := time.Now().Add(30 * time.Second)
		for v.Kill == "" {
			if time.Now().After(deadline) {
				t.Fatal("the liveness probe did not fail")
			}
			time.Sleep(100 * time.Millisecond)
			v = m.Sync(ctx, probed, rs.PodIPs, observed(rs))["main"]
		}
		if v.Kill != "Container main failed liveness probe, will be restarted" || v.KillGrace != time.Second {
			t.Errorf("verdict %+v", v)
		}
		if err := r.KillContainer(ctx, probed, id, v.KillGrace); err != nil {
			t.Fatal(err)
		}
		rs2, _ := syncUntil(t, r, probed, time.Minute, func(rs kubelet.PodRuntimeStatus) bool {
			cs := containerState(rs, "main")
			return cs.State.Running != nil && cs.RestartCount == 1
		})
		if nv, ok := m.Sync(ctx, probed, rs2.PodIPs, observed(rs2))["main"]; !ok || nv.Kill != "" {
			t.Errorf("verdict of the new instance %+v, want a fresh one", nv)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(events) < 2 || !strings.HasPrefix(events[0], "Unhealthy: Liveness probe failed: ") {
			t.Errorf("events %q, want Unhealthy liveness failures", events)
		}
	})
}
