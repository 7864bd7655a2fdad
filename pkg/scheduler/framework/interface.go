package framework

import (
	"context"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
)

// MaxNodeScore is the highest score a Score plugin may give after
// normalisation; MinNodeScore the lowest.
const (
	MaxNodeScore int64 = 100
	MinNodeScore int64 = 0
)

// StateKey names one plugin's entry in a CycleState.
type StateKey string

// StateData is a plugin's per-cycle data. Clone must return a copy that can
// be modified independently (preemption simulates on clones).
type StateData interface {
	Clone() StateData
}

// CycleState carries plugin data from PreFilter/PreScore to Filter/Score
// within one scheduling cycle. Writes happen only in the sequential
// PreFilter/PreScore phases; Filter and Score, which run in parallel, only
// read, so no lock is needed.
type CycleState struct {
	data map[StateKey]StateData
	// SkipFilterPlugins lists plugins whose PreFilter returned Skip.
	SkipFilterPlugins map[string]struct{}
	// SkipScorePlugins lists plugins whose PreScore returned Skip.
	SkipScorePlugins map[string]struct{}
}

// NewCycleState returns an empty state.
func NewCycleState() *CycleState {
	return &CycleState{data: map[StateKey]StateData{}, SkipFilterPlugins: map[string]struct{}{}, SkipScorePlugins: map[string]struct{}{}}
}

// Read returns the data under key, or nil and false.
func (c *CycleState) Read(key StateKey) (StateData, bool) {
	d, ok := c.data[key]
	return d, ok
}

// Write stores data under key. Only call from sequential phases.
func (c *CycleState) Write(key StateKey, d StateData) { c.data[key] = d }

// Clone deep-copies every entry via StateData.Clone.
func (c *CycleState) Clone() *CycleState {
	n := NewCycleState()
	for k, v := range c.data {
		n.data[k] = v.Clone()
	}
	for k := range c.SkipFilterPlugins {
		n.SkipFilterPlugins[k] = struct{}{}
	}
	for k := range c.SkipScorePlugins {
		n.SkipScorePlugins[k] = struct{}{}
	}
	return n
}

// Plugin is the base of every extension point.
type Plugin interface {
	// Name is the plugin's constant name, used in statuses and metrics.
	Name() string
}

// PreFilterPlugin computes per-pod state once per cycle. nodes is every node
// in the snapshot. Returning Skip makes the scheduler skip its Filter.
type PreFilterPlugin interface {
	Plugin
	PreFilter(ctx context.Context, state *CycleState, pod *v1.Pod, nodes []*NodeInfo) *Status
	// PreFilterExtensions returns nil if the plugin's PreFilter state does
	// not depend on other pods.
	PreFilterExtensions() PreFilterExtensions
}

// PreFilterExtensions lets preemption and nominated-pod evaluation update
// the PreFilter state when a pod is hypothetically added to or removed from
// nodeInfo, instead of re-running PreFilter over the whole cluster.
type PreFilterExtensions interface {
	AddPod(ctx context.Context, state *CycleState, podToSchedule *v1.Pod, podInfoToAdd *PodInfo, nodeInfo *NodeInfo) *Status
	RemovePod(ctx context.Context, state *CycleState, podToSchedule *v1.Pod, podInfoToRemove *PodInfo, nodeInfo *NodeInfo) *Status
}

// FilterPlugin decides whether pod can run on nodeInfo. It is called
// concurrently for different nodes and must not write shared state.
type FilterPlugin interface {
	Plugin
	Filter(ctx context.Context, state *CycleState, pod *v1.Pod, nodeInfo *NodeInfo) *Status
}

// PostFilterResult is what a PostFilter plugin proposes, namely the node on
// which room was made for the pod.
type PostFilterResult struct {
	NominatedNodeName string
}

// PostFilterPlugin runs only when no node fits (e.g. preemption). statuses
// holds every node's Filter status; nodes is the full snapshot list.
type PostFilterPlugin interface {
	Plugin
	PostFilter(ctx context.Context, state *CycleState, pod *v1.Pod, nodes []*NodeInfo, statuses NodeToStatus) (*PostFilterResult, *Status)
}

// PreScorePlugin prepares per-pod scoring state over the feasible nodes.
type PreScorePlugin interface {
	Plugin
	PreScore(ctx context.Context, state *CycleState, pod *v1.Pod, feasible []*NodeInfo, all []*NodeInfo) *Status
}

// NodeScore is one node's score from one plugin or in total.
type NodeScore struct {
	Name  string
	Score int64
}

