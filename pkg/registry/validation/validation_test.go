package validation

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-project/skiff/pkg/registry/defaults"
)

// scheme applies Skiff's defaults, so fixtures look like what the API
// server validates: defaulted objects.
func scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	defaults.Register(s)
	return s
}

func defaulted[T runtime.Object](obj T) T {
	scheme().Default(obj)
	return obj
}

func ptr[T any](v T) *T { return &v }

func om(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "default", ResourceVersion: "1"}
}

func podSpecFixture() corev1.PodSpec {
	return corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}}
}

func pod() *corev1.Pod {
	return defaulted(&corev1.Pod{ObjectMeta: om("web"), Spec: podSpecFixture()})
}

func template(labels map[string]string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpecFixture()}
}

func deployment() *appsv1.Deployment {
	l := map[string]string{"app": "web"}
	return defaulted(&appsv1.Deployment{ObjectMeta: om("web"), Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: l}, Template: template(l)}})
}

func service() *corev1.Service {
	return defaulted(&corev1.Service{ObjectMeta: om("web"), Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}},
		ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"}}})
}

func job() *batchv1.Job {
	l := map[string]string{"batch.kubernetes.io/controller-uid": "1234"}
	t := template(l)
	t.Spec.RestartPolicy = corev1.RestartPolicyNever
	return defaulted(&batchv1.Job{ObjectMeta: om("pi"), Spec: batchv1.JobSpec{
		Selector: &metav1.LabelSelector{MatchLabels: l}, Template: t}})
}

func cronJob(schedule string) *batchv1.CronJob {
	t := template(nil)
	t.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	return defaulted(&batchv1.CronJob{ObjectMeta: om("nightly"), Spec: batchv1.CronJobSpec{
		Schedule: schedule, JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: t}}}})
}

func crd(mutate func(m map[string]interface{})) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]interface{}{"name": "widgets.example.com", "resourceVersion": "1"},
		"spec": map[string]interface{}{
			"group": "example.com",
			"scope": "Namespaced",
			"names": map[string]interface{}{"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
			"versions": []interface{}{
				map[string]interface{}{"name": "v1", "served": true, "storage": true},
			},
		},
	}}
	if mutate != nil {
		mutate(u.Object)
	}
	return u
}

// errorStrings renders errors the way the API server's 422 lists them.
func errorStrings(errs field.ErrorList) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

const (
	subdomainMsg = `a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`
	labelMsg     = `a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`
	dns1035Msg   = `a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`
)

