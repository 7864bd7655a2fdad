package daemonset

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/skiff-project/skiff/pkg/controller/controllertest"
)

var now = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

func newDS(opts ...func(*appsv1.DaemonSet)) *appsv1.DaemonSet {
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "agent", UID: "agent-uid", Generation: 1},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "agent"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "agent:1"}}},
			},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType},
		},
	}
	for _, o := range opts {
		o(ds)
	}
	return ds
}

func image(i string) func(*appsv1.DaemonSet) {
	return func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Image = i }
}

func newNode(name string, opts ...func(*corev1.Node)) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}}}
	for _, o := range opts {
		o(n)
	}
	return n
}

func taint(key string, effect corev1.TaintEffect) func(*corev1.Node) {
	return func(n *corev1.Node) { n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: key, Effect: effect}) }
}

func label(k, v string) func(*corev1.Node) { return func(n *corev1.Node) { n.Labels[k] = v } }

type podOpt func(*corev1.Pod)

func readyPod(p *corev1.Pod) {
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(now.Add(-time.Hour))}}
}
func failed(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed }
func olderBy(d time.Duration) podOpt {
	return func(p *corev1.Pod) { p.CreationTimestamp = metav1.NewTime(now.Add(-d)) }
}

// daemonPod is ds's pod on node with the revision hash of ds's template.
func daemonPod(ds *appsv1.DaemonSet, name, node string, opts ...podOpt) *corev1.Pod {
	p := newPod(ds, node, templateHash(ds))
	p.GenerateName = ""
	p.Name, p.UID = name, types.UID(name+"-uid")
	p.Spec.NodeName = node
	p.CreationTimestamp = metav1.NewTime(now.Add(-2 * time.Hour))
	for _, o := range opts {
		o(p)
	}
	return p
}

func TestShouldRunOn(t *testing.T) {
	tests := []struct {
		name                     string
		ds                       *appsv1.DaemonSet
		node                     *corev1.Node
		wantRun, wantContinueRun bool
	}{
		{"plain node", newDS(), newNode("n1"), true, true},
		{"nodeSelector matches", newDS(func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.NodeSelector = map[string]string{"gpu": "yes"} }), newNode("n1", label("gpu", "yes")), true, true},
		{"nodeSelector does not match", newDS(func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.NodeSelector = map[string]string{"gpu": "yes"} }), newNode("n1"), false, false},
		{"required node affinity does not match", newDS(func(ds *appsv1.DaemonSet) {
			ds.Spec.Template.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}}}}},
			}}}
		}), newNode("n1", label("zone", "b")), false, false},
		{"untolerated NoSchedule taint: no new pod, existing one stays", newDS(), newNode("n1", taint("dedicated", corev1.TaintEffectNoSchedule)), false, true},
		{"untolerated NoExecute taint: evicted", newDS(), newNode("n1", taint("dedicated", corev1.TaintEffectNoExecute)), false, false},
		{"PreferNoSchedule taint is ignored", newDS(), newNode("n1", taint("dedicated", corev1.TaintEffectPreferNoSchedule)), true, true},
		{"tolerated taint", newDS(func(ds *appsv1.DaemonSet) {
			ds.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}
		}), newNode("n1", taint("dedicated", corev1.TaintEffectNoExecute)), true, true},
		{"default tolerations: not-ready and unschedulable nodes still run daemons", newDS(),
			newNode("n1", taint(corev1.TaintNodeNotReady, corev1.TaintEffectNoExecute), taint(corev1.TaintNodeUnschedulable, corev1.TaintEffectNoSchedule)), true, true},
		{"network-unavailable is tolerated only by hostNetwork daemons", newDS(), newNode("n1", taint(corev1.TaintNodeNetworkUnavailable, corev1.TaintEffectNoSchedule)), false, true},
		{"network-unavailable with hostNetwork", newDS(func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.HostNetwork = true }),
			newNode("n1", taint(corev1.TaintNodeNetworkUnavailable, corev1.TaintEffectNoSchedule)), true, true},
		{"template nodeName pins to another node", newDS(func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.NodeName = "n2" }), newNode("n1"), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run, cont := shouldRunOn(newPod(tt.ds, "", ""), tt.node)
			if run != tt.wantRun || cont != tt.wantContinueRun {
				t.Errorf("shouldRunOn = (%v, %v), want (%v, %v)", run, cont, tt.wantRun, tt.wantContinueRun)
			}
		})
	}
}

