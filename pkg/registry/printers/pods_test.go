package printers

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Container status builders, so each case reads as the situation it names.

func running(name string, ready bool) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, Ready: ready, Started: ptr(true),
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: ago(time.Hour)}}}
}

func waiting(name, reason string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, Started: ptr(false),
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}}
}

func terminated(name, reason string, exitCode, signal int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, Started: ptr(false),
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: reason, ExitCode: exitCode, Signal: signal}}}
}

// restarted records restarts, the last one finished d ago.
func restarted(st corev1.ContainerStatus, restarts int32, d time.Duration) corev1.ContainerStatus {
	st.RestartCount = restarts
	st.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: 1, Reason: "Error", FinishedAt: ago(d)}}
	return st
}

// pod builds a pod with the named app containers, init containers
// (names starting with "sidecar" are restartable) and statuses.
type podSpec struct {
	phase      corev1.PodPhase
	reason     string
	containers []string
	inits      []string
	statuses   []corev1.ContainerStatus
	initStats  []corev1.ContainerStatus
	conditions []corev1.PodCondition
	deleted    bool
}

func (s podSpec) build() *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: objMeta("web-abc12", 10*time.Minute)}
	for _, c := range s.containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c})
	}
	for _, c := range s.inits {
		ic := corev1.Container{Name: c}
		if len(c) >= 7 && c[:7] == "sidecar" {
			ic.RestartPolicy = ptr(corev1.ContainerRestartPolicyAlways)
		}
		p.Spec.InitContainers = append(p.Spec.InitContainers, ic)
	}
	p.Status = corev1.PodStatus{
		Phase: s.phase, Reason: s.reason, Conditions: s.conditions,
		ContainerStatuses: s.statuses, InitContainerStatuses: s.initStats,
	}
	if s.deleted {
		p.DeletionTimestamp = agoPtr(time.Second)
	}
	return p
}

func cond(t corev1.PodConditionType, status corev1.ConditionStatus) corev1.PodCondition {
	return corev1.PodCondition{Type: t, Status: status}
}

