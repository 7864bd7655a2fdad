package scheduler

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync/atomic"

	v1 "k8s.io/api/core/v1"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
)

// ErrNoNodesAvailable is returned when the cluster has no nodes at all.
var ErrNoNodesAvailable = errors.New("no nodes available to schedule pods")

// Adaptive sampling, as upstream's percentageOfNodesToScore=0: small
// clusters are searched exhaustively; larger ones stop after finding
// (50 - nodes/125)% feasible nodes, never under 5% nor under 100 nodes.
const (
	minFeasibleNodesToFind           = 100
	minFeasibleNodesPercentageToFind = 5
)

// numFeasibleNodesToFind is how many feasible nodes a cycle looks for
// before it stops filtering and starts scoring.
func numFeasibleNodesToFind(numAllNodes int) int {
	if numAllNodes < minFeasibleNodesToFind {
		return numAllNodes
	}
	pct := max(50-numAllNodes/125, minFeasibleNodesPercentageToFind)
	return max(numAllNodes*pct/100, minFeasibleNodesToFind)
}

// scheduleResult is the decision of one cycle.
type scheduleResult struct {
	// SuggestedHost is the chosen node.
	SuggestedHost string
	// EvaluatedNodes counts nodes filtered; FeasibleNodes those that passed.
	EvaluatedNodes int
	FeasibleNodes  int
}

// nodeOrder is a permutation of [0, n) seeded from the pod UID: an affine
// walk i ↦ (start + i·stride) mod n with stride coprime to n. It spreads
// consecutive pods across the cluster like a shuffle, costs O(1) per node
// and no allocation, and the same pod over the same snapshot always sees
// the same order, so any decision can be replayed.
type nodeOrder struct{ start, stride, n int }

func newNodeOrder(uid string, n int) nodeOrder {
	if n <= 1 {
		return nodeOrder{n: n, stride: 1}
	}
	h := fnv.New64a()
	h.Write([]byte(uid))
	r := rand.New(rand.NewPCG(h.Sum64(), 0x5ca1ab1e))
	stride := 1 + r.IntN(n-1)
	for gcd(stride, n) != 1 {
		stride = stride%(n-1) + 1
	}
	return nodeOrder{start: r.IntN(n), stride: stride, n: n}
}

func (o nodeOrder) at(i int) int { return (o.start + i*o.stride) % o.n }

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// schedulePod is the pure decision core: it picks a node for pi among
// nodes, or returns a *framework.FitError naming every rejected node's
// reason. It performs no I/O and reads no clock; the only shared state it
// reads is the nominator.
func (f *frameworkImpl) schedulePod(ctx context.Context, cs *framework.CycleState, pi *framework.PodInfo, nodes []*framework.NodeInfo) (scheduleResult, error) {
	pod := pi.Pod
	if len(nodes) == 0 {
		return scheduleResult{}, ErrNoNodesAvailable
	}
	cs.Write(framework.PodInfoStateKey, &framework.PodInfoState{PodInfo: pi})

	feasible, diag, err := f.findNodesThatFit(ctx, cs, pod, nodes)
	if err != nil {
		return scheduleResult{}, err
	}
	if len(feasible) == 0 {
		return scheduleResult{}, &framework.FitError{Pod: pod, NumAllNodes: len(nodes), Diagnosis: diag}
	}
	res := scheduleResult{EvaluatedNodes: len(feasible) + len(diag.NodeToStatus), FeasibleNodes: len(feasible)}
	if len(feasible) == 1 {
		// Nothing to rank.
		res.SuggestedHost = feasible[0].Node().Name
		return res, nil
	}
	scores, err := f.runScore(ctx, cs, pod, feasible, nodes)
	if err != nil {
		return scheduleResult{}, err
	}
	res.SuggestedHost = selectHost(scores)
	return res, nil
}

// selectHost returns the highest total; ties go to the node visited first
// in the pod's node order (scores are in that order), which keeps the
// choice deterministic yet spread across pods.
func selectHost(scores []framework.NodeScore) string {
	best := 0
	for i := 1; i < len(scores); i++ {
		if scores[i].Score > scores[best].Score {
			best = i
		}
	}
	return scores[best].Name
}

// findNodesThatFit runs PreFilter once and Filter over nodes in the pod's
// node order until enough feasible nodes are found. Returned feasible nodes
// are in node order; diag records the reason of every rejected node.
func (f *frameworkImpl) findNodesThatFit(ctx context.Context, cs *framework.CycleState, pod *v1.Pod, nodes []*framework.NodeInfo) ([]*framework.NodeInfo, framework.Diagnosis, error) {
	diag := framework.Diagnosis{NodeToStatus: framework.NodeToStatus{}}
	if st := f.runPreFilter(ctx, cs, pod, nodes); !st.IsSuccess() {
		if !st.IsRejected() {
			return nil, diag, fmt.Errorf("running prefilter plugin %q: %w", st.Plugin(), st.Err())
		}
		// Every node is rejected for the same reason; record it per node so
		// that preemption and requeueing see it, and once for the message.
		diag.PreFilterMsg = st.Message()
		for _, ni := range nodes {
			diag.NodeToStatus[ni.Node().Name] = st
		}
		diag.UnschedulablePlugins = unschedulablePlugins(diag.NodeToStatus)
		return nil, diag, nil
	}

	n := len(nodes)
	want := numFeasibleNodesToFind(n)
	order := newNodeOrder(string(pod.UID), n)
	statuses := make([]*framework.Status, n)
	fits := make([]bool, n)
	var found atomic.Int64
	var firstErr atomic.Pointer[framework.Status]
	processed := parallelize(f.parallelism, n, func(i int) bool {
		st := f.RunFilterPluginsWithNominatedPods(ctx, cs, pod, nodes[order.at(i)])
		switch {
		case st.IsSuccess():
			fits[i] = true
			return found.Add(1) < int64(want)
		case st.IsRejected():
			statuses[i] = st
			return true
		default:
			firstErr.CompareAndSwap(nil, st)
			return false
		}
	})
	if st := firstErr.Load(); st != nil {
		return nil, diag, st.Err()
	}
	feasible := make([]*framework.NodeInfo, 0, min(want, processed))
	for i := 0; i < processed; i++ {
		ni := nodes[order.at(i)]
		switch {
		case fits[i] && len(feasible) < want:
			feasible = append(feasible, ni)
		case statuses[i] != nil:
			diag.NodeToStatus[ni.Node().Name] = statuses[i]
		}
	}
	diag.UnschedulablePlugins = unschedulablePlugins(diag.NodeToStatus)
	return feasible, diag, nil
}
