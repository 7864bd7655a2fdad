package statefulset

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Labels the controller sets on its pods, as upstream.
const (
	PodNameLabel      = appsv1.StatefulSetPodNameLabel // statefulset.kubernetes.io/pod-name
	PodIndexLabel     = appsv1.PodIndexLabel           // apps.kubernetes.io/pod-index
	RevisionHashLabel = appsv1.ControllerRevisionHashLabelKey
)

// ActionType is what an Action does.
type ActionType string

// Action types.
const (
	// CreatePod creates the pod of Ordinal (and its missing claims first)
	// from the template of Revision.
	CreatePod ActionType = "create"
	// DeletePod deletes Pod.
	DeletePod ActionType = "delete"
)

// Action is one write Decide asks for.
type Action struct {
	Type     ActionType
	Ordinal  int
	Revision string      // CreatePod: the revision whose template to use
	Pod      *corev1.Pod // DeletePod: the pod
	Scaled   bool        // DeletePod: the pod is condemned by a scale-down
}

// Snapshot is the input of Decide.
type Snapshot struct {
	Set *appsv1.StatefulSet
	// Pods are the set's pods with a parseable ordinal, any order.
	Pods []*corev1.Pod
	// CurrentRevision and UpdateRevision are revision names (the value of
	// the controller-revision-hash label).
	CurrentRevision, UpdateRevision string
	Now                             time.Time
}

// Decide returns the writes of this round, in order, like upstream's
// StatefulSet control:
//  1. failed or succeeded replicas are deleted (recreated next round);
//  2. missing replicas are created, lowest ordinal first;
//  3. with OrderedReady, a round stops at the first replica that is being
//     created, is terminating or is not Running and Ready: each replica waits
//     for its predecessors;
//  4. replicas beyond spec.replicas are deleted from the highest ordinal —
//     with OrderedReady one at a time, each waiting for the previous one to
//     be gone, and only once every kept replica is Running and Ready;
//  5. with RollingUpdate, the highest-ordinal replica at or above the
//     partition that is not at the update revision is deleted (it is
//     recreated at the update revision), one at a time, waiting for each
//     replaced replica to become Running and Ready.
//
// With the Parallel policy steps 1, 2 and 4 act on every replica at once.
func Decide(s Snapshot) []Action {
	set := s.Set
	replicas := int(ptrOr(set.Spec.Replicas, 1))
	start := 0
	if set.Spec.Ordinals != nil {
		start = int(set.Spec.Ordinals.Start)
	}
	monotonic := set.Spec.PodManagementPolicy != appsv1.ParallelPodManagement

	slots := make([]*corev1.Pod, replicas)
	var condemned []*corev1.Pod
	for _, p := range s.Pods {
		ord := ordinal(p)
		if ord >= start && ord < start+replicas {
			slots[ord-start] = p
		} else {
			condemned = append(condemned, p)
		}
	}
	// Highest ordinal first: scale down in reverse order of creation.
	sort.Slice(condemned, func(i, j int) bool { return ordinal(condemned[i]) > ordinal(condemned[j]) })

	var actions []Action
	for i, p := range slots {
		ord := start + i
		switch {
		case p == nil:
			actions = append(actions, Action{Type: CreatePod, Ordinal: ord, Revision: revisionForNew(s, ord)})
			if monotonic {
				return actions
			}
		case p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded:
			if p.DeletionTimestamp == nil {
				actions = append(actions, Action{Type: DeletePod, Ordinal: ord, Pod: p})
			}
			if monotonic {
				return actions
			}
		case monotonic && (p.DeletionTimestamp != nil || !runningAndReady(p)):
			// Its successors wait for it.
			return actions
		}
	}

	for _, p := range condemned {
		if p.DeletionTimestamp != nil {
			if monotonic {
				return actions
			}
			continue
		}
		// With OrderedReady every replica below is Running and Ready here
		// (the loop above returned otherwise), so a scale-down never
		// deepens an outage.
		actions = append(actions, Action{Type: DeletePod, Ordinal: ordinal(p), Pod: p, Scaled: true})
		if monotonic {
			return actions
		}
	}
	if len(actions) > 0 && monotonic {
		return actions
	}

	if set.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return actions
	}
	partition := 0
	if ru := set.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil {
		partition = int(*ru.Partition)
	}
	for i := replicas - 1; i >= partition && i >= 0; i-- {
		p := slots[i]
		if p == nil {
			continue
		}
		if p.Labels[RevisionHashLabel] != s.UpdateRevision && p.DeletionTimestamp == nil {
			return append(actions, Action{Type: DeletePod, Ordinal: start + i, Pod: p})
		}
		if !runningAndReady(p) || p.DeletionTimestamp != nil {
			// Wait for the replaced replica before touching the next one.
			return actions
		}
	}
	return actions
}