func TestNewPodPinsToNode(t *testing.T) {
	ds := newDS(func(ds *appsv1.DaemonSet) {
		ds.Spec.Template.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}}}}},
		}}}
	})
	pod := newPod(ds, "n1", "abc")
	want := &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"n1"}}}}}}
	if diff := cmp.Diff(want, pod.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution); diff != "" {
		t.Errorf("required node affinity (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"app": "agent", RevisionHashLabel: "abc"}, pod.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if got := targetNode(pod); got != "n1" {
		t.Errorf("targetNode = %q, want n1", got)
	}
	if len(pod.Spec.Tolerations) != 6 {
		t.Errorf("got %d tolerations, want the 6 daemon defaults", len(pod.Spec.Tolerations))
	}
	if ds.Spec.Template.Spec.Tolerations != nil {
		t.Error("newPod mutated the DaemonSet's template")
	}
}

// render summarises a plan as "create <node>" and "delete <pod> (<reason>)".
func render(p Plan) []string {
	var out []string
	for _, n := range p.CreateOn {
		out = append(out, "create "+n)
	}
	for i, pod := range p.Delete {
		out = append(out, fmt.Sprintf("delete %s (%s)", pod.Name, p.Reasons[i]))
	}
	return out
}

func TestDecide(t *testing.T) {
	v1 := newDS()
	v2 := newDS(image("agent:2"))
	maxUnavail := func(v intstr.IntOrString) func(*appsv1.DaemonSet) {
		return func(ds *appsv1.DaemonSet) {
			ds.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &v}
		}
	}
	terminating := func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{Time: now} }
	nodes := []*corev1.Node{newNode("n1"), newNode("n2"), newNode("n3")}
	tests := []struct {
		name  string
		ds    *appsv1.DaemonSet
		nodes []*corev1.Node
		pods  []*corev1.Pod
		want  []string
	}{
		{
			name: "every eligible node gets a pod", ds: v1,
			nodes: append(nodes, newNode("tainted", taint("x", corev1.TaintEffectNoSchedule))),
			pods:  []*corev1.Pod{daemonPod(v1, "a", "n2", readyPod)},
			want:  []string{"create n1", "create n3"},
		},
		{
			name: "converged: nothing", ds: v1, nodes: nodes,
			pods: []*corev1.Pod{daemonPod(v1, "a", "n1", readyPod), daemonPod(v1, "b", "n2", readyPod), daemonPod(v1, "c", "n3", readyPod)},
		},
		{
			name: "terminating pod blocks its replacement", ds: v1, nodes: nodes[:1],
			pods: []*corev1.Pod{daemonPod(v1, "a", "n1", terminating)},
		},
		{
			name: "failed pod is deleted, duplicates keep the oldest", ds: v1, nodes: nodes[:2],
			pods: []*corev1.Pod{
				daemonPod(v1, "a", "n1", failed),
				daemonPod(v1, "b", "n2", readyPod, olderBy(time.Minute)),
				daemonPod(v1, "c", "n2", readyPod, olderBy(time.Hour)),
			},
			want: []string{"delete a (pod failed)", "delete b (more than one daemon pod on node)"},
		},
		{
			name: "pods on nodes that became ineligible are deleted", ds: v1,
			nodes: []*corev1.Node{newNode("n1", taint("x", corev1.TaintEffectNoExecute)), newNode("n2", taint("x", corev1.TaintEffectNoSchedule))},
			pods:  []*corev1.Pod{daemonPod(v1, "a", "n1", readyPod), daemonPod(v1, "b", "n2", readyPod)},
			want:  []string{"delete a (node no longer eligible)"},
		},
		{
			name: "rolling update replaces one available pod at a time", ds: v2, nodes: nodes,
			pods: []*corev1.Pod{daemonPod(v1, "a", "n1", readyPod), daemonPod(v1, "b", "n2", readyPod), daemonPod(v1, "c", "n3", readyPod)},
			want: []string{"delete a (rolling update)"},
		},
		{
			name: "rolling update waits while a new pod is not yet available", ds: v2, nodes: nodes,
			pods: []*corev1.Pod{daemonPod(v2, "a2", "n1"), daemonPod(v1, "b", "n2", readyPod), daemonPod(v1, "c", "n3", readyPod)},
		},
		{
			name: "unavailable old pods are replaced regardless of the budget", ds: v2, nodes: nodes,
			pods: []*corev1.Pod{daemonPod(v1, "a", "n1"), daemonPod(v1, "b", "n2"), daemonPod(v1, "c", "n3", readyPod)},
			want: []string{"delete a (rolling update)", "delete b (rolling update)"},
		},
		{
			name: "maxUnavailable 50% of 3 nodes rounds up to 2", ds: newDS(image("agent:2"), maxUnavail(intstr.FromString("50%"))), nodes: nodes,
			pods: []*corev1.Pod{daemonPod(v1, "a", "n1", readyPod), daemonPod(v1, "b", "n2", readyPod), daemonPod(v1, "c", "n3", readyPod)},
			want: []string{"delete a (rolling update)", "delete b (rolling update)"},
		},
		{
			name: "OnDelete never deletes old pods", ds: newDS(image("agent:2"), func(ds *appsv1.DaemonSet) { ds.Spec.UpdateStrategy.Type = appsv1.OnDeleteDaemonSetStrategyType }),
			nodes: nodes[:1],
			pods:  []*corev1.Pod{daemonPod(v1, "a", "n1", readyPod)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			byNode := map[string][]*corev1.Pod{}
			for _, p := range tt.pods {
				byNode[targetNode(p)] = append(byNode[targetNode(p)], p)
			}
			got := render(Decide(Snapshot{DaemonSet: tt.ds, Hash: templateHash(tt.ds), Nodes: tt.nodes, PodsByNode: byNode, Now: now}))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

type fixture struct {
	client   *fake.Clientset
	recorder *record.FakeRecorder
	ctrl     *Controller
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	t.Helper()
	client := fake.NewClientset(objs...)
	controllertest.GenerateNames(client, "pods")
	factory := informers.NewSharedInformerFactory(client, 0)
	recorder := record.NewFakeRecorder(100)
	ctrl, err := New(client, factory.Apps().V1().DaemonSets(), factory.Apps().V1().ControllerRevisions(), factory.Core().V1().Pods(), factory.Core().V1().Nodes(), recorder, clocktesting.NewFakePassiveClock(now))
	if err != nil {
		t.Fatal(err)
	}
	controllertest.Seed(t, factory, objs...)
	client.ClearActions()
	return &fixture{client: client, recorder: recorder, ctrl: ctrl}
}

func (f *fixture) writes() []string { return controllertest.Writes(f.client.Actions()) }

// events returns the recorded events sorted: pods of one slow-start batch
// are created in parallel, so their events arrive in any order.
func (f *fixture) events() []string {
	evs := controllertest.Events(f.recorder)
	sort.Strings(evs)
	return evs
}

// revision is the ControllerRevision the controller records for ds.
func revision(t *testing.T, ds *appsv1.DaemonSet, rev int64) *appsv1.ControllerRevision {
	t.Helper()
	patch, err := revisionPatch(ds)
	if err != nil {
		t.Fatal(err)
	}
	h := templateHash(ds)
	return &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Namespace: ds.Namespace, Name: ds.Name + "-" + h,
			Labels:          map[string]string{"app": "agent", RevisionHashLabel: h},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ds, appsv1.SchemeGroupVersion.WithKind("DaemonSet"))}},
		Data:     runtime.RawExtension{Raw: patch},
		Revision: rev,
	}
}