func TestValidate(t *testing.T) {
	long64 := strings.Repeat("a", 64)
	tests := []struct {
		name string
		obj  runtime.Object
		want []string
	}{
		{name: "valid pod", obj: pod()},
		{name: "valid deployment", obj: deployment()},
		{name: "valid service", obj: service()},
		{name: "valid job", obj: job()},
		{name: "valid cronjob", obj: cronJob("*/5 * * * *")},
		{name: "valid cronjob descriptor", obj: cronJob("@hourly")},
		{name: "valid crd", obj: crd(nil)},
		{
			name: "pod name not a subdomain",
			obj:  func() runtime.Object { p := pod(); p.Name = "Web_1"; return p }(),
			want: []string{`metadata.name: Invalid value: "Web_1": ` + subdomainMsg},
		},
		{
			name: "pod without name or namespace",
			obj:  func() runtime.Object { p := pod(); p.Name, p.Namespace = "", ""; return p }(),
			want: []string{
				"metadata.name: Required value: name or generateName is required",
				"metadata.namespace: Required value",
			},
		},
		{
			name: "pod without image",
			obj:  func() runtime.Object { p := pod(); p.Spec.Containers[0].Image = ""; return p }(),
			want: []string{"spec.containers[0].image: Required value"},
		},
		{
			name: "pod with invalid label value",
			obj:  func() runtime.Object { p := pod(); p.Labels = map[string]string{"app": "-bad"}; return p }(),
			want: []string{`metadata.labels: Invalid value: "-bad": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`},
		},
		{
			name: "pod with duplicate container names and bad restart policy",
			obj: func() runtime.Object {
				p := pod()
				p.Spec.Containers = append(p.Spec.Containers, p.Spec.Containers[0])
				p.Spec.RestartPolicy = "Sometimes"
				return p
			}(),
			want: []string{
				`spec.containers[1].name: Duplicate value: "web"`,
				`spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"`,
			},
		},
		{
			name: "pod requests above limits and negative quantity",
			obj: func() runtime.Object {
				p := pod()
				p.Spec.Containers[0].Resources = corev1.ResourceRequirements{
					Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")},
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("-1Mi")},
				}
				return p
			}(),
			want: []string{
				`spec.containers[0].resources.requests[memory]: Invalid value: "-1Mi": must be greater than or equal to 0`,
				`spec.containers[0].resources.requests[cpu]: Invalid value: "1": must be less than or equal to cpu limit of 500m`,
			},
		},
		{
			name: "pod container name not a label, volume mount unknown",
			obj: func() runtime.Object {
				p := pod()
				p.Spec.Containers[0].Name = "Web"
				p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
				return p
			}(),
			want: []string{
				`spec.containers[0].name: Invalid value: "Web": ` + labelMsg,
				`spec.containers[0].volumeMounts[0].name: Not found: "data"`,
			},
		},
		{
			name: "deployment with negative replicas",
			obj:  func() runtime.Object { d := deployment(); d.Spec.Replicas = ptr(int32(-1)); return d }(),
			want: []string{"spec.replicas: Invalid value: -1: must be greater than or equal to 0"},
		},
		{
			name: "deployment selector does not match template",
			obj: func() runtime.Object {
				d := deployment()
				d.Spec.Template.Labels = map[string]string{"app": "other"}
				return d
			}(),
			want: []string{"spec.template.metadata.labels: Invalid value: {\"app\":\"other\"}: `selector` does not match template `labels`"},
		},
		{
			name: "deployment without selector",
			obj:  func() runtime.Object { d := deployment(); d.Spec.Selector = nil; return d }(),
			want: []string{"spec.selector: Required value"},
		},
		{
			name: "deployment with zero maxUnavailable and maxSurge",
			obj: func() runtime.Object {
				d := deployment()
				d.Spec.Strategy.RollingUpdate.MaxSurge = ptr(intstr.FromInt32(0))
				d.Spec.Strategy.RollingUpdate.MaxUnavailable = ptr(intstr.FromString("0%"))
				return d
			}(),
			want: []string{"spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": may not be 0 when `maxSurge` is 0"},
		},
		{
			name: "service name is not a DNS-1035 label",
			obj:  func() runtime.Object { s := service(); s.Name = "1web"; return s }(),
			want: []string{`metadata.name: Invalid value: "1web": ` + dns1035Msg},
		},
		{
			name: "service with bad ports and type",
			obj: func() runtime.Object {
				s := service()
				s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "b", Port: 70000, Protocol: "TCP", TargetPort: intstr.FromString("Bad_Name")})
				s.Spec.Ports[0].NodePort = 30000
				return s
			}(),
			want: []string{
				"spec.ports[0].name: Required value",
				"spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
				"spec.ports[1].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
				`spec.ports[1].targetPort: Invalid value: "Bad_Name": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)`,
			},
		},
		{
			name: "service with invalid cluster IP",
			obj: func() runtime.Object {
				s := service()
				s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.0.0.300", []string{"10.0.0.300"}
				return s
			}(),
			want: []string{`spec.clusterIPs[0]: Invalid value: "10.0.0.300": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)`},
		},
		{
			name: "configmap with bad key and too much data",
			obj: &corev1.ConfigMap{ObjectMeta: om("cfg"), Data: map[string]string{
				"bad key": "x", "big": strings.Repeat("x", corev1.MaxSecretSize),
			}},
			want: []string{
				`data[bad key]: Invalid value: "bad key": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')`,
				// field.NewPath("") is upstream's "the whole object" path.
				"[]: Too long: may not be more than 1048576 bytes",
			},
		},
		{
			name: "secret of type tls without key",
			obj: defaulted(&corev1.Secret{ObjectMeta: om("tls"), Type: corev1.SecretTypeTLS,
				Data: map[string][]byte{"tls.crt": []byte("x")}}),
			want: []string{"data[tls.key]: Required value"},
		},
		{
			name: "namespace name too long and namespaced",
			obj:  defaulted(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: long64, Namespace: "default"}}),
			want: []string{
				`metadata.name: Invalid value: "` + long64 + `": must be no more than 63 characters`,
				"metadata.namespace: Forbidden: not allowed on this type",
				// The kubernetes.io/metadata.name label defaulted from the name.
				`metadata.labels: Invalid value: "` + long64 + `": must be no more than 63 bytes`,
			},
		},
		{
			name: "job template restart policy Always and negative backoff",
			obj: func() runtime.Object {
				j := job()
				j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways
				j.Spec.BackoffLimit = ptr(int32(-1))
				return j
			}(),
			want: []string{
				"spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0",
				`spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never"`,
			},
		},
		{
			name: "cronjob with six fields",
			obj:  cronJob("0 * * * * *"),
			want: []string{`spec.schedule: Invalid value: "0 * * * * *": expected exactly 5 fields, found 6: [0 * * * * *]`},
		},
		{
			name: "cronjob with minute out of range",
			obj:  cronJob("61 * * * *"),
			want: []string{`spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61`},
		},
		{
			name: "cronjob with unknown descriptor and long name",
			obj: func() runtime.Object {
				c := cronJob("@fortnightly")
				c.Name = strings.Repeat("c", 53)
				return c
			}(),
			want: []string{
				`metadata.name: Invalid value: "` + strings.Repeat("c", 53) + `": must be no more than 52 characters`,
				`spec.schedule: Invalid value: "@fortnightly": unrecognized descriptor: @fortnightly`,
			},
		},
		{
			name: "cronjob with TZ in schedule",
			obj:  cronJob("TZ=UTC 0 * * * *"),
			want: []string{`spec.schedule: Invalid value: "TZ=UTC 0 * * * *": cannot use TZ or CRON_TZ in schedule, use timeZone field instead`},
		},
		{
			name: "statefulset without selector",
			obj: defaulted(&appsv1.StatefulSet{ObjectMeta: om("db"), Spec: appsv1.StatefulSetSpec{
				Template: template(map[string]string{"app": "db"})}}),
			want: []string{"spec.selector: Required value"},
		},
		{
			name: "daemonset with empty selector",
			obj: defaulted(&appsv1.DaemonSet{ObjectMeta: om("agent"), Spec: appsv1.DaemonSetSpec{
				Selector: &metav1.LabelSelector{}, Template: template(map[string]string{"app": "agent"})}}),
			want: []string{"spec.selector: Invalid value: {}: empty selector is invalid for daemonset"},
		},
		{
			name: "role rule without verbs",
			obj: &rbacv1.Role{ObjectMeta: om("reader"), Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"pods"}},
			}},
			want: []string{"rules[0].verbs: Required value: verbs must contain at least one value"},
		},
		{
			name: "cluster role binding to a service account without namespace",
			obj: defaulted(&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "system:admins"},
				RoleRef:  rbacv1.RoleRef{Kind: "ClusterRole", Name: "cluster-admin"},
				Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "default"}}}),
			want: []string{"subjects[0].namespace: Required value"},
		},
		{
			name: "lease with zero duration",
			obj: &coordinationv1.Lease{ObjectMeta: om("node-1"), Spec: coordinationv1.LeaseSpec{
				LeaseDurationSeconds: ptr(int32(0))}},
			want: []string{"spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"},
		},
		{
			name: "endpointslice with bad address type",
			obj:  &discoveryv1.EndpointSlice{ObjectMeta: om("web-abc"), AddressType: "IPv5"},
			want: []string{`addressType: Unsupported value: "IPv5": supported values: "IPv4", "IPv6", "FQDN"`},
		},
		{
			name: "priority class above the user maximum",
			obj:  defaulted(&schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "high"}, Value: 2000000000}),
			want: []string{"value: Forbidden: maximum allowed value of a user defined priority is 1000000000"},
		},
		{
			name: "crd with wrong name and two storage versions",
			obj: crd(func(m map[string]interface{}) {
				m["metadata"] = map[string]interface{}{"name": "gadgets.example.com"}
				spec := m["spec"].(map[string]interface{})
				spec["versions"] = []interface{}{
					map[string]interface{}{"name": "v1", "served": true, "storage": true},
					map[string]interface{}{"name": "v2", "served": true, "storage": true},
				}
			}),
			want: []string{
				`metadata.name: Invalid value: "gadgets.example.com": must be spec.names.plural+"."+spec.group`,
				`spec.versions: Invalid value: ["v1","v2"]: must have exactly one version marked as storage version`,
			},
		},
		{
			name: "crd with missing names and scope",
			obj: crd(func(m map[string]interface{}) {
				spec := m["spec"].(map[string]interface{})
				delete(spec, "scope")
				spec["names"] = map[string]interface{}{}
			}),
			want: []string{
				`metadata.name: Invalid value: "widgets.example.com": must be spec.names.plural+"."+spec.group`,
				"spec.scope: Required value",
				"spec.names.plural: Required value",
				"spec.names.kind: Required value",
			},
		},
		{
			name: "custom resource: metadata only",
			obj: &unstructured.Unstructured{Object: map[string]interface{}{
				"apiVersion": "example.com/v1", "kind": "Widget",
				"metadata": map[string]interface{}{"name": "Bad_Name", "namespace": "default"},
				"spec":     map[string]interface{}{"anything": "goes"},
			}},
			want: []string{`metadata.name: Invalid value: "Bad_Name": ` + subdomainMsg},
		},
		{
			name: "unknown cluster-scoped type: metadata only",
			obj:  &corev1.ComponentStatus{ObjectMeta: metav1.ObjectMeta{Name: "etcd-0", Namespace: "x"}},
			want: []string{"metadata.namespace: Forbidden: not allowed on this type"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := errorStrings(Validate(tt.obj))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Validate() errors (-want +got):\n%s", diff)
			}
		})
	}
}