// revisionForNew is the revision a (re)created replica gets, as upstream:
// below the partition, or (without a partition) below the count of
// replicas still at the current revision, the current revision; otherwise
// the update revision.
func revisionForNew(s Snapshot, ord int) string {
	set := s.Set
	if set.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return s.UpdateRevision
	}
	partition := 0
	if ru := set.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil {
		partition = int(*ru.Partition)
	}
	start := 0
	if set.Spec.Ordinals != nil {
		start = int(set.Spec.Ordinals.Start)
	}
	idx := ord - start
	if (partition == 0 && idx < int(set.Status.CurrentReplicas)) || idx < partition {
		return s.CurrentRevision
	}
	return s.UpdateRevision
}

// podName is the name of set's replica with ordinal ord.
func podName(set *appsv1.StatefulSet, ord int) string { return fmt.Sprintf("%s-%d", set.Name, ord) }

// claimName is the PVC of claim template tmpl for set's replica ord:
// <claim>-<set>-<ordinal>.
func claimName(tmpl string, set *appsv1.StatefulSet, ord int) string {
	return fmt.Sprintf("%s-%s-%d", tmpl, set.Name, ord)
}

// ordinal parses the ordinal from a pod name <set>-<ordinal>; -1 if none.
func ordinal(pod *corev1.Pod) int {
	i := strings.LastIndexByte(pod.Name, '-')
	if i < 0 {
		return -1
	}
	n, err := strconv.Atoi(pod.Name[i+1:])
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// newPod returns set's replica ord built from template (the template of the
// named revision): stable name, hostname and subdomain for DNS, identity and
// revision labels, and one volume per claim template referencing its PVC.
func newPod(set *appsv1.StatefulSet, template *corev1.PodTemplateSpec, revision string, ord int) *corev1.Pod {
	t := template.DeepCopy()
	name := podName(set, ord)
	lbls := map[string]string{}
	for k, v := range t.Labels {
		lbls[k] = v
	}
	lbls[PodNameLabel] = name
	lbls[PodIndexLabel] = strconv.Itoa(ord)
	lbls[RevisionHashLabel] = revision
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:            name,
			Namespace:       set.Namespace,
			Labels:          lbls,
			Annotations:     t.Annotations,
			Finalizers:      t.Finalizers,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(set, appsv1.SchemeGroupVersion.WithKind("StatefulSet"))},
		},
		Spec: t.Spec,
	}
	pod.Spec.Hostname = name
	pod.Spec.Subdomain = set.Spec.ServiceName
	if len(set.Spec.VolumeClaimTemplates) > 0 {
		claims := map[string]bool{}
		var vols []corev1.Volume
		for _, c := range set.Spec.VolumeClaimTemplates {
			claims[c.Name] = true
			vols = append(vols, corev1.Volume{Name: c.Name, VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claimName(c.Name, set, ord)},
			}})
		}
		for _, v := range pod.Spec.Volumes {
			if !claims[v.Name] {
				vols = append(vols, v)
			}
		}
		pod.Spec.Volumes = vols
	}
	return pod
}