// TestPodStatus checks the READY, STATUS and RESTARTS columns against
// upstream's printPod for the situations kubectl users see.
func TestPodStatus(t *testing.T) {
	cases := []struct {
		name string
		pod  podSpec
		// ready, status, restarts
		want []interface{}
	}{
		{
			name: "running and ready",
			pod:  podSpec{phase: corev1.PodRunning, containers: []string{"app"}, statuses: []corev1.ContainerStatus{running("app", true)}},
			want: []interface{}{"1/1", "Running", "0"},
		},
		{
			name: "running but not ready",
			pod:  podSpec{phase: corev1.PodRunning, containers: []string{"app"}, statuses: []corev1.ContainerStatus{running("app", false)}},
			want: []interface{}{"0/1", "Running", "0"},
		},
		{
			name: "pending without statuses",
			pod:  podSpec{phase: corev1.PodPending, containers: []string{"app"}},
			want: []interface{}{"0/1", "Pending", "0"},
		},
		{
			name: "container creating",
			pod:  podSpec{phase: corev1.PodPending, containers: []string{"app"}, statuses: []corev1.ContainerStatus{waiting("app", "ContainerCreating")}},
			want: []interface{}{"0/1", "ContainerCreating", "0"},
		},
		{
			name: "image pull error",
			pod:  podSpec{phase: corev1.PodPending, containers: []string{"app"}, statuses: []corev1.ContainerStatus{waiting("app", "ErrImagePull")}},
			want: []interface{}{"0/1", "ErrImagePull", "0"},
		},
		{
			name: "crash loop with restarts shows the last restart",
			pod: podSpec{phase: corev1.PodRunning, containers: []string{"app"},
				statuses: []corev1.ContainerStatus{restarted(waiting("app", "CrashLoopBackOff"), 3, 5*time.Minute)}},
			want: []interface{}{"0/1", "CrashLoopBackOff", "3 (5m ago)"},
		},
		{
			name: "restarts without a termination time show the count only",
			pod: podSpec{phase: corev1.PodRunning, containers: []string{"app"},
				statuses: []corev1.ContainerStatus{func() corev1.ContainerStatus { s := running("app", true); s.RestartCount = 2; return s }()}},
			want: []interface{}{"1/1", "Running", "2"},
		},
		{
			name: "restarts add up and the latest termination wins",
			pod: podSpec{phase: corev1.PodRunning, containers: []string{"a", "b"},
				statuses: []corev1.ContainerStatus{restarted(running("a", true), 1, time.Hour), restarted(running("b", true), 2, 90*time.Second)}},
			want: []interface{}{"2/2", "Running", "3 (90s ago)"},
		},
		{
			name: "completed",
			pod:  podSpec{phase: corev1.PodSucceeded, containers: []string{"app"}, statuses: []corev1.ContainerStatus{terminated("app", "Completed", 0, 0)}},
			want: []interface{}{"0/1", "Completed", "0"},
		},
		{
			name: "error",
			pod:  podSpec{phase: corev1.PodFailed, containers: []string{"app"}, statuses: []corev1.ContainerStatus{terminated("app", "Error", 1, 0)}},
			want: []interface{}{"0/1", "Error", "0"},
		},
		{
			name: "oom killed",
			pod:  podSpec{phase: corev1.PodRunning, containers: []string{"app"}, statuses: []corev1.ContainerStatus{terminated("app", "OOMKilled", 137, 0)}},
			want: []interface{}{"0/1", "OOMKilled", "0"},
		},
		{
			name: "terminated without reason shows the exit code",
			pod:  podSpec{phase: corev1.PodFailed, containers: []string{"app"}, statuses: []corev1.ContainerStatus{terminated("app", "", 2, 0)}},
			want: []interface{}{"0/1", "ExitCode:2", "0"},
		},
		{
			name: "terminated by a signal without reason",
			pod:  podSpec{phase: corev1.PodFailed, containers: []string{"app"}, statuses: []corev1.ContainerStatus{terminated("app", "", 137, 9)}},
			want: []interface{}{"0/1", "Signal:9", "0"},
		},
		{
			name: "first container's state wins",
			pod: podSpec{phase: corev1.PodRunning, containers: []string{"a", "b"},
				statuses: []corev1.ContainerStatus{waiting("a", "CrashLoopBackOff"), waiting("b", "ImagePullBackOff")}},
			want: []interface{}{"0/2", "CrashLoopBackOff", "0"},
		},
		{
			name: "completed container beside a running one of a ready pod is Running",
			pod: podSpec{phase: corev1.PodRunning, containers: []string{"a", "b"},
				statuses:   []corev1.ContainerStatus{running("a", true), terminated("b", "Completed", 0, 0)},
				conditions: []corev1.PodCondition{cond(corev1.PodReady, corev1.ConditionTrue)}},
			want: []interface{}{"1/2", "Running", "0"},
		},
		{
			name: "completed container beside a running one of an unready pod is NotReady",
			pod: podSpec{phase: corev1.PodRunning, containers: []string{"a", "b"},
				statuses:   []corev1.ContainerStatus{running("a", true), terminated("b", "Completed", 0, 0)},
				conditions: []corev1.PodCondition{cond(corev1.PodReady, corev1.ConditionFalse)}},
			want: []interface{}{"1/2", "NotReady", "0"},
		},
		{
			name: "status reason overrides the phase",
			pod:  podSpec{phase: corev1.PodFailed, reason: "Evicted", containers: []string{"app"}},
			want: []interface{}{"0/1", "Evicted", "0"},
		},
		{
			name: "terminating",
			pod: podSpec{phase: corev1.PodRunning, containers: []string{"app"}, deleted: true,
				statuses: []corev1.ContainerStatus{running("app", true)}},
			want: []interface{}{"1/1", "Terminating", "0"},
		},
		{
			name: "deleted but already succeeded is not terminating",
			pod: podSpec{phase: corev1.PodSucceeded, containers: []string{"app"}, deleted: true,
				statuses: []corev1.ContainerStatus{terminated("app", "Completed", 0, 0)}},
			want: []interface{}{"0/1", "Completed", "0"},
		},
		{
			// Running containers do not override the status reason.
			name: "node lost",
			pod:  podSpec{phase: corev1.PodRunning, reason: "NodeLost", containers: []string{"app"}, statuses: []corev1.ContainerStatus{running("app", true)}},
			want: []interface{}{"1/1", "NodeLost", "0"},
		},
		{
			name: "deleted on a lost node is unknown",
			pod: podSpec{phase: corev1.PodRunning, reason: "NodeLost", containers: []string{"app"}, deleted: true,
				statuses: []corev1.ContainerStatus{running("app", true)}},
			want: []interface{}{"1/1", "Unknown", "0"},
		},
		{
			name: "scheduling gated",
			pod: podSpec{phase: corev1.PodPending, containers: []string{"app"},
				conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonSchedulingGated}}},
			want: []interface{}{"0/1", "SchedulingGated", "0"},
		},
		{
			name: "first init container pending",
			pod: podSpec{phase: corev1.PodPending, containers: []string{"app"}, inits: []string{"init1", "init2"},
				initStats: []corev1.ContainerStatus{waiting("init1", "PodInitializing"), waiting("init2", "PodInitializing")},
				statuses:  []corev1.ContainerStatus{waiting("app", "PodInitializing")}},
			want: []interface{}{"0/1", "Init:0/2", "0"},
		},
		{
			name: "second init container running",
			pod: podSpec{phase: corev1.PodPending, containers: []string{"app"}, inits: []string{"init1", "init2"},
				initStats: []corev1.ContainerStatus{terminated("init1", "Completed", 0, 0), running("init2", false)},
				statuses:  []corev1.ContainerStatus{waiting("app", "PodInitializing")}},
			want: []interface{}{"0/1", "Init:1/2", "0"},
		},
		{
			name: "init container crash loop counts init restarts",
			pod: podSpec{phase: corev1.PodPending, containers: []string{"app"}, inits: []string{"init1"},
				initStats: []corev1.ContainerStatus{restarted(waiting("init1", "CrashLoopBackOff"), 4, 20*time.Second)},
				statuses:  []corev1.ContainerStatus{restarted(waiting("app", "PodInitializing"), 1, time.Hour)}},
			want: []interface{}{"0/1", "Init:CrashLoopBackOff", "4 (20s ago)"},
		},
		{
			name: "init container failed",
			pod: podSpec{phase: corev1.PodPending, containers: []string{"app"}, inits: []string{"init1"},
				initStats: []corev1.ContainerStatus{terminated("init1", "Error", 1, 0)}},
			want: []interface{}{"0/1", "Init:Error", "0"},
		},
		{
			name: "init container failed without reason",
			pod: podSpec{phase: corev1.PodPending, containers: []string{"app"}, inits: []string{"init1"},
				initStats: []corev1.ContainerStatus{terminated("init1", "", 3, 0)}},
			want: []interface{}{"0/1", "Init:ExitCode:3", "0"},
		},
		{
			name: "init container killed without reason",
			pod: podSpec{phase: corev1.PodPending, containers: []string{"app"}, inits: []string{"init1"},
				initStats: []corev1.ContainerStatus{terminated("init1", "", 137, 9)}},
			want: []interface{}{"0/1", "Init:Signal:9", "0"},
		},
		{
			name: "after initialization init restarts no longer count",
			pod: podSpec{phase: corev1.PodRunning, containers: []string{"app"}, inits: []string{"init1"},
				initStats:  []corev1.ContainerStatus{restarted(terminated("init1", "Completed", 0, 0), 2, time.Hour)},
				statuses:   []corev1.ContainerStatus{restarted(running("app", true), 4, 20*time.Second)},
				conditions: []corev1.PodCondition{cond(corev1.PodInitialized, corev1.ConditionTrue)}},
			want: []interface{}{"1/1", "Running", "4 (20s ago)"},
		},
		{
			name: "started sidecar counts as a ready container",
			pod: podSpec{phase: corev1.PodRunning, containers: []string{"app"}, inits: []string{"sidecar"},
				initStats:  []corev1.ContainerStatus{restarted(running("sidecar", true), 1, 10*time.Minute)},
				statuses:   []corev1.ContainerStatus{running("app", true)},
				conditions: []corev1.PodCondition{cond(corev1.PodInitialized, corev1.ConditionTrue)}},
			want: []interface{}{"2/2", "Running", "1 (10m ago)"},
		},
		{
			name: "sidecar restarts add to app restarts",
			pod: podSpec{phase: corev1.PodRunning, containers: []string{"app"}, inits: []string{"init1", "sidecar"},
				initStats: []corev1.ContainerStatus{
					restarted(terminated("init1", "Completed", 0, 0), 5, time.Minute),
					restarted(running("sidecar", false), 1, 10*time.Minute),
				},
				statuses:   []corev1.ContainerStatus{restarted(running("app", true), 2, 3*time.Minute)},
				conditions: []corev1.PodCondition{cond(corev1.PodInitialized, corev1.ConditionTrue)}},
			want: []interface{}{"1/2", "Running", "3 (3m ago)"},
		},
		{
			name: "sidecar not yet started blocks initialization",
			pod: podSpec{phase: corev1.PodPending, containers: []string{"app"}, inits: []string{"sidecar", "init2"},
				initStats: []corev1.ContainerStatus{waiting("sidecar", "ContainerCreating"), waiting("init2", "PodInitializing")},
				statuses:  []corev1.ContainerStatus{waiting("app", "PodInitializing")}},
			want: []interface{}{"0/2", "Init:ContainerCreating", "0"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := podPrinter().Row(tc.pod.build(), now)
			if err != nil {
				t.Fatalf("Row: %v", err)
			}
			if diff := cmp.Diff(tc.want, got[1:4]); diff != "" {
				t.Errorf("READY/STATUS/RESTARTS mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPodRow(t *testing.T) {
	full := &corev1.Pod{
		ObjectMeta: objMeta("web-abc12", 26*time.Hour),
		Spec: corev1.PodSpec{
			NodeName:       "node-1",
			Containers:     []corev1.Container{{Name: "web"}},
			ReadinessGates: []corev1.PodReadinessGate{{ConditionType: "example.com/lb"}, {ConditionType: "example.com/dns"}},
		},
		Status: corev1.PodStatus{
			Phase:             corev1.PodRunning,
			PodIPs:            []corev1.PodIP{{IP: "10.42.0.7"}, {IP: "fd00::7"}},
			NominatedNodeName: "node-2",
			Conditions: []corev1.PodCondition{
				{Type: "example.com/lb", Status: corev1.ConditionTrue},
				{Type: "example.com/dns", Status: corev1.ConditionFalse},
			},
			ContainerStatuses: []corev1.ContainerStatus{running("web", true)},
		},
	}
	runRows(t, schema.GroupResource{Resource: "pods"}, []rowCase{
		{
			name: "all wide cells",
			obj:  full,
			want: []interface{}{"web-abc12", "1/1", "Running", "0", "26h", "10.42.0.7", "node-1", "node-2", "1/2"},
		},
		{
			name: "unscheduled pod",
			obj: &corev1.Pod{ObjectMeta: objMeta("new", 3*time.Second),
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a"}, {Name: "b"}}}, Status: corev1.PodStatus{Phase: corev1.PodPending}},
			want: []interface{}{"new", "0/2", "Pending", "0", "3s", "<none>", "<none>", "<none>", "<none>"},
		},
	})
}

func TestPodColumns(t *testing.T) {
	p, _ := For(schema.GroupResource{Resource: "pods"})
	want := []string{"Name", "Ready", "Status", "Restarts", "Age", "+IP", "+Node", "+Nominated Node", "+Readiness Gates"}
	if diff := cmp.Diff(want, columnNames(p)); diff != "" {
		t.Errorf("columns mismatch (-want +got):\n%s", diff)
	}
}

func TestPodTemplateRow(t *testing.T) {
	runRows(t, schema.GroupResource{Resource: "podtemplates"}, []rowCase{{
		name: "containers and labels",
		obj: &corev1.PodTemplate{ObjectMeta: objMeta("tmpl", time.Hour), Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web", "tier": "fe"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}, {Name: "log", Image: "busybox"}}},
		}},
		want: []interface{}{"tmpl", "web,log", "nginx:1.27,busybox", "app=web,tier=fe"},
	}})
}
