package cronjob

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/skiff-project/skiff/pkg/controller/controllertest"
)

type fixture struct {
	client   *fake.Clientset
	recorder *record.FakeRecorder
	ctrl     *Controller
	requeues []time.Duration
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	t.Helper()
	client := fake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	recorder := record.NewFakeRecorder(100)
	ctrl, err := New(client, factory.Batch().V1().CronJobs(), factory.Batch().V1().Jobs(), recorder, clocktesting.NewFakePassiveClock(now))
	if err != nil {
		t.Fatal(err)
	}
	ctrl.location = time.UTC
	f := &fixture{client: client, recorder: recorder, ctrl: ctrl}
	ctrl.enqueueAfter = func(_ string, d time.Duration) { f.requeues = append(f.requeues, d) }
	controllertest.Seed(t, factory, objs...)
	client.ClearActions()
	return f
}

// writes renders write actions as "verb resource[/sub] name".
func (f *fixture) writes() []string { return controllertest.Writes(f.client.Actions()) }

func (f *fixture) events() []string { return controllertest.Events(f.recorder) }

type jobOpt func(*batchv1.Job)

func succeededAt(t time.Time) jobOpt {
	return func(j *batchv1.Job) {
		j.Status.StartTime = ptr.To(metav1.NewTime(t.Add(-time.Minute)))
		j.Status.CompletionTime = ptr.To(metav1.NewTime(t))
		j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
	}
}

func ownedJob(cj *batchv1.CronJob, name string, opts ...jobOpt) *batchv1.Job {
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{
		Namespace: cj.Namespace, Name: name, UID: types.UID(name + "-uid"),
		OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cj, cronJobKind)},
	}}
	for _, o := range opts {
		o(j)
	}
	return j
}

