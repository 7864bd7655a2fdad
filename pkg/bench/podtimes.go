package bench

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// podTimes is when one pod reached each milestone, as observed by the
// benchmark's watch, measured from the start of the run (the creation of
// the Deployment, or of the first bare pod).
type podTimes struct {
	created   time.Duration // first event about the pod
	scheduled time.Duration // first event with spec.nodeName set; valid if isScheduled
	running   time.Duration // first event Running and Ready; valid if isRunning
	// createdAt is the pod's creationTimestamp (second resolution).
	createdAt time.Time
	// runningAt is the wall time of running; valid if isRunning.
	runningAt time.Time

	isScheduled, isRunning, isFailed bool
}

// podTracker folds the watch events of the benchmark's pods into their
// milestones. It does no I/O and reads no clock: the caller passes the time
// of each observation. It is not safe for concurrent use.
type podTracker struct {
	start time.Time            // immutable: time zero of every duration
	pods  map[string]*podTimes // by pod name; the namespace is the benchmark's own

	created, scheduled, running, failed int
}

func newPodTracker(start time.Time) *podTracker {
	return &podTracker{start: start, pods: make(map[string]*podTimes)}
}

// observe records the state of pod as seen at now. A pod first seen
// already bound counts as created and scheduled at now.
func (t *podTracker) observe(pod *corev1.Pod, now time.Time) {
	at := now.Sub(t.start)
	p, ok := t.pods[pod.Name]
	if !ok {
		p = &podTimes{created: at, createdAt: pod.CreationTimestamp.Time}
		t.pods[pod.Name] = p
		t.created++
	}
	if !p.isScheduled && pod.Spec.NodeName != "" {
		p.scheduled, p.isScheduled = at, true
		t.scheduled++
	}
	if !p.isRunning && runningAndReady(pod) {
		p.running, p.runningAt, p.isRunning = at, now, true
		t.running++
	}
	if !p.isFailed && pod.Status.Phase == corev1.PodFailed {
		p.isFailed = true
		t.failed++
	}
}

// runningAndReady reports whether pod is Running with condition Ready True.
func runningAndReady(pod *corev1.Pod) bool {
	if pod.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podCounts is how many pods reached each milestone so far.
type podCounts struct {
	Created   int `json:"created"`
	Scheduled int `json:"scheduled"`
	Running   int `json:"running"`
	Failed    int `json:"failed"`
}

func (t *podTracker) counts() podCounts {
	return podCounts{Created: t.created, Scheduled: t.scheduled, Running: t.running, Failed: t.failed}
}

// milestone is when the last pod reached a milestone and at what rate
// pods reached it.
type milestone struct {
	// Pods is how many pods reached it.
	Pods int `json:"pods"`
	// LastSeconds is the time from the start to the last pod reaching it.
	LastSeconds float64 `json:"lastSeconds"`
	// OverallPerSecond is Pods / LastSeconds.
	OverallPerSecond float64 `json:"overallPerSecond"`
	// PeakPerSecond is the most pods that reached it within one window
	// [k, k+1) seconds after the start.
	PeakPerSecond int `json:"peakPerSecond"`
}

// timelineSecond counts the pods that reached each milestone within one
// second [Second, Second+1) after the start.
type timelineSecond struct {
	Second    int `json:"second"`
	Created   int `json:"created"`
	Scheduled int `json:"scheduled"`
	Running   int `json:"running"`
}

// podResults is the analysis of a podTracker.
type podResults struct {
	Counts    podCounts `json:"counts"`
	Created   milestone `json:"created"`
	Scheduled milestone `json:"scheduled"`
	Running   milestone `json:"running"`
	// SchedulingLatency is from the first observation of each pod to that
	// of its nodeName.
	SchedulingLatency Summary `json:"schedulingLatency"`
	// StartupLatency is from the first observation of each pod to that of
	// it Running and Ready.
	StartupLatency Summary `json:"startupLatency"`
	// StartupFromCreationTimestamp is from each pod's creationTimestamp
	// (truncated to the second by the API) to its observation Running and
	// Ready: upstream's pod startup SLI, so up to 1 s larger than
	// StartupLatency.
	StartupFromCreationTimestamp Summary          `json:"startupFromCreationTimestamp"`
	Timeline                     []timelineSecond `json:"timeline"`
}

// results analyses the observations so far.
func (t *podTracker) results() podResults {
	var created, scheduled, running, schedLat, startLat, fromTS []time.Duration
	for _, p := range t.pods {
		created = append(created, p.created)
		if p.isScheduled {
			scheduled = append(scheduled, p.scheduled)
			schedLat = append(schedLat, p.scheduled-p.created)
		}
		if p.isRunning {
			running = append(running, p.running)
			startLat = append(startLat, p.running-p.created)
			if !p.createdAt.IsZero() {
				fromTS = append(fromTS, p.runningAt.Sub(p.createdAt))
			}
		}
	}
	r := podResults{
		Counts:                       t.counts(),
		SchedulingLatency:            Summarize(schedLat),
		StartupLatency:               Summarize(startLat),
		StartupFromCreationTimestamp: Summarize(fromTS),
	}
	var perSecond [3][]int
	r.Created, perSecond[0] = newMilestone(created)
	r.Scheduled, perSecond[1] = newMilestone(scheduled)
	r.Running, perSecond[2] = newMilestone(running)
	n := max(len(perSecond[0]), len(perSecond[1]), len(perSecond[2]))
	for s := range n {
		r.Timeline = append(r.Timeline, timelineSecond{Second: s, Created: at(perSecond[0], s), Scheduled: at(perSecond[1], s), Running: at(perSecond[2], s)})
	}
	return r
}

// newMilestone summarizes the times at which pods reached a milestone and
// returns their count per second since the start. Times before the start
// (which a fresh namespace does not have) count in second 0.
func newMilestone(times []time.Duration) (milestone, []int) {
	m := milestone{Pods: len(times)}
	var perSecond []int
	for _, d := range times {
		m.LastSeconds = max(m.LastSeconds, d.Seconds())
		s := max(0, int(d/time.Second))
		for len(perSecond) <= s {
			perSecond = append(perSecond, 0)
		}
		perSecond[s]++
		m.PeakPerSecond = max(m.PeakPerSecond, perSecond[s])
	}
	if m.LastSeconds > 0 {
		m.OverallPerSecond = float64(m.Pods) / m.LastSeconds
	}
	return m, perSecond
}

// at returns s[i], or 0 past its end.
func at(s []int, i int) int {
	if i < len(s) {
		return s[i]
	}
	return 0
}
