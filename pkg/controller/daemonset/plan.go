package daemonset

import (
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
)

// RevisionHashLabel is the label carrying the ControllerRevision hash on
// daemon pods and their revisions (apps/v1 DefaultDaemonSetUniqueLabelKey).
const RevisionHashLabel = appsv1.DefaultDaemonSetUniqueLabelKey

// daemonTolerations are the tolerations upstream adds to every daemon pod,
// so that a node's condition taints never evict or block its daemons; the
// NoExecute ones have no tolerationSeconds (tolerate forever).
func daemonTolerations(hostNetwork bool) []corev1.Toleration {
	t := []corev1.Toleration{
		{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
		{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
		{Key: corev1.TaintNodeDiskPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodeMemoryPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodePIDPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	}
	if hostNetwork {
		t = append(t, corev1.Toleration{Key: corev1.TaintNodeNetworkUnavailable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})
	}
	return t
}

// addTolerations adds each of add to spec unless an identical toleration is
// already there (upstream's AddOrUpdateTolerationInPodSpec for equal keys).
func addTolerations(spec *corev1.PodSpec, add []corev1.Toleration) {
	for _, t := range add {
		found := false
		for i := range spec.Tolerations {
			e := &spec.Tolerations[i]
			if e.Key == t.Key && e.Effect == t.Effect && e.Operator == t.Operator && e.Value == t.Value {
				// Overwrite, like upstream: a user's tolerationSeconds on
				// these keys would let a node condition evict its daemon.
				*e = t
				found = true
				break
			}
		}
		if !found {
			spec.Tolerations = append(spec.Tolerations, t)
		}
	}
}

// newPod returns the daemon pod ds runs on nodeName: the template with the
// revision hash label, the daemon tolerations, and the required node
// affinity replaced by one matchFields term metadata.name=nodeName, so the
// default scheduler binds it to exactly that node. nodeName "" gives the
// pod used to evaluate node eligibility (no node term).
func newPod(ds *appsv1.DaemonSet, nodeName, hash string) *corev1.Pod {
	t := ds.Spec.Template.DeepCopy()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: ds.Name + "-",
			Namespace:    ds.Namespace,
			Labels:       t.Labels,
			Annotations:  t.Annotations,
			Finalizers:   t.Finalizers,
			OwnerReferences: []metav1.OwnerReference{
				*metav1.NewControllerRef(ds, appsv1.SchemeGroupVersion.WithKind("DaemonSet")),
			},
		},
		Spec: t.Spec,
	}
	if hash != "" {
		if pod.Labels == nil {
			pod.Labels = map[string]string{}
		}
		pod.Labels[RevisionHashLabel] = hash
	}
	addTolerations(&pod.Spec, daemonTolerations(pod.Spec.HostNetwork))
	if nodeName != "" {
		pinToNode(&pod.Spec, nodeName)
	}
	return pod
}

// pinToNode replaces spec's required node affinity terms with a single
// metadata.name=nodeName field term, keeping preferred terms. The replaced
// terms were already checked by shouldRunOn.
func pinToNode(spec *corev1.PodSpec, nodeName string) {
	term := corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{{
		Key: metav1.ObjectNameField, Operator: corev1.NodeSelectorOpIn, Values: []string{nodeName},
	}}}
	if spec.Affinity == nil {
		spec.Affinity = &corev1.Affinity{}
	}
	if spec.Affinity.NodeAffinity == nil {
		spec.Affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{term}}
}

