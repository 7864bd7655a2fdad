package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
	"github.com/skiff-project/skiff/pkg/scheduler/internal/queue"
)

// scheduleOne runs one scheduling cycle for qp and, on success, starts its
// binding cycle in a goroutine tracked by s.bindings.
func (s *Scheduler) scheduleOne(ctx context.Context, qp *queue.QueuedPodInfo) {
	pod := qp.Pod
	logger := klog.FromContext(ctx).WithValues("pod", klog.KObj(pod))
	if pod.DeletionTimestamp != nil || s.cache.IsAssumedPod(pod) {
		s.queue.Done(pod.UID)
		return
	}
	cycle := s.queue.SchedulingCycle()
	s.cache.UpdateSnapshot(s.snapshot)
	nodes := s.snapshot.List()
	cs := framework.NewCycleState()

	res, err := s.fwk.schedulePod(ctx, cs, qp.PodInfo, nodes)
	if err != nil {
		var nominated *string
		reason := v1.PodReasonSchedulerError
		var fe *framework.FitError
		if errors.As(err, &fe) {
			reason = v1.PodReasonUnschedulable
			qp.UnschedulablePlugins = fe.Diagnosis.UnschedulablePlugins
			result, st := s.fwk.runPostFilter(ctx, cs, pod, nodes, fe.Diagnosis.NodeToStatus)
			if st.Code() == framework.Error {
				logger.Error(st.Err(), "Preemption failed")
			} else if !st.IsSuccess() {
				fe.Diagnosis.PostFilterMsg = st.Message()
			}
			if result != nil {
				nominated = &result.NominatedNodeName
			}
		} else if errors.Is(err, ErrNoNodesAvailable) {
			reason = v1.PodReasonUnschedulable
		}
		logger.V(2).Info("Unable to schedule pod", "err", err)
		s.handleFailure(ctx, qp, err, reason, nominated, cycle)
		s.queue.Done(pod.UID)
		return
	}

	// Assume: the cache now counts the pod on the node, so the next cycle
	// sees its resources although the binding has not happened yet.
	assumed := pod.DeepCopy()
	assumed.Spec.NodeName = res.SuggestedHost
	if err := s.cache.AssumePod(assumed); err != nil {
		s.handleFailure(ctx, qp, fmt.Errorf("assuming pod: %w", err), v1.PodReasonSchedulerError, nil, cycle)
		s.queue.Done(pod.UID)
		return
	}
	if st := s.fwk.runReserve(ctx, cs, assumed, res.SuggestedHost); !st.IsSuccess() {
		s.forget(ctx, assumed)
		s.handleFailure(ctx, qp, fmt.Errorf("running reserve plugin %q: %w", st.Plugin(), st.Err()), v1.PodReasonSchedulerError, nil, cycle)
		s.queue.Done(pod.UID)
		return
	}
	if st := s.fwk.runPermit(ctx, cs, assumed, res.SuggestedHost); !st.IsSuccess() {
		s.fwk.runUnreserve(ctx, cs, assumed, res.SuggestedHost)
		s.forget(ctx, assumed)
		s.handleFailure(ctx, qp, fmt.Errorf("running permit plugin %q: %w", st.Plugin(), st.Err()), v1.PodReasonSchedulerError, nil, cycle)
		s.queue.Done(pod.UID)
		return
	}
	// The pod no longer needs room held for it elsewhere.
	s.queue.DeleteNominatedPodIfExists(pod)

	s.bindings.Add(1)
	go func() {
		defer s.bindings.Done()
		defer s.queue.Done(pod.UID)
		s.bind(ctx, cs, qp, assumed, cycle)
	}()
}

