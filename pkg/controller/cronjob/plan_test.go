package cronjob

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// now is a Wednesday, on a five-minute boundary plus 30 seconds.
var now = time.Date(2025, 1, 1, 12, 0, 30, 0, time.UTC)

type cjOpt func(*batchv1.CronJob)

func created(t time.Time) cjOpt {
	return func(cj *batchv1.CronJob) { cj.CreationTimestamp = metav1.NewTime(t) }
}
func lastScheduled(t time.Time) cjOpt {
	return func(cj *batchv1.CronJob) { cj.Status.LastScheduleTime = ptr.To(metav1.NewTime(t)) }
}
func policy(p batchv1.ConcurrencyPolicy) cjOpt {
	return func(cj *batchv1.CronJob) { cj.Spec.ConcurrencyPolicy = p }
}
func deadline(s int64) cjOpt {
	return func(cj *batchv1.CronJob) { cj.Spec.StartingDeadlineSeconds = &s }
}
func activeJob(name string) cjOpt {
	return func(cj *batchv1.CronJob) {
		cj.Status.Active = append(cj.Status.Active, corev1.ObjectReference{Kind: "Job", Namespace: cj.Namespace, Name: name, UID: types.UID(name + "-uid"), APIVersion: "batch/v1"})
	}
}

func newCronJob(opts ...cjOpt) *batchv1.CronJob {
	cj := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "backup", UID: "backup-uid", CreationTimestamp: metav1.NewTime(now.Add(-time.Hour))},
		Spec: batchv1.CronJobSpec{
			Schedule:          "*/5 * * * *",
			ConcurrencyPolicy: batchv1.AllowConcurrent,
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "backup"}},
				Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyOnFailure,
					Containers:    []corev1.Container{{Name: "c", Image: "busybox"}},
				}}},
			},
		},
	}
	for _, o := range opts {
		o(cj)
	}
	return cj
}

func TestDecide(t *testing.T) {
	at := func(h, m int) *time.Time { v := time.Date(2025, 1, 1, h, m, 0, 0, time.UTC); return &v }
	// The next */5 time after now is 12:05; requeues land 100ms after it.
	toNext := at(12, 5).Add(nextScheduleDelta).Sub(now)
	tests := []struct {
		name     string
		cj       *batchv1.CronJob
		schedule string
		want     decision
	}{
		{
			name: "created before the first schedule time: nothing yet",
			cj:   newCronJob(created(now.Add(-10 * time.Second))),
			want: decision{RequeueAfter: toNext},
		},
		{
			name: "schedule time passed since the last run: start it",
			cj:   newCronJob(lastScheduled(*at(11, 55))),
			want: decision{Start: at(12, 0), MissedCount: 1, RequeueAfter: toNext},
		},
		{
			name: "most recent time already scheduled: converged",
			cj:   newCronJob(lastScheduled(*at(12, 0))),
			want: decision{RequeueAfter: toNext},
		},
		{
			name: "many missed times start only the most recent",
			cj:   newCronJob(),
			want: decision{Start: at(12, 0), MissedCount: 12, RequeueAfter: toNext},
		},
		{
			name: "job for the most recent time already active",
			cj:   newCronJob(lastScheduled(*at(11, 55)), activeJob(jobName(newCronJob(), *at(12, 0)))),
			want: decision{MissedCount: 1, RequeueAfter: toNext},
		},
		{
			name: "starting deadline excludes older missed times",
			cj:   newCronJob(deadline(60)),
			want: decision{Start: at(12, 0), MissedCount: 1, RequeueAfter: toNext},
		},
		{
			name: "starting deadline passed for every unmet time: nothing to start",
			cj:   newCronJob(deadline(10)),
			want: decision{RequeueAfter: toNext},
		},
		{
			name: "forbid with a running job skips the run",
			cj:   newCronJob(lastScheduled(*at(11, 55)), policy(batchv1.ForbidConcurrent), activeJob("backup-old")),
			want: decision{Forbidden: true, MissedCount: 1, RequeueAfter: toNext},
		},
		{
			name: "replace with a running job replaces it",
			cj:   newCronJob(lastScheduled(*at(11, 55)), policy(batchv1.ReplaceConcurrent), activeJob("backup-old")),
			want: decision{Start: at(12, 0), ReplaceActive: true, MissedCount: 1, RequeueAfter: toNext},
		},
		{
			name: "allow with a running job starts another",
			cj:   newCronJob(lastScheduled(*at(11, 55)), activeJob("backup-old")),
			want: decision{Start: at(12, 0), MissedCount: 1, RequeueAfter: toNext},
		},
		{
			name:     "a day of missed per-minute runs is too many",
			cj:       newCronJob(created(now.Add(-24 * time.Hour))),
			schedule: "* * * * *",
			want:     decision{Start: at(12, 0), MissedCount: 1440, RequeueAfter: at(12, 1).Add(nextScheduleDelta).Sub(now)},
		},
		{
			name:     "irregular schedule over a weekend finds friday's run",
			cj:       newCronJob(created(time.Date(2024, 12, 1, 0, 0, 0, 0, time.UTC))),
			schedule: "0 9 * * 1-5",
			// now is Wednesday 12:00:30: the most recent weekday 09:00 is
			// today. 23 weekday runs were missed; the count is upstream's
			// estimate from the first interval (one day): 31.
			want: decision{Start: at(9, 0), MissedCount: 31, RequeueAfter: time.Date(2025, 1, 2, 9, 0, 0, 0, time.UTC).Add(nextScheduleDelta).Sub(now)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := tt.schedule
			if spec == "" {
				spec = tt.cj.Spec.Schedule
			}
			sched, err := parseSchedule(spec, time.UTC)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decide(tt.cj, sched, now)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decide (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecideNeverFires(t *testing.T) {
	sched, err := parseSchedule("0 0 30 2 *", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decide(newCronJob(), sched, now); err == nil {
		t.Error("decide succeeded for a schedule that never fires")
	}
}

func TestJobName(t *testing.T) {
	// 2025-01-01T12:00:00Z is 1735732800 s = 28928880 min since the epoch.
	got := jobName(newCronJob(), time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC))
	if got != "backup-28928880" {
		t.Errorf("jobName = %q, want backup-28928880", got)
	}
}
