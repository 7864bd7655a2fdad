package printers

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func podTemplate(labels map[string]string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}},
	}
}

var appWeb = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}

func TestDeploymentRow(t *testing.T) {
	runRows(t, schema.GroupResource{Group: "apps", Resource: "deployments"}, []rowCase{
		{
			name: "rolling out",
			obj: &appsv1.Deployment{
				ObjectMeta: objMeta("web", 5*time.Minute),
				Spec:       appsv1.DeploymentSpec{Replicas: ptr(int32(3)), Selector: appWeb, Template: podTemplate(nil)},
				Status:     appsv1.DeploymentStatus{ReadyReplicas: 2, UpdatedReplicas: 3, AvailableReplicas: 2},
			},
			want: []interface{}{"web", "2/3", "3", "2", "5m", "web", "nginx:1.27", "app=web"},
		},
		{
			name: "no replicas and no selector",
			obj:  &appsv1.Deployment{ObjectMeta: objMeta("empty", time.Hour)},
			want: []interface{}{"empty", "0/0", "0", "0", "60m", "", "", ""},
		},
	})
}

func TestReplicaSetRow(t *testing.T) {
	runRows(t, schema.GroupResource{Group: "apps", Resource: "replicasets"}, []rowCase{{
		name: "scaled",
		obj: &appsv1.ReplicaSet{
			ObjectMeta: objMeta("web-5d9c", 2*time.Hour),
			Spec:       appsv1.ReplicaSetSpec{Replicas: ptr(int32(3)), Selector: appWeb, Template: podTemplate(nil)},
			Status:     appsv1.ReplicaSetStatus{Replicas: 3, ReadyReplicas: 1},
		},
		want: []interface{}{"web-5d9c", int64(3), int64(3), int64(1), "120m", "web", "nginx:1.27", "app=web"},
	}})
}

func TestReplicationControllerRow(t *testing.T) {
	runRows(t, schema.GroupResource{Resource: "replicationcontrollers"}, []rowCase{
		{
			name: "with template",
			obj: &corev1.ReplicationController{
				ObjectMeta: objMeta("rc", time.Hour),
				Spec:       corev1.ReplicationControllerSpec{Replicas: ptr(int32(2)), Selector: map[string]string{"app": "web"}, Template: ptr(podTemplate(nil))},
				Status:     corev1.ReplicationControllerStatus{Replicas: 2, ReadyReplicas: 2},
			},
			want: []interface{}{"rc", int64(2), int64(2), int64(2), "60m", "web", "nginx:1.27", "app=web"},
		},
		{
			name: "without template",
			obj:  &corev1.ReplicationController{ObjectMeta: objMeta("bare", time.Hour)},
			want: []interface{}{"bare", int64(0), int64(0), int64(0), "60m", "", "", "<none>"},
		},
	})
}

func TestDaemonSetRow(t *testing.T) {
	ds := &appsv1.DaemonSet{
		ObjectMeta: objMeta("agent", 3*24*time.Hour),
		Spec:       appsv1.DaemonSetSpec{Selector: appWeb, Template: podTemplate(nil)},
		Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, CurrentNumberScheduled: 3, NumberReady: 2,
			UpdatedNumberScheduled: 3, NumberAvailable: 2},
	}
	ds.Spec.Template.Spec.NodeSelector = map[string]string{"kubernetes.io/os": "linux"}
	runRows(t, schema.GroupResource{Group: "apps", Resource: "daemonsets"}, []rowCase{
		{
			name: "with node selector",
			obj:  ds,
			want: []interface{}{"agent", int64(3), int64(3), int64(2), int64(3), int64(2), "kubernetes.io/os=linux", "3d", "web", "nginx:1.27", "app=web"},
		},
		{
			name: "without selectors",
			obj:  &appsv1.DaemonSet{ObjectMeta: objMeta("bare", time.Minute)},
			want: []interface{}{"bare", int64(0), int64(0), int64(0), int64(0), int64(0), "<none>", "60s", "", "", "<none>"},
		},
	})
}

func TestStatefulSetRow(t *testing.T) {
	runRows(t, schema.GroupResource{Group: "apps", Resource: "statefulsets"}, []rowCase{{
		name: "partly ready",
		obj: &appsv1.StatefulSet{
			ObjectMeta: objMeta("db", time.Hour),
			Spec:       appsv1.StatefulSetSpec{Replicas: ptr(int32(3)), Template: podTemplate(nil)},
			Status:     appsv1.StatefulSetStatus{ReadyReplicas: 1},
		},
		want: []interface{}{"db", "1/3", "60m", "web", "nginx:1.27"},
	}})
}

