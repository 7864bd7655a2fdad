package prober

import (
	"context"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

// fakeExecutor returns results from a script, then the last one forever,
// and counts calls per kind.
type fakeExecutor struct {
	mu      sync.Mutex
	results map[Kind][]Result
	calls   map[Kind]int
	called  chan Kind // receives each call's kind when not nil
}

func (f *fakeExecutor) Probe(_ context.Context, req Request) (Result, string) {
	f.mu.Lock()
	defer func() {
		f.mu.Unlock()
		if f.called != nil {
			f.called <- req.Kind
		}
	}()
	if f.calls == nil {
		f.calls = map[Kind]int{}
	}
	f.calls[req.Kind]++
	rs := f.results[req.Kind]
	if len(rs) == 0 {
		return Success, ""
	}
	r := rs[0]
	if len(rs) > 1 {
		f.results[req.Kind] = rs[1:]
	}
	if r == Failure {
		return r, "boom"
	}
	return r, ""
}

func (f *fakeExecutor) count(k Kind) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[k]
}

func TestStateThresholds(t *testing.T) {
	for _, tc := range []struct {
		name    string
		kind    Kind
		probe   corev1.Probe
		results []Result
		want    Result
		changes int
	}{
		{"liveness starts successful", Liveness, corev1.Probe{}, nil, Success, 0},
		{"readiness starts failed", Readiness, corev1.Probe{}, nil, Failure, 0},
		{"startup starts unknown", Startup, corev1.Probe{}, nil, Unknown, 0},
		{"failureThreshold defaults to 3", Liveness, corev1.Probe{}, []Result{Failure, Failure}, Success, 0},
		{"the 3rd failure in a row fails", Liveness, corev1.Probe{}, []Result{Failure, Failure, Failure}, Failure, 1},
		{"a success in between resets the run", Liveness, corev1.Probe{}, []Result{Failure, Failure, Success, Failure, Failure}, Success, 0},
		{"unknown results are ignored", Liveness, corev1.Probe{}, []Result{Failure, Unknown, Failure, Unknown, Failure}, Failure, 1},
		{"readiness needs successThreshold successes", Readiness, corev1.Probe{ProbeHandler: corev1.ProbeHandler{}, SuccessThreshold: 2}, []Result{Success}, Failure, 0},
		{"readiness flips ready then unready", Readiness, corev1.Probe{SuccessThreshold: 2, FailureThreshold: 1}, []Result{Success, Success, Failure}, Failure, 2},
		{"startup succeeds once", Startup, corev1.Probe{}, []Result{Success}, Success, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newState(tc.kind, &tc.probe)
			changes := 0
			for _, r := range tc.results {
				if s.observe(r) {
					changes++
				}
			}
			if s.verdict != tc.want || changes != tc.changes {
				t.Errorf("verdict %v after %d changes, want %v after %d", s.verdict, changes, tc.want, tc.changes)
			}
		})
	}
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func testPod(c corev1.Container) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "uid"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{c}},
	}
}

// testWorkers registers an instance "c://1" of the pod's container with
// m, without goroutines, and returns its workers by kind so that a test
// steps them itself.
func testWorkers(m *Manager, pod *corev1.Pod) map[Kind]*worker {
	spec := &pod.Spec.Containers[0]
	e := &entry{id: "c://1", cancel: func() {}, verdict: map[Kind]Result{}}
	m.entries[entryKey{pod.UID, spec.Name}] = e
	out := map[Kind]*worker{}
	for _, kind := range [...]Kind{Startup, Liveness, Readiness} {
		p := probeOf(spec, kind)
		if p == nil {
			continue
		}
		w := &worker{m: m, entry: e, pod: pod, container: spec, kind: kind, probe: p, id: e.id, startedAt: t0, state: newState(kind, p)}
		e.verdict[kind] = w.state.verdict
		out[kind] = w
	}
	return out
}

func running() []Container {
	return []Container{{Name: "c", ID: "c://1", Running: true, StartedAt: t0}}
}

func TestInitialDelay(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	ex := &fakeExecutor{}
	m := New(Config{Executor: ex, Clock: clk})
	pod := testPod(corev1.Container{Name: "c", ReadinessProbe: &corev1.Probe{InitialDelaySeconds: 5}})
	w := testWorkers(m, pod)[Readiness]
	ctx := context.Background()

	clk.SetTime(t0.Add(4 * time.Second))
	w.step(ctx)
	if n := ex.count(Readiness); n != 0 {
		t.Fatalf("probed %d times before initialDelaySeconds", n)
	}
	if v := m.Sync(ctx, pod, nil, running())["c"]; v.Ready {
		t.Errorf("ready before the first readiness probe: %+v", v)
	}
	clk.SetTime(t0.Add(5 * time.Second))
	w.step(ctx)
	if n := ex.count(Readiness); n != 1 {
		t.Fatalf("probed %d times after initialDelaySeconds, want 1", n)
	}
	if v := m.Sync(ctx, pod, nil, running())["c"]; !v.Ready || !v.Started {
		t.Errorf("verdict after a successful readiness probe = %+v, want started and ready", v)
	}
}

