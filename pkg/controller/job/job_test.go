package job

import (
	"context"
	"fmt"
	"sort"
	"strings"
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

var now = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

type fixture struct {
	client   *fake.Clientset
	recorder *record.FakeRecorder
	ctrl     *Controller
	requeues []time.Duration
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	t.Helper()
	client := fake.NewClientset(objs...)
	controllertest.GenerateNames(client, "pods")
	factory := informers.NewSharedInformerFactory(client, 0)
	recorder := record.NewFakeRecorder(100)
	ctrl, err := New(client, factory.Batch().V1().Jobs(), factory.Core().V1().Pods(), recorder, clocktesting.NewFakePassiveClock(now))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{client: client, recorder: recorder, ctrl: ctrl}
	ctrl.enqueueAfter = func(_ string, d time.Duration) { f.requeues = append(f.requeues, d) }
	controllertest.Seed(t, factory, objs...)
	client.ClearActions()
	return f
}

// writes renders write actions as "verb resource[/sub] name"; creates show
// the generateName and patches their body. Pod writes issued in parallel have
// no defined order, so each run of consecutive pod writes is sorted.
func (f *fixture) writes() []string {
	out := controllertest.Writes(f.client.Actions(), controllertest.CreatesByGenerateName(), controllertest.PatchBodies())
	runStart := 0
	for i, w := range out {
		if strings.SplitN(w, " ", 3)[1] != "pods" {
			sort.Strings(out[runStart:i])
			runStart = i + 1
		}
	}
	sort.Strings(out[runStart:])
	return out
}

func (f *fixture) events() []string {
	out := controllertest.Events(f.recorder)
	sort.Strings(out)
	return out
}

func (f *fixture) status(t *testing.T) batchv1.JobStatus {
	t.Helper()
	j, err := f.client.BatchV1().Jobs("default").Get(context.Background(), "pi", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return j.Status
}

type jobOpt func(*batchv1.Job)

func completions(n int32) jobOpt { return func(j *batchv1.Job) { j.Spec.Completions = &n } }
func parallelism(n int32) jobOpt { return func(j *batchv1.Job) { j.Spec.Parallelism = &n } }
func backoffLimit(n int32) jobOpt {
	return func(j *batchv1.Job) { j.Spec.BackoffLimit = &n }
}
func indexed(j *batchv1.Job)   { j.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion) }
func suspended(j *batchv1.Job) { j.Spec.Suspend = ptr.To(true) }
func started(t time.Time) jobOpt {
	return func(j *batchv1.Job) { j.Status.StartTime = ptr.To(metav1.NewTime(t)) }
}
func withStatus(active, ready, succeeded, failed int32) jobOpt {
	return func(j *batchv1.Job) {
		j.Status.Active, j.Status.Succeeded, j.Status.Failed = active, succeeded, failed
		j.Status.Ready, j.Status.Terminating = ptr.To(ready), ptr.To[int32](0)
		j.Status.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{}
	}
}

func newJob(opts ...jobOpt) *batchv1.Job {
	j := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "pi", UID: "pi-uid"},
		Spec: batchv1.JobSpec{
			Parallelism:  ptr.To[int32](1),
			Completions:  ptr.To[int32](1),
			BackoffLimit: ptr.To[int32](6),
			Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{batchv1.ControllerUidLabel: "pi-uid"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{batchv1.ControllerUidLabel: "pi-uid", batchv1.JobNameLabel: "pi"}},
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "pi", Image: "perl"}},
				},
			},
		},
	}
	for _, o := range opts {
		o(j)
	}
	return j
}

type podOpt func(*corev1.Pod)

func phase(ph corev1.PodPhase) podOpt { return func(p *corev1.Pod) { p.Status.Phase = ph } }
func readyPod(p *corev1.Pod) {
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
}
func finishedAt(t time.Time) podOpt {
	return func(p *corev1.Pod) {
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "pi", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{FinishedAt: metav1.NewTime(t)}}}}
	}
}
func index(i int) podOpt {
	return func(p *corev1.Pod) {
		p.Annotations = map[string]string{batchv1.JobCompletionIndexAnnotation: fmt.Sprint(i)}
	}
}

