package kubelet

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition reasons the kubelet sets on pods, as upstream spells them.
const (
	ReasonContainersNotInitialized = "ContainersNotInitialized"
	ReasonContainersNotReady       = "ContainersNotReady"
	ReasonPodCompleted             = "PodCompleted"
	ReasonReadinessGatesNotReady   = "ReadinessGatesNotReady"
	ReasonContainerCreating        = "ContainerCreating"
	ReasonPodInitializing          = "PodInitializing"
)

// kubeletConditions are the pod condition types the kubelet owns, in the
// order upstream's kubelet writes them; other conditions (DisruptionTarget,
// custom readiness gates) are kept from the old status, in front.
var kubeletConditions = [...]corev1.PodConditionType{
	corev1.PodReadyToStartContainers,
	corev1.PodInitialized,
	corev1.PodReady,
	corev1.ContainersReady,
	corev1.PodScheduled,
}

func ownedByKubelet(t corev1.PodConditionType) bool {
	for _, k := range kubeletConditions {
		if k == t {
			return true
		}
	}
	return false
}

// generatePodStatus computes the API status of pod from what the runtime
// observed. It is a pure function of its inputs: transition times and the
// start time are carried over from pod.Status when unchanged, otherwise set
// to now, so a converged pod yields exactly its current status (and the
// kubelet writes nothing). All times are truncated to whole seconds, the
// precision the API stores, for the same reason.
func generatePodStatus(pod *corev1.Pod, rs PodRuntimeStatus, hostIPs []string, now time.Time) corev1.PodStatus {
	old := &pod.Status
	nowT := metav1.NewTime(now.Truncate(time.Second))

	initialized, pendingInit, failedInit := initState(pod, rs.InitContainers)
	s := corev1.PodStatus{
		InitContainerStatuses: containerStatuses(pod.Spec.InitContainers, rs.InitContainers, true, ""),
		ContainerStatuses:     containerStatuses(pod.Spec.Containers, rs.Containers, false, waitingReason(initialized)),
		QOSClass:              old.QOSClass,
		StartTime:             old.StartTime,
	}
	s.Phase = podPhase(pod, initialized, failedInit, s.ContainerStatuses)
	if s.QOSClass == "" {
		s.QOSClass = qosClass(pod)
	}
	if s.StartTime == nil {
		s.StartTime = &nowT
	}
	if len(hostIPs) > 0 {
		s.HostIP = hostIPs[0]
		for _, ip := range hostIPs {
			s.HostIPs = append(s.HostIPs, corev1.HostIP{IP: ip})
		}
	}
	if len(rs.PodIPs) > 0 {
		s.PodIP = rs.PodIPs[0]
		for _, ip := range rs.PodIPs {
			s.PodIPs = append(s.PodIPs, corev1.PodIP{IP: ip})
		}
	} else {
		// A sandbox being torn down or recreated has no IP for a moment;
		// upstream keeps reporting the last known one rather than flapping.
		s.PodIP, s.PodIPs = old.PodIP, old.PodIPs
	}

	for _, c := range old.Conditions {
		if !ownedByKubelet(c.Type) {
			s.Conditions = append(s.Conditions, c)
		}
	}
	generated := [...]corev1.PodCondition{
		{Type: corev1.PodReadyToStartContainers, Status: boolCondition(rs.SandboxReady)},
		initializedCondition(s.Phase, pendingInit),
		readyCondition(pod, corev1.PodReady, s.Phase, s.ContainerStatuses, old.Conditions),
		readyCondition(pod, corev1.ContainersReady, s.Phase, s.ContainerStatuses, nil),
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
	}
	for _, c := range generated {
		s.Conditions = append(s.Conditions, withTransitionTime(c, old.Conditions, nowT))
	}
	return s
}

func boolCondition(b bool) corev1.ConditionStatus {
	if b {
		return corev1.ConditionTrue
	}
	return corev1.ConditionFalse
}

