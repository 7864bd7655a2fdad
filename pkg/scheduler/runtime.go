package scheduler

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
)

// scorePlugin is a Score plugin with its weight in the total.
type scorePlugin struct {
	framework.ScorePlugin
	weight int64
}

// frameworkImpl runs plugins at each extension point in registration order.
// The order of filters is cheapest-first, matching upstream, because a node
// is rejected by the first failing filter and only that reason is counted.
//
// All fields are set once by newFramework and never modified, so a
// frameworkImpl is safe for concurrent use.
type frameworkImpl struct {
	preFilter  []framework.PreFilterPlugin
	filter     []framework.FilterPlugin
	postFilter []framework.PostFilterPlugin
	preScore   []framework.PreScorePlugin
	score      []scorePlugin
	reserve    []framework.ReservePlugin
	permit     []framework.PermitPlugin
	events     map[string][]framework.ClusterEvent

	parallelism int
	client      kubernetes.Interface
	recorder    record.EventRecorder
	nominator   framework.PodNominator
}

var _ framework.Handle = &frameworkImpl{}

// register sorts p into every extension point it implements.
func (f *frameworkImpl) register(p framework.Plugin, weight int64) {
	if x, ok := p.(framework.PreFilterPlugin); ok {
		f.preFilter = append(f.preFilter, x)
	}
	if x, ok := p.(framework.FilterPlugin); ok {
		f.filter = append(f.filter, x)
	}
	if x, ok := p.(framework.PostFilterPlugin); ok {
		f.postFilter = append(f.postFilter, x)
	}
	if x, ok := p.(framework.PreScorePlugin); ok {
		f.preScore = append(f.preScore, x)
	}
	if x, ok := p.(framework.ScorePlugin); ok && weight > 0 {
		f.score = append(f.score, scorePlugin{ScorePlugin: x, weight: weight})
	}
	if x, ok := p.(framework.ReservePlugin); ok {
		f.reserve = append(f.reserve, x)
	}
	if x, ok := p.(framework.PermitPlugin); ok {
		f.permit = append(f.permit, x)
	}
	if x, ok := p.(framework.EnqueueExtensions); ok {
		if f.events == nil {
			f.events = map[string][]framework.ClusterEvent{}
		}
		f.events[p.Name()] = x.EventsToRegister()
	}
}

// ClientSet implements framework.Handle.
func (f *frameworkImpl) ClientSet() kubernetes.Interface { return f.client }

// EventRecorder implements framework.Handle.
func (f *frameworkImpl) EventRecorder() record.EventRecorder { return f.recorder }

// Nominator implements framework.Handle.
func (f *frameworkImpl) Nominator() framework.PodNominator { return f.nominator }

// runPreFilter runs every PreFilter; the first rejection or error stops.
func (f *frameworkImpl) runPreFilter(ctx context.Context, cs *framework.CycleState, pod *v1.Pod, nodes []*framework.NodeInfo) *framework.Status {
	for _, p := range f.preFilter {
		st := p.PreFilter(ctx, cs, pod, nodes)
		switch {
		case st.IsSkip():
			cs.SkipFilterPlugins[p.Name()] = struct{}{}
		case !st.IsSuccess():
			return st.WithPlugin(p.Name())
		}
	}
	return nil
}

// runFilter returns the first non-success Filter status for ni.
func (f *frameworkImpl) runFilter(ctx context.Context, cs *framework.CycleState, pod *v1.Pod, ni *framework.NodeInfo) *framework.Status {
	for _, p := range f.filter {
		if _, skip := cs.SkipFilterPlugins[p.Name()]; skip {
			continue
		}
		if st := p.Filter(ctx, cs, pod, ni); !st.IsSuccess() {
			if !st.IsRejected() {
				st = framework.AsStatus(fmt.Errorf("running filter plugin %q: %w", p.Name(), st.Err()))
			}
			return st.WithPlugin(p.Name())
		}
	}
	return nil
}

