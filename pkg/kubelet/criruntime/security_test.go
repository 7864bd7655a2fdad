package criruntime

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-project/skiff/pkg/kubelet"
)

func TestContainerSecurityContext(t *testing.T) {
	ns := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD}
	for _, tc := range []struct {
		name string
		pod  *corev1.PodSecurityContext
		c    *corev1.SecurityContext
		want *runtimeapi.LinuxContainerSecurityContext
	}{
		{name: "none", want: &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: ns}},
		{
			name: "pod defaults",
			pod:  &corev1.PodSecurityContext{RunAsUser: new(int64(1000)), RunAsGroup: new(int64(3000)), FSGroup: new(int64(2000)), SupplementalGroups: []int64{4000, 5000}},
			want: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: ns, RunAsUser: &runtimeapi.Int64Value{Value: 1000}, RunAsGroup: &runtimeapi.Int64Value{Value: 3000},
				SupplementalGroups: []int64{2000, 4000, 5000},
			},
		},
		{
			name: "container wins",
			pod:  &corev1.PodSecurityContext{RunAsUser: new(int64(1000)), RunAsGroup: new(int64(3000))},
			c:    &corev1.SecurityContext{RunAsUser: new(int64(42)), RunAsGroup: new(int64(43)), RunAsNonRoot: new(true)},
			want: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: ns, RunAsUser: &runtimeapi.Int64Value{Value: 42}, RunAsGroup: &runtimeapi.Int64Value{Value: 43},
			},
		},
		{
			name: "privileged, capabilities, read-only root, no escalation",
			c: &corev1.SecurityContext{
				Privileged:               new(true),
				Capabilities:             &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "SYS_TIME"}, Drop: []corev1.Capability{"ALL"}},
				ReadOnlyRootFilesystem:   new(true),
				AllowPrivilegeEscalation: new(false),
			},
			want: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: ns, Privileged: true, ReadonlyRootfs: true, NoNewPrivs: true,
				Capabilities: &runtimeapi.Capability{AddCapabilities: []string{"NET_ADMIN", "SYS_TIME"}, DropCapabilities: []string{"ALL"}},
			},
		},
		{
			name: "escalation allowed",
			c:    &corev1.SecurityContext{AllowPrivilegeEscalation: new(true), ReadOnlyRootFilesystem: new(false)},
			want: &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: ns},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{Spec: corev1.PodSpec{SecurityContext: tc.pod, Containers: []corev1.Container{{Name: "c", SecurityContext: tc.c}}}}
			got := containerSecurityContext(pod, &pod.Spec.Containers[0])
			if d := cmp.Diff(tc.want, got, protocmp.Transform()); d != "" {
				t.Errorf("containerSecurityContext (-want +got):\n%s", d)
			}
		})
	}
}

func TestSandboxSecurityContext(t *testing.T) {
	r := &Runtime{cfg: Config{PodLogsRoot: "/logs", CgroupRoot: "/", ResolvConf: filepath.Join(t.TempDir(), "none")}}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u"},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{RunAsUser: new(int64(1000)), RunAsGroup: new(int64(3000)), FSGroup: new(int64(2000)), SupplementalGroups: []int64{4000}},
			InitContainers:  []corev1.Container{{Name: "i", SecurityContext: &corev1.SecurityContext{Privileged: new(true)}}},
			Containers:      []corev1.Container{{Name: "c"}},
		},
	}
	cfg, err := r.sandboxConfig(pod, 0)
	if err != nil {
		t.Fatal(err)
	}
	sc := cfg.Linux.SecurityContext
	if sc.RunAsUser.GetValue() != 1000 || sc.RunAsGroup.GetValue() != 3000 || !sc.Privileged || !cmp.Equal(sc.SupplementalGroups, []int64{2000, 4000}) {
		t.Errorf("sandbox security context = %v; want user 1000, group 3000, groups [2000 4000], privileged", sc)
	}
	pod.Spec.InitContainers = nil
	pod.Spec.SecurityContext.RunAsUser = nil
	cfg, err = r.sandboxConfig(pod, 0)
	if err != nil {
		t.Fatal(err)
	}
	if sc := cfg.Linux.SecurityContext; sc.Privileged || sc.RunAsGroup != nil {
		t.Errorf("sandbox security context = %v; want unprivileged, no group without a user", sc)
	}
}