// withTransitionTime keeps the old condition's transition time when its
// status did not change; a transition (or a new condition) happens now.
func withTransitionTime(c corev1.PodCondition, old []corev1.PodCondition, now metav1.Time) corev1.PodCondition {
	c.LastTransitionTime = now
	for _, o := range old {
		if o.Type == c.Type && o.Status == c.Status {
			c.LastTransitionTime = o.LastTransitionTime
			c.LastProbeTime = o.LastProbeTime
		}
	}
	return c
}

func waitingReason(initialized bool) string {
	if initialized {
		return ReasonContainerCreating
	}
	return ReasonPodInitializing
}

// initState reports whether every init container completed successfully,
// the names of those that did not (yet), and whether one failed for good.
func initState(pod *corev1.Pod, observed []ContainerStatus) (initialized bool, pending []string, failed bool) {
	for _, c := range pod.Spec.InitContainers {
		o := findStatus(observed, c.Name)
		switch {
		case o != nil && o.State.Terminated != nil && o.State.Terminated.ExitCode == 0:
			continue
		case o != nil && o.State.Terminated != nil && pod.Spec.RestartPolicy == corev1.RestartPolicyNever:
			failed = true
		}
		pending = append(pending, c.Name)
	}
	return len(pending) == 0, pending, failed
}

func findStatus(observed []ContainerStatus, name string) *ContainerStatus {
	for i := range observed {
		if observed[i].Name == name {
			return &observed[i]
		}
	}
	return nil
}

// containerStatuses lists one status per spec container, in spec order.
// Containers the runtime has not created yet are Waiting with
// waitReason. A running container is started and ready unless its probes
// say otherwise (NotStarted, Unready); an init container is ready once it
// completed successfully.
func containerStatuses(specs []corev1.Container, observed []ContainerStatus, init bool, waitReason string) []corev1.ContainerStatus {
	if len(specs) == 0 {
		return nil
	}
	if waitReason == "" {
		waitReason = ReasonPodInitializing
	}
	out := make([]corev1.ContainerStatus, 0, len(specs))
	for _, c := range specs {
		cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image}
		o := findStatus(observed, c.Name)
		if o == nil {
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: waitReason}
			cs.Started = new(false)
			out = append(out, cs)
			continue
		}
		cs.ContainerID, cs.ImageID, cs.RestartCount = o.ID, o.ImageID, o.RestartCount
		cs.State = truncateState(o.State)
		cs.LastTerminationState = truncateState(o.LastTerminationState)
		running := cs.State.Running != nil
		if init {
			cs.Ready = cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0
		} else {
			cs.Ready = running && !o.Unready && !o.NotStarted
		}
		cs.Started = new(running && !o.NotStarted)
		out = append(out, cs)
	}
	return out
}

// truncateState returns a deep copy of s with times truncated to seconds.
func truncateState(s corev1.ContainerState) corev1.ContainerState {
	out := *s.DeepCopy()
	if out.Running != nil {
		out.Running.StartedAt = truncTime(out.Running.StartedAt)
	}
	if out.Terminated != nil {
		out.Terminated.StartedAt = truncTime(out.Terminated.StartedAt)
		out.Terminated.FinishedAt = truncTime(out.Terminated.FinishedAt)
	}
	return out
}

func truncTime(t metav1.Time) metav1.Time {
	if t.IsZero() {
		return t
	}
	return metav1.NewTime(t.Truncate(time.Second))
}

// podPhase follows upstream's getPhase: Pending until initialized and
// every container started; Running while any container runs (or, with
// restartPolicy Always/OnFailure, while exited containers await restart);
// Succeeded when all exited 0; Failed when any exited non-zero and will not
// be restarted.
func podPhase(pod *corev1.Pod, initialized, failedInit bool, statuses []corev1.ContainerStatus) corev1.PodPhase {
	if failedInit {
		return corev1.PodFailed
	}
	if !initialized {
		return corev1.PodPending
	}
	var running, waiting, stopped, succeeded int
	for _, cs := range statuses {
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			stopped++
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case cs.State.Waiting != nil && cs.LastTerminationState.Terminated != nil:
			// Waiting to restart after an exit: counts as stopped.
			stopped++
		default:
			waiting++
		}
	}
	switch {
	case waiting > 0:
		return corev1.PodPending
	case running > 0:
		return corev1.PodRunning
	case stopped > 0:
		switch {
		case pod.Spec.RestartPolicy == corev1.RestartPolicyAlways:
			return corev1.PodRunning
		case stopped == succeeded:
			return corev1.PodSucceeded
		case pod.Spec.RestartPolicy == corev1.RestartPolicyNever:
			return corev1.PodFailed
		default: // OnFailure: the failed containers will be restarted.
			return corev1.PodRunning
		}
	default:
		return corev1.PodPending
	}
}