// ScorePlugin ranks a feasible node. Called concurrently for different nodes.
type ScorePlugin interface {
	Plugin
	Score(ctx context.Context, state *CycleState, pod *v1.Pod, nodeInfo *NodeInfo) (int64, *Status)
	// ScoreExtensions returns nil if scores are already in [0, MaxNodeScore].
	ScoreExtensions() ScoreExtensions
}

// ScoreExtensions normalises raw scores into [MinNodeScore, MaxNodeScore] in place.
type ScoreExtensions interface {
	NormalizeScore(ctx context.Context, state *CycleState, pod *v1.Pod, scores []NodeScore) *Status
}

// ReservePlugin is told when a node is chosen (Reserve) and when that
// choice is abandoned (Unreserve, which must be idempotent).
type ReservePlugin interface {
	Plugin
	Reserve(ctx context.Context, state *CycleState, pod *v1.Pod, nodeName string) *Status
	Unreserve(ctx context.Context, state *CycleState, pod *v1.Pod, nodeName string)
}

// PermitPlugin may veto a chosen node just before binding. Skiff has no
// waiting permits: the status is final.
type PermitPlugin interface {
	Plugin
	Permit(ctx context.Context, state *CycleState, pod *v1.Pod, nodeName string) *Status
}

// NodeToStatus maps node name to the status Filter gave it. Nodes absent
// from the map were not evaluated.
type NodeToStatus map[string]*Status

// PodNominator reports pods that preemption nominated to run on a node but
// that are not bound yet, so that other pods do not take the freed room.
type PodNominator interface {
	NominatedPodsForNode(nodeName string) []*PodInfo
}

// Handle is what plugins with side effects (preemption) get from the
// framework that owns them.
type Handle interface {
	// RunFilterPluginsWithNominatedPods runs every Filter plugin against
	// nodeInfo, also accounting for higher-or-equal priority nominated pods.
	RunFilterPluginsWithNominatedPods(ctx context.Context, state *CycleState, pod *v1.Pod, nodeInfo *NodeInfo) *Status
	// RunPreFilterExtensionRemovePod/AddPod forward to every PreFilterExtensions.
	RunPreFilterExtensionRemovePod(ctx context.Context, state *CycleState, pod *v1.Pod, removed *PodInfo, nodeInfo *NodeInfo) *Status
	RunPreFilterExtensionAddPod(ctx context.Context, state *CycleState, pod *v1.Pod, added *PodInfo, nodeInfo *NodeInfo) *Status
	// ClientSet is the API client; EventRecorder records as the scheduler.
	ClientSet() kubernetes.Interface
	EventRecorder() record.EventRecorder
	// Nominator is the queue's view of nominated pods.
	Nominator() PodNominator
}

// EnqueueExtensions is implemented by plugins that can reject pods; it
// names the cluster events after which a pod they rejected may fit, so the
// queue moves only those pods back to active.
type EnqueueExtensions interface {
	EventsToRegister() []ClusterEvent
}

// EventResource is the kind of object a ClusterEvent is about.
type EventResource string

// ActionType is a bit set of what happened to the object.
type ActionType uint32

// Resources and actions the queue distinguishes.
const (
	Node        EventResource = "Node"
	AssignedPod EventResource = "AssignedPod"
	// WildCard matches every resource; used for the periodic flush.
	WildCard EventResource = "*"
)

// Actions; bits so that a plugin can register several at once.
const (
	Add ActionType = 1 << iota
	Delete
	UpdateNodeAllocatable
	UpdateNodeLabel
	UpdateNodeTaint
	UpdateNodeCondition
	UpdatePodLabel
	UpdatePodScaleDown
	// Update is every update action.
	Update = UpdateNodeAllocatable | UpdateNodeLabel | UpdateNodeTaint | UpdateNodeCondition | UpdatePodLabel | UpdatePodScaleDown
	// All is every action.
	All = Add | Delete | Update
)

// ClusterEvent is a change that may make unschedulable pods schedulable.
type ClusterEvent struct {
	Resource   EventResource
	ActionType ActionType
	// Label is a human-readable name for logs and metrics.
	Label string
}

// Match reports whether the observed event ev is covered by c (the
// registered interest).
func (c ClusterEvent) Match(ev ClusterEvent) bool {
	if c.Resource != WildCard && ev.Resource != WildCard && c.Resource != ev.Resource {
		return false
	}
	return c.ActionType&ev.ActionType != 0
}

// PodInfoStateKey holds the PodInfo of the pod being scheduled, written by
// the framework before PreFilter, so that plugins reuse its precomputed
// requests and affinity terms instead of recomputing them per node.
const PodInfoStateKey StateKey = "framework/PodInfo"

// PodInfoState wraps the PodInfo in CycleState; immutable.
type PodInfoState struct{ PodInfo *PodInfo }

// Clone implements StateData.
func (s *PodInfoState) Clone() StateData { return s }
