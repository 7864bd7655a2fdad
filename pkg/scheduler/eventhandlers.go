package scheduler

import (
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/labels"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
)

// addEventHandlers wires the informers to the cache (bound pods, nodes) and
// the queue (pending pods of this scheduler, move events).
func (s *Scheduler) addEventHandlers(pods, nodes toolscache.SharedIndexInformer) error {
	if _, err := pods.AddEventHandler(toolscache.FilteringResourceEventHandler{
		FilterFunc: func(obj any) bool {
			p := podOf(obj)
			return p != nil && p.Spec.NodeName != "" && !terminal(p)
		},
		Handler: toolscache.ResourceEventHandlerFuncs{
			AddFunc:    s.addAssignedPod,
			UpdateFunc: s.updateAssignedPod,
			DeleteFunc: s.deleteAssignedPod,
		},
	}); err != nil {
		return err
	}
	if _, err := pods.AddEventHandler(toolscache.FilteringResourceEventHandler{
		FilterFunc: func(obj any) bool {
			p := podOf(obj)
			return p != nil && p.Spec.NodeName == "" && p.Spec.SchedulerName == s.name && !terminal(p)
		},
		Handler: toolscache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) { s.queue.Add(s.withPriority(podOf(obj))) },
			UpdateFunc: func(oldObj, newObj any) {
				s.queue.Update(podOf(oldObj), s.withPriority(podOf(newObj)))
			},
			DeleteFunc: func(obj any) { s.queue.Delete(podOf(obj)) },
		},
	}); err != nil {
		return err
	}
	_, err := nodes.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			n, ok := obj.(*v1.Node)
			if !ok {
				return
			}
			s.cache.AddNode(n)
			s.queue.MoveAllToActiveOrBackoffQueue(framework.ClusterEvent{Resource: framework.Node, ActionType: framework.Add, Label: "NodeAdd"})
		},
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(*v1.Node)
			n, ok2 := newObj.(*v1.Node)
			if !ok1 || !ok2 {
				return
			}
			s.cache.UpdateNode(o, n)
			if a := nodeUpdateActions(o, n); a != 0 {
				s.queue.MoveAllToActiveOrBackoffQueue(framework.ClusterEvent{Resource: framework.Node, ActionType: a, Label: "NodeUpdate"})
			}
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			n, ok := obj.(*v1.Node)
			if !ok {
				return
			}
			if err := s.cache.RemoveNode(n); err != nil {
				klog.Background().Error(err, "Removing node from scheduler cache")
			}
			s.queue.MoveAllToActiveOrBackoffQueue(framework.ClusterEvent{Resource: framework.Node, ActionType: framework.Delete, Label: "NodeDelete"})
		},
	})
	return err
}

// podOf unwraps tombstones; nil for anything that is not a pod.
func podOf(obj any) *v1.Pod {
	if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	p, _ := obj.(*v1.Pod)
	return p
}

// terminal pods no longer hold resources on their node.
func terminal(p *v1.Pod) bool {
	return p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed
}

func (s *Scheduler) addAssignedPod(obj any) {
	p := s.withPriority(podOf(obj))
	if err := s.cache.AddPod(p); err != nil {
		klog.Background().Error(err, "Adding pod to scheduler cache", "pod", klog.KObj(p))
	}
	s.queue.DeleteNominatedPodIfExists(p)
	s.queue.MoveAllToActiveOrBackoffQueue(framework.ClusterEvent{Resource: framework.AssignedPod, ActionType: framework.Add, Label: "AssignedPodAdd"})
}

func (s *Scheduler) updateAssignedPod(oldObj, newObj any) {
	o, n := podOf(oldObj), s.withPriority(podOf(newObj))
	if err := s.cache.UpdatePod(o, n); err != nil {
		klog.Background().Error(err, "Updating pod in scheduler cache", "pod", klog.KObj(n))
	}
	var a framework.ActionType
	if !equality.Semantic.DeepEqual(o.Labels, n.Labels) {
		a |= framework.UpdatePodLabel
	}
	on, nn := framework.NewPodInfo(o), framework.NewPodInfo(n)
	if nn.Requests.MilliCPU < on.Requests.MilliCPU || nn.Requests.Memory < on.Requests.Memory {
		a |= framework.UpdatePodScaleDown
	}
	if a != 0 {
		s.queue.MoveAllToActiveOrBackoffQueue(framework.ClusterEvent{Resource: framework.AssignedPod, ActionType: a, Label: "AssignedPodUpdate"})
	}
}

func (s *Scheduler) deleteAssignedPod(obj any) {
	p := podOf(obj)
	if err := s.cache.RemovePod(p); err != nil {
		klog.Background().Error(err, "Removing pod from scheduler cache", "pod", klog.KObj(p))
	}
	s.queue.MoveAllToActiveOrBackoffQueue(framework.ClusterEvent{Resource: framework.AssignedPod, ActionType: framework.Delete, Label: "AssignedPodDelete"})
}

// nodeUpdateActions classifies a node update; 0 means nothing a plugin cares about.
func nodeUpdateActions(o, n *v1.Node) framework.ActionType {
	var a framework.ActionType
	if !equality.Semantic.DeepEqual(o.Status.Allocatable, n.Status.Allocatable) {
		a |= framework.UpdateNodeAllocatable
	}
	if !equality.Semantic.DeepEqual(o.Labels, n.Labels) {
		a |= framework.UpdateNodeLabel
	}
	if o.Spec.Unschedulable != n.Spec.Unschedulable || !equality.Semantic.DeepEqual(o.Spec.Taints, n.Spec.Taints) {
		a |= framework.UpdateNodeTaint
	}
	if !equality.Semantic.DeepEqual(o.Status.Conditions, n.Status.Conditions) {
		a |= framework.UpdateNodeCondition
	}
	return a
}

// withPriority fills spec.priority and spec.preemptionPolicy from the pod's
// PriorityClass (or the global default) when admission has not, so that
// priority-based ordering and preemption work either way. It returns pod
// itself when nothing needs filling, else a copy.
func (s *Scheduler) withPriority(pod *v1.Pod) *v1.Pod {
	if pod.Spec.Priority != nil {
		return pod
	}
	var prio int32
	var policy *v1.PreemptionPolicy
	if name := pod.Spec.PriorityClassName; name != "" {
		if pc, err := s.pcLister.Get(name); err == nil {
			prio, policy = pc.Value, pc.PreemptionPolicy
		}
	} else if pcs, err := s.pcLister.List(labels.Everything()); err == nil {
		for _, pc := range pcs {
			if pc.GlobalDefault {
				prio, policy = pc.Value, pc.PreemptionPolicy
				break
			}
		}
	}
	if prio == 0 && policy == nil {
		return pod
	}
	cp := pod.DeepCopy()
	cp.Spec.Priority = &prio
	if cp.Spec.PreemptionPolicy == nil {
		cp.Spec.PreemptionPolicy = policy
	}
	return cp
}
