package defaults

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	storagev1 "k8s.io/api/storage/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func p[T any](v T) *T { return &v }

// defaultedSpec is what upstream turns a one-container template spec into.
func defaultedSpec(image string, pull corev1.PullPolicy) corev1.PodSpec {
	return corev1.PodSpec{
		Containers: []corev1.Container{{
			Name: "c", Image: image, ImagePullPolicy: pull,
			TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: corev1.TerminationMessageReadFile,
		}},
		RestartPolicy:                 corev1.RestartPolicyAlways,
		DNSPolicy:                     corev1.DNSClusterFirst,
		SecurityContext:               &corev1.PodSecurityContext{},
		TerminationGracePeriodSeconds: p(int64(30)),
		SchedulerName:                 "default-scheduler",
	}
}

func spec(image string) corev1.PodSpec {
	return corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}}
}

func TestRegister(t *testing.T) {
	labels := map[string]string{"app": "a"}
	tests := []struct {
		name    string
		in, out runtime.Object
	}{
		{
			name: "pod",
			in: &corev1.Pod{Spec: corev1.PodSpec{
				Containers: []corev1.Container{{
					Name: "c", Image: "nginx",
					Ports:          []corev1.ContainerPort{{ContainerPort: 80}},
					Env:            []corev1.EnvVar{{Name: "N", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
					Resources:      corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}},
					LivenessProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(80)}}},
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)}}, PeriodSeconds: 5},
				}},
				Volumes: []corev1.Volume{
					{Name: "empty"},
					{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s"}}},
					{Name: "cm", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}},
					{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/x"}}},
				},
			}},
			out: &corev1.Pod{Spec: corev1.PodSpec{
				Containers: []corev1.Container{{
					Name: "c", Image: "nginx", ImagePullPolicy: corev1.PullAlways,
					TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: corev1.TerminationMessageReadFile,
					Ports: []corev1.ContainerPort{{ContainerPort: 80, Protocol: corev1.ProtocolTCP}},
					Env:   []corev1.EnvVar{{Name: "N", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}}},
					Resources: corev1.ResourceRequirements{
						Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
						Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
					},
					LivenessProbe: &corev1.Probe{
						ProbeHandler:   corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(80), Scheme: corev1.URISchemeHTTP}},
						TimeoutSeconds: 1, PeriodSeconds: 10, SuccessThreshold: 1, FailureThreshold: 3,
					},
					ReadinessProbe: &corev1.Probe{
						ProbeHandler:   corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)}},
						TimeoutSeconds: 1, PeriodSeconds: 5, SuccessThreshold: 1, FailureThreshold: 3,
					},
				}},
				Volumes: []corev1.Volume{
					{Name: "empty", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s", DefaultMode: p(int32(0644))}}},
					{Name: "cm", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{DefaultMode: p(int32(0644))}}},
					{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/x", Type: p(corev1.HostPathUnset)}}},
				},
				RestartPolicy:                 corev1.RestartPolicyAlways,
				DNSPolicy:                     corev1.DNSClusterFirst,
				SecurityContext:               &corev1.PodSecurityContext{},
				TerminationGracePeriodSeconds: p(int64(30)),
				SchedulerName:                 "default-scheduler",
				EnableServiceLinks:            p(true),
			}},
		},
		{
			name: "deployment",
			in: &appsv1.Deployment{Spec: appsv1.DeploymentSpec{
				Template: corev1.PodTemplateSpec{Spec: spec("nginx:1.27")}}},
			out: &appsv1.Deployment{Spec: appsv1.DeploymentSpec{
				Replicas: p(int32(1)),
				Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: p(intstr.FromString("25%")), MaxSurge: p(intstr.FromString("25%"))}},
				RevisionHistoryLimit:    p(int32(10)),
				ProgressDeadlineSeconds: p(int32(600)),
				Template:                corev1.PodTemplateSpec{Spec: defaultedSpec("nginx:1.27", corev1.PullIfNotPresent)}}},
		},
		{
			name: "statefulset",
			in: &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{
				Template:             corev1.PodTemplateSpec{Spec: spec("db@sha256:abc")},
				VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{}},
			}},
			out: &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{
				Replicas:             p(int32(1)),
				PodManagementPolicy:  appsv1.OrderedReadyPodManagement,
				UpdateStrategy:       appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType, RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: p(int32(0))}},
				RevisionHistoryLimit: p(int32(10)),
				PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
					WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType, WhenScaled: appsv1.RetainPersistentVolumeClaimRetentionPolicyType},
				VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
					Spec:   corev1.PersistentVolumeClaimSpec{VolumeMode: p(corev1.PersistentVolumeFilesystem)},
					Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending},
				}},
				Template: corev1.PodTemplateSpec{Spec: defaultedSpec("db@sha256:abc", corev1.PullIfNotPresent)},
			}},
		},
		{
			name: "daemonset",
			in:   &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: spec("registry:5000/agent")}}},
			out: &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{
				UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType, RollingUpdate: &appsv1.RollingUpdateDaemonSet{
					MaxUnavailable: p(intstr.FromInt32(1)), MaxSurge: p(intstr.FromInt32(0))}},
				RevisionHistoryLimit: p(int32(10)),
				Template:             corev1.PodTemplateSpec{Spec: defaultedSpec("registry:5000/agent", corev1.PullAlways)},
			}},
		},
		{
			name: "job takes template labels",
			in: &batchv1.Job{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec("pi:latest")}}},
			out: &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: batchv1.JobSpec{
				Completions: p(int32(1)), Parallelism: p(int32(1)), BackoffLimit: p(int32(6)),
				CompletionMode: p(batchv1.NonIndexedCompletion), Suspend: p(false),
				PodReplacementPolicy: p(batchv1.TerminatingOrFailed),
				Template:             corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: defaultedSpec("pi:latest", corev1.PullAlways)}}},
		},
		{
			name: "work-queue job keeps completions nil",
			in:   &batchv1.Job{Spec: batchv1.JobSpec{Parallelism: p(int32(3)), BackoffLimit: p(int32(0))}},
			out: &batchv1.Job{Spec: batchv1.JobSpec{
				Parallelism: p(int32(3)), BackoffLimit: p(int32(0)),
				CompletionMode: p(batchv1.NonIndexedCompletion), Suspend: p(false),
				PodReplacementPolicy: p(batchv1.TerminatingOrFailed),
				Template:             corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyAlways, DNSPolicy: corev1.DNSClusterFirst, SecurityContext: &corev1.PodSecurityContext{}, TerminationGracePeriodSeconds: p(int64(30)), SchedulerName: "default-scheduler"}}}},
		},
		{
			name: "cronjob",
			in:   &batchv1.CronJob{Spec: batchv1.CronJobSpec{Schedule: "@daily"}},
			out: &batchv1.CronJob{Spec: batchv1.CronJobSpec{
				Schedule: "@daily", ConcurrencyPolicy: batchv1.AllowConcurrent, Suspend: p(false),
				SuccessfulJobsHistoryLimit: p(int32(3)), FailedJobsHistoryLimit: p(int32(1)),
				JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyAlways, DNSPolicy: corev1.DNSClusterFirst, SecurityContext: &corev1.PodSecurityContext{},
					TerminationGracePeriodSeconds: p(int64(30)), SchedulerName: "default-scheduler"}}}}}},
		},
		{
			name: "replication controller selector from template",
			in:   &corev1.ReplicationController{Spec: corev1.ReplicationControllerSpec{Template: &corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec("x:1")}}},
			out: &corev1.ReplicationController{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.ReplicationControllerSpec{
				Replicas: p(int32(1)), Selector: labels,
				Template: &corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: defaultedSpec("x:1", corev1.PullIfNotPresent)}}},
		},
		{
			name: "clusterIP service",
			in:   &corev1.Service{Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80}, {Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromString("dns")}}}},
			out: &corev1.Service{Spec: corev1.ServiceSpec{
				Selector: labels, Type: corev1.ServiceTypeClusterIP, SessionAffinity: corev1.ServiceAffinityNone,
				Ports: []corev1.ServicePort{
					{Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(80)},
					{Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromString("dns")},
				},
				InternalTrafficPolicy: p(corev1.ServiceInternalTrafficPolicyCluster),
				IPFamilyPolicy:        p(corev1.IPFamilyPolicySingleStack)}},
		},
		{
			name: "load balancer service with client IP affinity",
			in:   &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, SessionAffinity: corev1.ServiceAffinityClientIP}},
			out: &corev1.Service{Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeLoadBalancer, SessionAffinity: corev1.ServiceAffinityClientIP,
				SessionAffinityConfig:         &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: p(int32(10800))}},
				ExternalTrafficPolicy:         corev1.ServiceExternalTrafficPolicyCluster,
				InternalTrafficPolicy:         p(corev1.ServiceInternalTrafficPolicyCluster),
				IPFamilyPolicy:                p(corev1.IPFamilyPolicySingleStack),
				AllocateLoadBalancerNodePorts: p(true)}},
		},
		{
			name: "headless selectorless service",
			in:   &corev1.Service{Spec: corev1.ServiceSpec{ClusterIP: "None"}},
			out: &corev1.Service{Spec: corev1.ServiceSpec{ClusterIP: "None", Type: corev1.ServiceTypeClusterIP, SessionAffinity: corev1.ServiceAffinityNone,
				InternalTrafficPolicy: p(corev1.ServiceInternalTrafficPolicyCluster), IPFamilyPolicy: p(corev1.IPFamilyPolicyRequireDualStack)}},
		},
		{
			name: "external name service",
			in:   &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"}},
			out:  &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com", SessionAffinity: corev1.ServiceAffinityNone}},
		},
		{
			name: "namespace",
			in:   &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}},
			out: &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team", Labels: map[string]string{"kubernetes.io/metadata.name": "team"}},
				Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}},
		},
		{name: "secret", in: &corev1.Secret{}, out: &corev1.Secret{Type: corev1.SecretTypeOpaque}},
		{
			name: "persistent volume",
			in:   &corev1.PersistentVolume{},
			out: &corev1.PersistentVolume{Spec: corev1.PersistentVolumeSpec{PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				VolumeMode: p(corev1.PersistentVolumeFilesystem)}, Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumePending}},
		},
		{
			name: "node allocatable from capacity",
			in:   &corev1.Node{Status: corev1.NodeStatus{Capacity: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("110")}}},
			out: &corev1.Node{Status: corev1.NodeStatus{Capacity: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("110")},
				Allocatable: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("110")}}},
		},
		{
			name: "limit range defaults from max",
			in: &corev1.LimitRange{Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{Type: corev1.LimitTypeContainer,
				Max: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}, Min: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Mi")}}}}},
			out: &corev1.LimitRange{Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{Type: corev1.LimitTypeContainer,
				Max:            corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
				Min:            corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Mi")},
				Default:        corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
				DefaultRequest: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("1Mi")}}}}},
		},
		{
			name: "hpa",
			in:   &autoscalingv2.HorizontalPodAutoscaler{},
			out: &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MinReplicas: p(int32(1)),
				Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
					Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: p(int32(80))}}}}}},
		},
		{
			name: "network policy",
			in: &networkingv1.NetworkPolicy{Spec: networkingv1.NetworkPolicySpec{
				Egress: []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{{}}}}}},
			out: &networkingv1.NetworkPolicy{Spec: networkingv1.NetworkPolicySpec{
				Egress:      []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{{Protocol: p(corev1.ProtocolTCP)}}}},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}}},
		},
		{
			name: "role binding subjects",
			in: &rbacv1.RoleBinding{RoleRef: rbacv1.RoleRef{Kind: "Role", Name: "r"}, Subjects: []rbacv1.Subject{
				{Kind: "User", Name: "alice"}, {Kind: "ServiceAccount", Name: "default"}}},
			out: &rbacv1.RoleBinding{RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "r"}, Subjects: []rbacv1.Subject{
				{Kind: "User", APIGroup: rbacv1.GroupName, Name: "alice"}, {Kind: "ServiceAccount", Name: "default"}}},
		},
		{
			name: "storage class",
			in:   &storagev1.StorageClass{},
			out:  &storagev1.StorageClass{ReclaimPolicy: p(corev1.PersistentVolumeReclaimDelete), VolumeBindingMode: p(storagev1.VolumeBindingImmediate)},
		},
		{
			name: "priority class",
			in:   &schedulingv1.PriorityClass{},
			out:  &schedulingv1.PriorityClass{PreemptionPolicy: p(corev1.PreemptLowerPriority)},
		},
		{
			name: "configmap has no defaults",
			in:   &corev1.ConfigMap{Data: map[string]string{"a": "b"}},
			out:  &corev1.ConfigMap{Data: map[string]string{"a": "b"}},
		},
	}
	s := runtime.NewScheme()
	Register(s)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in.DeepCopyObject()
			s.Default(got)
			if diff := cmp.Diff(tt.out, got); diff != "" {
				t.Errorf("Default() mismatch (-want +got):\n%s", diff)
			}
			// Idempotence: defaulting a defaulted object changes nothing.
			again := got.DeepCopyObject()
			s.Default(again)
			if !apiequality.Semantic.DeepEqual(got, again) {
				t.Errorf("Default() is not idempotent:\n%s", cmp.Diff(got, again))
			}
		})
	}
}

