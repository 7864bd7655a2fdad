package deployment

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var now = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

func newDeployment(replicas int32, image string) *appsv1.Deployment {
	deadline := int32(600)
	history := int32(10)
	surge, unavail := intstr.FromString("25%"), intstr.FromString("25%")
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", UID: "web-uid", Generation: 1},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: image}}},
			},
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavail},
			},
			RevisionHistoryLimit:    &history,
			ProgressDeadlineSeconds: &deadline,
		},
	}
}

// rsOf builds the ReplicaSet the controller would have created for d's
// template with image, at revision rev, sized replicas with available of
// them available.
func rsOf(d *appsv1.Deployment, image string, rev int, replicas, available int32, age time.Duration) *appsv1.ReplicaSet {
	t := d.Spec.Template.DeepCopy()
	t.Spec.Containers[0].Image = image
	hash := ComputeHash(t, nil)
	t.Labels = withLabel(t.Labels, PodTemplateHashLabel, hash)
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "default", Name: "web-" + hash, UID: types.UID("rs-" + image),
			CreationTimestamp: metav1.NewTime(now.Add(-age)),
			Labels:            t.Labels,
			OwnerReferences:   []metav1.OwnerReference{*metav1.NewControllerRef(d, deploymentKind)},
			Annotations: map[string]string{
				RevisionAnnotation:        fmt.Sprint(rev),
				DesiredReplicasAnnotation: fmt.Sprint(*d.Spec.Replicas),
				MaxReplicasAnnotation:     fmt.Sprint(*d.Spec.Replicas + maxSurge(d)),
			},
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", PodTemplateHashLabel: hash}},
			Template: *t,
		},
		Status: appsv1.ReplicaSetStatus{Replicas: replicas, ReadyReplicas: available, AvailableReplicas: available, ObservedGeneration: 1},
	}
}