func TestSync(t *testing.T) {
	noon := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	dueJob := jobName(newCronJob(), noon)
	base := newCronJob()
	toNext := noon.Add(5 * time.Minute).Add(nextScheduleDelta).Sub(now)
	tests := []struct {
		name         string
		objs         []runtime.Object
		wantWrites   []string
		wantEvents   []string
		wantStatus   *batchv1.CronJobStatus
		wantRequeues []time.Duration
	}{
		{
			name:         "converged: last run scheduled and still active",
			objs:         []runtime.Object{newCronJob(lastScheduled(noon), activeJob(dueJob)), ownedJob(base, dueJob)},
			wantRequeues: []time.Duration{toNext},
		},
		{
			name:       "due schedule time creates its job and records it",
			objs:       []runtime.Object{newCronJob(lastScheduled(noon.Add(-5 * time.Minute)))},
			wantWrites: []string{"create jobs " + dueJob, "update cronjobs/status backup"},
			wantEvents: []string{"Normal SuccessfulCreate Created job " + dueJob},
			wantStatus: &batchv1.CronJobStatus{
				Active:           []corev1.ObjectReference{{Kind: "Job", Namespace: "default", Name: dueJob, APIVersion: "batch/v1"}},
				LastScheduleTime: ptr.To(metav1.NewTime(noon)),
			},
			wantRequeues: []time.Duration{toNext},
		},
		{
			name: "finished active job leaves the active list",
			objs: []runtime.Object{
				newCronJob(lastScheduled(noon), activeJob(dueJob)),
				ownedJob(base, dueJob, succeededAt(now)),
			},
			wantWrites: []string{"update cronjobs/status backup"},
			wantEvents: []string{"Normal SawCompletedJob Saw completed job: " + dueJob + ", condition: Complete"},
			wantStatus: &batchv1.CronJobStatus{
				LastScheduleTime:   ptr.To(metav1.NewTime(noon)),
				LastSuccessfulTime: ptr.To(metav1.NewTime(now)),
			},
			wantRequeues: []time.Duration{toNext},
		},
		{
			name: "history limit deletes the oldest successful jobs",
			objs: []runtime.Object{
				newCronJob(lastScheduled(noon), func(cj *batchv1.CronJob) { cj.Spec.SuccessfulJobsHistoryLimit = ptr.To[int32](1) }),
				ownedJob(base, "backup-1", succeededAt(noon.Add(-20*time.Minute))),
				ownedJob(base, "backup-3", succeededAt(noon)),
				ownedJob(base, "backup-2", succeededAt(noon.Add(-10*time.Minute))),
			},
			wantWrites: []string{"delete jobs backup-1", "delete jobs backup-2", "update cronjobs/status backup"},
			wantEvents: []string{"Normal SuccessfulDelete Deleted job backup-1", "Normal SuccessfulDelete Deleted job backup-2"},
			wantStatus: &batchv1.CronJobStatus{
				LastScheduleTime:   ptr.To(metav1.NewTime(noon)),
				LastSuccessfulTime: ptr.To(metav1.NewTime(noon)),
			},
			wantRequeues: []time.Duration{toNext},
		},
		{
			name: "replace deletes the running job before creating the new one",
			objs: []runtime.Object{
				newCronJob(lastScheduled(noon.Add(-5*time.Minute)), policy(batchv1.ReplaceConcurrent), activeJob("backup-old")),
				ownedJob(base, "backup-old"),
			},
			wantWrites: []string{"delete jobs backup-old", "create jobs " + dueJob, "update cronjobs/status backup"},
			wantEvents: []string{"Normal SuccessfulDelete Deleted job backup-old", "Normal SuccessfulCreate Created job " + dueJob},
			wantStatus: &batchv1.CronJobStatus{
				Active:           []corev1.ObjectReference{{Kind: "Job", Namespace: "default", Name: dueJob, APIVersion: "batch/v1"}},
				LastScheduleTime: ptr.To(metav1.NewTime(noon)),
			},
			wantRequeues: []time.Duration{toNext},
		},
		{
			name: "forbid with a running job only reports it",
			objs: []runtime.Object{
				newCronJob(lastScheduled(noon.Add(-5*time.Minute)), policy(batchv1.ForbidConcurrent), activeJob("backup-old")),
				ownedJob(base, "backup-old"),
			},
			wantEvents:   []string{"Normal JobAlreadyActive Not starting job because prior execution is running and concurrency policy is Forbid"},
			wantRequeues: []time.Duration{toNext},
		},
		{
			name: "suspended cronjob starts nothing",
			objs: []runtime.Object{newCronJob(func(cj *batchv1.CronJob) { cj.Spec.Suspend = ptr.To(true) })},
		},
		{
			name:       "active job gone from the server is dropped",
			objs:       []runtime.Object{newCronJob(lastScheduled(noon), activeJob("backup-gone"))},
			wantWrites: []string{"update cronjobs/status backup"},
			wantEvents: []string{"Normal MissingJob Active job went missing: backup-gone"},
			wantStatus: &batchv1.CronJobStatus{
				LastScheduleTime: ptr.To(metav1.NewTime(noon)),
			},
			wantRequeues: []time.Duration{toNext},
		},
		{
			name:       "unparseable schedule is reported, not retried",
			objs:       []runtime.Object{newCronJob(func(cj *batchv1.CronJob) { cj.Spec.Schedule = "61 * * * *" })},
			wantEvents: []string{`Warning UnparseableSchedule unparseable schedule: "61 * * * *" : minute field "61": 61-61 is outside 0-59`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.objs...)
			if err := f.ctrl.sync(context.Background(), "default/backup"); err != nil {
				t.Fatalf("sync: %v", err)
			}
			if diff := cmp.Diff(tt.wantWrites, f.writes()); diff != "" {
				t.Errorf("writes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantEvents, f.events()); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantRequeues, f.requeues); diff != "" {
				t.Errorf("requeues (-want +got):\n%s", diff)
			}
			if tt.wantStatus != nil {
				got, err := f.client.BatchV1().CronJobs("default").Get(context.Background(), "backup", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(*tt.wantStatus, got.Status); diff != "" {
					t.Errorf("status (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestJobFromTemplate(t *testing.T) {
	cj := newCronJob(func(cj *batchv1.CronJob) { cj.Spec.TimeZone = ptr.To("Europe/Berlin") })
	scheduled := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	got, err := jobFromTemplate(cj, scheduled)
	if err != nil {
		t.Fatal(err)
	}
	want := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:              "backup-28928880",
			Namespace:         "default",
			Labels:            map[string]string{"app": "backup"},
			Annotations:       map[string]string{batchv1.CronJobScheduledTimestampAnnotation: "2025-01-01T13:00:00+01:00"},
			CreationTimestamp: metav1.NewTime(scheduled),
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "batch/v1", Kind: "CronJob", Name: "backup", UID: "backup-uid",
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Spec: cj.Spec.JobTemplate.Spec,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("job (-want +got):\n%s", diff)
	}
}
