// Package defaultpreemption implements the DefaultPreemption PostFilter:
// when no node fits, find a node where evicting pods of lower priority
// makes room, delete those victims, and nominate the node for the pod.
//
// The choice of node and victims (Candidates, PickOne) is pure; only
// Prepare talks to the API server.
package defaultpreemption

import (
	"context"
	"fmt"
	"sort"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
)

// Name is the plugin name.
const Name = "DefaultPreemption"

// Upstream reasons and messages.
const (
	ReasonNoVictims         = "No preemption victims found for incoming pod"
	ReasonNotHelpful        = "Preemption is not helpful for scheduling"
	MsgNotEligibleNever     = "not eligible due to preemptionPolicy=Never."
	MsgNotEligibleTerminate = "not eligible due to a terminating pod on the nominated node."
)

// Candidate is a node on which the pod fits once Victims are gone.
type Candidate struct {
	Node    string
	Victims []*framework.PodInfo
}

// DefaultPreemption needs the framework handle to re-run filters and to
// delete victims.
type DefaultPreemption struct {
	h framework.Handle
}

var _ framework.PostFilterPlugin = &DefaultPreemption{}

// New returns the plugin; h must not be nil.
func New(h framework.Handle) *DefaultPreemption { return &DefaultPreemption{h: h} }

// Name implements framework.Plugin.
func (*DefaultPreemption) Name() string { return Name }

// PostFilter preempts. On success the result nominates the node; otherwise
// the status message is "preemption: <why>", appended to the FitError
// message as upstream does.
func (pl *DefaultPreemption) PostFilter(ctx context.Context, cs *framework.CycleState, pod *v1.Pod, nodes []*framework.NodeInfo, statuses framework.NodeToStatus) (*framework.PostFilterResult, *framework.Status) {
	if msg, ok := eligible(pod, nodes); !ok {
		return nil, framework.NewStatus(framework.Unschedulable, "preemption: "+msg)
	}
	cands, nodeStatuses := pl.Candidates(ctx, cs, pod, nodes, statuses)
	if len(cands) == 0 {
		fe := &framework.FitError{Pod: pod, NumAllNodes: len(nodeStatuses), Diagnosis: framework.Diagnosis{NodeToStatus: nodeStatuses}}
		// An empty nomination clears any stale nominatedNodeName.
		return &framework.PostFilterResult{}, framework.NewStatus(framework.Unschedulable, "preemption: "+fe.Error())
	}
	best := PickOne(cands)
	if err := pl.Prepare(ctx, best, pod); err != nil {
		return nil, framework.AsStatus(err)
	}
	return &framework.PostFilterResult{NominatedNodeName: best.Node}, nil
}

// eligible mirrors upstream PodEligibleToPreemptOthers: pods that may not
// preempt, or that already preempted and wait for a victim to terminate.
func eligible(pod *v1.Pod, nodes []*framework.NodeInfo) (string, bool) {
	if p := pod.Spec.PreemptionPolicy; p != nil && *p == v1.PreemptNever {
		return MsgNotEligibleNever, false
	}
	if nn := pod.Status.NominatedNodeName; nn != "" {
		prio := corev1helpers.PodPriority(pod)
		for _, ni := range nodes {
			if ni.Node().Name != nn {
				continue
			}
			for _, pi := range ni.Pods {
				if pi.Pod.DeletionTimestamp != nil && corev1helpers.PodPriority(pi.Pod) < prio {
					return MsgNotEligibleTerminate, false
				}
			}
		}
	}
	return "", true
}

// Candidates dry-runs preemption on every node whose rejection could be
// resolved (Unschedulable, not UnschedulableAndUnresolvable). It returns the
// candidates in nodes order, and for every other node the reason it was not
// one. It modifies only clones.
func (pl *DefaultPreemption) Candidates(ctx context.Context, cs *framework.CycleState, pod *v1.Pod, nodes []*framework.NodeInfo, statuses framework.NodeToStatus) ([]Candidate, framework.NodeToStatus) {
	out := framework.NodeToStatus{}
	var cands []Candidate
	for _, ni := range nodes {
		name := ni.Node().Name
		if statuses[name].Code() != framework.Unschedulable {
			out[name] = framework.NewStatus(framework.UnschedulableAndUnresolvable, ReasonNotHelpful)
			continue
		}
		victims, st := pl.selectVictims(ctx, cs.Clone(), pod, ni.Clone())
		if !st.IsSuccess() {
			out[name] = st
			continue
		}
		cands = append(cands, Candidate{Node: name, Victims: victims})
	}
	return cands, out
}

