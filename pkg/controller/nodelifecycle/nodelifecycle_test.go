package nodelifecycle

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/skiff-project/skiff/pkg/controller/controllertest"
)

var t0 = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) metav1.Time { return metav1.NewTime(t0.Add(d)) }

func readyNode(status corev1.ConditionStatus, taints ...corev1.Taint) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", CreationTimestamp: at(-time.Hour)},
		Spec:       corev1.NodeSpec{Taints: taints},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: status, Reason: "KubeletReady", LastHeartbeatTime: at(0), LastTransitionTime: at(-time.Hour)},
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, LastHeartbeatTime: at(0), LastTransitionTime: at(-time.Hour)},
			{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, LastHeartbeatTime: at(0), LastTransitionTime: at(-time.Hour)},
			{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, LastHeartbeatTime: at(0), LastTransitionTime: at(-time.Hour)},
		}},
	}
}

func TestDecideNode(t *testing.T) {
	const grace = 40 * time.Second
	unreachableNS := corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoSchedule}
	unreachableNE := func(d time.Duration) corev1.Taint {
		return corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute, TimeAdded: ptr.To(at(d))}
	}
	notReadyNS := corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}
	notReadyNE := corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute, TimeAdded: ptr.To(at(50 * time.Second))}
	userTaint := corev1.Taint{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}

	unknown := func() []corev1.NodeCondition {
		c := readyNode(corev1.ConditionTrue).Status.Conditions
		for i := range c {
			c[i].Status = corev1.ConditionUnknown
			c[i].Reason = ReasonNodeStatusUnknown
			c[i].Message = MessageStoppedPosting
			c[i].LastTransitionTime = at(50 * time.Second)
		}
		return c
	}()

	tests := []struct {
		name  string
		node  *corev1.Node
		probe time.Duration // observation time, relative to t0
		now   time.Duration
		want  nodeDecision
	}{
		{
			name: "healthy within grace: nothing", node: readyNode(corev1.ConditionTrue, userTaint),
			probe: 0, now: 40 * time.Second, want: nodeDecision{ready: corev1.ConditionTrue},
		},
		{
			name: "silent past grace: Unknown conditions, unreachable taints, event", node: readyNode(corev1.ConditionTrue, userTaint),
			probe: 0, now: 50 * time.Second,
			want: nodeDecision{conditions: unknown, taints: []corev1.Taint{userTaint, unreachableNE(50 * time.Second), unreachableNS}, becameNotReady: true, ready: corev1.ConditionUnknown},
		},
		{
			name: "already unknown and tainted: converged", node: func() *corev1.Node {
				n := readyNode(corev1.ConditionTrue, unreachableNE(50*time.Second), unreachableNS)
				n.Status.Conditions = unknown
				return n
			}(),
			probe: 0, now: 5 * time.Minute, want: nodeDecision{ready: corev1.ConditionUnknown},
		},
		{
			name: "kubelet reports NotReady: not-ready taints, no event from us", node: readyNode(corev1.ConditionFalse),
			probe: 45 * time.Second, now: 50 * time.Second,
			want: nodeDecision{taints: []corev1.Taint{notReadyNE, notReadyNS}, ready: corev1.ConditionFalse},
		},
		{
			name: "recovered: controller taints removed, user taint kept", node: readyNode(corev1.ConditionTrue, unreachableNS, userTaint, unreachableNE(0)),
			probe: 45 * time.Second, now: 50 * time.Second,
			want: nodeDecision{taints: []corev1.Taint{userTaint}, ready: corev1.ConditionTrue},
		},
		{
			name: "never posted status: conditions added as Unknown", node: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", CreationTimestamp: at(-time.Minute)}},
			probe: 0, now: 50 * time.Second,
			want: nodeDecision{
				conditions: []corev1.NodeCondition{
					{Type: corev1.NodeReady, Status: corev1.ConditionUnknown, Reason: ReasonNodeStatusNeverUpdated, Message: MessageNeverPosted, LastHeartbeatTime: at(-time.Minute), LastTransitionTime: at(50 * time.Second)},
					{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionUnknown, Reason: ReasonNodeStatusNeverUpdated, Message: MessageNeverPosted, LastHeartbeatTime: at(-time.Minute), LastTransitionTime: at(50 * time.Second)},
					{Type: corev1.NodeDiskPressure, Status: corev1.ConditionUnknown, Reason: ReasonNodeStatusNeverUpdated, Message: MessageNeverPosted, LastHeartbeatTime: at(-time.Minute), LastTransitionTime: at(50 * time.Second)},
					{Type: corev1.NodePIDPressure, Status: corev1.ConditionUnknown, Reason: ReasonNodeStatusNeverUpdated, Message: MessageNeverPosted, LastHeartbeatTime: at(-time.Minute), LastTransitionTime: at(50 * time.Second)},
				},
				taints: []corev1.Taint{unreachableNE(50 * time.Second), unreachableNS},
				ready:  corev1.ConditionUnknown,
			},
		},
		{
			name: "cordoned: unschedulable taint", node: func() *corev1.Node { n := readyNode(corev1.ConditionTrue); n.Spec.Unschedulable = true; return n }(),
			probe: 0, now: time.Second,
			want: nodeDecision{taints: []corev1.Taint{{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}}, ready: corev1.ConditionTrue},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decideNode(tt.node, observation{probe: t0.Add(tt.probe)}, t0.Add(tt.now), grace)
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(nodeDecision{})); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
		})
	}
}