func TestPullPolicy(t *testing.T) {
	tests := []struct {
		image string
		want  corev1.PullPolicy
	}{
		{"nginx", corev1.PullAlways},
		{"nginx:latest", corev1.PullAlways},
		{"nginx:1.27", corev1.PullIfNotPresent},
		{"registry:5000/nginx", corev1.PullAlways},
		{"registry:5000/nginx:1", corev1.PullIfNotPresent},
		{"nginx@sha256:0123", corev1.PullIfNotPresent},
		{"", corev1.PullIfNotPresent},
	}
	for _, tt := range tests {
		if got := pullPolicy(tt.image); got != tt.want {
			t.Errorf("pullPolicy(%q) = %q, want %q", tt.image, got, tt.want)
		}
	}
}

func TestPodTemplateKeepsRequests(t *testing.T) {
	// Upstream copies limits into requests for pods only, never templates.
	s := runtime.NewScheme()
	Register(s)
	lim := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}
	pt := &corev1.PodTemplate{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{
		Name: "c", Image: "x:1", Resources: corev1.ResourceRequirements{Limits: lim}}}}}}
	s.Default(pt)
	if got := pt.Template.Spec.Containers[0].Resources.Requests; got != nil {
		t.Errorf("template requests = %v, want nil", got)
	}
	if pt.Template.Spec.EnableServiceLinks != nil {
		t.Errorf("template enableServiceLinks = %v, want nil", *pt.Template.Spec.EnableServiceLinks)
	}
}
