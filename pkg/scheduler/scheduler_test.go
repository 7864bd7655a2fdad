package scheduler

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"

	st "github.com/skiff-project/skiff/pkg/scheduler/internal/testutil"
)

// harness runs a Scheduler against a fake clientset. Bindings are applied
// to the fake tracker by a reactor (the stock fake cannot bind) and
// reported on bound.
type harness struct {
	client   *fake.Clientset
	recorder *record.FakeRecorder
	bound    chan string // "ns/name -> node"
	deleted  chan string // "ns/name"
	clock    *clocktesting.FakeClock
	stop     func()
}

func start(t *testing.T, objs ...runtime.Object) *harness {
	t.Helper()
	h := &harness{
		client:   fake.NewClientset(objs...),
		recorder: record.NewFakeRecorder(100),
		bound:    make(chan string, 100),
		deleted:  make(chan string, 100),
	}
	h.client.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ca := a.(k8stesting.CreateAction)
		if ca.GetSubresource() != "binding" {
			return false, nil, nil
		}
		b := ca.GetObject().(*v1.Binding)
		obj, err := h.client.Tracker().Get(v1.SchemeGroupVersion.WithResource("pods"), b.Namespace, b.Name)
		if err != nil {
			return true, nil, err
		}
		pod := obj.(*v1.Pod).DeepCopy()
		pod.Spec.NodeName = b.Target.Name
		if err := h.client.Tracker().Update(v1.SchemeGroupVersion.WithResource("pods"), pod, b.Namespace); err != nil {
			return true, nil, err
		}
		h.bound <- fmt.Sprintf("%s/%s -> %s", b.Namespace, b.Name, b.Target.Name)
		return true, b, nil
	})
	h.client.PrependReactor("delete", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		da := a.(k8stesting.DeleteAction)
		h.deleted <- da.GetNamespace() + "/" + da.GetName()
		return false, nil, nil // let the tracker delete it
	})
	factory := informers.NewSharedInformerFactory(h.client, 0)
	h.clock = clocktesting.NewFakeClock(time.Unix(1_700_000_000, 0))
	s, err := New(Config{
		Client: h.client, Informers: factory, Recorder: h.recorder,
		Clock: h.clock, Parallelism: 2,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	h.stop = func() {
		cancel()
		wg.Wait()
		factory.Shutdown()
	}
	t.Cleanup(h.stop)
	return h
}

// next waits for one value; the timeout only bounds a failing test.
func next(t *testing.T, what string, ch <-chan string) string {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		return ""
	}
}

func TestScheduleAndBind(t *testing.T) {
	h := start(t,
		st.MakeNode("node-1").Capacity("1", "4Gi", 110).Obj(),
		st.MakeNode("node-2").Capacity("4", "4Gi", 110).Obj(),
		st.MakeNode("node-3").Capacity("1", "4Gi", 110).Obj(),
		st.MakePod("x").Req("2", "1Gi").Obj(),
		st.MakePod("other-scheduler").SchedulerName("someone-else").Obj(),
	)
	if diff := cmp.Diff("default/x -> node-2", next(t, "binding", h.bound)); diff != "" {
		t.Errorf("binding (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("Normal Scheduled Successfully assigned default/x to node-2", next(t, "event", h.recorder.Events)); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
	h.stop()
	if len(h.bound) != 0 {
		t.Errorf("pod of another scheduler was bound: %s", <-h.bound)
	}
}

func TestUnschedulableMessage(t *testing.T) {
	h := start(t,
		st.MakeNode("node-1").Capacity("1", "4Gi", 110).Obj(),
		st.MakeNode("node-2").Capacity("1", "4Gi", 110).Obj(),
		st.MakeNode("node-3").Capacity("1", "4Gi", 110).Obj(),
		st.MakePod("big").Req("2", "").Obj(),
	)
	const msg = "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.."
	if diff := cmp.Diff("Warning FailedScheduling "+msg, next(t, "event", h.recorder.Events)); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
	h.stop() // the status patch happens before Run returns
	pod, err := h.client.CoreV1().Pods("default").Get(context.Background(), "big", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get pod: %v", err)
	}
	var got []v1.PodCondition
	for _, c := range pod.Status.Conditions {
		c.LastTransitionTime = metav1.Time{}
		got = append(got, c)
	}
	want := []v1.PodCondition{{Type: v1.PodScheduled, Status: v1.ConditionFalse, Reason: v1.PodReasonUnschedulable, Message: msg}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("conditions (-want +got):\n%s", diff)
	}
}

func TestPreemption(t *testing.T) {
	h := start(t,
		st.MakeNode("node-1").Capacity("1", "4Gi", 110).Obj(),
		st.MakePod("low").Req("1", "").Priority(0).Node("node-1").Obj(),
		st.MakePod("high").Req("1", "").Priority(1000).Obj(),
	)
	if diff := cmp.Diff("default/low", next(t, "victim deletion", h.deleted)); diff != "" {
		t.Errorf("victim (-want +got):\n%s", diff)
	}
	want := []string{
		"Normal Preempted Preempted by pod high on node node-1",
		"Warning FailedScheduling 0/1 nodes are available: 1 Insufficient cpu.",
	}
	got := []string{next(t, "event", h.recorder.Events), next(t, "event", h.recorder.Events)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	// The victim's delete event frees the node; the preemptor waits out its
	// backoff on the fake clock and is then bound. Each step fires the
	// queue's flush ticker; the loop ends as soon as the binding is seen.
	for i := 0; ; i++ {
		h.clock.Step(time.Second)
		select {
		case b := <-h.bound:
			if diff := cmp.Diff("default/high -> node-1", b); diff != "" {
				t.Errorf("binding (-want +got):\n%s", diff)
			}
			return
		case <-time.After(50 * time.Millisecond):
			if i > 100 {
				t.Fatal("preemptor never bound")
			}
		}
	}
}