func withStatus(ds *appsv1.DaemonSet, desired, current, ready, updated int32) *appsv1.DaemonSet {
	ds.Status = appsv1.DaemonSetStatus{DesiredNumberScheduled: desired, CurrentNumberScheduled: current, NumberReady: ready, NumberAvailable: ready,
		NumberUnavailable: desired - ready, UpdatedNumberScheduled: updated, ObservedGeneration: ds.Generation}
	return ds
}

func TestSync(t *testing.T) {
	v1 := newDS()
	hash1 := templateHash(v1)
	tests := []struct {
		name       string
		objs       []runtime.Object
		wantWrites []string
		wantEvents []string
	}{
		{
			name: "new daemonset: revision, one pod per node, status",
			objs: []runtime.Object{newDS(), newNode("n1"), newNode("n2")},
			wantWrites: []string{
				"create controllerrevisions agent-" + hash1,
				"create pods agent-", "create pods agent-",
				"update daemonsets/status agent",
			},
			wantEvents: []string{"Normal SuccessfulCreate Created pod: agent-00001", "Normal SuccessfulCreate Created pod: agent-00002"},
		},
		{
			name: "converged daemonset writes nothing",
			objs: []runtime.Object{withStatus(newDS(), 2, 2, 2, 2), revision(t, v1, 1), newNode("n1"), newNode("n2"),
				daemonPod(v1, "a", "n1", readyPod), daemonPod(v1, "b", "n2", readyPod)},
		},
		{
			name: "node that gains an untolerated NoExecute taint loses its pod",
			objs: []runtime.Object{withStatus(newDS(), 2, 2, 2, 2), revision(t, v1, 1), newNode("n1"), newNode("n2", taint("x", corev1.TaintEffectNoExecute)),
				daemonPod(v1, "a", "n1", readyPod), daemonPod(v1, "b", "n2", readyPod)},
			wantWrites: []string{"delete pods b", "update daemonsets/status agent"},
			wantEvents: []string{"Normal SuccessfulDelete Deleted pod: b"},
		},
		{
			name: "template change: new revision, one old pod deleted",
			objs: []runtime.Object{withStatus(newDS(image("agent:2")), 2, 2, 2, 2), revision(t, v1, 1), newNode("n1"), newNode("n2"),
				daemonPod(v1, "a", "n1", readyPod), daemonPod(v1, "b", "n2", readyPod)},
			wantWrites: []string{
				"create controllerrevisions agent-" + templateHash(newDS(image("agent:2"))),
				"delete pods a",
				"update daemonsets/status agent",
			},
			wantEvents: []string{"Normal SuccessfulDelete Deleted pod: a"},
		},
		{
			name: "rollback renumbers the old revision instead of duplicating it",
			objs: []runtime.Object{withStatus(newDS(), 1, 1, 1, 1), revision(t, v1, 1), revision(t, newDS(image("agent:2")), 2), newNode("n1"),
				daemonPod(v1, "a", "n1", readyPod)},
			wantWrites: []string{"update controllerrevisions agent-" + hash1},
		},
		{
			name: "deleted daemonset: nothing",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.objs...)
			if err := f.ctrl.sync(t.Context(), "kube-system/agent"); err != nil {
				t.Fatalf("sync: %v", err)
			}
			if diff := cmp.Diff(tt.wantWrites, f.writes()); diff != "" {
				t.Errorf("writes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantEvents, f.events()); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCalculateStatus(t *testing.T) {
	v1 := newDS()
	v2 := newDS(image("agent:2"))
	nodes := []*corev1.Node{newNode("n1"), newNode("n2"), newNode("n3"), newNode("off", taint("x", corev1.TaintEffectNoSchedule))}
	byNode := map[string][]*corev1.Pod{
		"n1":  {daemonPod(v2, "a", "n1", readyPod)},
		"n2":  {daemonPod(v1, "b", "n2")},
		"off": {daemonPod(v1, "c", "off", readyPod)},
	}
	got := calculateStatus(Snapshot{DaemonSet: v2, Hash: templateHash(v2), Nodes: nodes, PodsByNode: byNode, Now: now})
	want := appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, CurrentNumberScheduled: 2, NumberReady: 1, NumberAvailable: 1,
		NumberUnavailable: 2, UpdatedNumberScheduled: 1, NumberMisscheduled: 1, ObservedGeneration: 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
}