// shouldRunOn reports whether ds should run a pod on node (create one if
// missing) and whether an existing daemon pod may keep running there, as
// upstream's NodeShouldRunDaemonPod: nodeName, nodeSelector and required
// node affinity must match; an untolerated NoSchedule or NoExecute taint
// forbids new pods, and only an untolerated NoExecute taint evicts running
// ones. probe is newPod(ds, "", "").
func shouldRunOn(probe *corev1.Pod, node *corev1.Node) (shouldRun, shouldContinueRunning bool) {
	if probe.Spec.NodeName != "" && probe.Spec.NodeName != node.Name {
		return false, false
	}
	if ok, err := nodeaffinity.GetRequiredNodeAffinity(probe).Match(node); err != nil || !ok {
		return false, false
	}
	logger := klog.Background()
	_, untolerated := corev1helpers.FindMatchingUntoleratedTaint(logger, node.Spec.Taints, probe.Spec.Tolerations, func(t *corev1.Taint) bool {
		return t.Effect == corev1.TaintEffectNoExecute || t.Effect == corev1.TaintEffectNoSchedule
	}, false)
	if !untolerated {
		return true, true
	}
	_, evicting := corev1helpers.FindMatchingUntoleratedTaint(logger, node.Spec.Taints, probe.Spec.Tolerations, func(t *corev1.Taint) bool {
		return t.Effect == corev1.TaintEffectNoExecute
	}, false)
	return false, !evicting
}

// targetNode is the node a daemon pod is for: its spec.nodeName once bound,
// else the metadata.name field term the controller pinned it with.
func targetNode(pod *corev1.Pod) string {
	if pod.Spec.NodeName != "" {
		return pod.Spec.NodeName
	}
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return ""
	}
	for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		for _, f := range term.MatchFields {
			if f.Key == metav1.ObjectNameField && f.Operator == corev1.NodeSelectorOpIn && len(f.Values) == 1 {
				return f.Values[0]
			}
		}
	}
	return ""
}

// Plan is what one sync of a DaemonSet must do.
type Plan struct {
	// CreateOn lists the nodes that need a daemon pod, sorted.
	CreateOn []string
	// Delete lists pods to delete, with Reasons[i] explaining Delete[i].
	Delete  []*corev1.Pod
	Reasons []string
}

// Deletion reasons used in Plan.Reasons.
const (
	deleteMisscheduled = "node no longer eligible"
	deleteDuplicate    = "more than one daemon pod on node"
	deleteFailed       = "pod failed"
	deleteOutdated     = "rolling update"
)

// Snapshot is the input of Decide: the DaemonSet, its current revision hash,
// the nodes, and the DaemonSet's pods grouped by target node.
type Snapshot struct {
	DaemonSet  *appsv1.DaemonSet
	Hash       string
	Nodes      []*corev1.Node
	PodsByNode map[string][]*corev1.Pod
	Now        time.Time
}

// Decide returns the pods to create and delete. It is a pure function:
//   - an eligible node without a daemon pod gets one; a terminating pod
//     still counts, so a replacement waits until it is gone;
//   - failed pods are deleted (and replaced next sync), and of several live
//     pods on a node only the oldest is kept;
//   - pods on nodes where they may not continue running are deleted;
//   - with the RollingUpdate strategy, pods of an old revision are deleted
//     so that at most maxUnavailable eligible nodes lack an available pod:
//     unavailable old pods go first and for free, then available ones in
//     node-name order while the budget lasts.
func Decide(s Snapshot) Plan {
	ds := s.DaemonSet
	probe := newPod(ds, "", "")
	nodes := append([]*corev1.Node(nil), s.Nodes...)
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })

	var plan Plan
	del := func(p *corev1.Pod, why string) {
		plan.Delete = append(plan.Delete, p)
		plan.Reasons = append(plan.Reasons, why)
	}
	// live is the one pod kept per eligible node, for the rolling update.
	live := map[string]*corev1.Pod{}
	var eligible []string
	for _, node := range nodes {
		pods := s.PodsByNode[node.Name]
		shouldRun, shouldContinue := shouldRunOn(probe, node)
		if shouldRun {
			eligible = append(eligible, node.Name)
		}
		switch {
		case shouldRun && len(pods) == 0:
			plan.CreateOn = append(plan.CreateOn, node.Name)
		case shouldContinue:
			var running []*corev1.Pod
			for _, p := range pods {
				if p.DeletionTimestamp != nil {
					continue
				}
				if p.Status.Phase == corev1.PodFailed {
					del(p, deleteFailed)
					continue
				}
				running = append(running, p)
			}
			sortOldestFirst(running)
			for _, p := range running[min(1, len(running)):] {
				del(p, deleteDuplicate)
			}
			if len(running) > 0 && shouldRun {
				live[node.Name] = running[0]
			}
		default:
			for _, p := range pods {
				if p.DeletionTimestamp == nil {
					del(p, deleteMisscheduled)
				}
			}
		}
	}

	if ds.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType {
		return plan
	}
	maxUnavailable := maxUnavailable(ds, len(eligible))
	unavailable := 0
	var oldAvailable []*corev1.Pod
	for _, n := range eligible {
		p := live[n]
		if p == nil || !isAvailable(p, ds.Spec.MinReadySeconds, s.Now) {
			unavailable++
		}
		if p == nil || p.Labels[RevisionHashLabel] == s.Hash {
			continue
		}
		if !isAvailable(p, ds.Spec.MinReadySeconds, s.Now) {
			// Already counted as unavailable: replacing it costs nothing.
			del(p, deleteOutdated)
			continue
		}
		oldAvailable = append(oldAvailable, p)
	}
	for _, p := range oldAvailable {
		if unavailable >= maxUnavailable {
			break
		}
		del(p, deleteOutdated)
		unavailable++
	}
	return plan
}