func TestObserve(t *testing.T) {
	node := readyNode(corev1.ConditionTrue)
	lease := &coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{RenewTime: ptr.To(metav1.NewMicroTime(t0))}}
	first := observe(nil, node, lease, t0.Add(time.Second))
	if !first.probe.Equal(t0.Add(time.Second)) {
		t.Errorf("first probe = %v, want first sight", first.probe)
	}
	// Nothing changed: the probe stays, so the grace period runs.
	same := observe(&first, node, lease, t0.Add(time.Minute))
	if !same.probe.Equal(first.probe) {
		t.Errorf("probe moved without a heartbeat: %v", same.probe)
	}
	// A lease renewal alone counts as a heartbeat.
	renewed := lease.DeepCopy()
	renewed.Spec.RenewTime = ptr.To(metav1.NewMicroTime(t0.Add(50 * time.Second)))
	if got := observe(&same, node, renewed, t0.Add(2*time.Minute)); !got.probe.Equal(t0.Add(2 * time.Minute)) {
		t.Errorf("probe after renewal = %v, want %v", got.probe, t0.Add(2*time.Minute))
	}
}

func TestEvictions(t *testing.T) {
	defaults := tolerationDefaults{notReady: 300 * time.Second, unreachable: 300 * time.Second}
	tainted := func(taints ...corev1.Taint) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Spec: corev1.NodeSpec{Taints: taints}}
	}
	unreachable := corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute, TimeAdded: ptr.To(at(0))}
	custom := corev1.Taint{Key: "maintenance", Effect: corev1.TaintEffectNoExecute, TimeAdded: ptr.To(at(0))}
	untimed := corev1.Taint{Key: "maintenance", Effect: corev1.TaintEffectNoExecute}
	pod := func(name string, tols ...corev1.Toleration) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}, Spec: corev1.PodSpec{Tolerations: tols}}
	}
	tol := func(key string, secs *int64) corev1.Toleration {
		return corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: secs}
	}
	tests := []struct {
		name      string
		node      *corev1.Node
		pods      []*corev1.Pod
		seen      map[string]time.Time
		now       time.Duration
		wantEvict []string
		wantNext  time.Duration
	}{
		{name: "untainted node", node: tainted(), pods: []*corev1.Pod{pod("a")}, now: time.Hour},
		{name: "default toleration not yet expired", node: tainted(unreachable), pods: []*corev1.Pod{pod("a")}, now: 100 * time.Second, wantNext: 200 * time.Second},
		{name: "default toleration expired", node: tainted(unreachable), pods: []*corev1.Pod{pod("a")}, now: 300 * time.Second, wantEvict: []string{"a"}},
		{name: "explicit short toleration wins", node: tainted(unreachable), pods: []*corev1.Pod{pod("a", tol(corev1.TaintNodeUnreachable, ptr.To[int64](30))), pod("b")},
			now: 30 * time.Second, wantEvict: []string{"a"}, wantNext: 270 * time.Second},
		{name: "tolerates forever", node: tainted(unreachable), pods: []*corev1.Pod{pod("a", tol(corev1.TaintNodeUnreachable, nil))}, now: time.Hour},
		{name: "untolerated custom taint evicts at once", node: tainted(custom), pods: []*corev1.Pod{pod("a")}, now: 0, wantEvict: []string{"a"}},
		{name: "untimed taint counts from first sight", node: tainted(untimed), pods: []*corev1.Pod{pod("a", tol("maintenance", ptr.To[int64](60)))},
			seen: map[string]time.Time{taintKey(untimed): t0}, now: 59 * time.Second, wantNext: time.Second},
		{name: "terminating pod skipped", node: tainted(custom), pods: []*corev1.Pod{func() *corev1.Pod {
			p := pod("a")
			p.DeletionTimestamp = ptr.To(at(0))
			return p
		}()}, now: time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evict, next := evictions(klog.Background(), tt.node, tt.pods, tt.seen, t0.Add(tt.now), defaults)
			var names []string
			for _, p := range evict {
				names = append(names, p.Name)
			}
			if diff := cmp.Diff(tt.wantEvict, names); diff != "" {
				t.Errorf("evicted (-want +got):\n%s", diff)
			}
			if next != tt.wantNext {
				t.Errorf("next = %v, want %v", next, tt.wantNext)
			}
		})
	}
}