func initializedCondition(phase corev1.PodPhase, pending []string) corev1.PodCondition {
	c := corev1.PodCondition{Type: corev1.PodInitialized, Status: corev1.ConditionTrue}
	switch {
	case len(pending) > 0:
		c.Status = corev1.ConditionFalse
		c.Reason = ReasonContainersNotInitialized
		c.Message = fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(pending, " "))
	case phase == corev1.PodSucceeded:
		c.Reason = ReasonPodCompleted
	}
	return c
}

// readyCondition computes ContainersReady, or Ready when also checking the
// pod's readiness gates against its current conditions.
func readyCondition(pod *corev1.Pod, t corev1.PodConditionType, phase corev1.PodPhase, statuses []corev1.ContainerStatus, conds []corev1.PodCondition) corev1.PodCondition {
	c := corev1.PodCondition{Type: t, Status: corev1.ConditionTrue}
	var unready []string
	for _, cs := range statuses {
		if !cs.Ready {
			unready = append(unready, cs.Name)
		}
	}
	switch {
	case phase == corev1.PodSucceeded:
		c.Status, c.Reason = corev1.ConditionFalse, ReasonPodCompleted
		return c
	case len(unready) > 0:
		c.Status, c.Reason = corev1.ConditionFalse, ReasonContainersNotReady
		c.Message = fmt.Sprintf("containers with unready status: [%s]", strings.Join(unready, " "))
		return c
	}
	if t != corev1.PodReady {
		return c
	}
	for _, g := range pod.Spec.ReadinessGates {
		var found *corev1.PodCondition
		for i := range conds {
			if conds[i].Type == g.ConditionType {
				found = &conds[i]
			}
		}
		switch {
		case found == nil:
			c.Message = fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", g.ConditionType)
		case found.Status != corev1.ConditionTrue:
			c.Message = fmt.Sprintf("the status of pod readiness gate %q is not \"True\", but %v", g.ConditionType, found.Status)
		default:
			continue
		}
		c.Status, c.Reason = corev1.ConditionFalse, ReasonReadinessGatesNotReady
		return c
	}
	return c
}

// qosClass classifies pod like upstream: Guaranteed when every container
// limits cpu and memory with requests equal to limits, BestEffort when no
// container requests or limits either, Burstable otherwise.
func qosClass(pod *corev1.Pod) corev1.PodQOSClass {
	all := make([]corev1.Container, 0, len(pod.Spec.InitContainers)+len(pod.Spec.Containers))
	all = append(all, pod.Spec.InitContainers...)
	all = append(all, pod.Spec.Containers...)
	bestEffort, guaranteed := true, true
	for _, c := range all {
		for _, name := range [...]corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, hasReq := c.Resources.Requests[name]
			lim, hasLim := c.Resources.Limits[name]
			if (hasReq && !req.IsZero()) || (hasLim && !lim.IsZero()) {
				bestEffort = false
			}
			if !hasLim || (hasReq && req.Cmp(lim) != 0) {
				guaranteed = false
			}
		}
	}
	switch {
	case bestEffort:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	default:
		return corev1.PodQOSBurstable
	}
}

// podStatusEqual reports whether writing want over have would change
// nothing (nil and empty slices are equal).
func podStatusEqual(have, want *corev1.PodStatus) bool {
	return equality.Semantic.DeepEqual(have, want)
}
