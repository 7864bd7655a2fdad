package printers

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/duration"
)

func forApps(resource string) (*Printer, bool) {
	switch resource {
	case "deployments":
		return deploymentPrinter(), true
	case "replicasets":
		return replicaSetPrinter(), true
	case "daemonsets":
		return daemonSetPrinter(), true
	case "statefulsets":
		return statefulSetPrinter(), true
	case "controllerrevisions":
		return controllerRevisionPrinter(), true
	}
	return nil, false
}

func forBatch(resource string) (*Printer, bool) {
	switch resource {
	case "jobs":
		return jobPrinter(), true
	case "cronjobs":
		return cronJobPrinter(), true
	}
	return nil, false
}

func deref(p *int32) int64 {
	if p == nil {
		return 0
	}
	return int64(*p)
}

func deploymentPrinter() *Printer {
	return &Printer{
		Columns: columns(
			cols(
				nameColumn(),
				column("Ready", "string", "Number of the pod with ready state"),
				column("Up-to-date", "string", appsv1.DeploymentStatus{}.SwaggerDoc()["updatedReplicas"]),
				column("Available", "string", appsv1.DeploymentStatus{}.SwaggerDoc()["availableReplicas"]),
				ageColumn(),
			),
			containersColumns(),
			cols(wide(column("Selector", "string", appsv1.DeploymentSpec{}.SwaggerDoc()["selector"]))),
		),
		Row: typed(func(d *appsv1.Deployment, now time.Time) []interface{} {
			// Unlike the other workloads, an empty deployment selector renders
			// as an empty cell, not "<none>".
			selector := "<invalid>"
			if s, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err == nil {
				selector = s.String()
			}
			names, images := containerCells(d.Spec.Template.Spec.Containers)
			return []interface{}{
				d.Name,
				fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, deref(d.Spec.Replicas)),
				strconv.Itoa(int(d.Status.UpdatedReplicas)),
				strconv.Itoa(int(d.Status.AvailableReplicas)),
				age(d.CreationTimestamp, now),
				names, images, selector,
			}
		}),
	}
}

// replicaColumns are the Desired/Current/Ready columns of replica sets and
// replication controllers.
func replicaColumns(specDoc, statusDoc map[string]string) []metav1.TableColumnDefinition {
	return cols(
		nameColumn(),
		column("Desired", "integer", specDoc["replicas"]),
		column("Current", "integer", statusDoc["replicas"]),
		column("Ready", "integer", statusDoc["readyReplicas"]),
		ageColumn(),
	)
}

func replicaSetPrinter() *Printer {
	return &Printer{
		Columns: columns(
			replicaColumns(appsv1.ReplicaSetSpec{}.SwaggerDoc(), appsv1.ReplicaSetStatus{}.SwaggerDoc()),
			containersColumns(),
			cols(wide(column("Selector", "string", appsv1.ReplicaSetSpec{}.SwaggerDoc()["selector"]))),
		),
		Row: typed(func(rs *appsv1.ReplicaSet, now time.Time) []interface{} {
			names, images := containerCells(rs.Spec.Template.Spec.Containers)
			return []interface{}{
				rs.Name, deref(rs.Spec.Replicas), int64(rs.Status.Replicas), int64(rs.Status.ReadyReplicas),
				age(rs.CreationTimestamp, now),
				names, images, metav1.FormatLabelSelector(rs.Spec.Selector),
			}
		}),
	}
}

func replicationControllerPrinter() *Printer {
	return &Printer{
		Columns: columns(
			replicaColumns(corev1.ReplicationControllerSpec{}.SwaggerDoc(), corev1.ReplicationControllerStatus{}.SwaggerDoc()),
			containersColumns(),
			cols(wide(column("Selector", "string", corev1.ReplicationControllerSpec{}.SwaggerDoc()["selector"]))),
		),
		Row: typed(func(rc *corev1.ReplicationController, now time.Time) []interface{} {
			var containers []corev1.Container
			if rc.Spec.Template != nil {
				containers = rc.Spec.Template.Spec.Containers
			}
			names, images := containerCells(containers)
			return []interface{}{
				rc.Name, deref(rc.Spec.Replicas), int64(rc.Status.Replicas), int64(rc.Status.ReadyReplicas),
				age(rc.CreationTimestamp, now),
				names, images, labels.FormatLabels(rc.Spec.Selector),
			}
		}),
	}
}

