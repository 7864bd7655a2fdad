package ttlafterfinished

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

var now = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

func newJob(name string, ttl *int32, cond batchv1.JobConditionType, finished time.Time) *batchv1.Job {
	j := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID(name + "-uid")},
		Spec:       batchv1.JobSpec{TTLSecondsAfterFinished: ttl},
	}
	if cond != "" {
		j.Status.Conditions = []batchv1.JobCondition{{Type: cond, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(finished)}}
	}
	return j
}

type deleteWrite struct {
	Name        string
	Propagation metav1.DeletionPropagation
	UID         types.UID
}

func TestSync(t *testing.T) {
	tests := []struct {
		name        string
		job         *batchv1.Job
		wantDeletes []deleteWrite
		wantRequeue time.Duration
	}{
		{
			name:        "completed job past its ttl is deleted in the foreground",
			job:         newJob("done", ptr.To[int32](60), batchv1.JobComplete, now.Add(-61*time.Second)),
			wantDeletes: []deleteWrite{{Name: "done", Propagation: metav1.DeletePropagationForeground, UID: "done-uid"}},
		},
		{
			name:        "failed job exactly at its ttl is deleted",
			job:         newJob("failed", ptr.To[int32](0), batchv1.JobFailed, now),
			wantDeletes: []deleteWrite{{Name: "failed", Propagation: metav1.DeletePropagationForeground, UID: "failed-uid"}},
		},
		{
			name:        "completed job before its ttl is requeued, not deleted",
			job:         newJob("young", ptr.To[int32](60), batchv1.JobComplete, now.Add(-10*time.Second)),
			wantRequeue: 50 * time.Second,
		},
		{
			name: "job without ttl is left alone",
			job:  newJob("keep", nil, batchv1.JobComplete, now.Add(-time.Hour)),
		},
		{
			name: "running job is left alone",
			job:  newJob("running", ptr.To[int32](0), "", time.Time{}),
		},
		{
			name: "job already being deleted is left alone",
			job: func() *batchv1.Job {
				j := newJob("deleting", ptr.To[int32](0), batchv1.JobComplete, now.Add(-time.Hour))
				j.DeletionTimestamp = ptr.To(metav1.NewTime(now))
				return j
			}(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := fake.NewClientset(tt.job)
			factory := informers.NewSharedInformerFactory(client, 0)
			c, err := New(client, factory.Batch().V1().Jobs(), clocktesting.NewFakePassiveClock(now))
			if err != nil {
				t.Fatal(err)
			}
			if err := factory.Batch().V1().Jobs().Informer().GetIndexer().Add(tt.job); err != nil {
				t.Fatal(err)
			}
			var requeue time.Duration
			c.enqueueAfter = func(_ string, d time.Duration) { requeue = d }
			client.ClearActions()
			if err := c.sync(context.Background(), "default/"+tt.job.Name); err != nil {
				t.Fatalf("sync: %v", err)
			}
			var got []deleteWrite
			for _, a := range client.Actions() {
				switch a.GetVerb() {
				case "delete":
					d := a.(clienttesting.DeleteActionImpl)
					got = append(got, deleteWrite{Name: d.Name, Propagation: *d.DeleteOptions.PropagationPolicy, UID: *d.DeleteOptions.Preconditions.UID})
				case "get", "list", "watch":
				default:
					t.Errorf("unexpected write %s %s", a.GetVerb(), a.GetResource().Resource)
				}
			}
			if diff := cmp.Diff(tt.wantDeletes, got); diff != "" {
				t.Errorf("deletes (-want +got):\n%s", diff)
			}
			if requeue != tt.wantRequeue {
				t.Errorf("requeue after %v, want %v", requeue, tt.wantRequeue)
			}
		})
	}
}

func TestSyncRechecksServerCopy(t *testing.T) {
	// The cache says expired, the server says the TTL was raised.
	cached := newJob("j", ptr.To[int32](10), batchv1.JobComplete, now.Add(-time.Minute))
	live := cached.DeepCopy()
	live.Spec.TTLSecondsAfterFinished = ptr.To[int32](3600)
	client := fake.NewClientset(live)
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(client, factory.Batch().V1().Jobs(), clocktesting.NewFakePassiveClock(now))
	if err != nil {
		t.Fatal(err)
	}
	if err := factory.Batch().V1().Jobs().Informer().GetIndexer().Add(cached); err != nil {
		t.Fatal(err)
	}
	client.ClearActions()
	if err := c.sync(context.Background(), "default/j"); err != nil {
		t.Fatal(err)
	}
	var verbs []string
	for _, a := range client.Actions() {
		verbs = append(verbs, a.GetVerb())
	}
	if diff := cmp.Diff([]string{"get"}, verbs); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
}

func TestTimeLeft(t *testing.T) {
	tests := []struct {
		name    string
		job     *batchv1.Job
		want    time.Duration
		wantErr bool
	}{
		{name: "complete 10s ago, ttl 60s", job: newJob("a", ptr.To[int32](60), batchv1.JobComplete, now.Add(-10*time.Second)), want: 50 * time.Second},
		{name: "failed 2m ago, ttl 60s", job: newJob("a", ptr.To[int32](60), batchv1.JobFailed, now.Add(-2*time.Minute)), want: -time.Minute},
		{name: "finished in the future (clock skew) waits the full ttl from then", job: newJob("a", ptr.To[int32](5), batchv1.JobComplete, now.Add(time.Minute)), want: 65 * time.Second},
		{name: "no transition time", job: newJob("a", ptr.To[int32](5), batchv1.JobComplete, time.Time{}), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := timeLeft(tt.job, now)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("timeLeft = %v, want %v", got, tt.want)
			}
		})
	}
}