func TestControllerRevisionRow(t *testing.T) {
	owned := &appsv1.ControllerRevision{ObjectMeta: objMeta("db-7b9f", time.Hour), Revision: 2}
	owned.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", Controller: ptr(true)}}
	runRows(t, schema.GroupResource{Group: "apps", Resource: "controllerrevisions"}, []rowCase{
		{name: "owned", obj: owned, want: []interface{}{"db-7b9f", "statefulset.apps/db", "2", "60m"}},
		{name: "orphan", obj: &appsv1.ControllerRevision{ObjectMeta: objMeta("x", time.Hour), Revision: 1},
			want: []interface{}{"x", "<none>", "1", "60m"}},
	})

	bad := owned.DeepCopy()
	bad.OwnerReferences[0].APIVersion = "a/b/c"
	p, _ := For(schema.GroupResource{Group: "apps", Resource: "controllerrevisions"})
	if _, err := p.Row(bad, now); err == nil {
		t.Error("Row with an unparsable controller apiVersion: want error, got nil")
	}
}

func jobCond(t batchv1.JobConditionType) batchv1.JobCondition {
	return batchv1.JobCondition{Type: t, Status: corev1.ConditionTrue}
}

func TestJobRow(t *testing.T) {
	job := func(mut func(*batchv1.Job)) *batchv1.Job {
		j := &batchv1.Job{
			ObjectMeta: objMeta("pi", 10*time.Minute),
			Spec:       batchv1.JobSpec{Completions: ptr(int32(1)), Parallelism: ptr(int32(1)), Selector: appWeb, Template: podTemplate(nil)},
			Status:     batchv1.JobStatus{StartTime: agoPtr(10 * time.Minute)},
		}
		mut(j)
		return j
	}
	wide := []interface{}{"web", "nginx:1.27", "app=web"}
	row := func(cells ...interface{}) []interface{} { return append(cells, wide...) }
	runRows(t, schema.GroupResource{Group: "batch", Resource: "jobs"}, []rowCase{
		{
			name: "running",
			obj:  job(func(*batchv1.Job) {}),
			want: row("pi", "Running", "0/1", "10m", "10m"),
		},
		{
			name: "complete",
			obj: job(func(j *batchv1.Job) {
				j.Status.Succeeded = 1
				j.Status.CompletionTime = agoPtr(9*time.Minute + 30*time.Second)
				j.Status.Conditions = []batchv1.JobCondition{jobCond(batchv1.JobSuccessCriteriaMet), jobCond(batchv1.JobComplete)}
			}),
			want: row("pi", "Complete", "1/1", "30s", "10m"),
		},
		{
			name: "failed",
			obj: job(func(j *batchv1.Job) {
				j.Status.Conditions = []batchv1.JobCondition{jobCond(batchv1.JobFailureTarget), jobCond(batchv1.JobFailed)}
			}),
			want: row("pi", "Failed", "0/1", "10m", "10m"),
		},
		{
			name: "failure target",
			obj:  job(func(j *batchv1.Job) { j.Status.Conditions = []batchv1.JobCondition{jobCond(batchv1.JobFailureTarget)} }),
			want: row("pi", "FailureTarget", "0/1", "10m", "10m"),
		},
		{
			name: "suspended before start",
			obj: job(func(j *batchv1.Job) {
				j.Status.StartTime = nil
				j.Status.Conditions = []batchv1.JobCondition{jobCond(batchv1.JobSuspended)}
			}),
			want: row("pi", "Suspended", "0/1", "", "10m"),
		},
		{
			name: "terminating",
			obj:  job(func(j *batchv1.Job) { j.DeletionTimestamp = agoPtr(time.Second) }),
			want: row("pi", "Terminating", "0/1", "10m", "10m"),
		},
		{
			name: "false condition is ignored",
			obj: job(func(j *batchv1.Job) {
				j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionFalse}}
			}),
			want: row("pi", "Running", "0/1", "10m", "10m"),
		},
		{
			name: "work queue with parallelism",
			obj: job(func(j *batchv1.Job) {
				j.Spec.Completions, j.Spec.Parallelism, j.Status.Succeeded = nil, ptr(int32(4)), 2
			}),
			want: row("pi", "Running", "2/1 of 4", "10m", "10m"),
		},
		{
			name: "single work queue pod",
			obj:  job(func(j *batchv1.Job) { j.Spec.Completions, j.Spec.Parallelism = nil, nil }),
			want: row("pi", "Running", "0/1", "10m", "10m"),
		},
	})
}

