package printers

import (
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// nodeLostReason is the pod status reason the node lifecycle controller sets
// on pods of an unreachable node (upstream's NodeUnreachablePodReason).
const nodeLostReason = "NodeLost"

func podPrinter() *Printer {
	return &Printer{
		Columns: cols(
			nameColumn(),
			column("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
			column("Status", "string", "The aggregate status of the containers in this pod."),
			column("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
			ageColumn(),
			wide(column("IP", "string", corev1.PodStatus{}.SwaggerDoc()["podIP"])),
			wide(column("Node", "string", corev1.PodSpec{}.SwaggerDoc()["nodeName"])),
			wide(column("Nominated Node", "string", corev1.PodStatus{}.SwaggerDoc()["nominatedNodeName"])),
			wide(column("Readiness Gates", "string", corev1.PodSpec{}.SwaggerDoc()["readinessGates"])),
		),
		Row: typed(podCells),
	}
}

func podCells(pod *corev1.Pod, now time.Time) []interface{} {
	s := summarizePod(pod)
	restarts := strconv.Itoa(s.restarts)
	if s.restarts != 0 && !s.lastRestart.IsZero() {
		restarts = fmt.Sprintf("%d (%s ago)", s.restarts, age(s.lastRestart, now))
	}

	podIP := "<none>"
	if len(pod.Status.PodIPs) > 0 && pod.Status.PodIPs[0].IP != "" {
		podIP = pod.Status.PodIPs[0].IP
	}
	return []interface{}{
		pod.Name,
		fmt.Sprintf("%d/%d", s.ready, s.total),
		s.reason,
		restarts,
		age(pod.CreationTimestamp, now),
		podIP,
		orNone(pod.Spec.NodeName),
		orNone(pod.Status.NominatedNodeName),
		readinessGates(pod),
	}
}

// podSummary is what the Ready, Status and Restarts columns show.
type podSummary struct {
	ready, total int
	reason       string
	restarts     int
	lastRestart  metav1.Time
}

// summarizePod computes the Ready, Status and Restarts columns exactly as
// upstream's printPod: the phase (or status reason) is overridden by the
// first init container that has not completed, then — once initialization is
// over — by the last app container that is waiting or terminated, and last
// by deletion ("Terminating", or "Unknown" for pods of a lost node).
// Restartable init containers (sidecars) count as containers once started;
// after initialization only their restarts count alongside the app
// containers'.
func summarizePod(pod *corev1.Pod) podSummary {
	s := podSummary{total: len(pod.Spec.Containers), reason: string(pod.Status.Phase)}
	if pod.Status.Reason != "" {
		s.reason = pod.Status.Reason
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Reason == corev1.PodReasonSchedulingGated {
			s.reason = corev1.PodReasonSchedulingGated
		}
	}

	sidecars := make(map[string]bool)
	for i := range pod.Spec.InitContainers {
		if isRestartable(&pod.Spec.InitContainers[i]) {
			sidecars[pod.Spec.InitContainers[i].Name] = true
			s.total++
		}
	}

	var sidecarRestarts int
	var lastSidecarRestart metav1.Time
	initializing := false
	for i := range pod.Status.InitContainerStatuses {
		st := &pod.Status.InitContainerStatuses[i]
		s.restarts += int(st.RestartCount)
		s.lastRestart = laterTermination(s.lastRestart, st)
		if sidecars[st.Name] {
			sidecarRestarts += int(st.RestartCount)
			lastSidecarRestart = laterTermination(lastSidecarRestart, st)
		}
		switch {
		case st.State.Terminated != nil && st.State.Terminated.ExitCode == 0:
			continue
		case sidecars[st.Name] && st.Started != nil && *st.Started:
			if st.Ready {
				s.ready++
			}
			continue
		case st.State.Terminated != nil:
			s.reason = "Init:" + terminatedReason(st.State.Terminated)
		case st.State.Waiting != nil && st.State.Waiting.Reason != "" && st.State.Waiting.Reason != "PodInitializing":
			s.reason = "Init:" + st.State.Waiting.Reason
		default:
			s.reason = fmt.Sprintf("Init:%d/%d", i, len(pod.Spec.InitContainers))
		}
		// This init container blocks the ones after it: stop here.
		initializing = true
		break
	}

	if !initializing || hasPodCondition(pod, corev1.PodInitialized) {
		// Init containers that ran to completion no longer count as restarts.
		s.restarts, s.lastRestart = sidecarRestarts, lastSidecarRestart
		hasRunning := false
		// Walk backwards so the first container's state wins, as upstream.
		for i := len(pod.Status.ContainerStatuses) - 1; i >= 0; i-- {
			st := &pod.Status.ContainerStatuses[i]
			s.restarts += int(st.RestartCount)
			s.lastRestart = laterTermination(s.lastRestart, st)
			switch {
			case st.State.Waiting != nil && st.State.Waiting.Reason != "":
				s.reason = st.State.Waiting.Reason
			case st.State.Terminated != nil:
				s.reason = terminatedReason(st.State.Terminated)
			case st.Ready && st.State.Running != nil:
				hasRunning = true
				s.ready++
			}
		}
		// A completed container next to a running one is not a completed pod.
		if s.reason == "Completed" && hasRunning {
			if hasPodCondition(pod, corev1.PodReady) {
				s.reason = "Running"
			} else {
				s.reason = "NotReady"
			}
		}
	}

	terminal := pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded
	switch {
	case pod.DeletionTimestamp != nil && pod.Status.Reason == nodeLostReason:
		s.reason = "Unknown"
	case pod.DeletionTimestamp != nil && !terminal:
		s.reason = "Terminating"
	}
	return s
}

// terminatedReason is a terminated container's reason, or "Signal:N" /
// "ExitCode:N" when the runtime gave none.
func terminatedReason(t *corev1.ContainerStateTerminated) string {
	switch {
	case t.Reason != "":
		return t.Reason
	case t.Signal != 0:
		return fmt.Sprintf("Signal:%d", t.Signal)
	default:
		return fmt.Sprintf("ExitCode:%d", t.ExitCode)
	}
}

// laterTermination returns the later of last and the finish time of the
// container's previous termination.
func laterTermination(last metav1.Time, st *corev1.ContainerStatus) metav1.Time {
	if t := st.LastTerminationState.Terminated; t != nil && last.Before(&t.FinishedAt) {
		return t.FinishedAt
	}
	return last
}

// isRestartable reports whether an init container is a sidecar
// (restartPolicy: Always).
func isRestartable(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// hasPodCondition reports whether the pod's condition t is True.
func hasPodCondition(pod *corev1.Pod, t corev1.PodConditionType) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// readinessGates renders "true/total" over the pod's readiness gates, or
// "<none>" when it has none.
func readinessGates(pod *corev1.Pod) string {
	if len(pod.Spec.ReadinessGates) == 0 {
		return "<none>"
	}
	trueConditions := 0
	for _, gate := range pod.Spec.ReadinessGates {
		for _, c := range pod.Status.Conditions {
			if c.Type == gate.ConditionType {
				if c.Status == corev1.ConditionTrue {
					trueConditions++
				}
				break
			}
		}
	}
	return fmt.Sprintf("%d/%d", trueConditions, len(pod.Spec.ReadinessGates))
}

// orNone renders an empty string as "<none>".
func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func podTemplatePrinter() *Printer {
	return &Printer{
		Columns: cols(
			nameColumn(),
			column("Containers", "string", "Names of each container in the template."),
			column("Images", "string", "Images referenced by each container in the template."),
			column("Pod Labels", "string", "The labels for the pod template."),
		),
		Row: typed(func(t *corev1.PodTemplate, _ time.Time) []interface{} {
			names, images := containerCells(t.Template.Spec.Containers)
			return []interface{}{t.Name, names, images, labels.FormatLabels(t.Template.Labels)}
		}),
	}
}
