package queue

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/sets"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/skiff-project/skiff/pkg/scheduler/framework"
	st "github.com/skiff-project/skiff/pkg/scheduler/internal/testutil"
)

var fitEvents = map[string][]framework.ClusterEvent{
	"NodeResourcesFit": {{Resource: framework.AssignedPod, ActionType: framework.Delete}, {Resource: framework.Node, ActionType: framework.Add}},
}

func TestPopOrder(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(0, 0))
	q := New(clk, Options{})
	q.Add(st.MakePod("low-old").Priority(1).Obj())
	clk.Step(time.Second)
	q.Add(st.MakePod("high").Priority(10).Obj())
	q.Add(st.MakePod("low-new").Priority(1).Obj())
	var got []string
	for range 3 {
		qp, _ := q.Pop()
		got = append(got, qp.Pod.Name)
	}
	if diff := cmp.Diff([]string{"high", "low-old", "low-new"}, got); diff != "" {
		t.Errorf("pop order (-want +got):\n%s", diff)
	}
}

func TestBackoffDuration(t *testing.T) {
	q := New(clocktesting.NewFakeClock(time.Unix(0, 0)), Options{})
	var got []time.Duration
	for attempts := 1; attempts <= 6; attempts++ {
		got = append(got, q.backoffDuration(&QueuedPodInfo{Attempts: attempts}))
	}
	want := []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("backoff per attempt (-want +got):\n%s", diff)
	}
}

func TestUnschedulableMovesOnlyOnRelevantEvents(t *testing.T) {
	tests := []struct {
		name    string
		event   framework.ClusterEvent
		advance time.Duration
		want    string
	}{
		{"irrelevant event keeps it waiting", framework.ClusterEvent{Resource: framework.Node, ActionType: framework.UpdateNodeLabel}, 5 * time.Second, "unschedulable"},
		{"pod delete after backoff moves to active", framework.ClusterEvent{Resource: framework.AssignedPod, ActionType: framework.Delete}, 5 * time.Second, "active"},
		{"node add during backoff moves to backoff", framework.ClusterEvent{Resource: framework.Node, ActionType: framework.Add}, 0, "backoff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clocktesting.NewFakeClock(time.Unix(0, 0))
			q := New(clk, Options{PluginEvents: fitEvents})
			q.Add(st.MakePod("p").Obj())
			qp, _ := q.Pop()
			qp.UnschedulablePlugins = sets.New("NodeResourcesFit")
			q.AddUnschedulableIfNotPresent(qp, q.SchedulingCycle())
			q.Done(qp.Pod.UID)
			clk.Step(tt.advance)
			q.MoveAllToActiveOrBackoffQueue(tt.event)
			if diff := cmp.Diff(tt.want, q.Where("p")); diff != "" {
				t.Errorf("queue (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBackoffFlushAndLeftover(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(0, 0))
	q := New(clk, Options{PluginEvents: fitEvents})
	// An internal error (no plugins) goes to backoffQ for 1s.
	q.Add(st.MakePod("err").Obj())
	qp, _ := q.Pop()
	q.AddUnschedulableIfNotPresent(qp, q.SchedulingCycle())
	// A rejected pod waits for an event, or 5 minutes.
	q.Add(st.MakePod("rej").Obj())
	qp, _ = q.Pop()
	qp.UnschedulablePlugins = sets.New("NodeResourcesFit")
	q.AddUnschedulableIfNotPresent(qp, q.SchedulingCycle())

	type where struct{ Err, Rej string }
	check := func(step string, want where) {
		t.Helper()
		if diff := cmp.Diff(want, where{q.Where("err"), q.Where("rej")}); diff != "" {
			t.Errorf("%s (-want +got):\n%s", step, diff)
		}
	}
	check("initially", where{"backoff", "unschedulable"})
	clk.Step(999 * time.Millisecond)
	q.FlushBackoffQCompleted()
	check("before backoff expiry", where{"backoff", "unschedulable"})
	clk.Step(time.Millisecond)
	q.FlushBackoffQCompleted()
	check("at backoff expiry", where{"active", "unschedulable"})
	clk.Step(5 * time.Minute)
	q.FlushUnschedulableLeftover()
	check("after 5 minutes", where{"active", "active"})
}

func TestMoveDuringCycleGoesToBackoff(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(0, 0))
	q := New(clk, Options{PluginEvents: fitEvents})
	q.Add(st.MakePod("p").Obj())
	qp, _ := q.Pop()
	cycle := q.SchedulingCycle()
	// A node appears while the pod is being scheduled against an older snapshot.
	q.MoveAllToActiveOrBackoffQueue(framework.ClusterEvent{Resource: framework.Node, ActionType: framework.Add})
	qp.UnschedulablePlugins = sets.New("NodeResourcesFit")
	q.AddUnschedulableIfNotPresent(qp, cycle)
	if diff := cmp.Diff("backoff", q.Where("p")); diff != "" {
		t.Errorf("queue (-want +got):\n%s", diff)
	}
}