// TestSyncScenario drives one node through silence, unreachability and
// eviction with a fake clock, asserting the exact writes at each step.
func TestSyncScenario(t *testing.T) {
	node := readyNode(corev1.ConditionTrue)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "x", UID: "px"},
		Spec:       corev1.PodSpec{NodeName: "n1"},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	client := fake.NewClientset(node, pod)
	factory := informers.NewSharedInformerFactory(client, 0)
	rec := record.NewFakeRecorder(10)
	clk := clocktesting.NewFakeClock(t0)
	c, err := New(client, factory, rec, Options{Clock: clk})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	nodes := factory.Core().V1().Nodes().Informer().GetIndexer()
	pods := factory.Core().V1().Pods().Informer().GetIndexer()
	_ = nodes.Add(node)
	_ = pods.Add(pod)
	ctx := context.Background()

	step := func(name string, advance time.Duration, wantWrites, wantEvents []string) {
		t.Helper()
		clk.Step(advance)
		client.ClearActions()
		if err := c.sync(ctx, "n1"); err != nil {
			t.Fatalf("%s: sync: %v", name, err)
		}
		if diff := cmp.Diff(wantWrites, writes(client.Actions())); diff != "" {
			t.Errorf("%s: writes (-want +got):\n%s", name, diff)
		}
		if diff := cmp.Diff(wantEvents, controllertest.Events(rec)); diff != "" {
			t.Errorf("%s: events (-want +got):\n%s", name, diff)
		}
		// Feed our own writes back into the caches, as the informers would.
		if n, err := client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{}); err == nil {
			_ = nodes.Update(n)
		}
		if p, err := client.CoreV1().Pods("default").Get(ctx, "x", metav1.GetOptions{}); err == nil {
			_ = pods.Update(p)
		} else {
			_ = pods.Delete(pod)
		}
	}

	step("first sight", 0, nil, nil)
	step("within grace", 40*time.Second, nil, nil)
	step("grace exceeded", time.Second,
		[]string{"update nodes/status", "update nodes", "update pods/status"},
		[]string{"Normal NodeNotReady Node n1 status is now: NodeNotReady"})
	got, _ := client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	wantTaints := []corev1.Taint{
		{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute, TimeAdded: ptr.To(metav1.NewTime(t0.Add(41 * time.Second)))},
		{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoSchedule},
	}
	if diff := cmp.Diff(wantTaints, got.Spec.Taints); diff != "" {
		t.Errorf("taints (-want +got):\n%s", diff)
	}
	if r := condition(got.Status.Conditions, corev1.NodeReady); r.Status != corev1.ConditionUnknown || r.Reason != ReasonNodeStatusUnknown || r.Message != MessageStoppedPosting {
		t.Errorf("Ready condition = %+v", r)
	}
	gotPod, _ := client.CoreV1().Pods("default").Get(ctx, "x", metav1.GetOptions{})
	if s := gotPod.Status.Conditions[0].Status; s != corev1.ConditionFalse {
		t.Errorf("pod Ready = %s, want False", s)
	}
	step("converged while tolerated", 299*time.Second, nil, nil)
	step("toleration expired", time.Second,
		[]string{"delete pods"},
		[]string{"Normal TaintManagerEviction Marking for deletion Pod default/x"})
}

func writes(actions []clienttesting.Action) []string {
	var out []string
	for _, a := range actions {
		if a.GetVerb() == "get" || a.GetVerb() == "list" || a.GetVerb() == "watch" {
			continue
		}
		s := a.GetVerb() + " " + a.GetResource().Resource
		if a.GetSubresource() != "" {
			s += "/" + a.GetSubresource()
		}
		out = append(out, s)
	}
	return out
}
