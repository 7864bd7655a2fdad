package criruntime

import (
	"context"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/skiff-project/skiff/pkg/kubelet"
)

func busyboxPod(name string, policy corev1.RestartPolicy, script string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name), Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			RestartPolicy:                 policy,
			TerminationGracePeriodSeconds: new(int64(1)),
			Containers: []corev1.Container{{
				Name: "main", Image: "docker.io/library/busybox:1.36", ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"sh", "-c", script},
			}},
		},
	}
}

// syncUntil drives SyncPod like the kubelet's pod worker (again after
// NextSyncAfter) until done accepts the status, and returns it with every
// event seen.
func syncUntil(t *testing.T, r *Runtime, pod *corev1.Pod, timeout time.Duration, done func(kubelet.PodRuntimeStatus) bool) (kubelet.PodRuntimeStatus, []kubelet.Event) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	var events []kubelet.Event
	for {
		rs, err := r.SyncPod(ctx, pod)
		if err != nil {
			t.Fatalf("SyncPod: %v", err)
		}
		events = append(events, rs.Events...)
		if done(rs) {
			return rs, events
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s not in the expected state after %v: %+v", pod.Name, timeout, rs)
		}
		wait := rs.NextSyncAfter
		if wait <= 0 || wait > r.cfg.PollInterval {
			wait = r.cfg.PollInterval
		}
		timer := time.NewTimer(wait)
		<-timer.C
	}
}

func containerState(rs kubelet.PodRuntimeStatus, name string) *kubelet.ContainerStatus {
	for i := range rs.Containers {
		if rs.Containers[i].Name == name {
			return &rs.Containers[i]
		}
	}
	return nil
}

func running(name string) func(kubelet.PodRuntimeStatus) bool {
	return func(rs kubelet.PodRuntimeStatus) bool {
		cs := containerState(rs, name)
		return cs != nil && cs.State.Running != nil
	}
}

func terminated(name string) func(kubelet.PodRuntimeStatus) bool {
	return func(rs kubelet.PodRuntimeStatus) bool {
		cs := containerState(rs, name)
		return cs != nil && cs.State.Terminated != nil
	}
}

func reasons(events []kubelet.Event) string {
	var out []string
	for _, e := range events {
		out = append(out, e.Reason)
	}
	return strings.Join(out, ",")
}

