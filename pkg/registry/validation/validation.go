// Package validation checks built-in API objects the way kube-apiserver
// does, returning field errors worded exactly like upstream's (the
// pkg/apis/*/validation packages of k8s.io/kubernetes, which Skiff does not
// import) so that a 422 from Skiff reads like one from Kubernetes.
//
// Objects are the versioned k8s.io/api types, validated after defaulting
// (see package defaults): a field upstream defaults is reported as
// "Required value" when it is still unset. Every function is pure and safe
// for concurrent use; none panics, whatever the input.
package validation

import (
	"fmt"

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
	"k8s.io/apimachinery/pkg/api/meta"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Validate returns every field error of obj as a new object (a create),
// with paths such as "spec.replicas" and "metadata.name". Known built-in
// types get upstream's full validation; a CustomResourceDefinition given as
// *unstructured.Unstructured gets metadata plus the basic spec checks; any
// other object gets metadata validation only. A nil result means valid.
func Validate(obj runtime.Object) field.ErrorList {
	switch o := obj.(type) {
	case nil:
		return field.ErrorList{field.InternalError(nil, fmt.Errorf("nil object"))}

	// core/v1
	case *corev1.Pod:
		return validatePod(o)
	case *corev1.PodTemplate:
		return validatePodTemplate(o)
	case *corev1.ReplicationController:
		return validateReplicationController(o)
	case *corev1.Service:
		return validateService(o)
	case *corev1.ConfigMap:
		return validateConfigMap(o)
	case *corev1.Secret:
		return validateSecret(o)
	case *corev1.Namespace:
		return validateNamespace(o)
	case *corev1.Node:
		return validateNode(o)
	case *corev1.PersistentVolume:
		return validatePersistentVolume(o)
	case *corev1.PersistentVolumeClaim:
		return validatePersistentVolumeClaim(o)
	case *corev1.Endpoints:
		return validateEndpoints(o)
	case *corev1.Event:
		return validateCoreEvent(o)
	case *corev1.LimitRange:
		return validateLimitRange(o)
	case *corev1.ResourceQuota:
		return validateResourceQuota(o)
	case *corev1.ServiceAccount:
		return objectMeta(&o.ObjectMeta, true, apivalidation.ValidateServiceAccountName)
	case *corev1.Binding:
		return validateBinding(o)
	case *corev1.ComponentStatus:
		return objectMeta(&o.ObjectMeta, false, apivalidation.NameIsDNSSubdomain)

	// apps/v1
	case *appsv1.Deployment:
		return validateDeployment(o)
	case *appsv1.ReplicaSet:
		return validateReplicaSet(o)
	case *appsv1.StatefulSet:
		return validateStatefulSet(o)
	case *appsv1.DaemonSet:
		return validateDaemonSet(o)
	case *appsv1.ControllerRevision:
		return validateControllerRevision(o)

	// batch/v1
	case *batchv1.Job:
		return validateJob(o)
	case *batchv1.CronJob:
		return validateCronJob(o)

	// autoscaling
	case *autoscalingv2.HorizontalPodAutoscaler:
		return validateHPAV2(o)
	case *autoscalingv1.HorizontalPodAutoscaler:
		return validateHPAV1(o)

	// policy/v1
	case *policyv1.PodDisruptionBudget:
		return validatePDB(o)

	// networking.k8s.io/v1
	case *networkingv1.Ingress:
		return validateIngress(o)
	case *networkingv1.IngressClass:
		return validateIngressClass(o)
	case *networkingv1.NetworkPolicy:
		return validateNetworkPolicy(o)

	// rbac.authorization.k8s.io/v1
	case *rbacv1.Role:
		return validateRole(o)
	case *rbacv1.ClusterRole:
		return validateClusterRole(o)
	case *rbacv1.RoleBinding:
		return validateRoleBinding(o)
	case *rbacv1.ClusterRoleBinding:
		return validateClusterRoleBinding(o)

	// others
	case *storagev1.StorageClass:
		return validateStorageClass(o)
	case *schedulingv1.PriorityClass:
		return validatePriorityClass(o)
	case *coordinationv1.Lease:
		return validateLease(o)
	case *discoveryv1.EndpointSlice:
		return validateEndpointSlice(o)
	case *eventsv1.Event:
		return validateEventsEvent(o)
	case *certificatesv1.CertificateSigningRequest:
		return validateCSR(o)
	case *admissionregistrationv1.ValidatingWebhookConfiguration:
		return validateValidatingWebhookConfiguration(o)
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		return validateMutatingWebhookConfiguration(o)

	case *unstructured.Unstructured:
		return validateUnstructured(o)
	}
	return validateUnknown(obj)
}

// ValidateUpdate validates obj as an update of old: the immutable fields
// (metadata.name, metadata.uid, selectors, most of a pod's spec, ...), a
// resourceVersion on obj (the store sets it for unconditional updates before
// validating), plus everything Validate checks for obj except rules that
// upstream only enforces on create. obj and old must be the same Go type;
// otherwise the result is one internal error.
func ValidateUpdate(obj, old runtime.Object) field.ErrorList {
	if errs := sameType(obj, old); errs != nil {
		return errs
	}
	switch o := obj.(type) {
	case *corev1.Pod:
		return validatePodUpdate(o, old.(*corev1.Pod))
	case *corev1.PodTemplate:
		o2 := old.(*corev1.PodTemplate)
		return append(metaUpdate(&o.ObjectMeta, &o2.ObjectMeta), podTemplateSpec(&o.Template, field.NewPath("template"))...)
	case *corev1.ReplicationController:
		o2 := old.(*corev1.ReplicationController)
		return append(metaUpdate(&o.ObjectMeta, &o2.ObjectMeta), replicationControllerSpec(&o.Spec, field.NewPath("spec"))...)
	case *corev1.Service:
		return validateServiceUpdate(o, old.(*corev1.Service))
	case *corev1.ConfigMap:
		return validateConfigMapUpdate(o, old.(*corev1.ConfigMap))
	case *corev1.Secret:
		return validateSecretUpdate(o, old.(*corev1.Secret))
	case *corev1.Namespace:
		o2 := old.(*corev1.Namespace)
		return append(metaUpdate(&o.ObjectMeta, &o2.ObjectMeta), namespaceSpec(&o.Spec)...)
	case *corev1.Node:
		return validateNodeUpdate(o, old.(*corev1.Node))
	case *corev1.PersistentVolume:
		return validatePersistentVolumeUpdate(o, old.(*corev1.PersistentVolume))
	case *corev1.PersistentVolumeClaim:
		return validatePersistentVolumeClaimUpdate(o, old.(*corev1.PersistentVolumeClaim))
	case *corev1.Endpoints:
		o2 := old.(*corev1.Endpoints)
		return append(metaUpdate(&o.ObjectMeta, &o2.ObjectMeta), endpointSubsets(o.Subsets, field.NewPath("subsets"))...)
	case *corev1.Event:
		o2 := old.(*corev1.Event)
		return append(metaUpdate(&o.ObjectMeta, &o2.ObjectMeta), coreEventBody(o)...)
	case *corev1.LimitRange:
		o2 := old.(*corev1.LimitRange)
		return append(metaUpdate(&o.ObjectMeta, &o2.ObjectMeta), limitRangeSpec(&o.Spec, field.NewPath("spec"))...)
	case *corev1.ResourceQuota:
		return validateResourceQuotaUpdate(o, old.(*corev1.ResourceQuota))
	case *appsv1.Deployment:
		return validateDeploymentUpdate(o, old.(*appsv1.Deployment))
	case *appsv1.ReplicaSet:
		return validateReplicaSetUpdate(o, old.(*appsv1.ReplicaSet))
	case *appsv1.StatefulSet:
		return validateStatefulSetUpdate(o, old.(*appsv1.StatefulSet))
	case *appsv1.DaemonSet:
		return validateDaemonSetUpdate(o, old.(*appsv1.DaemonSet))
	case *appsv1.ControllerRevision:
		return validateControllerRevisionUpdate(o, old.(*appsv1.ControllerRevision))
	case *batchv1.Job:
		return validateJobUpdate(o, old.(*batchv1.Job))
	case *batchv1.CronJob:
		o2 := old.(*batchv1.CronJob)
		return append(metaUpdate(&o.ObjectMeta, &o2.ObjectMeta), cronJobSpec(&o.Spec, field.NewPath("spec"))...)
	case *autoscalingv2.HorizontalPodAutoscaler:
		o2 := old.(*autoscalingv2.HorizontalPodAutoscaler)
		return append(metaUpdate(&o.ObjectMeta, &o2.ObjectMeta), hpaV2Spec(&o.Spec, field.NewPath("spec"))...)
	case *autoscalingv1.HorizontalPodAutoscaler:
		o2 := old.(*autoscalingv1.HorizontalPodAutoscaler)
		return append(metaUpdate(&o.ObjectMeta, &o2.ObjectMeta), hpaV1Spec(&o.Spec, field.NewPath("spec"))...)
	case *policyv1.PodDisruptionBudget:
		o2 := old.(*policyv1.PodDisruptionBudget)
		return append(metaUpdate(&o.ObjectMeta, &o2.ObjectMeta), pdbSpec(&o.Spec, field.NewPath("spec"))...)
	case *networkingv1.Ingress:
		o2 := old.(*networkingv1.Ingress)
		return append(metaUpdate(&o.ObjectMeta, &o2.ObjectMeta), ingressSpec(&o.Spec, field.NewPath("spec"))...)
	case *networkingv1.IngressClass:
		return validateIngressClassUpdate(o, old.(*networkingv1.IngressClass))
	case *networkingv1.NetworkPolicy:
		o2 := old.(*networkingv1.NetworkPolicy)
		return append(metaUpdate(&o.ObjectMeta, &o2.ObjectMeta), networkPolicySpec(&o.Spec, field.NewPath("spec"))...)
	case *rbacv1.Role:
		o2 := old.(*rbacv1.Role)
		return append(metaUpdate(&o.ObjectMeta, &o2.ObjectMeta), policyRules(o.Rules, true, field.NewPath("rules"))...)
	case *rbacv1.ClusterRole:
		o2 := old.(*rbacv1.ClusterRole)
		return append(metaUpdate(&o.ObjectMeta, &o2.ObjectMeta), clusterRoleBody(o)...)
	case *rbacv1.RoleBinding:
		return validateRoleBindingUpdate(o, old.(*rbacv1.RoleBinding))
	case *rbacv1.ClusterRoleBinding:
		return validateClusterRoleBindingUpdate(o, old.(*rbacv1.ClusterRoleBinding))
	case *storagev1.StorageClass:
		return validateStorageClassUpdate(o, old.(*storagev1.StorageClass))
	case *schedulingv1.PriorityClass:
		return validatePriorityClassUpdate(o, old.(*schedulingv1.PriorityClass))
	case *coordinationv1.Lease:
		o2 := old.(*coordinationv1.Lease)
		return append(metaUpdate(&o.ObjectMeta, &o2.ObjectMeta), leaseSpec(&o.Spec, field.NewPath("spec"))...)
	case *discoveryv1.EndpointSlice:
		return validateEndpointSliceUpdate(o, old.(*discoveryv1.EndpointSlice))
	case *eventsv1.Event:
		o2 := old.(*eventsv1.Event)
		return append(metaUpdate(&o.ObjectMeta, &o2.ObjectMeta), eventsEventBody(o)...)
	case *certificatesv1.CertificateSigningRequest:
		o2 := old.(*certificatesv1.CertificateSigningRequest)
		return append(metaUpdate(&o.ObjectMeta, &o2.ObjectMeta), csrBody(o)...)
	case *admissionregistrationv1.ValidatingWebhookConfiguration:
		o2 := old.(*admissionregistrationv1.ValidatingWebhookConfiguration)
		return append(metaUpdate(&o.ObjectMeta, &o2.ObjectMeta), validatingWebhooks(o.Webhooks)...)
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		o2 := old.(*admissionregistrationv1.MutatingWebhookConfiguration)
		return append(metaUpdate(&o.ObjectMeta, &o2.ObjectMeta), mutatingWebhooks(o.Webhooks)...)
	case *unstructured.Unstructured:
		return validateUnstructuredUpdate(o, old.(*unstructured.Unstructured))
	}
	return metaAccessorUpdate(obj, old)
}

// ValidateStatusUpdate validates an update through the status subresource:
// the metadata rules of an update plus the resource's status rules. It
// assumes the caller has already copied the spec from old (upstream's
// status strategies do), so spec fields are not checked. obj and old must
// be the same Go type.
func ValidateStatusUpdate(obj, old runtime.Object) field.ErrorList {
	if errs := sameType(obj, old); errs != nil {
		return errs
	}
	errs := metaAccessorUpdate(obj, old)
	switch o := obj.(type) {
	case *corev1.Pod:
		errs = append(errs, podStatus(o)...)
	case *corev1.ReplicationController:
		s := o.Status
		p := field.NewPath("status")
		errs = append(errs, replicaCounts(p, map[string]int32{
			"replicas": s.Replicas, "fullyLabeledReplicas": s.FullyLabeledReplicas,
			"readyReplicas": s.ReadyReplicas, "availableReplicas": s.AvailableReplicas,
		})...)
		errs = append(errs, apivalidation.ValidateNonnegativeField(s.ObservedGeneration, p.Child("observedGeneration"))...)
	case *corev1.Namespace:
		errs = append(errs, namespaceStatus(o, old.(*corev1.Namespace))...)
	case *corev1.ResourceQuota:
		errs = append(errs, resourceList(o.Status.Hard, field.NewPath("status", "hard"), quotaResourceName)...)
		errs = append(errs, resourceList(o.Status.Used, field.NewPath("status", "used"), quotaResourceName)...)
	case *appsv1.Deployment:
		errs = append(errs, deploymentStatus(&o.Status, field.NewPath("status"))...)
	case *appsv1.ReplicaSet:
		errs = append(errs, replicaSetStatus(&o.Status, field.NewPath("status"))...)
	case *appsv1.StatefulSet:
		errs = append(errs, statefulSetStatus(&o.Status, field.NewPath("status"))...)
	case *appsv1.DaemonSet:
		errs = append(errs, daemonSetStatus(&o.Status, field.NewPath("status"))...)
	case *batchv1.Job:
		errs = append(errs, jobStatus(&o.Status, field.NewPath("status"))...)
	case *policyv1.PodDisruptionBudget:
		s := o.Status
		p := field.NewPath("status")
		errs = append(errs, replicaCounts(p, map[string]int32{
			"disruptionsAllowed": s.DisruptionsAllowed, "currentHealthy": s.CurrentHealthy,
			"desiredHealthy": s.DesiredHealthy, "expectedPods": s.ExpectedPods,
		})...)
	case *certificatesv1.CertificateSigningRequest:
		errs = append(errs, csrConditions(o.Status.Conditions, field.NewPath("status", "conditions"))...)
	}
	return errs
}

// sameType returns an internal error when obj and old are not the same
// concrete type (or either is nil), nil otherwise.
func sameType(obj, old runtime.Object) field.ErrorList {
	if obj == nil || old == nil {
		return field.ErrorList{field.InternalError(nil, fmt.Errorf("nil object in update"))}
	}
	if fmt.Sprintf("%T", obj) != fmt.Sprintf("%T", old) {
		return field.ErrorList{field.InternalError(nil, fmt.Errorf("update of %T with %T", old, obj))}
	}
	return nil
}

// validateUnknown validates only the metadata of an object this package has
// no rules for, with DNS-subdomain names and the scope from clusterScoped.
func validateUnknown(obj runtime.Object) field.ErrorList {
	m, err := meta.Accessor(obj)
	if err != nil {
		return field.ErrorList{field.InternalError(nil, err)}
	}
	return apivalidation.ValidateObjectMetaAccessor(m, !isClusterScoped(kindOf(obj)), apivalidation.NameIsDNSSubdomain, metaPath)
}

// metaAccessorUpdate runs the metadata update checks on any two objects.
func metaAccessorUpdate(obj, old runtime.Object) field.ErrorList {
	m, err := meta.Accessor(obj)
	if err != nil {
		return field.ErrorList{field.InternalError(nil, err)}
	}
	om, err := meta.Accessor(old)
	if err != nil {
		return field.ErrorList{field.InternalError(nil, err)}
	}
	return apivalidation.ValidateObjectMetaAccessorUpdate(m, om, metaPath)
}