func TestVerifyRunAsNonRoot(t *testing.T) {
	root, user := new(int64(0)), new(int64(1000))
	for _, tc := range []struct {
		name      string
		pod       *corev1.PodSecurityContext
		c         *corev1.SecurityContext
		imageUID  *int64
		imageUser string
		wantErr   string
	}{
		{name: "not asked", imageUID: root},
		{name: "image root", c: &corev1.SecurityContext{RunAsNonRoot: new(true)}, imageUID: root, wantErr: "container has runAsNonRoot and image will run as root"},
		{name: "pod-level, image root", pod: &corev1.PodSecurityContext{RunAsNonRoot: new(true)}, imageUID: root, wantErr: "image will run as root"},
		{name: "container overrides pod", pod: &corev1.PodSecurityContext{RunAsNonRoot: new(true)}, c: &corev1.SecurityContext{RunAsNonRoot: new(false)}, imageUID: root},
		{name: "image non-root", c: &corev1.SecurityContext{RunAsNonRoot: new(true)}, imageUID: user},
		{name: "runAsUser non-root", pod: &corev1.PodSecurityContext{RunAsUser: user}, c: &corev1.SecurityContext{RunAsNonRoot: new(true)}, imageUID: root},
		{name: "runAsUser 0", c: &corev1.SecurityContext{RunAsNonRoot: new(true), RunAsUser: root}, wantErr: "runAsUser breaks non-root policy"},
		{name: "image user name", c: &corev1.SecurityContext{RunAsNonRoot: new(true)}, imageUser: "nobody", wantErr: "non-numeric user (nobody)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{Spec: corev1.PodSpec{SecurityContext: tc.pod, Containers: []corev1.Container{{Name: "c", SecurityContext: tc.c}}}}
			err := verifyRunAsNonRoot(pod, &pod.Spec.Containers[0], tc.imageUID, tc.imageUser)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("err = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("err = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

// podLog reads the log of attempt 0 of the pod's container main.
func podLog(t *testing.T, env *testEnv, pod *corev1.Pod) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(env.logsRoot, pod.Namespace+"_"+pod.Name+"_"+string(pod.UID), "main", "0.log"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// waitLog waits until the pod's log contains want.
func waitLog(t *testing.T, env *testEnv, pod *corev1.Pod, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(podLog(t, env, pod), want) {
		if time.Now().After(deadline) {
			t.Fatalf("log of %s = %q, want it to contain %q", pod.Name, podLog(t, env, pod), want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRealSecurityAndHooks runs busybox pods with security contexts and
// lifecycle hooks on a private containerd.
func TestRealSecurityAndHooks(t *testing.T) {
	env := newTestEnv(t)
	var (
		mu     sync.Mutex
		events []kubelet.Event
	)
	r := env.runtime(t, func(c *Config) {
		c.Events = func(_ *corev1.Pod, e kubelet.Event) {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, e)
		}
	})
	ctx := context.Background()
	kill := func(pod *corev1.Pod) {
		t.Cleanup(func() {
			if err := r.KillPod(ctx, pod, 5*time.Second); err != nil {
				t.Errorf("KillPod: %v", err)
			}
		})
	}

	t.Run("runAsUser and groups", func(t *testing.T) {
		pod := busyboxPod("sec-user", corev1.RestartPolicyNever, `echo "uid=$(id -u) groups=$(id -G)"`)
		pod.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsGroup: new(int64(3000)), FSGroup: new(int64(2000))}
		pod.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsUser: new(int64(1000))}
		kill(pod)
		rs, _ := syncUntil(t, r, pod, time.Minute, terminated("main"))
		if code := containerState(rs, "main").State.Terminated.ExitCode; code != 0 {
			t.Errorf("exit code %d", code)
		}
		waitLog(t, env, pod, "uid=1000 groups=3000 2000")

		// A group without a user runs as the image's user (root).
		grp := busyboxPod("sec-group", corev1.RestartPolicyNever, `echo "uid=$(id -u) gid=$(id -g)"`)
		grp.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsGroup: new(int64(3000))}
		kill(grp)
		syncUntil(t, r, grp, time.Minute, terminated("main"))
		waitLog(t, env, grp, "uid=0 gid=3000")
	})

	t.Run("readOnlyRootFilesystem", func(t *testing.T) {
		pod := busyboxPod("sec-ro", corev1.RestartPolicyNever, `if touch /x; then echo root-writable; else echo root-readonly; fi; touch /tmp/y && echo tmp-writable`)
		pod.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{ReadOnlyRootFilesystem: new(true)}
		kill(pod)
		syncUntil(t, r, pod, time.Minute, terminated("main"))
		waitLog(t, env, pod, "root-readonly")
		if l := podLog(t, env, pod); strings.Contains(l, "root-writable") {
			t.Errorf("log = %q: / is writable", l)
		}
	})

	t.Run("runAsNonRoot with a root image", func(t *testing.T) {
		pod := busyboxPod("sec-nonroot", corev1.RestartPolicyNever, `echo should-not-run`)
		pod.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: new(true)}
		kill(pod)
		rs, events := syncUntil(t, r, pod, time.Minute, func(rs kubelet.PodRuntimeStatus) bool {
			cs := containerState(rs, "main")
			return cs != nil && cs.State.Waiting != nil && cs.State.Waiting.Reason != reasonContainerCreating
		})
		w := containerState(rs, "main").State.Waiting
		if w.Reason != reasonCreateContainerConfig || !strings.Contains(w.Message, "container has runAsNonRoot and image will run as root") {
			t.Errorf("waiting = %+v, want CreateContainerConfigError about root", w)
		}
		if !strings.Contains(reasons(events), eventFailed) {
			t.Errorf("events %s, want Failed", reasons(events))
		}
		// With a non-root user it runs.
		pod.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsUser: new(int64(1000))}
		syncUntil(t, r, pod, time.Minute, terminated("main"))
		waitLog(t, env, pod, "should-not-run")
	})

	t.Run("postStart and preStop", func(t *testing.T) {
		pod := busyboxPod("hooks", corev1.RestartPolicyAlways,
			`while [ ! -f /tmp/ps ]; do sleep 0.1; done; echo "main saw $(cat /tmp/ps)"; trap 'echo term; exit 0' TERM; while true; do sleep 0.1; done`)
		pod.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{
			PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo from-poststart > /tmp/ps"}}},
			PreStop:   &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo prestop > /proc/1/fd/1"}}},
		}
		syncUntil(t, r, pod, time.Minute, running("main"))
		waitLog(t, env, pod, "main saw from-poststart")
		if err := r.KillPod(ctx, pod, 5*time.Second); err != nil {
			t.Fatalf("KillPod: %v", err)
		}
		l := podLog(t, env, pod)
		pre, term := strings.Index(l, "prestop"), strings.Index(l, "term")
		if pre < 0 || term < 0 || pre > term {
			t.Errorf("log = %q, want prestop before term", l)
		}
	})

	t.Run("failing hooks", func(t *testing.T) {
		pod := busyboxPod("badhooks", corev1.RestartPolicyAlways, `exec sleep 3600`)
		pod.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{
			PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "exit 3"}}},
		}
		kill(pod)
		rs, evs := syncUntil(t, r, pod, time.Minute, func(rs kubelet.PodRuntimeStatus) bool {
			cs := containerState(rs, "main")
			return cs != nil && cs.State.Waiting != nil && cs.State.Waiting.Reason == reasonPostStartHookError
		})
		if !strings.Contains(reasons(evs), eventFailedPostStartHook) {
			t.Errorf("events %s, want %s", reasons(evs), eventFailedPostStartHook)
		}
		if cs := containerState(rs, "main"); cs.LastTerminationState.Terminated == nil {
			t.Errorf("status %+v: the container was not killed", cs)
		}

		stop := busyboxPod("badprestop", corev1.RestartPolicyAlways, `exec sleep 3600`)
		stop.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{
			PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"false"}}},
		}
		syncUntil(t, r, stop, time.Minute, running("main"))
		if err := r.KillPod(ctx, stop, 2*time.Second); err != nil {
			t.Fatalf("KillPod: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if !strings.Contains(reasons(events), eventFailedPreStopHook) {
			t.Errorf("Config.Events got %s, want %s", reasons(events), eventFailedPreStopHook)
		}
	})
}