// bind POSTs the binding. On failure the assumption is undone and the pod
// retried with backoff; on success a Scheduled event is recorded.
func (s *Scheduler) bind(ctx context.Context, cs *framework.CycleState, qp *queue.QueuedPodInfo, assumed *v1.Pod, cycle int64) {
	node := assumed.Spec.NodeName
	b := &v1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: assumed.Namespace, Name: assumed.Name, UID: assumed.UID},
		Target:     v1.ObjectReference{Kind: "Node", Name: node},
	}
	if err := s.client.CoreV1().Pods(b.Namespace).Bind(ctx, b, metav1.CreateOptions{}); err != nil {
		s.fwk.runUnreserve(ctx, cs, assumed, node)
		s.forget(ctx, assumed)
		s.handleFailure(ctx, qp, fmt.Errorf("binding rejected: %w", err), v1.PodReasonSchedulerError, nil, cycle)
		return
	}
	s.cache.FinishBinding(assumed)
	s.recorder.Eventf(qp.Pod, v1.EventTypeNormal, "Scheduled", "Successfully assigned %v/%v to %v", assumed.Namespace, assumed.Name, node)
}

func (s *Scheduler) forget(ctx context.Context, assumed *v1.Pod) {
	if err := s.cache.ForgetPod(assumed); err != nil {
		klog.FromContext(ctx).Error(err, "Forgetting assumed pod", "pod", klog.KObj(assumed))
	}
}

// handleFailure records a FailedScheduling event, re-queues the pod (if it
// still exists and is still pending) and patches its PodScheduled condition
// and nominated node. nominated is nil to leave the nomination unchanged.
func (s *Scheduler) handleFailure(ctx context.Context, qp *queue.QueuedPodInfo, err error, reason string, nominated *string, cycle int64) {
	logger := klog.FromContext(ctx)
	pod := qp.Pod
	msg := err.Error()
	s.recorder.Eventf(pod, v1.EventTypeWarning, "FailedScheduling", "%s", msg)

	cached, getErr := s.podLister.Pods(pod.Namespace).Get(pod.Name)
	switch {
	case apierrors.IsNotFound(getErr):
		logger.V(3).Info("Pod deleted while scheduling; not re-queued", "pod", klog.KObj(pod))
		return
	case getErr != nil:
		logger.Error(getErr, "Reading pod for requeue", "pod", klog.KObj(pod))
	case cached.UID != pod.UID || cached.Spec.NodeName != "":
		return // replaced, or bound by someone else
	default:
		// Requeue with the freshest spec so an edit made during the cycle counts.
		fresh := *qp
		fresh.PodInfo = framework.NewPodInfo(s.withPriority(cached))
		qp = &fresh
	}
	s.queue.AddUnschedulableIfNotPresent(qp, cycle)

	if nominated != nil {
		if *nominated != "" {
			s.queue.AddNominatedPod(qp.PodInfo, *nominated)
		} else {
			s.queue.DeleteNominatedPodIfExists(pod)
		}
	}
	if err := s.patchStatus(ctx, qp.Pod, reason, msg, nominated); err != nil {
		logger.Error(err, "Updating pod status", "pod", klog.KObj(pod))
	}
}

// patchStatus sets PodScheduled=False with reason and message (and the
// nominated node) with a strategic-merge patch of the status subresource,
// skipping the write when nothing would change.
func (s *Scheduler) patchStatus(ctx context.Context, pod *v1.Pod, reason, msg string, nominated *string) error {
	var old *v1.PodCondition
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == v1.PodScheduled {
			old = &pod.Status.Conditions[i]
		}
	}
	nominationChanged := nominated != nil && *nominated != pod.Status.NominatedNodeName
	if old != nil && old.Status == v1.ConditionFalse && old.Reason == reason && old.Message == msg && !nominationChanged {
		return nil
	}
	cond := map[string]any{
		"type": v1.PodScheduled, "status": v1.ConditionFalse, "reason": reason, "message": msg,
		"lastProbeTime": nil,
	}
	if old == nil || old.Status != v1.ConditionFalse {
		cond["lastTransitionTime"] = metav1.NewTime(s.clock.Now())
	}
	status := map[string]any{"conditions": []any{cond}}
	if nominationChanged {
		status["nominatedNodeName"] = *nominated
	}
	patch, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		return fmt.Errorf("encoding status patch: %w", err)
	}
	if _, err := s.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("patching status of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}
