package validation

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func TestValidateUpdate(t *testing.T) {
	tests := []struct {
		name     string
		old, obj runtime.Object
		want     []string
		// wantPrefix, when set, is compared with the first error only up to
		// its length: the rest is a diff whose layout go-cmp does not fix.
		wantPrefix string
	}{
		{name: "unchanged pod", old: pod(), obj: pod()},
		{
			name: "pod image change is allowed",
			old:  pod(),
			obj:  func() runtime.Object { p := pod(); p.Spec.Containers[0].Image = "nginx:1.28"; return p }(),
		},
		{
			name: "pod toleration added is allowed",
			old:  pod(),
			obj: func() runtime.Object {
				p := pod()
				p.Spec.Tolerations = []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists}}
				return p
			}(),
		},
		{
			name: "pod env change is forbidden",
			old:  pod(),
			obj: func() runtime.Object {
				p := pod()
				p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", Value: "b"}}
				return p
			}(),
			wantPrefix: "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n",
		},
		{
			name: "update without resourceVersion and renamed",
			old:  pod(),
			obj:  func() runtime.Object { p := pod(); p.ResourceVersion = ""; p.Name = "other"; return p }(),
			want: []string{
				`metadata.resourceVersion: Invalid value: "": must be specified for an update`,
				`metadata.name: Invalid value: "other": field is immutable`,
			},
		},
		{
			name: "deployment selector is immutable",
			old:  deployment(),
			obj: func() runtime.Object {
				d := deployment()
				l := map[string]string{"app": "web", "tier": "front"}
				d.Spec.Selector.MatchLabels = l
				d.Spec.Template.Labels = l
				return d
			}(),
			want: []string{`spec.selector: Invalid value: {"matchLabels":{"app":"web","tier":"front"}}: field is immutable`},
		},
		{
			name: "deployment scale is allowed",
			old:  deployment(),
			obj:  func() runtime.Object { d := deployment(); d.Spec.Replicas = ptr(int32(5)); return d }(),
		},
		{
			name: "service cluster IP is immutable",
			old:  service(),
			obj: func() runtime.Object {
				s := service()
				s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.96.0.11", []string{"10.96.0.11"}
				return s
			}(),
			want: []string{`spec.clusterIPs[0]: Invalid value: ["10.96.0.11"]: may not change once set`},
		},
		{
			name: "immutable configmap data",
			old:  &corev1.ConfigMap{ObjectMeta: om("cfg"), Immutable: ptr(true), Data: map[string]string{"a": "1"}},
			obj:  &corev1.ConfigMap{ObjectMeta: om("cfg"), Immutable: ptr(true), Data: map[string]string{"a": "2"}},
			want: []string{"data: Forbidden: field is immutable when `immutable` is set"},
		},
		{
			name: "secret type is immutable",
			old:  &corev1.Secret{ObjectMeta: om("s"), Type: corev1.SecretTypeOpaque},
			obj:  &corev1.Secret{ObjectMeta: om("s"), Type: "example.com/other"},
			want: []string{`type: Invalid value: "example.com/other": field is immutable`},
		},
		{
			name: "statefulset service name is immutable",
			old: defaulted(&appsv1.StatefulSet{ObjectMeta: om("db"), Spec: appsv1.StatefulSetSpec{ServiceName: "db",
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}, Template: template(map[string]string{"app": "db"})}}),
			obj: defaulted(&appsv1.StatefulSet{ObjectMeta: om("db"), Spec: appsv1.StatefulSetSpec{ServiceName: "db2",
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}, Template: template(map[string]string{"app": "db"})}}),
			want: []string{"spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"},
		},
		{
			name: "role binding roleRef is immutable",
			old:  &rbacv1.RoleBinding{ObjectMeta: om("b"), RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "a"}},
			obj:  &rbacv1.RoleBinding{ObjectMeta: om("b"), RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "b"}},
			want: []string{`roleRef: Invalid value: {"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"b"}: cannot change roleRef`},
		},
		{
			name: "crd scope is immutable",
			old:  crd(nil),
			obj: crd(func(m map[string]interface{}) {
				m["spec"].(map[string]interface{})["scope"] = "Cluster"
			}),
			want: []string{`spec.scope: Invalid value: "Cluster": field is immutable`},
		},
		{
			name: "different types",
			old:  pod(),
			obj:  service(),
			want: []string{"<nil>: Internal error: update of *v1.Pod with *v1.Service"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := errorStrings(ValidateUpdate(tt.obj, tt.old))
			if tt.wantPrefix != "" {
				if len(got) != 1 || !strings.HasPrefix(got[0], tt.wantPrefix) {
					t.Fatalf("ValidateUpdate() = %q, want one error starting with %q", got, tt.wantPrefix)
				}
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ValidateUpdate() errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateStatusUpdate(t *testing.T) {
	tests := []struct {
		name     string
		old, obj runtime.Object
		want     []string
	}{
		{
			name: "valid deployment status",
			old:  deployment(),
			obj: func() runtime.Object {
				d := deployment()
				d.Status = appsv1.DeploymentStatus{Replicas: 2, ReadyReplicas: 2, AvailableReplicas: 1}
				return d
			}(),
		},
		{
			name: "negative deployment replicas",
			old:  deployment(),
			obj:  func() runtime.Object { d := deployment(); d.Status.Replicas = -1; return d }(),
			// Upstream also compares the other counters with the negative one.
			want: []string{
				"status.replicas: Invalid value: -1: must be greater than or equal to 0",
				"status.updatedReplicas: Invalid value: 0: cannot be greater than status.replicas",
				"status.readyReplicas: Invalid value: 0: cannot be greater than status.replicas",
				"status.availableReplicas: Invalid value: 0: cannot be greater than status.replicas",
			},
		},
		{
			name: "namespace phase",
			old:  defaulted(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns", ResourceVersion: "1"}}),
			obj: func() runtime.Object {
				ns := defaulted(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns", ResourceVersion: "1"}})
				ns.Status.Phase = "Gone"
				return ns
			}(),
			want: []string{`status.phase: Unsupported value: "Gone": supported values: "Active", "Terminating"`},
		},
		{
			name: "pod restart count",
			old:  pod(),
			obj: func() runtime.Object {
				p := pod()
				p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "web", RestartCount: -2}}
				return p
			}(),
			want: []string{"status.containerStatuses[0].restartCount: Invalid value: -2: must be greater than or equal to 0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := errorStrings(ValidateStatusUpdate(tt.obj, tt.old))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ValidateStatusUpdate() errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSchedule(t *testing.T) {
	tests := []struct {
		spec, want string
	}{
		{"* * * * *", ""},
		{"0 0 1 jan sun", ""},
		{"*/15 9-17 * * MON-FRI", ""},
		{"5 4 * * ?", ""},
		{"@every 1h30m", ""},
		{"@daily", ""},
		{"", "empty spec string"},
		{"* * * *", "expected exactly 5 fields, found 4: [* * * *]"},
		{"x * * * *", `failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax`},
		{"* 24 * * *", "end of range (24) above maximum (23): 24"},
		{"* * 0 * *", "beginning of range (0) below minimum (1): 0"},
		{"5-2 * * * *", "beginning of range (5) beyond end of range (2): 5-2"},
		{"*/0 * * * *", "step of range should be a positive number: */0"},
		{"1-2-3 * * * *", "too many hyphens: 1-2-3"},
		{"*/2/3 * * * *", "too many slashes: */2/3"},
		{"@every soon", `failed to parse duration @every soon: time: invalid duration "soon"`},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got := ""
			if err := parseSchedule(tt.spec); err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("parseSchedule(%q) = %q, want %q", tt.spec, got, tt.want)
			}
		})
	}
}