// selectVictims removes every lower-priority pod from ni; if the pod then
// fits, it adds back (reprieves) as many as possible, highest priority
// first, and returns the rest.
func (pl *DefaultPreemption) selectVictims(ctx context.Context, cs *framework.CycleState, pod *v1.Pod, ni *framework.NodeInfo) ([]*framework.PodInfo, *framework.Status) {
	prio := corev1helpers.PodPriority(pod)
	var potential []*framework.PodInfo
	for _, pi := range ni.Pods {
		if corev1helpers.PodPriority(pi.Pod) < prio {
			potential = append(potential, pi)
		}
	}
	if len(potential) == 0 {
		return nil, framework.NewStatus(framework.UnschedulableAndUnresolvable, ReasonNoVictims)
	}
	for _, pi := range potential {
		if err := ni.RemovePod(pi.Pod); err != nil {
			return nil, framework.AsStatus(fmt.Errorf("simulating eviction: %w", err))
		}
		if st := pl.h.RunPreFilterExtensionRemovePod(ctx, cs, pod, pi, ni); !st.IsSuccess() {
			return nil, st
		}
	}
	if st := pl.h.RunFilterPluginsWithNominatedPods(ctx, cs, pod, ni); !st.IsSuccess() {
		return nil, st
	}
	sort.SliceStable(potential, func(i, j int) bool {
		return corev1helpers.PodPriority(potential[i].Pod) > corev1helpers.PodPriority(potential[j].Pod)
	})
	var victims []*framework.PodInfo
	for _, pi := range potential {
		ni.AddPodInfo(pi)
		if st := pl.h.RunPreFilterExtensionAddPod(ctx, cs, pod, pi, ni); !st.IsSuccess() {
			return nil, st
		}
		if pl.h.RunFilterPluginsWithNominatedPods(ctx, cs, pod, ni).IsSuccess() {
			continue // reprieved
		}
		if err := ni.RemovePod(pi.Pod); err != nil {
			return nil, framework.AsStatus(fmt.Errorf("simulating eviction: %w", err))
		}
		if st := pl.h.RunPreFilterExtensionRemovePod(ctx, cs, pod, pi, ni); !st.IsSuccess() {
			return nil, st
		}
		victims = append(victims, pi)
	}
	return victims, nil
}

// PickOne chooses the candidate whose highest-priority victim is lowest,
// then the lowest sum of victim priorities, then the fewest victims, then
// the earliest in the list.
func PickOne(cands []Candidate) Candidate {
	type key struct{ highest, sum, n int64 }
	keyOf := func(c Candidate) key {
		k := key{highest: int64(-1) << 40, n: int64(len(c.Victims))}
		for _, v := range c.Victims {
			p := int64(corev1helpers.PodPriority(v.Pod))
			k.highest = max(k.highest, p)
			k.sum += p
		}
		return k
	}
	best, bk := cands[0], keyOf(cands[0])
	for _, c := range cands[1:] {
		k := keyOf(c)
		if k.highest < bk.highest ||
			(k.highest == bk.highest && k.sum < bk.sum) ||
			(k.highest == bk.highest && k.sum == bk.sum && k.n < bk.n) {
			best, bk = c, k
		}
	}
	return best
}

// Prepare deletes the victims, recording a Preempted event on each.
// Victims already gone are not an error.
func (pl *DefaultPreemption) Prepare(ctx context.Context, c Candidate, preemptor *v1.Pod) error {
	for _, v := range c.Victims {
		err := pl.h.ClientSet().CoreV1().Pods(v.Pod.Namespace).Delete(ctx, v.Pod.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("preempting pod %s/%s on node %q: %w", v.Pod.Namespace, v.Pod.Name, c.Node, err)
		}
		if r := pl.h.EventRecorder(); r != nil {
			r.Eventf(v.Pod, v1.EventTypeNormal, "Preempted", "Preempted by pod %v on node %v", preemptor.UID, c.Node)
		}
	}
	return nil
}
