package job

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// planNames renders a plan with pod names instead of pointers.
type planNames struct {
	Delete      []string
	Create      int
	Indexes     []int
	BackoffWait time.Duration
}

func names(p plan) planNames {
	out := planNames{Create: p.Create, Indexes: p.Indexes, BackoffWait: p.BackoffWait}
	for _, pod := range p.Delete {
		out.Delete = append(out.Delete, pod.Name)
	}
	return out
}

func TestManage(t *testing.T) {
	base := newJob()
	pod := func(name string, opts ...podOpt) *corev1.Pod { return newPod(base, name, opts...) }
	unscheduled := func(p *corev1.Pod) { p.Spec.NodeName = "" }
	tests := []struct {
		name        string
		job         *batchv1.Job
		active      []*corev1.Pod
		succeeded   int32
		indexes     intervals
		terminating int32
		backoff     time.Duration
		want        planNames
	}{
		{name: "fresh job starts parallelism pods", job: newJob(parallelism(3), completions(5)), want: planNames{Create: 3}},
		{name: "remaining completions cap parallelism", job: newJob(parallelism(3), completions(5)), succeeded: 4, want: planNames{Create: 1}},
		{name: "all completions reached creates nothing", job: newJob(parallelism(3), completions(5)), succeeded: 5},
		{name: "work queue job starts parallelism", job: newJob(parallelism(2), func(j *batchv1.Job) { j.Spec.Completions = nil }), want: planNames{Create: 2}},
		{
			name:      "work queue job after a success lets the rest finish",
			job:       newJob(parallelism(3), func(j *batchv1.Job) { j.Spec.Completions = nil }),
			active:    []*corev1.Pod{pod("a")},
			succeeded: 1,
		},
		{
			name:   "parallelism lowered deletes the most deletable pods first",
			job:    newJob(parallelism(1), completions(5)),
			active: []*corev1.Pod{pod("ready", readyPod), pod("pending", phase(corev1.PodPending)), pod("unscheduled", unscheduled, phase(corev1.PodPending))},
			want:   planNames{Delete: []string{"unscheduled", "pending"}},
		},
		{
			name:   "suspended job deletes every active pod",
			job:    newJob(suspended, parallelism(2), completions(5)),
			active: []*corev1.Pod{pod("a", readyPod), pod("b", readyPod)},
			want:   planNames{Delete: []string{"a", "b"}},
		},
		{name: "backoff delays the replacement", job: newJob(parallelism(2), completions(5)), active: []*corev1.Pod{pod("a")}, backoff: 5 * time.Second, want: planNames{BackoffWait: 5 * time.Second}},
		{
			name:        "terminating pods hold their slot with podReplacementPolicy Failed",
			job:         newJob(parallelism(2), completions(5), func(j *batchv1.Job) { j.Spec.PodReplacementPolicy = ptr.To(batchv1.Failed) }),
			active:      []*corev1.Pod{pod("a")},
			terminating: 1,
		},
		{
			name:        "terminating pods are replaced right away with TerminatingOrFailed",
			job:         newJob(parallelism(2), completions(5), func(j *batchv1.Job) { j.Spec.PodReplacementPolicy = ptr.To(batchv1.TerminatingOrFailed) }),
			active:      []*corev1.Pod{pod("a")},
			terminating: 1,
			want:        planNames{Create: 1},
		},
		{
			name:    "indexed job creates the lowest pending indexes",
			job:     newJob(indexed, parallelism(2), completions(5)),
			active:  []*corev1.Pod{pod("i1", index(1))},
			indexes: intervals{{0, 0}, {2, 2}},
			want:    planNames{Indexes: []int{3}},
		},
		{
			name:    "indexed job deletes duplicates, completed and out-of-range indexes",
			job:     newJob(indexed, parallelism(3), completions(3)),
			active:  []*corev1.Pod{pod("dup-old", index(1), readyPod), pod("dup-new", index(1), phase(corev1.PodPending)), pod("done", index(0)), pod("huge", index(7)), pod("none")},
			indexes: intervals{{0, 0}},
			want:    planNames{Delete: []string{"done", "huge", "none", "dup-new"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := manage(tt.job, tt.active, tt.succeeded, tt.indexes, tt.terminating, tt.backoff)
			if diff := cmp.Diff(tt.want, names(got)); diff != "" {
				t.Errorf("manage (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFailure(t *testing.T) {
	restarts := func(n int32) podOpt {
		return func(p *corev1.Pod) { p.Status.ContainerStatuses = []corev1.ContainerStatus{{RestartCount: n}} }
	}
	onFailure := func(j *batchv1.Job) { j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure }
	deadline := func(s int64) jobOpt { return func(j *batchv1.Job) { j.Spec.ActiveDeadlineSeconds = &s } }
	base := newJob()
	tests := []struct {
		name       string
		job        *batchv1.Job
		failed     int32
		pods       []*corev1.Pod
		wantReason string
	}{
		{name: "failures up to the limit are tolerated", job: newJob(backoffLimit(2)), failed: 2},
		{name: "one failure past the limit fails", job: newJob(backoffLimit(2)), failed: 3, wantReason: "BackoffLimitExceeded"},
		{name: "restarts of OnFailure pods count", job: newJob(backoffLimit(2), onFailure), pods: []*corev1.Pod{newPod(base, "a", restarts(2))}, wantReason: "BackoffLimitExceeded"},
		{name: "any restart with limit 0", job: newJob(backoffLimit(0), onFailure), pods: []*corev1.Pod{newPod(base, "a", restarts(1))}, wantReason: "BackoffLimitExceeded"},
		{name: "restarts of Never pods do not count", job: newJob(backoffLimit(2)), pods: []*corev1.Pod{newPod(base, "a", restarts(5))}},
		{name: "past the active deadline", job: newJob(deadline(30), started(now.Add(-30*time.Second))), wantReason: "DeadlineExceeded"},
		{name: "before the active deadline", job: newJob(deadline(30), started(now.Add(-29*time.Second)))},
		{name: "suspended jobs run no deadline", job: newJob(deadline(30), suspended, started(now.Add(-time.Hour)))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := failure(tt.job, tt.failed, tt.pods, now)
			if got != tt.wantReason {
				t.Errorf("failure reason = %q, want %q", got, tt.wantReason)
			}
		})
	}
}

func TestBackoffLeft(t *testing.T) {
	job := newJob()
	failedAt := func(name string, ago time.Duration) *corev1.Pod {
		return newPod(job, name, phase(corev1.PodFailed), finishedAt(now.Add(-ago)))
	}
	succeededAt := func(name string, ago time.Duration) *corev1.Pod {
		return newPod(job, name, phase(corev1.PodSucceeded), finishedAt(now.Add(-ago)))
	}
	tests := []struct {
		name string
		pods []*corev1.Pod
		want time.Duration
	}{
		{name: "no failures", pods: []*corev1.Pod{succeededAt("s", time.Second)}},
		{name: "one failure waits 10s", pods: []*corev1.Pod{failedAt("f1", 3*time.Second)}, want: 7 * time.Second},
		{name: "three failures wait 40s from the last", pods: []*corev1.Pod{failedAt("f1", time.Minute), failedAt("f2", 30*time.Second), failedAt("f3", 10*time.Second)}, want: 30 * time.Second},
		{name: "a success resets the count", pods: []*corev1.Pod{failedAt("f1", time.Minute), failedAt("f2", 50*time.Second), succeededAt("s", 40*time.Second), failedAt("f3", 5*time.Second)}, want: 5 * time.Second},
		{name: "elapsed backoff", pods: []*corev1.Pod{failedAt("f1", time.Minute)}},
		{
			name: "capped at six minutes",
			pods: func() []*corev1.Pod {
				var ps []*corev1.Pod
				for i := range 10 {
					ps = append(ps, failedAt("f"+string(rune('a'+i)), time.Duration(10-i)*time.Second))
				}
				return ps
			}(),
			want: 6*time.Minute - time.Second,
		},
		{
			name: "a deleted unfinished pod counts as failed",
			pods: []*corev1.Pod{newPod(job, "d", func(p *corev1.Pod) { p.DeletionTimestamp = ptr.To(metav1.NewTime(now.Add(-2 * time.Second))) })},
			want: 8 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := backoffLeft(job, tt.pods, now); got != tt.want {
				t.Errorf("backoffLeft = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestIntervals(t *testing.T) {
	tests := []struct {
		in          string
		completions int
		add         []int
		want        string
		total       int
	}{
		{in: "", completions: 5, add: []int{3, 1, 2}, want: "1-3", total: 3},
		{in: "0,2", completions: 5, add: []int{1}, want: "0-2", total: 3},
		{in: "0-2,7", completions: 5, add: []int{4}, want: "0-2,4", total: 4},
		{in: "1,x,3-4", completions: 10, want: "1,3-4", total: 3},
	}
	for _, tt := range tests {
		got := parseIntervals(tt.in, tt.completions).with(tt.add)
		if got.String() != tt.want || got.total() != tt.total {
			t.Errorf("parse(%q).with(%v) = %q (total %d), want %q (total %d)", tt.in, tt.add, got.String(), got.total(), tt.want, tt.total)
		}
	}
}
