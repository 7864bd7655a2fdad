package prober

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// worker runs one probe of one container instance every period.
type worker struct {
	m         *Manager
	entry     *entry            // the instance's entry; its verdicts are guarded by m.mu
	pod       *corev1.Pod       // immutable snapshot
	container *corev1.Container // immutable; in pod
	kind      Kind
	probe     *corev1.Probe // immutable; in container
	id        string        // the instance's container ID
	startedAt time.Time     // when the instance started
	podIP     string

	state state // touched only by the worker's goroutine (or a test)
}

func seconds(v, def int32) time.Duration {
	if v <= 0 {
		v = def
	}
	return time.Duration(v) * time.Second
}

// run probes every period until ctx ends or the probe has nothing left to
// do (a succeeded startup probe, a failed liveness or startup probe).
func (w *worker) run(ctx context.Context) {
	t := w.m.cfg.Clock.NewTicker(seconds(w.probe.PeriodSeconds, DefaultPeriodSeconds))
	defer t.Stop()
	for {
		if !w.step(ctx) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}

// step runs the probe once if it is due and reports whether the worker
// must keep going. Liveness and readiness probes wait for the startup
// probe to succeed; no probe runs before initialDelaySeconds have passed
// since the container started.
func (w *worker) step(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	started := w.m.started(w.entry)
	switch {
	case w.kind == Startup && started:
		return false
	case w.kind != Startup && !started:
		return true
	case w.m.cfg.Clock.Since(w.startedAt) < time.Duration(w.probe.InitialDelaySeconds)*time.Second:
		return true
	}
	res, msg := w.m.cfg.Executor.Probe(ctx, Request{
		Kind:        w.kind,
		Probe:       w.probe,
		Container:   w.container,
		ContainerID: w.id,
		PodIP:       w.podIP,
		Timeout:     seconds(w.probe.TimeoutSeconds, DefaultTimeoutSeconds),
	})
	if ctx.Err() != nil {
		// Stopped while probing: the container went away, and its
		// result means nothing.
		return false
	}
	if res == Failure && w.m.cfg.Event != nil {
		w.m.cfg.Event(w.pod, w.container.Name, corev1.EventTypeWarning, "Unhealthy", string(w.kind)+" probe failed: "+msg)
	}
	if w.state.observe(res) {
		w.m.setVerdict(w.pod, w.container.Name, w.entry, w.kind, w.state.verdict)
	}
	switch {
	case w.kind == Startup && w.state.verdict == Success:
		return false // started: nothing left to probe
	case w.kind != Readiness && w.state.verdict == Failure:
		// Its container is killed; the next instance gets new workers.
		return false
	}
	return true
}
