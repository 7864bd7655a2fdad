package validation

import (
	"encoding/json"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	storagev1 "k8s.io/api/storage/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// fuzzTypes are the types FuzzValidateAny decodes into, picked by the
// input's first byte. Each entry returns a fresh object.
var fuzzTypes = []func() runtime.Object{
	func() runtime.Object { return &corev1.Pod{} },
	func() runtime.Object { return &corev1.PodTemplate{} },
	func() runtime.Object { return &corev1.ReplicationController{} },
	func() runtime.Object { return &corev1.Service{} },
	func() runtime.Object { return &corev1.ConfigMap{} },
	func() runtime.Object { return &corev1.Secret{} },
	func() runtime.Object { return &corev1.Namespace{} },
	func() runtime.Object { return &corev1.Node{} },
	func() runtime.Object { return &corev1.PersistentVolume{} },
	func() runtime.Object { return &corev1.PersistentVolumeClaim{} },
	func() runtime.Object { return &corev1.Endpoints{} },
	func() runtime.Object { return &corev1.Event{} },
	func() runtime.Object { return &corev1.LimitRange{} },
	func() runtime.Object { return &corev1.ResourceQuota{} },
	func() runtime.Object { return &corev1.Binding{} },
	func() runtime.Object { return &appsv1.Deployment{} },
	func() runtime.Object { return &appsv1.ReplicaSet{} },
	func() runtime.Object { return &appsv1.StatefulSet{} },
	func() runtime.Object { return &appsv1.DaemonSet{} },
	func() runtime.Object { return &appsv1.ControllerRevision{} },
	func() runtime.Object { return &batchv1.Job{} },
	func() runtime.Object { return &batchv1.CronJob{} },
	func() runtime.Object { return &autoscalingv2.HorizontalPodAutoscaler{} },
	func() runtime.Object { return &autoscalingv1.HorizontalPodAutoscaler{} },
	func() runtime.Object { return &policyv1.PodDisruptionBudget{} },
	func() runtime.Object { return &networkingv1.Ingress{} },
	func() runtime.Object { return &networkingv1.IngressClass{} },
	func() runtime.Object { return &networkingv1.NetworkPolicy{} },
	func() runtime.Object { return &rbacv1.Role{} },
	func() runtime.Object { return &rbacv1.ClusterRole{} },
	func() runtime.Object { return &rbacv1.RoleBinding{} },
	func() runtime.Object { return &rbacv1.ClusterRoleBinding{} },
	func() runtime.Object { return &storagev1.StorageClass{} },
	func() runtime.Object { return &schedulingv1.PriorityClass{} },
	func() runtime.Object { return &coordinationv1.Lease{} },
	func() runtime.Object { return &discoveryv1.EndpointSlice{} },
	func() runtime.Object { return &eventsv1.Event{} },
	func() runtime.Object { return &certificatesv1.CertificateSigningRequest{} },
	func() runtime.Object { return &admissionregistrationv1.ValidatingWebhookConfiguration{} },
	func() runtime.Object { return &admissionregistrationv1.MutatingWebhookConfiguration{} },
}

// exercise runs every entry point on obj, raw and defaulted, and checks
// that defaulting is idempotent. Panics fail the fuzz target by themselves.
func exercise(t *testing.T, obj runtime.Object) {
	Validate(obj)
	ValidateUpdate(obj, obj.DeepCopyObject())
	ValidateStatusUpdate(obj, obj.DeepCopyObject())

	s := scheme()
	once := obj.DeepCopyObject()
	s.Default(once)
	twice := once.DeepCopyObject()
	s.Default(twice)
	if !apiequality.Semantic.DeepEqual(once, twice) {
		t.Errorf("defaulting %T is not idempotent", obj)
	}
	Validate(once)
	ValidateUpdate(once, obj)
	ValidateStatusUpdate(once, obj)
}

func fuzzInto(t *testing.T, newObj func() runtime.Object, data []byte) {
	obj := newObj()
	if err := json.Unmarshal(data, obj); err != nil {
		return
	}
	exercise(t, obj)
}

func FuzzValidatePod(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { fuzzInto(t, fuzzTypes[0], data) })
}

func FuzzValidateDeployment(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzInto(t, func() runtime.Object { return &appsv1.Deployment{} }, data)
	})
}

func FuzzValidateService(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzInto(t, func() runtime.Object { return &corev1.Service{} }, data)
	})
}

func FuzzValidateCronJob(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzInto(t, func() runtime.Object { return &batchv1.CronJob{} }, data)
	})
}

// FuzzValidateAny decodes into the type chosen by the first byte.
func FuzzValidateAny(f *testing.F) {
	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		fuzzInto(t, fuzzTypes[int(kind)%len(fuzzTypes)], data)
	})
}

// FuzzValidateUnstructured covers CRDs and custom resources.
func FuzzValidateUnstructured(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil {
			return
		}
		Validate(u)
		ValidateUpdate(u, u.DeepCopy())
		ValidateStatusUpdate(u, u.DeepCopy())
	})
}

// TestFuzzTypesCovered keeps fuzzTypes in step with Validate's switch: a
// type it names must not fall through to metadata-only validation.
func TestFuzzTypesCovered(t *testing.T) {
	for _, newObj := range fuzzTypes {
		exercise(t, newObj())
	}
}