// RunFilterPluginsWithNominatedPods runs the filters as if every nominated
// pod of equal or higher priority were already on the node, and then again
// without them, like upstream: the pod must fit in both worlds, since the
// nominated pods may or may not end up there.
func (f *frameworkImpl) RunFilterPluginsWithNominatedPods(ctx context.Context, cs *framework.CycleState, pod *v1.Pod, ni *framework.NodeInfo) *framework.Status {
	var nominated []*framework.PodInfo
	if f.nominator != nil {
		prio := corev1helpers.PodPriority(pod)
		for _, np := range f.nominator.NominatedPodsForNode(ni.Node().Name) {
			if np.Pod.UID != pod.UID && corev1helpers.PodPriority(np.Pod) >= prio {
				nominated = append(nominated, np)
			}
		}
	}
	if len(nominated) > 0 {
		niWith, csWith := ni.Clone(), cs.Clone()
		for _, np := range nominated {
			niWith.AddPodInfo(np)
			if st := f.RunPreFilterExtensionAddPod(ctx, csWith, pod, np, niWith); !st.IsSuccess() {
				return st
			}
		}
		if st := f.runFilter(ctx, csWith, pod, niWith); !st.IsSuccess() {
			return st
		}
	}
	return f.runFilter(ctx, cs, pod, ni)
}

// RunPreFilterExtensionAddPod implements framework.Handle.
func (f *frameworkImpl) RunPreFilterExtensionAddPod(ctx context.Context, cs *framework.CycleState, pod *v1.Pod, added *framework.PodInfo, ni *framework.NodeInfo) *framework.Status {
	for _, p := range f.preFilter {
		if ext := p.PreFilterExtensions(); ext != nil {
			if _, skip := cs.SkipFilterPlugins[p.Name()]; skip {
				continue
			}
			if st := ext.AddPod(ctx, cs, pod, added, ni); !st.IsSuccess() {
				return st.WithPlugin(p.Name())
			}
		}
	}
	return nil
}

// RunPreFilterExtensionRemovePod implements framework.Handle.
func (f *frameworkImpl) RunPreFilterExtensionRemovePod(ctx context.Context, cs *framework.CycleState, pod *v1.Pod, removed *framework.PodInfo, ni *framework.NodeInfo) *framework.Status {
	for _, p := range f.preFilter {
		if ext := p.PreFilterExtensions(); ext != nil {
			if _, skip := cs.SkipFilterPlugins[p.Name()]; skip {
				continue
			}
			if st := ext.RemovePod(ctx, cs, pod, removed, ni); !st.IsSuccess() {
				return st.WithPlugin(p.Name())
			}
		}
	}
	return nil
}

// runPostFilter returns the first successful or erroring PostFilter result;
// rejections are collected into one message.
func (f *frameworkImpl) runPostFilter(ctx context.Context, cs *framework.CycleState, pod *v1.Pod, nodes []*framework.NodeInfo, statuses framework.NodeToStatus) (*framework.PostFilterResult, *framework.Status) {
	var result *framework.PostFilterResult
	var rejected *framework.Status
	for _, p := range f.postFilter {
		r, st := p.PostFilter(ctx, cs, pod, nodes, statuses)
		if st.IsSuccess() || st.Code() == framework.Error {
			return r, st.WithPlugin(p.Name())
		}
		if r != nil {
			result = r
		}
		if rejected == nil {
			rejected = st.WithPlugin(p.Name())
		}
	}
	if rejected == nil {
		rejected = framework.NewStatus(framework.Unschedulable)
	}
	return result, rejected
}