func newPod(job *batchv1.Job, name string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "default", Name: name, UID: types.UID(name + "-uid"),
			Labels:          job.Spec.Template.Labels,
			Finalizers:      []string{batchv1.JobTrackingFinalizer},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(job, jobKind)},
		},
		Spec:   corev1.PodSpec{NodeName: "n1"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

const stripPatch = `{"metadata":{"$deleteFromPrimitiveList/finalizers":["batch.kubernetes.io/job-tracking"]}}`

func cond(t batchv1.JobConditionType, reason, msg string) batchv1.JobCondition {
	return batchv1.JobCondition{Type: t, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastProbeTime: metav1.NewTime(now), LastTransitionTime: metav1.NewTime(now)}
}

func TestSync(t *testing.T) {
	base := newJob()
	startedAgo := func(d time.Duration) jobOpt { return started(now.Add(-d)) }
	tests := []struct {
		name         string
		objs         []runtime.Object
		wantWrites   []string
		wantEvents   []string
		wantStatus   *batchv1.JobStatus
		wantRequeues []time.Duration
	}{
		{
			name: "converged running job writes nothing",
			objs: []runtime.Object{
				newJob(parallelism(2), completions(4), startedAgo(time.Minute), withStatus(2, 2, 0, 0)),
				newPod(base, "pi-a", readyPod), newPod(base, "pi-b", readyPod),
			},
		},
		{
			name:       "new job creates parallelism pods with the tracking finalizer",
			objs:       []runtime.Object{newJob(parallelism(2), completions(4))},
			wantWrites: []string{"create pods pi-", "create pods pi-", "update jobs/status pi"},
			wantEvents: []string{"Normal SuccessfulCreate Created pod: pi-00001", "Normal SuccessfulCreate Created pod: pi-00002"},
			wantStatus: &batchv1.JobStatus{
				StartTime: ptr.To(metav1.NewTime(now)), Active: 2, Ready: ptr.To[int32](0), Terminating: ptr.To[int32](0),
				UncountedTerminatedPods: &batchv1.UncountedTerminatedPods{},
			},
		},
		{
			name: "succeeded pod is counted through uncounted status and replaced",
			objs: []runtime.Object{
				newJob(parallelism(2), completions(4), startedAgo(time.Minute), withStatus(2, 2, 0, 0)),
				newPod(base, "pi-a", readyPod), newPod(base, "pi-b", phase(corev1.PodSucceeded)),
			},
			wantWrites: []string{
				"create pods pi-",
				"update jobs/status pi",
				"patch pods pi-b " + stripPatch,
				"update jobs/status pi",
			},
			wantEvents: []string{"Normal SuccessfulCreate Created pod: pi-00001"},
			wantStatus: &batchv1.JobStatus{
				StartTime: ptr.To(metav1.NewTime(now.Add(-time.Minute))), Active: 2, Ready: ptr.To[int32](1), Terminating: ptr.To[int32](0),
				Succeeded: 1, UncountedTerminatedPods: &batchv1.UncountedTerminatedPods{},
			},
		},
		{
			name: "last success completes the job",
			objs: []runtime.Object{
				newJob(startedAgo(time.Minute), withStatus(1, 0, 0, 0)),
				newPod(base, "pi-a", phase(corev1.PodSucceeded)),
			},
			wantWrites: []string{"update jobs/status pi", "patch pods pi-a " + stripPatch, "update jobs/status pi"},
			wantEvents: []string{"Normal Completed Job completed"},
			wantStatus: &batchv1.JobStatus{
				Conditions: []batchv1.JobCondition{
					cond(batchv1.JobSuccessCriteriaMet, "CompletionsReached", "Reached expected number of succeeded pods"),
					cond(batchv1.JobComplete, "CompletionsReached", "Reached expected number of succeeded pods"),
				},
				StartTime: ptr.To(metav1.NewTime(now.Add(-time.Minute))), CompletionTime: ptr.To(metav1.NewTime(now)),
				Ready: ptr.To[int32](0), Terminating: ptr.To[int32](0), Succeeded: 1,
				UncountedTerminatedPods: &batchv1.UncountedTerminatedPods{},
			},
		},
		{
			name: "failure past the backoff limit fails the job",
			objs: []runtime.Object{
				newJob(backoffLimit(0), startedAgo(time.Minute), withStatus(1, 0, 0, 0)),
				newPod(base, "pi-a", phase(corev1.PodFailed), finishedAt(now.Add(-time.Second))),
			},
			wantWrites: []string{"update jobs/status pi", "patch pods pi-a " + stripPatch, "update jobs/status pi"},
			wantEvents: []string{"Warning BackoffLimitExceeded Job has reached the specified backoff limit"},
			wantStatus: &batchv1.JobStatus{
				Conditions: []batchv1.JobCondition{
					cond(batchv1.JobFailureTarget, "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
					cond(batchv1.JobFailed, "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
				},
				StartTime: ptr.To(metav1.NewTime(now.Add(-time.Minute))),
				Ready:     ptr.To[int32](0), Terminating: ptr.To[int32](0), Failed: 1,
				UncountedTerminatedPods: &batchv1.UncountedTerminatedPods{},
			},
		},
		{
			name: "failure within the backoff limit waits out the backoff before replacing",
			objs: []runtime.Object{
				newJob(startedAgo(time.Minute), withStatus(1, 0, 0, 0)),
				newPod(base, "pi-a", phase(corev1.PodFailed), finishedAt(now.Add(-4*time.Second))),
			},
			wantWrites: []string{"update jobs/status pi", "patch pods pi-a " + stripPatch, "update jobs/status pi"},
			wantStatus: &batchv1.JobStatus{
				StartTime: ptr.To(metav1.NewTime(now.Add(-time.Minute))),
				Ready:     ptr.To[int32](0), Terminating: ptr.To[int32](0), Failed: 1,
				UncountedTerminatedPods: &batchv1.UncountedTerminatedPods{},
			},
			wantRequeues: []time.Duration{6 * time.Second},
		},
		{
			name: "active deadline exceeded deletes running pods and waits for them",
			objs: []runtime.Object{
				newJob(startedAgo(time.Minute), withStatus(1, 1, 0, 0), func(j *batchv1.Job) { j.Spec.ActiveDeadlineSeconds = ptr.To[int64](30) }),
				newPod(base, "pi-a", readyPod),
			},
			wantWrites: []string{"delete pods pi-a", "patch pods pi-a " + stripPatch, "update jobs/status pi", "update jobs/status pi"},
			wantEvents: []string{"Normal SuccessfulDelete Deleted pod: pi-a"},
			wantStatus: &batchv1.JobStatus{
				Conditions: []batchv1.JobCondition{cond(batchv1.JobFailureTarget, "DeadlineExceeded", "Job was active longer than specified deadline")},
				StartTime:  ptr.To(metav1.NewTime(now.Add(-time.Minute))),
				Ready:      ptr.To[int32](0), Terminating: ptr.To[int32](1), Failed: 1,
				UncountedTerminatedPods: &batchv1.UncountedTerminatedPods{},
			},
		},
		{
			name: "running job with a deadline is requeued for it",
			objs: []runtime.Object{
				newJob(startedAgo(10*time.Second), withStatus(1, 1, 0, 0), func(j *batchv1.Job) { j.Spec.ActiveDeadlineSeconds = ptr.To[int64](30) }),
				newPod(base, "pi-a", readyPod),
			},
			wantRequeues: []time.Duration{20 * time.Second},
		},
		{
			name: "suspending deletes active pods without counting them",
			objs: []runtime.Object{
				newJob(suspended, parallelism(2), completions(2), startedAgo(time.Minute), withStatus(2, 1, 0, 0)),
				newPod(base, "pi-a", readyPod), newPod(base, "pi-b", phase(corev1.PodPending)),
			},
			wantWrites: []string{
				"delete pods pi-a", "delete pods pi-b",
				"patch pods pi-a " + stripPatch, "patch pods pi-b " + stripPatch,
				"update jobs/status pi",
			},
			wantEvents: []string{"Normal SuccessfulDelete Deleted pod: pi-a", "Normal SuccessfulDelete Deleted pod: pi-b", "Normal Suspended Job suspended"},
			wantStatus: &batchv1.JobStatus{
				Conditions: []batchv1.JobCondition{cond(batchv1.JobSuspended, "JobSuspended", "Job suspended")},
				StartTime:  ptr.To(metav1.NewTime(now.Add(-time.Minute))),
				Ready:      ptr.To[int32](0), Terminating: ptr.To[int32](2),
				UncountedTerminatedPods: &batchv1.UncountedTerminatedPods{},
			},
		},
		{
			name: "indexed job creates the missing indexes and records completed ones",
			objs: []runtime.Object{
				newJob(indexed, completions(3), parallelism(2), startedAgo(time.Minute), withStatus(1, 0, 0, 0)),
				newPod(base, "pi-0-x", index(0), phase(corev1.PodSucceeded)),
			},
			wantWrites: []string{
				"create pods pi-1-", "create pods pi-2-",
				"update jobs/status pi",
				"patch pods pi-0-x " + stripPatch,
			},
			wantEvents: []string{"Normal SuccessfulCreate Created pod: pi-1-00001", "Normal SuccessfulCreate Created pod: pi-2-00002"},
			wantStatus: &batchv1.JobStatus{
				StartTime: ptr.To(metav1.NewTime(now.Add(-time.Minute))), Active: 2,
				Ready: ptr.To[int32](0), Terminating: ptr.To[int32](0), Succeeded: 1, CompletedIndexes: "0",
				UncountedTerminatedPods: &batchv1.UncountedTerminatedPods{},
			},
		},
		{
			name: "finished job only strips leftover finalizers",
			objs: []runtime.Object{
				newJob(withStatus(0, 0, 1, 0), func(j *batchv1.Job) {
					j.Status.Conditions = []batchv1.JobCondition{cond(batchv1.JobComplete, "CompletionsReached", "")}
				}),
				newPod(base, "pi-a", phase(corev1.PodSucceeded)),
			},
			wantWrites: []string{"patch pods pi-a " + stripPatch},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.objs...)
			if err := f.ctrl.sync(context.Background(), "default/pi"); err != nil {
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
				if diff := cmp.Diff(*tt.wantStatus, f.status(t)); diff != "" {
					t.Errorf("status (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestSyncDoesNotRecountStrippedPod(t *testing.T) {
	// After a sync counted pi-a and removed its finalizer, the cache may
	// still show the pod with the finalizer; the next sync must not count
	// it again.
	job := newJob(parallelism(2), completions(4), started(now.Add(-time.Minute)), withStatus(2, 1, 0, 0))
	f := newFixture(t, job, newPod(job, "pi-a", phase(corev1.PodSucceeded)), newPod(job, "pi-b", readyPod))
	if err := f.ctrl.sync(context.Background(), "default/pi"); err != nil {
		t.Fatal(err)
	}
	first := f.status(t)
	if first.Succeeded != 1 {
		t.Fatalf("after first sync succeeded = %d, want 1", first.Succeeded)
	}
	// Second sync over the same (stale) cache, the job cache updated.
	updated, err := f.client.BatchV1().Jobs("default").Get(context.Background(), "pi", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f2 := newFixture(t, updated, newPod(job, "pi-a", phase(corev1.PodSucceeded)), newPod(job, "pi-b", readyPod), newPod(job, "pi-00001"))
	f2.ctrl.expectations = f.ctrl.expectations
	f2.ctrl.expectations.creationObserved("default/pi") // the replacement pod is in the cache
	if err := f2.ctrl.sync(context.Background(), "default/pi"); err != nil {
		t.Fatal(err)
	}
	if w := f2.writes(); len(w) != 0 {
		t.Errorf("second sync wrote %v, want nothing", w)
	}
}

func TestPodFromTemplateIndexed(t *testing.T) {
	job := newJob(indexed, completions(3))
	job.Spec.Template.Spec.InitContainers = []corev1.Container{{Name: "init", Env: []corev1.EnvVar{{Name: completionIndexEnvName, Value: "custom"}}}}
	got := podFromTemplate(job, 2)
	env := corev1.EnvVar{Name: completionIndexEnvName, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{
		FieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']",
	}}}
	want := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "pi-2-",
			Namespace:    "default",
			Labels: map[string]string{
				batchv1.ControllerUidLabel: "pi-uid", batchv1.JobNameLabel: "pi",
				batchv1.JobCompletionIndexAnnotation: "2",
			},
			Annotations: map[string]string{batchv1.JobCompletionIndexAnnotation: "2"},
			Finalizers:  []string{batchv1.JobTrackingFinalizer},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "batch/v1", Kind: "Job", Name: "pi", UID: "pi-uid",
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Spec: corev1.PodSpec{
			RestartPolicy:  corev1.RestartPolicyNever,
			Hostname:       "pi-2",
			InitContainers: []corev1.Container{{Name: "init", Env: []corev1.EnvVar{{Name: completionIndexEnvName, Value: "custom"}}}},
			Containers:     []corev1.Container{{Name: "pi", Image: "perl", Env: []corev1.EnvVar{env}}},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pod (-want +got):\n%s", diff)
	}
	if strings.Contains(job.Spec.Template.Spec.Containers[0].Name, "x") || len(job.Spec.Template.Spec.Containers[0].Env) != 0 {
		t.Error("podFromTemplate modified the job's template")
	}
}