// maxUnavailable resolves the rolling update's maxUnavailable (default 1)
// against the number of eligible nodes, rounding percentages up; it is at
// least 1 so that a rollout always makes progress.
func maxUnavailable(ds *appsv1.DaemonSet, desired int) int {
	v := intstr.FromInt32(1)
	if ru := ds.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.MaxUnavailable != nil {
		v = *ru.MaxUnavailable
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(&v, desired, true)
	if err != nil || n < 1 {
		return 1
	}
	return n
}

func sortOldestFirst(pods []*corev1.Pod) {
	sort.SliceStable(pods, func(i, j int) bool {
		if !pods[i].CreationTimestamp.Equal(&pods[j].CreationTimestamp) {
			return pods[i].CreationTimestamp.Before(&pods[j].CreationTimestamp)
		}
		return pods[i].Name < pods[j].Name
	})
}

func readyCondition(pod *corev1.Pod) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == corev1.PodReady {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

func isReady(pod *corev1.Pod) bool {
	c := readyCondition(pod)
	return c != nil && c.Status == corev1.ConditionTrue
}

// isAvailable reports whether pod has been ready for minReadySeconds at now.
func isAvailable(pod *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	c := readyCondition(pod)
	if c == nil || c.Status != corev1.ConditionTrue {
		return false
	}
	if minReadySeconds == 0 || c.LastTransitionTime.IsZero() {
		return true
	}
	return c.LastTransitionTime.Add(time.Duration(minReadySeconds) * time.Second).Before(now)
}

// calculateStatus derives ds's status from its pods at the start of the
// sync, as upstream: per eligible node the oldest pod decides ready,
// available and updated; pods on ineligible nodes are misscheduled.
func calculateStatus(s Snapshot) appsv1.DaemonSetStatus {
	ds := s.DaemonSet
	st := *ds.Status.DeepCopy()
	probe := newPod(ds, "", "")
	var desired, current, ready, available, updated, mis int32
	for _, node := range s.Nodes {
		pods := s.PodsByNode[node.Name]
		shouldRun, _ := shouldRunOn(probe, node)
		if !shouldRun {
			if len(pods) > 0 {
				mis++
			}
			continue
		}
		desired++
		if len(pods) == 0 {
			continue
		}
		current++
		sorted := append([]*corev1.Pod(nil), pods...)
		sortOldestFirst(sorted)
		p := sorted[0]
		if isReady(p) {
			ready++
			if isAvailable(p, ds.Spec.MinReadySeconds, s.Now) {
				available++
			}
		}
		if p.Labels[RevisionHashLabel] == s.Hash {
			updated++
		}
	}
	st.DesiredNumberScheduled = desired
	st.CurrentNumberScheduled = current
	st.NumberReady = ready
	st.NumberAvailable = available
	st.NumberUnavailable = desired - available
	st.UpdatedNumberScheduled = updated
	st.NumberMisscheduled = mis
	st.ObservedGeneration = ds.Generation
	return st
}