func TestCronJobRow(t *testing.T) {
	cj := &batchv1.CronJob{
		ObjectMeta: objMeta("backup", 2*24*time.Hour),
		Spec: batchv1.CronJobSpec{
			Schedule: "*/5 * * * *", TimeZone: ptr("Etc/UTC"), Suspend: ptr(false),
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: podTemplate(nil)}},
		},
		Status: batchv1.CronJobStatus{Active: []corev1.ObjectReference{{Name: "backup-1"}}, LastScheduleTime: agoPtr(3 * time.Minute)},
	}
	runRows(t, schema.GroupResource{Group: "batch", Resource: "cronjobs"}, []rowCase{
		{
			name: "active",
			obj:  cj,
			want: []interface{}{"backup", "*/5 * * * *", "Etc/UTC", "False", int64(1), "3m", "2d", "web", "nginx:1.27", "<none>"},
		},
		{
			name: "never scheduled",
			obj:  &batchv1.CronJob{ObjectMeta: objMeta("new", time.Minute), Spec: batchv1.CronJobSpec{Schedule: "@daily", Suspend: ptr(true)}},
			want: []interface{}{"new", "@daily", "<none>", "True", int64(0), "<none>", "60s", "", "", "<none>"},
		},
		{
			name: "suspend unset",
			obj:  &batchv1.CronJob{ObjectMeta: objMeta("old", time.Minute), Spec: batchv1.CronJobSpec{Schedule: "@daily"}},
			want: []interface{}{"old", "@daily", "<none>", "<unset>", int64(0), "<none>", "60s", "", "", "<none>"},
		},
	})
}

func TestHPARow(t *testing.T) {
	q := resource.MustParse
	cpu70 := autoscalingv2.MetricSpec{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
		Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr(int32(70))}}}
	mem := autoscalingv2.MetricSpec{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
		Name: corev1.ResourceMemory, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: ptr(q("500Mi"))}}}
	pods := autoscalingv2.MetricSpec{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
		Target: autoscalingv2.MetricTarget{AverageValue: ptr(q("1k"))}}}
	ext := autoscalingv2.MetricSpec{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{
		Target: autoscalingv2.MetricTarget{Value: ptr(q("10"))}}}
	hpa := func(metrics []autoscalingv2.MetricSpec, current []autoscalingv2.MetricStatus) *autoscalingv2.HorizontalPodAutoscaler {
		return &autoscalingv2.HorizontalPodAutoscaler{
			ObjectMeta: objMeta("web", time.Hour),
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "Deployment", Name: "web"},
				MinReplicas:    ptr(int32(1)), MaxReplicas: 10, Metrics: metrics,
			},
			Status: autoscalingv2.HorizontalPodAutoscalerStatus{CurrentReplicas: 3, CurrentMetrics: current},
		}
	}
	cpuNow := autoscalingv2.MetricStatus{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{
		Name: corev1.ResourceCPU, Current: autoscalingv2.MetricValueStatus{AverageUtilization: ptr(int32(45))}}}

	runRows(t, schema.GroupResource{Group: "autoscaling", Resource: "horizontalpodautoscalers"}, []rowCase{
		{
			name: "cpu utilization observed",
			obj:  hpa([]autoscalingv2.MetricSpec{cpu70}, []autoscalingv2.MetricStatus{cpuNow}),
			want: []interface{}{"web", "Deployment/web", "cpu: 45%/70%", "1", "10", "3", "60m"},
		},
		{
			name: "not yet observed",
			obj:  hpa([]autoscalingv2.MetricSpec{cpu70, mem}, nil),
			want: []interface{}{"web", "Deployment/web", "cpu: <unknown>/70%, memory: <unknown>/500Mi", "1", "10", "3", "60m"},
		},
		{
			name: "more than two metrics",
			obj:  hpa([]autoscalingv2.MetricSpec{cpu70, pods, ext, mem}, nil),
			want: []interface{}{"web", "Deployment/web", "cpu: <unknown>/70%, <unknown>/1k + 2 more...", "1", "10", "3", "60m"},
		},
		{
			name: "no metrics",
			obj:  hpa(nil, nil),
			want: []interface{}{"web", "Deployment/web", "<none>", "1", "10", "3", "60m"},
		},
		{
			name: "autoscaling/v1 object",
			obj: &autoscalingv1.HorizontalPodAutoscaler{
				ObjectMeta: objMeta("v1", time.Hour),
				Spec: autoscalingv1.HorizontalPodAutoscalerSpec{
					ScaleTargetRef: autoscalingv1.CrossVersionObjectReference{Kind: "Deployment", Name: "web"},
					MaxReplicas:    5, TargetCPUUtilizationPercentage: ptr(int32(80)),
				},
				Status: autoscalingv1.HorizontalPodAutoscalerStatus{CurrentReplicas: 2, CurrentCPUUtilizationPercentage: ptr(int32(12))},
			},
			want: []interface{}{"v1", "Deployment/web", "cpu: 12%/80%", "<unset>", "5", "2", "60m"},
		},
	})
}