func daemonSetPrinter() *Printer {
	status := appsv1.DaemonSetStatus{}.SwaggerDoc()
	return &Printer{
		Columns: columns(
			cols(
				nameColumn(),
				column("Desired", "integer", status["desiredNumberScheduled"]),
				column("Current", "integer", status["currentNumberScheduled"]),
				column("Ready", "integer", status["numberReady"]),
				column("Up-to-date", "integer", status["updatedNumberScheduled"]),
				column("Available", "integer", status["numberAvailable"]),
				column("Node Selector", "string", corev1.PodSpec{}.SwaggerDoc()["nodeSelector"]),
				ageColumn(),
			),
			containersColumns(),
			cols(wide(column("Selector", "string", appsv1.DaemonSetSpec{}.SwaggerDoc()["selector"]))),
		),
		Row: typed(func(ds *appsv1.DaemonSet, now time.Time) []interface{} {
			names, images := containerCells(ds.Spec.Template.Spec.Containers)
			return []interface{}{
				ds.Name,
				int64(ds.Status.DesiredNumberScheduled),
				int64(ds.Status.CurrentNumberScheduled),
				int64(ds.Status.NumberReady),
				int64(ds.Status.UpdatedNumberScheduled),
				int64(ds.Status.NumberAvailable),
				labels.FormatLabels(ds.Spec.Template.Spec.NodeSelector),
				age(ds.CreationTimestamp, now),
				names, images, metav1.FormatLabelSelector(ds.Spec.Selector),
			}
		}),
	}
}

func statefulSetPrinter() *Printer {
	return &Printer{
		Columns: columns(
			cols(nameColumn(), column("Ready", "string", "Number of the pod with ready state"), ageColumn()),
			containersColumns(),
		),
		Row: typed(func(ss *appsv1.StatefulSet, now time.Time) []interface{} {
			names, images := containerCells(ss.Spec.Template.Spec.Containers)
			return []interface{}{
				ss.Name,
				fmt.Sprintf("%d/%d", ss.Status.ReadyReplicas, deref(ss.Spec.Replicas)),
				age(ss.CreationTimestamp, now),
				names, images,
			}
		}),
	}
}

func controllerRevisionPrinter() *Printer {
	return &Printer{
		Columns: cols(
			nameColumn(),
			column("Controller", "string", "Controller of the object"),
			column("Revision", "string", appsv1.ControllerRevision{}.SwaggerDoc()["revision"]),
			ageColumn(),
		),
		Row: typedErr(func(cr *appsv1.ControllerRevision, now time.Time) ([]interface{}, error) {
			controller := "<none>"
			if ref := metav1.GetControllerOf(cr); ref != nil {
				gv, err := schema.ParseGroupVersion(ref.APIVersion)
				if err != nil {
					return nil, fmt.Errorf("controllerrevision %s: controller reference: %w", cr.Name, err)
				}
				// "statefulset.apps/web", as upstream's formatResourceName.
				controller = ref.Name
				if gk := gv.WithKind(ref.Kind).GroupKind(); !gk.Empty() {
					controller = strings.ToLower(gk.String()) + "/" + ref.Name
				}
			}
			return []interface{}{cr.Name, controller, strconv.FormatInt(cr.Revision, 10), age(cr.CreationTimestamp, now)}, nil
		}),
	}
}