// runScore computes weighted total scores of feasible nodes.
func (f *frameworkImpl) runScore(ctx context.Context, cs *framework.CycleState, pod *v1.Pod, feasible, all []*framework.NodeInfo) ([]framework.NodeScore, error) {
	for _, p := range f.preScore {
		st := p.PreScore(ctx, cs, pod, feasible, all)
		switch {
		case st.IsSkip():
			cs.SkipScorePlugins[p.Name()] = struct{}{}
		case !st.IsSuccess():
			return nil, fmt.Errorf("running prescore plugin %q: %w", p.Name(), st.Err())
		}
	}
	var active []scorePlugin
	for _, p := range f.score {
		if _, skip := cs.SkipScorePlugins[p.Name()]; !skip {
			active = append(active, p)
		}
	}
	perPlugin := make([][]framework.NodeScore, len(active))
	for j := range active {
		perPlugin[j] = make([]framework.NodeScore, len(feasible))
	}
	var firstErr atomic.Pointer[error]
	parallelize(f.parallelism, len(feasible), func(i int) bool {
		for j, p := range active {
			s, st := p.Score(ctx, cs, pod, feasible[i])
			if !st.IsSuccess() {
				err := fmt.Errorf("running score plugin %q: %w", p.Name(), st.Err())
				firstErr.CompareAndSwap(nil, &err)
				return false
			}
			perPlugin[j][i] = framework.NodeScore{Name: feasible[i].Node().Name, Score: s}
		}
		return true
	})
	if e := firstErr.Load(); e != nil {
		return nil, *e
	}
	total := make([]framework.NodeScore, len(feasible))
	for i, ni := range feasible {
		total[i].Name = ni.Node().Name
	}
	for j, p := range active {
		if ext := p.ScoreExtensions(); ext != nil {
			if st := ext.NormalizeScore(ctx, cs, pod, perPlugin[j]); !st.IsSuccess() {
				return nil, fmt.Errorf("normalizing scores of %q: %w", p.Name(), st.Err())
			}
		}
		for i := range total {
			total[i].Score += perPlugin[j][i].Score * p.weight
		}
	}
	return total, nil
}

// runReserve calls Reserve on every plugin; on failure it unreserves all.
func (f *frameworkImpl) runReserve(ctx context.Context, cs *framework.CycleState, pod *v1.Pod, node string) *framework.Status {
	for _, p := range f.reserve {
		if st := p.Reserve(ctx, cs, pod, node); !st.IsSuccess() {
			f.runUnreserve(ctx, cs, pod, node)
			return st.WithPlugin(p.Name())
		}
	}
	return nil
}

// runUnreserve calls Unreserve in reverse order.
func (f *frameworkImpl) runUnreserve(ctx context.Context, cs *framework.CycleState, pod *v1.Pod, node string) {
	for i := len(f.reserve) - 1; i >= 0; i-- {
		f.reserve[i].Unreserve(ctx, cs, pod, node)
	}
}

// runPermit returns the first non-success Permit status.
func (f *frameworkImpl) runPermit(ctx context.Context, cs *framework.CycleState, pod *v1.Pod, node string) *framework.Status {
	for _, p := range f.permit {
		if st := p.Permit(ctx, cs, pod, node); !st.IsSuccess() {
			return st.WithPlugin(p.Name())
		}
	}
	return nil
}

// parallelize calls work(i) for i in [0, n) on up to workers goroutines,
// handing out indexes in increasing order. When work returns false no new
// index is handed out. It returns the number of indexes handed out; all of
// [0, returned) have completed when it returns, which is what makes the
// early-stopping filter deterministic.
func parallelize(workers, n int, work func(i int) bool) int {
	if workers <= 1 || n < 2*workers {
		for i := 0; i < n; i++ {
			if !work(i) {
				return i + 1
			}
		}
		return n
	}
	var next atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if !work(i) {
					stop.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	return min(int(next.Load()), n)
}

// unschedulablePlugins names the plugins behind the rejections in statuses.
func unschedulablePlugins(statuses framework.NodeToStatus) sets.Set[string] {
	s := sets.New[string]()
	for _, st := range statuses {
		if st.IsRejected() && st.Plugin() != "" {
			s.Insert(st.Plugin())
		}
	}
	return s
}