// TestRealPods runs pods on a private containerd: everything the kubelet
// relies on, end to end.
func TestRealPods(t *testing.T) {
	env := newTestEnv(t)
	r := env.runtime(t, nil)
	ctx := context.Background()

	v, err := r.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.Name != "containerd" || v.Version == "" || strings.Contains(v.Version, "~") {
		t.Errorf("Version() = %q, want containerd://<version>", v)
	}
	t.Logf("runtime version %s", v)

	web := busyboxPod("web", corev1.RestartPolicyAlways,
		`echo "hello ip=$POD_IP ns=$NS mem=$MEM_MI cpu=$CPU_M msg=$MSG"; mkdir -p /www; echo ok-from-pod > /www/index.html; exec httpd -f -p 8080 -h /www`)
	web.Spec.Containers[0].Env = []corev1.EnvVar{
		{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		{Name: "NS", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
		{Name: "MEM_MI", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
		{Name: "CPU_M", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "requests.cpu", Divisor: resource.MustParse("1m")}}},
		{Name: "GREETING", Value: "hi"},
		{Name: "MSG", Value: "$(GREETING)-$(NS)-$$(X)"},
	}
	web.Spec.Containers[0].Resources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
	}

	t.Run("a pod runs, gets an IP from the bridge and serves the host", func(t *testing.T) {
		start := time.Now()
		rs, events := syncUntil(t, r, web, 30*time.Second, running("main"))
		t.Logf("create→running: %v", time.Since(start).Round(time.Millisecond))
		if got, want := reasons(events), "Pulled,Created,Started"; got != want {
			t.Errorf("events = %s, want %s", got, want)
		}
		if !rs.SandboxReady || len(rs.PodIPs) != 1 {
			t.Fatalf("sandbox ready %v, IPs %v", rs.SandboxReady, rs.PodIPs)
		}
		ip := netip.MustParseAddr(rs.PodIPs[0])
		if !env.cidr.Contains(ip) {
			t.Errorf("pod IP %s not in %s", ip, env.cidr)
		}
		cs := containerState(rs, "main")
		if !strings.HasPrefix(cs.ID, "containerd://") || cs.ImageID == "" || cs.RestartCount != 0 {
			t.Errorf("container status %+v", cs)
		}
		body := httpGet(t, "http://"+ip.String()+":8080/", 10*time.Second)
		if body != "ok-from-pod\n" {
			t.Errorf("GET from pod = %q", body)
		}
		logPath := filepath.Join(env.logsRoot, "default_web_uid-web", "main", "0.log")
		logs, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		wantLog := "hello ip=" + ip.String() + " ns=default mem=64 cpu=100 msg=hi-default-$(X)"
		if !strings.Contains(string(logs), wantLog) {
			t.Errorf("log %s = %q, want it to contain %q", logPath, logs, wantLog)
		}
		for file, want := range map[string]string{
			"/sys/fs/cgroup/memory" + env.cgroupRoot + "/kubepods/burstable/poduid-web/memory.limit_in_bytes": "67108864",
			"/sys/fs/cgroup/cpu" + env.cgroupRoot + "/kubepods/burstable/poduid-web/cpu.shares":               "102",
		} {
			got, err := os.ReadFile(file)
			if err != nil || strings.TrimSpace(string(got)) != want {
				t.Errorf("%s = %q (%v), want %s", file, got, err, want)
			}
		}

		again, err := r.SyncPod(ctx, web)
		if err != nil {
			t.Fatal(err)
		}
		if len(again.Events) != 0 || containerState(again, "main").ID != cs.ID {
			t.Errorf("second SyncPod of a running pod acted: events %v, status %+v", again.Events, containerState(again, "main"))
		}
	})

	t.Run("a restarted kubelet re-adopts the pod from CRI state", func(t *testing.T) {
		fresh := env.runtime(t, nil)
		pods, err := fresh.ListPods(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := kubelet.RunningPod{UID: web.UID, Namespace: "default", Name: "web"}
		found := false
		for _, p := range pods {
			found = found || p == want
		}
		if !found {
			t.Fatalf("ListPods = %v, want it to hold %v", pods, want)
		}
		rs, err := fresh.SyncPod(ctx, web)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs.Events) != 0 || containerState(rs, "main") == nil || containerState(rs, "main").State.Running == nil {
			t.Errorf("adopted pod: events %v, status %+v", rs.Events, rs.Containers)
		}
	})

	t.Run("KillPod removes containers, sandbox, IP and cgroup", func(t *testing.T) {
		if err := r.KillPod(ctx, web, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		sbs, err := env.conn.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{LabelPodUID: string(web.UID)}})
		if err != nil || len(sbs) != 0 {
			t.Errorf("sandboxes after KillPod: %v (%v)", sbs, err)
		}
		ctrs, err := env.conn.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: map[string]string{LabelPodUID: string(web.UID)}})
		if err != nil || len(ctrs) != 0 {
			t.Errorf("containers after KillPod: %v (%v)", ctrs, err)
		}
		if _, err := os.Stat("/sys/fs/cgroup/memory" + env.cgroupRoot + "/kubepods/burstable/poduid-web"); !os.IsNotExist(err) {
			t.Errorf("pod cgroup still there: %v", err)
		}
		leases, _ := filepath.Glob(filepath.Join(env.proc.Paths().IPAMDir, "*", "10.*"))
		if len(leases) != 0 {
			t.Errorf("IP leases left: %v", leases)
		}
		if err := r.KillPod(ctx, web, time.Second); err != nil {
			t.Errorf("killing an unknown pod: %v", err)
		}
	})

	for _, tc := range []struct {
		name     string
		pod      *corev1.Pod
		reason   string
		exitCode int32
	}{
		{
			name: "exit 0 with restartPolicy Never completes, after the init container",
			pod: func() *corev1.Pod {
				p := busyboxPod("done", corev1.RestartPolicyNever, "echo done")
				p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "docker.io/library/busybox:1.36", ImagePullPolicy: corev1.PullIfNotPresent, Command: []string{"true"}}}
				return p
			}(),
			reason: "Completed",
		},
		{
			name:     "a failing container with restartPolicy Never stays failed",
			pod:      busyboxPod("fail", corev1.RestartPolicyNever, "exit 3"),
			reason:   "Error",
			exitCode: 3,
		},
		{
			name: "a container over its memory limit is OOMKilled",
			pod: func() *corev1.Pod {
				p := busyboxPod("oom", corev1.RestartPolicyNever, "tail /dev/zero")
				p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("16Mi")}
				return p
			}(),
			reason:   "OOMKilled",
			exitCode: 137,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Cleanup(func() {
				if err := r.KillPod(ctx, tc.pod, time.Second); err != nil {
					t.Errorf("KillPod: %v", err)
				}
			})
			rs, _ := syncUntil(t, r, tc.pod, 60*time.Second, terminated("main"))
			term := containerState(rs, "main").State.Terminated
			if term.Reason != tc.reason || term.ExitCode != tc.exitCode {
				t.Errorf("terminated %s/%d, want %s/%d", term.Reason, term.ExitCode, tc.reason, tc.exitCode)
			}
			for _, ic := range rs.InitContainers {
				if ic.State.Terminated == nil || ic.State.Terminated.Reason != "Completed" {
					t.Errorf("init container %s: %+v", ic.Name, ic.State)
				}
			}
			if len(rs.InitContainers) != len(tc.pod.Spec.InitContainers) {
				t.Errorf("init statuses %d, want %d", len(rs.InitContainers), len(tc.pod.Spec.InitContainers))
			}
			again, err := r.SyncPod(ctx, tc.pod)
			if err != nil || len(again.Events) != 0 || again.NextSyncAfter != 0 {
				t.Errorf("SyncPod of a finished pod: events %v, next %v, err %v", again.Events, again.NextSyncAfter, err)
			}
		})
	}

	t.Run("a crashing container with restartPolicy Always backs off", func(t *testing.T) {
		clk := testingclock.NewFakeClock(time.Now())
		cr := env.runtime(t, func(c *Config) { c.Clock = clk })
		pod := busyboxPod("crash", corev1.RestartPolicyAlways, "exit 1")
		t.Cleanup(func() {
			if err := cr.KillPod(ctx, pod, time.Second); err != nil {
				t.Errorf("KillPod: %v", err)
			}
		})
		inBackoff := func(rs kubelet.PodRuntimeStatus) bool {
			cs := containerState(rs, "main")
			return cs != nil && cs.State.Waiting != nil && cs.State.Waiting.Reason == reasonCrashLoopBackOff
		}
		rs, events := syncUntil(t, cr, pod, 30*time.Second, inBackoff)
		cs := containerState(rs, "main")
		if cs.RestartCount != 1 {
			t.Errorf("restartCount = %d, want 1 (the first restart is immediate)", cs.RestartCount)
		}
		if lt := cs.LastTerminationState.Terminated; lt == nil || lt.ExitCode != 1 || lt.Reason != "Error" {
			t.Errorf("last termination %+v", cs.LastTerminationState)
		}
		if !strings.HasPrefix(cs.State.Waiting.Message, "back-off 10s restarting failed container=main pod=crash_default(uid-crash)") {
			t.Errorf("waiting message %q", cs.State.Waiting.Message)
		}
		if rs.NextSyncAfter <= 0 || rs.NextSyncAfter > 11*time.Second { // the fake clock lags the exit by the test's runtime
			t.Errorf("NextSyncAfter = %v, want the rest of the 10s back-off", rs.NextSyncAfter)
		}
		if last := events[len(events)-1]; last.Reason != "BackOff" || last.Type != corev1.EventTypeWarning {
			t.Errorf("last event %+v, want a BackOff warning", last)
		}

		clk.Step(11 * time.Second)
		rs, _ = syncUntil(t, cr, pod, 30*time.Second, func(rs kubelet.PodRuntimeStatus) bool {
			cs := containerState(rs, "main")
			return inBackoff(rs) && cs.RestartCount == 2
		})
		if msg := containerState(rs, "main").State.Waiting.Message; !strings.HasPrefix(msg, "back-off 20s ") {
			t.Errorf("second back-off message %q, want the delay doubled to 20s", msg)
		}
	})

	t.Logf("CRI latencies:\n%s", env.timed.summary())
}

// httpGet fetches url until it answers or timeout passes (the server in
// the pod may still be starting).
func httpGet(t *testing.T, url string, timeout time.Duration) string {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get(url)
		if err == nil {
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				return string(b)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: no answer within %v (last error %v)", url, timeout, err)
		}
		<-tick.C
	}
}