// summary renders a plan compactly: one line per action and its events,
// then the deployment's revision and conditions when it is written.
func summary(p Plan) []string {
	var out []string
	for _, a := range p.Actions {
		line := fmt.Sprintf("%s %s", a.Verb, a.ReplicaSet.Name)
		if a.Verb != Delete {
			line += fmt.Sprintf(" replicas=%d rev=%s", rsReplicas(a.ReplicaSet), a.ReplicaSet.Annotations[RevisionAnnotation])
			if h := a.ReplicaSet.Annotations[RevisionHistoryAnnotation]; h != "" {
				line += " history=" + h
			}
		}
		out = append(out, line)
		for _, e := range a.Events {
			out = append(out, "  event "+e.Reason+": "+e.Message)
		}
	}
	if d := p.Deployment; d != nil {
		st := d.Status
		out = append(out, fmt.Sprintf("status rev=%s replicas=%d updated=%d ready=%d available=%d unavailable=%d",
			d.Annotations[RevisionAnnotation], st.Replicas, st.UpdatedReplicas, st.ReadyReplicas, st.AvailableReplicas, st.UnavailableReplicas))
		for _, c := range st.Conditions {
			out = append(out, fmt.Sprintf("  %s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message))
		}
	}
	return out
}

// converged returns d with the status a finished rollout of rs leaves.
func converged(d *appsv1.Deployment, rs *appsv1.ReplicaSet) *appsv1.Deployment {
	d = d.DeepCopy()
	n := *d.Spec.Replicas
	d.Annotations = map[string]string{RevisionAnnotation: rs.Annotations[RevisionAnnotation]}
	old := metav1.NewTime(now.Add(-time.Hour))
	d.Status = appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
		Conditions: []appsv1.DeploymentCondition{
			{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: ReasonNewReplicaSetAvailable,
				Message: fmt.Sprintf("ReplicaSet %q has successfully progressed.", rs.Name), LastUpdateTime: old, LastTransitionTime: old},
			{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: ReasonMinimumReplicasAvailable,
				Message: "Deployment has minimum availability.", LastUpdateTime: old, LastTransitionTime: old},
		},
	}
	return d
}

func TestDecide(t *testing.T) {
	d3 := newDeployment(3, "nginx:1.25")
	v1 := rsOf(d3, "nginx:1.25", 1, 3, 3, time.Hour)
	v2name := rsOf(d3, "nginx:1.26", 2, 0, 0, 0).Name

	tests := []struct {
		name string
		d    *appsv1.Deployment
		rss  []*appsv1.ReplicaSet
		pods map[types.UID][]*corev1.Pod
		want []string
	}{
		{
			name: "converged deployment plans nothing",
			d:    converged(d3, v1),
			rss:  []*appsv1.ReplicaSet{v1},
			want: nil,
		},
		{
			name: "new deployment creates its first replica set at full size",
			d:    d3,
			want: []string{
				"create " + v1.Name + " replicas=3 rev=1",
				"  event ScalingReplicaSet: Scaled up replica set " + v1.Name + " from 0 to 3",
				"status rev=1 replicas=0 updated=0 ready=0 available=0 unavailable=3",
				"  Progressing=True NewReplicaSetCreated: Created new replica set \"" + v1.Name + "\"",
				"  Available=False MinimumReplicasUnavailable: Deployment does not have minimum availability.",
			},
		},
		{
			name: "template change creates the new replica set within maxSurge",
			d:    withImage(converged(d3, v1), "nginx:1.26"),
			rss:  []*appsv1.ReplicaSet{v1},
			want: []string{
				"create " + v2name + " replicas=1 rev=2",
				"  event ScalingReplicaSet: Scaled up replica set " + v2name + " from 0 to 1",
				"status rev=2 replicas=3 updated=0 ready=3 available=3 unavailable=1",
				"  Available=True MinimumReplicasAvailable: Deployment has minimum availability.",
				"  Progressing=True NewReplicaSetCreated: Created new replica set \"" + v2name + "\"",
			},
		},
		{
			name: "rolling step scales the old replica set down once the new pod is available",
			d:    progressing(withImage(converged(d3, v1), "nginx:1.26"), now.Add(-time.Minute)),
			rss:  []*appsv1.ReplicaSet{v1, rsOf(d3, "nginx:1.26", 2, 1, 1, time.Minute)},
			want: []string{
				"update " + v1.Name + " replicas=2 rev=1",
				"  event ScalingReplicaSet: Scaled down replica set " + v1.Name + " from 3 to 2",
				"status rev=2 replicas=4 updated=1 ready=4 available=4 unavailable=0",
				"  Available=True MinimumReplicasAvailable: Deployment has minimum availability.",
				"  Progressing=True ReplicaSetUpdated: ReplicaSet \"" + v2name + "\" is progressing.",
			},
		},
		{
			name: "rolling step waits, without writes, while the new pod is unavailable",
			d:    progressing(withImage(converged(d3, v1), "nginx:1.26"), now.Add(-time.Minute)),
			rss:  []*appsv1.ReplicaSet{v1, rsOf(d3, "nginx:1.26", 2, 1, 0, time.Minute)},
			want: nil,
		},
		{
			name: "recreate scales old replica sets to zero before creating the new one",
			d:    recreate(withImage(converged(d3, v1), "nginx:1.26")),
			rss:  []*appsv1.ReplicaSet{v1},
			want: []string{
				"update " + v1.Name + " replicas=0 rev=1",
				"  event ScalingReplicaSet: Scaled down replica set " + v1.Name + " from 3 to 0",
				// Recreate tolerates unavailability; Progressing keeps its
				// state until the new replica set exists.
				"status rev=1 replicas=3 updated=0 ready=3 available=3 unavailable=0",
				"  Progressing=True NewReplicaSetAvailable: ReplicaSet \"" + v1.Name + "\" has successfully progressed.",
				"  Available=True MinimumReplicasAvailable: Deployment has minimum availability.",
			},
		},
		{
			name: "recreate waits for old pods to terminate",
			d:    recreate(withImage(converged(d3, v1), "nginx:1.26")),
			rss:  []*appsv1.ReplicaSet{scaledTo(v1, 0, 0)},
			pods: map[types.UID][]*corev1.Pod{v1.UID: {{Status: corev1.PodStatus{Phase: corev1.PodRunning}}}},
			want: []string{
				"status rev=1 replicas=0 updated=0 ready=0 available=0 unavailable=0",
				"  Progressing=True NewReplicaSetAvailable: ReplicaSet \"" + v1.Name + "\" has successfully progressed.",
				"  Available=False MinimumReplicasUnavailable: Deployment does not have minimum availability.",
			},
		},
		{
			name: "paused deployment does not roll out a template change",
			d:    paused(withImage(converged(d3, v1), "nginx:1.26")),
			rss:  []*appsv1.ReplicaSet{v1},
			want: []string{
				"status rev=1 replicas=3 updated=0 ready=3 available=3 unavailable=0",
				"  Available=True MinimumReplicasAvailable: Deployment has minimum availability.",
				"  Progressing=Unknown DeploymentPaused: Deployment is paused",
			},
		},
		{
			name: "scaling event resizes the only active replica set",
			d:    scaled(converged(d3, v1), 5),
			rss:  []*appsv1.ReplicaSet{v1},
			want: []string{
				"update " + v1.Name + " replicas=5 rev=1",
				"  event ScalingReplicaSet: Scaled up replica set " + v1.Name + " from 3 to 5",
				// 3 available < 5 - maxUnavailable(1).
				"status rev=1 replicas=3 updated=3 ready=3 available=3 unavailable=2",
				"  Progressing=True NewReplicaSetAvailable: ReplicaSet \"" + v1.Name + "\" has successfully progressed.",
				"  Available=False MinimumReplicasUnavailable: Deployment does not have minimum availability.",
			},
		},
		{
			name: "rollback re-uses the old replica set and bumps its revision",
			d:    converged(d3, v1), // template is v1's again
			rss:  []*appsv1.ReplicaSet{scaledTo(v1, 0, 0), rsOf(d3, "nginx:1.26", 2, 3, 3, time.Minute)},
			want: []string{
				"update " + v1.Name + " replicas=1 rev=3 history=1",
				"  event ScalingReplicaSet: Scaled up replica set " + v1.Name + " from 0 to 1",
				"status rev=3 replicas=3 updated=0 ready=3 available=3 unavailable=1",
				"  Progressing=True NewReplicaSetAvailable: ReplicaSet \"" + v1.Name + "\" has successfully progressed.",
				"  Available=True MinimumReplicasAvailable: Deployment has minimum availability.",
			},
		},
		{
			name: "progress deadline exceeded",
			d:    stuckSince(withImage(converged(d3, v1), "nginx:1.26"), now.Add(-11*time.Minute)),
			rss:  []*appsv1.ReplicaSet{v1, rsOf(d3, "nginx:1.26", 2, 1, 0, time.Minute)},
			want: []string{
				"status rev=2 replicas=4 updated=1 ready=3 available=3 unavailable=1",
				"  Available=True MinimumReplicasAvailable: Deployment has minimum availability.",
				"  Progressing=False ProgressDeadlineExceeded: ReplicaSet \"" + v2name + "\" has timed out progressing.",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decide(Snapshot{Deployment: tt.d, ReplicaSets: tt.rss, Pods: tt.pods, Now: now})
			if diff := cmp.Diff(tt.want, summary(got)); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRevisionHistoryCleanup(t *testing.T) {
	d := converged(newDeployment(3, "v4"), rsOf(newDeployment(3, "v4"), "v4", 4, 3, 3, 0))
	limit := int32(1)
	d.Spec.RevisionHistoryLimit = &limit
	rss := []*appsv1.ReplicaSet{
		rsOf(d, "v4", 4, 3, 3, time.Minute),
		scaledTo(rsOf(d, "v1", 1, 0, 0, 4*time.Hour), 0, 0),
		scaledTo(rsOf(d, "v3", 3, 0, 0, 2*time.Hour), 0, 0),
		scaledTo(rsOf(d, "v2", 2, 0, 0, 3*time.Hour), 0, 0),
	}
	got := Decide(Snapshot{Deployment: d, ReplicaSets: rss, Now: now})
	want := []string{"delete " + rss[1].Name, "delete " + rss[3].Name}
	if diff := cmp.Diff(want, summary(got)); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}
}

func TestProportionalScaling(t *testing.T) {
	// Mid-rollout (old 8, new 4 of 10 with surge 2) the user scales to 20:
	// the 10 extra replicas are split by size, 2:1.
	d := withImage(newDeployment(10, "old"), "new")
	old := rsOf(newDeployment(10, "old"), "old", 1, 8, 8, time.Hour)
	cur := rsOf(d, "new", 2, 4, 0, time.Minute)
	old.Annotations[MaxReplicasAnnotation], cur.Annotations[MaxReplicasAnnotation] = "13", "13"
	d = scaled(d, 20)
	got := Decide(Snapshot{Deployment: d, ReplicaSets: []*appsv1.ReplicaSet{old, cur}, Now: now})
	var sizes []string
	for _, a := range got.Actions {
		sizes = append(sizes, fmt.Sprintf("%s=%d", a.ReplicaSet.Spec.Template.Spec.Containers[0].Image, rsReplicas(a.ReplicaSet)))
	}
	// allowed = 20+5 = 25, 13 more: old 8*25/13=15.4 -> +7, new 4*25/13=7.7 -> +4, leftover 2 to the largest.
	if diff := cmp.Diff([]string{"old=17", "new=8"}, sizes); diff != "" {
		t.Errorf("sizes (-want +got):\n%s", diff)
	}
}

func TestComputeHash(t *testing.T) {
	d := newDeployment(1, "nginx:1.25")
	h := ComputeHash(&d.Spec.Template, nil)
	if h != ComputeHash(d.Spec.Template.DeepCopy(), nil) {
		t.Error("hash is not deterministic")
	}
	one := int32(1)
	if h == ComputeHash(&d.Spec.Template, &one) {
		t.Error("collision count does not change the hash")
	}
	if strings.Trim(h, "bcdfghjklmnpqrstvwxz2456789") != "" || len(h) < 1 || len(h) > 10 {
		t.Errorf("hash %q is not a short SafeEncodeString", h)
	}
}

func withImage(d *appsv1.Deployment, image string) *appsv1.Deployment {
	d = d.DeepCopy()
	d.Spec.Template.Spec.Containers[0].Image = image
	d.Generation++
	return d
}

func recreate(d *appsv1.Deployment) *appsv1.Deployment {
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	return d
}

func paused(d *appsv1.Deployment) *appsv1.Deployment {
	d.Spec.Paused = true
	return d
}

func scaled(d *appsv1.Deployment, n int32) *appsv1.Deployment {
	d = d.DeepCopy()
	d.Spec.Replicas = &n
	return d
}

func scaledTo(rs *appsv1.ReplicaSet, replicas, available int32) *appsv1.ReplicaSet {
	rs = rs.DeepCopy()
	rs.Spec.Replicas = &replicas
	rs.Status.Replicas, rs.Status.ReadyReplicas, rs.Status.AvailableReplicas = replicas, available, available
	return rs
}

// progressing returns d mid-rollout (one new replica, not yet available),
// last progress at since.
func progressing(d *appsv1.Deployment, since time.Time) *appsv1.Deployment {
	return stuckSince(d, since)
}

func stuckSince(d *appsv1.Deployment, since time.Time) *appsv1.Deployment {
	d.Annotations[RevisionAnnotation] = "2"
	d.Status.Replicas, d.Status.UpdatedReplicas, d.Status.ReadyReplicas, d.Status.AvailableReplicas = 4, 1, 3, 3
	d.Status.UnavailableReplicas = 1
	d.Status.ObservedGeneration = d.Generation
	ts := metav1.NewTime(since)
	d.Status.Conditions[0] = appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue,
		Reason: ReasonReplicaSetUpdated, Message: "ReplicaSet is progressing.", LastUpdateTime: ts, LastTransitionTime: ts}
	return d
}