func TestStartupGatesLivenessAndReadiness(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	ex := &fakeExecutor{results: map[Kind][]Result{Startup: {Failure, Success}}}
	var changed []string
	m := New(Config{Executor: ex, Clock: clk, Changed: func(k string) { changed = append(changed, k) }})
	pod := testPod(corev1.Container{Name: "c",
		StartupProbe:   &corev1.Probe{},
		LivenessProbe:  &corev1.Probe{},
		ReadinessProbe: &corev1.Probe{},
	})
	ws := testWorkers(m, pod)
	ctx := context.Background()

	ws[Liveness].step(ctx)
	ws[Readiness].step(ctx)
	if ex.count(Liveness)+ex.count(Readiness) != 0 {
		t.Fatal("liveness or readiness probed before the startup probe succeeded")
	}
	if v := m.Sync(ctx, pod, nil, running())["c"]; v.Started || v.Ready {
		t.Errorf("verdict before startup = %+v, want not started, not ready", v)
	}
	if !ws[Startup].step(ctx) { // fails once: below the threshold
		t.Fatal("startup worker quit after one failure")
	}
	if ws[Startup].step(ctx) { // succeeds: its work is done
		t.Error("startup worker keeps going after succeeding")
	}
	if v := m.Sync(ctx, pod, nil, running())["c"]; !v.Started || v.Ready {
		t.Errorf("verdict after startup = %+v, want started, not ready", v)
	}
	ws[Liveness].step(ctx)
	ws[Readiness].step(ctx)
	if ex.count(Liveness) != 1 || ex.count(Readiness) != 1 {
		t.Errorf("probes after startup: liveness %d, readiness %d; want 1 each", ex.count(Liveness), ex.count(Readiness))
	}
	if v := m.Sync(ctx, pod, nil, running())["c"]; !v.Started || !v.Ready || v.Kill != "" {
		t.Errorf("verdict = %+v, want started, ready, alive", v)
	}
	if len(changed) != 2 {
		t.Errorf("Changed called %d times (%v), want twice (started, ready)", len(changed), changed)
	}
}

func TestLivenessFailureKills(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	ex := &fakeExecutor{results: map[Kind][]Result{Liveness: {Failure}}}
	var events []string
	m := New(Config{Executor: ex, Clock: clk, Event: func(_ *corev1.Pod, c, typ, reason, msg string) {
		events = append(events, c+" "+typ+" "+reason+" "+msg)
	}})
	grace := int64(2)
	pod := testPod(corev1.Container{Name: "c", LivenessProbe: &corev1.Probe{FailureThreshold: 2, TerminationGracePeriodSeconds: &grace}})
	w := testWorkers(m, pod)[Liveness]
	ctx := context.Background()

	if !w.step(ctx) {
		t.Fatal("liveness worker quit below the failure threshold")
	}
	if v := m.Sync(ctx, pod, nil, running())["c"]; v.Kill != "" {
		t.Fatalf("kill after one failure of two: %+v", v)
	}
	if w.step(ctx) {
		t.Error("liveness worker keeps going after its container was condemned")
	}
	want := Verdict{Started: true, Ready: true, Kill: "Container c failed liveness probe, will be restarted", KillGrace: 2 * time.Second}
	if v := m.Sync(ctx, pod, nil, running())["c"]; v != want {
		t.Errorf("verdict = %+v, want %+v", v, want)
	}
	wantEvent := "c Warning Unhealthy Liveness probe failed: boom"
	if len(events) != 2 || events[0] != wantEvent {
		t.Errorf("events = %q, want twice %q", events, wantEvent)
	}
}

// TestWorkersStop checks the workers' owner: a new instance replaces the
// old one's workers, an exited one has none, and Stop waits for all.
func TestWorkersStop(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	ex := &fakeExecutor{called: make(chan Kind, 16)}
	m := New(Config{Executor: ex, Clock: clk})
	pod := testPod(corev1.Container{Name: "c", LivenessProbe: &corev1.Probe{}})
	ctx := context.Background()

	m.Sync(ctx, pod, nil, running())
	<-ex.called // the first probe runs at once
	m.Sync(ctx, pod, nil, []Container{{Name: "c", ID: "c://2", Running: true, StartedAt: t0}})
	<-ex.called
	m.mu.Lock()
	if n := len(m.entries); n != 1 || m.entries[entryKey{"uid", "c"}].id != "c://2" {
		t.Errorf("entries after a restart: %d, want only c://2", n)
	}
	m.mu.Unlock()
	m.Sync(ctx, pod, nil, []Container{{Name: "c", ID: "c://2"}})
	m.mu.Lock()
	if n := len(m.entries); n != 0 {
		t.Errorf("%d entries after the container exited, want 0", n)
	}
	m.mu.Unlock()

	m.Sync(ctx, pod, nil, running())
	<-ex.called
	done := make(chan struct{})
	go func() { m.Stop(); m.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return: a worker leaked")
	}
	if v := m.Sync(ctx, pod, nil, running()); len(v) != 0 {
		t.Errorf("Sync after Stop started probing: %v", v)
	}
}