// newClaims returns the PVCs set's replica ord needs: each claim template
// named <claim>-<set>-<ordinal>, labelled with the set's selector labels,
// and owned by the set when the retention policy deletes claims with it.
func newClaims(set *appsv1.StatefulSet, ord int) []*corev1.PersistentVolumeClaim {
	var out []*corev1.PersistentVolumeClaim
	for _, c := range set.Spec.VolumeClaimTemplates {
		pvc := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{
				Name:        claimName(c.Name, set, ord),
				Namespace:   set.Namespace,
				Labels:      map[string]string{},
				Annotations: c.Annotations,
			},
			Spec: *c.Spec.DeepCopy(),
		}
		for k, v := range c.Labels {
			pvc.Labels[k] = v
		}
		if set.Spec.Selector != nil {
			for k, v := range set.Spec.Selector.MatchLabels {
				pvc.Labels[k] = v
			}
		}
		if retainPolicy(set).WhenDeleted == appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
			pvc.OwnerReferences = []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "StatefulSet", Name: set.Name, UID: set.UID,
			}}
		}
		out = append(out, pvc)
	}
	return out
}

// retainPolicy returns set's claim retention policy with defaults (Retain).
func retainPolicy(set *appsv1.StatefulSet) appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy {
	p := appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
		WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
		WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
	}
	if r := set.Spec.PersistentVolumeClaimRetentionPolicy; r != nil {
		if r.WhenDeleted != "" {
			p.WhenDeleted = r.WhenDeleted
		}
		if r.WhenScaled != "" {
			p.WhenScaled = r.WhenScaled
		}
	}
	return p
}

func readyCondition(pod *corev1.Pod) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == corev1.PodReady {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

func runningAndReady(pod *corev1.Pod) bool {
	c := readyCondition(pod)
	return pod.Status.Phase == corev1.PodRunning && c != nil && c.Status == corev1.ConditionTrue
}

func isAvailable(pod *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	if !runningAndReady(pod) {
		return false
	}
	c := readyCondition(pod)
	if minReadySeconds == 0 || c.LastTransitionTime.IsZero() {
		return true
	}
	return c.LastTransitionTime.Add(time.Duration(minReadySeconds) * time.Second).Before(now)
}

// calculateStatus derives set's status from its pods at the start of the
// round, as upstream; once every replica is updated and ready the update
// revision becomes the current one.
func calculateStatus(s Snapshot) appsv1.StatefulSetStatus {
	set := s.Set
	st := *set.Status.DeepCopy()
	st.ObservedGeneration = set.Generation
	st.Replicas, st.ReadyReplicas, st.AvailableReplicas, st.CurrentReplicas, st.UpdatedReplicas = 0, 0, 0, 0, 0
	for _, p := range s.Pods {
		created := p.Status.Phase != ""
		if created {
			st.Replicas++
		}
		if runningAndReady(p) {
			st.ReadyReplicas++
			if isAvailable(p, set.Spec.MinReadySeconds, s.Now) {
				st.AvailableReplicas++
			}
		}
		if created && p.DeletionTimestamp == nil {
			rev := p.Labels[RevisionHashLabel]
			if rev == s.CurrentRevision {
				st.CurrentReplicas++
			}
			if rev == s.UpdateRevision {
				st.UpdatedReplicas++
			}
		}
	}
	st.CurrentRevision = s.CurrentRevision
	st.UpdateRevision = s.UpdateRevision
	if st.CollisionCount == nil {
		st.CollisionCount = new(int32)
	}
	replicas := ptrOr(set.Spec.Replicas, 1)
	if set.Spec.UpdateStrategy.Type != appsv1.OnDeleteStatefulSetStrategyType &&
		st.UpdatedReplicas == replicas && st.ReadyReplicas == replicas && st.Replicas == replicas {
		st.CurrentRevision = s.UpdateRevision
		st.CurrentReplicas = st.UpdatedReplicas
	}
	return st
}

func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}
