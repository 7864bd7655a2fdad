// Package prober runs the liveness, readiness and startup probes of a
// node's containers like upstream's kubelet and turns their results into
// verdicts: whether each container is started and ready, and whether it
// must be killed.
//
// The threshold logic (state) is a pure state machine; a worker goroutine
// per probe of a running container instance drives it on the probe's
// period through an injected clock. A Manager owns every worker: a
// worker stops when its container instance goes away (exits or is
// replaced), when its pod is removed, when the context it was started
// under ends, or at Stop.
package prober

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// Config configures a Manager.
type Config struct {
	// Executor runs the probes; required.
	Executor Executor
	// Clock drives probe periods and initial delays; clock.RealClock{}
	// when nil.
	Clock clock.WithTicker
	// Changed is called with the pod's "namespace/name" key whenever a
	// verdict of one of its containers changed; it must not block. May
	// be nil.
	Changed func(podKey string)
	// Event records an event about a container of pod ("Unhealthy" for
	// every failed probe); it must not block. May be nil.
	Event func(pod *corev1.Pod, container, eventType, reason, message string)
}

// Container is what the Manager needs of a container the runtime holds.
type Container struct {
	Name string
	// ID is "<runtime>://<id>" of the current instance.
	ID string
	// Running reports the instance runs; StartedAt is then when it
	// started.
	Running   bool
	StartedAt time.Time
}

// Verdict is what the probes of a running container say.
type Verdict struct {
	// Started is false while a startup probe has not succeeded.
	Started bool
	// Ready is true once started and, with a readiness probe, once it
	// succeeded (and until it fails).
	Ready bool
	// Kill, when not empty, says the container failed its liveness or
	// startup probe and must be killed, with upstream's message
	// ("Container x failed liveness probe, will be restarted").
	Kill string
	// KillGrace is the grace period to kill it with: the probe's
	// terminationGracePeriodSeconds, else the pod's (30s when unset).
	KillGrace time.Duration
}

// Manager runs the probes of the containers it is told about with Sync.
// It is safe for concurrent use.
type Manager struct {
	cfg Config         // immutable; defaults applied
	wg  sync.WaitGroup // counts running workers

	mu sync.Mutex
	// entries holds each probed container instance; guarded by mu.
	entries map[entryKey]*entry
	stopped bool // guarded by mu
}

type entryKey struct {
	uid  types.UID
	name string
}

// entry is one probed container instance.
type entry struct {
	id      string             // the instance's container ID; immutable
	cancel  context.CancelFunc // stops the instance's workers; immutable
	verdict map[Kind]Result    // each probe's verdict; guarded by Manager.mu
	kill    string             // the Kill message once due; guarded by Manager.mu
}

// New returns a Manager that runs no probe until Sync.
func New(cfg Config) *Manager {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	return &Manager{cfg: cfg, entries: map[entryKey]*entry{}}
}

func probeOf(c *corev1.Container, kind Kind) *corev1.Probe {
	switch kind {
	case Liveness:
		return c.LivenessProbe
	case Readiness:
		return c.ReadinessProbe
	default:
		return c.StartupProbe
	}
}

// Sync starts probing the pod's regular containers that run and have
// probes, stops probing the instances that no longer run, and returns the
// verdict of each running container with at least one probe; containers
// without a verdict are started and ready while they run. Workers started
// here stop when ctx ends at the latest. After Stop, Sync starts nothing.
func (m *Manager) Sync(ctx context.Context, pod *corev1.Pod, podIPs []string, containers []Container) map[string]Verdict {
	var podIP string
	if len(podIPs) > 0 {
		podIP = podIPs[0]
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]Verdict{}
	for i := range pod.Spec.Containers {
		spec := &pod.Spec.Containers[i]
		key := entryKey{pod.UID, spec.Name}
		var cur *Container
		for j := range containers {
			if containers[j].Name == spec.Name && containers[j].Running {
				cur = &containers[j]
			}
		}
		e := m.entries[key]
		if e != nil && (cur == nil || cur.ID != e.id) {
			e.cancel()
			delete(m.entries, key)
			e = nil
		}
		if cur == nil || (spec.LivenessProbe == nil && spec.ReadinessProbe == nil && spec.StartupProbe == nil) {
			continue
		}
		if e == nil {
			if m.stopped {
				continue
			}
			e = m.start(ctx, pod, spec, *cur, podIP)
			m.entries[key] = e
		}
		out[spec.Name] = verdictOf(pod, spec, e)
	}
	return out
}

// verdictOf is the verdict of e, a probed instance of spec; m.mu is held.
func verdictOf(pod *corev1.Pod, spec *corev1.Container, e *entry) Verdict {
	v := Verdict{Started: spec.StartupProbe == nil || e.verdict[Startup] == Success}
	v.Ready = v.Started && (spec.ReadinessProbe == nil || e.verdict[Readiness] == Success)
	if e.kill != "" {
		v.Kill = e.kill
		grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
		if pod.Spec.TerminationGracePeriodSeconds != nil {
			grace = *pod.Spec.TerminationGracePeriodSeconds
		}
		p := spec.LivenessProbe
		if e.verdict[Startup] == Failure {
			p = spec.StartupProbe
		}
		if p != nil && p.TerminationGracePeriodSeconds != nil {
			grace = *p.TerminationGracePeriodSeconds
		}
		v.KillGrace = time.Duration(grace) * time.Second
	}
	return v
}

// start starts a worker per probe of the instance c of spec; m.mu is held.
func (m *Manager) start(ctx context.Context, pod *corev1.Pod, spec *corev1.Container, c Container, podIP string) *entry {
	ctx, cancel := context.WithCancel(ctx)
	e := &entry{id: c.ID, cancel: cancel, verdict: map[Kind]Result{}}
	for _, kind := range [...]Kind{Startup, Liveness, Readiness} {
		p := probeOf(spec, kind)
		if p == nil {
			continue
		}
		w := &worker{
			m:         m,
			entry:     e,
			pod:       pod,
			container: spec,
			kind:      kind,
			probe:     p,
			id:        c.ID,
			startedAt: c.StartedAt,
			podIP:     podIP,
			state:     newState(kind, p),
		}
		e.verdict[kind] = w.state.verdict
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			w.run(ctx)
		}()
	}
	return e
}

// Remove stops probing every container of the pod with uid.
func (m *Manager) Remove(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, e := range m.entries {
		if k.uid == uid {
			e.cancel()
			delete(m.entries, k)
		}
	}
}

// Stop stops every worker and waits until they have exited. It is
// idempotent, and a no-op on a nil Manager.
func (m *Manager) Stop() {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.stopped = true
	for k, e := range m.entries {
		e.cancel()
		delete(m.entries, k)
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// started reports whether e's startup probe (if any) succeeded.
func (m *Manager) started(e *entry) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := e.verdict[Startup]
	return !ok || r == Success
}

// setVerdict records a changed verdict of e's kind probe and tells
// Changed; a failed liveness or startup verdict marks e to be killed.
func (m *Manager) setVerdict(pod *corev1.Pod, container string, e *entry, kind Kind, r Result) {
	m.mu.Lock()
	e.verdict[kind] = r
	if r == Failure && e.kill == "" {
		switch kind {
		case Liveness:
			e.kill = "Container " + container + " failed liveness probe, will be restarted"
		case Startup:
			e.kill = "Container " + container + " failed startup probe, will be restarted"
		}
	}
	m.mu.Unlock()
	if m.cfg.Changed != nil {
		m.cfg.Changed(pod.Namespace + "/" + pod.Name)
	}
}