func jobPrinter() *Printer {
	return &Printer{
		Columns: columns(
			cols(
				nameColumn(),
				column("Status", "string", "Status of the job."),
				column("Completions", "string", batchv1.JobStatus{}.SwaggerDoc()["succeeded"]),
				column("Duration", "string", "Time required to complete the job."),
				ageColumn(),
			),
			containersColumns(),
			cols(wide(column("Selector", "string", batchv1.JobSpec{}.SwaggerDoc()["selector"]))),
		),
		Row: typed(jobCells),
	}
}

func jobCells(job *batchv1.Job, now time.Time) []interface{} {
	var completions string
	switch {
	case job.Spec.Completions != nil:
		completions = fmt.Sprintf("%d/%d", job.Status.Succeeded, *job.Spec.Completions)
	case job.Spec.Parallelism != nil && *job.Spec.Parallelism > 1:
		completions = fmt.Sprintf("%d/1 of %d", job.Status.Succeeded, *job.Spec.Parallelism)
	default:
		completions = fmt.Sprintf("%d/1", job.Status.Succeeded)
	}

	var took string
	switch {
	case job.Status.StartTime == nil:
	case job.Status.CompletionTime == nil:
		took = duration.HumanDuration(now.Sub(job.Status.StartTime.Time))
	default:
		took = duration.HumanDuration(job.Status.CompletionTime.Sub(job.Status.StartTime.Time))
	}

	names, images := containerCells(job.Spec.Template.Spec.Containers)
	return []interface{}{
		job.Name, jobStatus(job), completions, took, age(job.CreationTimestamp, now),
		names, images, metav1.FormatLabelSelector(job.Spec.Selector),
	}
}

// jobStatus is upstream's Job "Status" column: terminal conditions first,
// then deletion, then the transient conditions.
func jobStatus(job *batchv1.Job) string {
	switch {
	case hasJobCondition(job, batchv1.JobComplete):
		return "Complete"
	case hasJobCondition(job, batchv1.JobFailed):
		return "Failed"
	case job.DeletionTimestamp != nil:
		return "Terminating"
	case hasJobCondition(job, batchv1.JobSuspended):
		return "Suspended"
	case hasJobCondition(job, batchv1.JobFailureTarget):
		return "FailureTarget"
	default:
		return "Running"
	}
}

// hasJobCondition reports whether the first condition of type t is True.
func hasJobCondition(job *batchv1.Job, t batchv1.JobConditionType) bool {
	for _, c := range job.Status.Conditions {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func cronJobPrinter() *Printer {
	spec, status := batchv1.CronJobSpec{}.SwaggerDoc(), batchv1.CronJobStatus{}.SwaggerDoc()
	return &Printer{
		Columns: columns(
			cols(
				nameColumn(),
				column("Schedule", "string", spec["schedule"]),
				column("Timezone", "string", spec["timeZone"]),
				column("Suspend", "boolean", spec["suspend"]),
				column("Active", "integer", status["active"]),
				column("Last Schedule", "string", status["lastScheduleTime"]),
				ageColumn(),
			),
			containersColumns(),
			cols(wide(column("Selector", "string", batchv1.JobSpec{}.SwaggerDoc()["selector"]))),
		),
		Row: typed(func(cj *batchv1.CronJob, now time.Time) []interface{} {
			last := "<none>"
			if cj.Status.LastScheduleTime != nil {
				last = age(*cj.Status.LastScheduleTime, now)
			}
			tz := "<none>"
			if cj.Spec.TimeZone != nil {
				tz = *cj.Spec.TimeZone
			}
			names, images := containerCells(cj.Spec.JobTemplate.Spec.Template.Spec.Containers)
			// Suspend is a "boolean" column whose cell upstream renders as the
			// string "True"/"False"/"<unset>"; kubectl shows it verbatim.
			return []interface{}{
				cj.Name, cj.Spec.Schedule, tz, boolPtrString(cj.Spec.Suspend), int64(len(cj.Status.Active)),
				last, age(cj.CreationTimestamp, now),
				names, images, metav1.FormatLabelSelector(cj.Spec.JobTemplate.Spec.Selector),
			}
		}),
	}
}
