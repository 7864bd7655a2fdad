// Package defaults applies upstream Kubernetes' API defaults (the
// SetDefaults_* functions of k8s.io/kubernetes/pkg/apis/*/v1, which
// k8s.io/api does not ship) to the versioned built-in types.
//
// Every function here is pure: it only fills fields that are unset, so
// applying the defaults twice gives the same object as applying them once.
// Defaults that depend on cluster state (a Service's clusterIP and
// ipFamilies, a Job's generated selector, a Namespace's finalizers) are not
// defaults in this sense and are left to the resource strategies.
package defaults

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Register adds defaulting functions for the built-in types (and their list
// types) to s with s.AddTypeDefaultingFunc, so that s.Default(obj) applies
// upstream's defaults to obj in place. Types without upstream defaults are
// not registered; s.Default leaves them untouched. Register is not safe to
// call concurrently with s.Default, like every Scheme mutation.
func Register(s *runtime.Scheme) {
	// Each type and its list type are registered one by one because
	// AddTypeDefaultingFunc keys on the concrete pointer type; lists are
	// included so that defaulting a decoded List works like upstream.

	// core/v1
	s.AddTypeDefaultingFunc(&corev1.Pod{}, func(o interface{}) { Pod(o.(*corev1.Pod)) })
	s.AddTypeDefaultingFunc(&corev1.PodList{}, func(o interface{}) {
		l := o.(*corev1.PodList)
		for i := range l.Items {
			Pod(&l.Items[i])
		}
	})
	s.AddTypeDefaultingFunc(&corev1.PodTemplate{}, func(o interface{}) { podTemplateSpec(&o.(*corev1.PodTemplate).Template) })
	s.AddTypeDefaultingFunc(&corev1.PodTemplateList{}, func(o interface{}) {
		l := o.(*corev1.PodTemplateList)
		for i := range l.Items {
			podTemplateSpec(&l.Items[i].Template)
		}
	})
	s.AddTypeDefaultingFunc(&corev1.ReplicationController{}, func(o interface{}) { replicationController(o.(*corev1.ReplicationController)) })
	s.AddTypeDefaultingFunc(&corev1.ReplicationControllerList{}, func(o interface{}) {
		l := o.(*corev1.ReplicationControllerList)
		for i := range l.Items {
			replicationController(&l.Items[i])
		}
	})
	s.AddTypeDefaultingFunc(&corev1.Service{}, func(o interface{}) { service(o.(*corev1.Service)) })
	s.AddTypeDefaultingFunc(&corev1.ServiceList{}, func(o interface{}) {
		l := o.(*corev1.ServiceList)
		for i := range l.Items {
			service(&l.Items[i])
		}
	})
	s.AddTypeDefaultingFunc(&corev1.Namespace{}, func(o interface{}) { namespace(o.(*corev1.Namespace)) })
	s.AddTypeDefaultingFunc(&corev1.NamespaceList{}, func(o interface{}) {
		l := o.(*corev1.NamespaceList)
		for i := range l.Items {
			namespace(&l.Items[i])
		}
	})
	s.AddTypeDefaultingFunc(&corev1.Secret{}, func(o interface{}) { secret(o.(*corev1.Secret)) })
	s.AddTypeDefaultingFunc(&corev1.SecretList{}, func(o interface{}) {
		l := o.(*corev1.SecretList)
		for i := range l.Items {
			secret(&l.Items[i])
		}
	})
	s.AddTypeDefaultingFunc(&corev1.Node{}, func(o interface{}) { node(o.(*corev1.Node)) })
	s.AddTypeDefaultingFunc(&corev1.NodeList{}, func(o interface{}) {
		l := o.(*corev1.NodeList)
		for i := range l.Items {
			node(&l.Items[i])
		}
	})
	s.AddTypeDefaultingFunc(&corev1.PersistentVolume{}, func(o interface{}) { persistentVolume(o.(*corev1.PersistentVolume)) })
	s.AddTypeDefaultingFunc(&corev1.PersistentVolumeList{}, func(o interface{}) {
		l := o.(*corev1.PersistentVolumeList)
		for i := range l.Items {
			persistentVolume(&l.Items[i])
		}
	})
	s.AddTypeDefaultingFunc(&corev1.PersistentVolumeClaim{}, func(o interface{}) { persistentVolumeClaim(o.(*corev1.PersistentVolumeClaim)) })
	s.AddTypeDefaultingFunc(&corev1.PersistentVolumeClaimList{}, func(o interface{}) {
		l := o.(*corev1.PersistentVolumeClaimList)
		for i := range l.Items {
			persistentVolumeClaim(&l.Items[i])
		}
	})
	s.AddTypeDefaultingFunc(&corev1.Endpoints{}, func(o interface{}) { endpoints(o.(*corev1.Endpoints)) })
	s.AddTypeDefaultingFunc(&corev1.EndpointsList{}, func(o interface{}) {
		l := o.(*corev1.EndpointsList)
		for i := range l.Items {
			endpoints(&l.Items[i])
		}
	})
	s.AddTypeDefaultingFunc(&corev1.LimitRange{}, func(o interface{}) { limitRange(o.(*corev1.LimitRange)) })
	s.AddTypeDefaultingFunc(&corev1.LimitRangeList{}, func(o interface{}) {
		l := o.(*corev1.LimitRangeList)
		for i := range l.Items {
			limitRange(&l.Items[i])
		}
	})

	// apps/v1
	s.AddTypeDefaultingFunc(&appsv1.Deployment{}, func(o interface{}) { deployment(o.(*appsv1.Deployment)) })
	s.AddTypeDefaultingFunc(&appsv1.DeploymentList{}, func(o interface{}) {
		l := o.(*appsv1.DeploymentList)
		for i := range l.Items {
			deployment(&l.Items[i])
		}
	})
	s.AddTypeDefaultingFunc(&appsv1.ReplicaSet{}, func(o interface{}) { replicaSet(o.(*appsv1.ReplicaSet)) })
	s.AddTypeDefaultingFunc(&appsv1.ReplicaSetList{}, func(o interface{}) {
		l := o.(*appsv1.ReplicaSetList)
		for i := range l.Items {
			replicaSet(&l.Items[i])
		}
	})
	s.AddTypeDefaultingFunc(&appsv1.StatefulSet{}, func(o interface{}) { statefulSet(o.(*appsv1.StatefulSet)) })
	s.AddTypeDefaultingFunc(&appsv1.StatefulSetList{}, func(o interface{}) {
		l := o.(*appsv1.StatefulSetList)
		for i := range l.Items {
			statefulSet(&l.Items[i])
		}
	})
	s.AddTypeDefaultingFunc(&appsv1.DaemonSet{}, func(o interface{}) { daemonSet(o.(*appsv1.DaemonSet)) })
	s.AddTypeDefaultingFunc(&appsv1.DaemonSetList{}, func(o interface{}) {
		l := o.(*appsv1.DaemonSetList)
		for i := range l.Items {
			daemonSet(&l.Items[i])
		}
	})

	// batch/v1
	s.AddTypeDefaultingFunc(&batchv1.Job{}, func(o interface{}) { job(o.(*batchv1.Job)) })
	s.AddTypeDefaultingFunc(&batchv1.JobList{}, func(o interface{}) {
		l := o.(*batchv1.JobList)
		for i := range l.Items {
			job(&l.Items[i])
		}
	})
	s.AddTypeDefaultingFunc(&batchv1.CronJob{}, func(o interface{}) { cronJob(o.(*batchv1.CronJob)) })
	s.AddTypeDefaultingFunc(&batchv1.CronJobList{}, func(o interface{}) {
		l := o.(*batchv1.CronJobList)
		for i := range l.Items {
			cronJob(&l.Items[i])
		}
	})

	// autoscaling
	s.AddTypeDefaultingFunc(&autoscalingv2.HorizontalPodAutoscaler{}, func(o interface{}) { hpaV2(o.(*autoscalingv2.HorizontalPodAutoscaler)) })
	s.AddTypeDefaultingFunc(&autoscalingv2.HorizontalPodAutoscalerList{}, func(o interface{}) {
		l := o.(*autoscalingv2.HorizontalPodAutoscalerList)
		for i := range l.Items {
			hpaV2(&l.Items[i])
		}
	})
	s.AddTypeDefaultingFunc(&autoscalingv1.HorizontalPodAutoscaler{}, func(o interface{}) { hpaV1(o.(*autoscalingv1.HorizontalPodAutoscaler)) })
	s.AddTypeDefaultingFunc(&autoscalingv1.HorizontalPodAutoscalerList{}, func(o interface{}) {
		l := o.(*autoscalingv1.HorizontalPodAutoscalerList)
		for i := range l.Items {
			hpaV1(&l.Items[i])
		}
	})

	// networking.k8s.io/v1
	s.AddTypeDefaultingFunc(&networkingv1.NetworkPolicy{}, func(o interface{}) { networkPolicy(o.(*networkingv1.NetworkPolicy)) })
	s.AddTypeDefaultingFunc(&networkingv1.NetworkPolicyList{}, func(o interface{}) {
		l := o.(*networkingv1.NetworkPolicyList)
		for i := range l.Items {
			networkPolicy(&l.Items[i])
		}
	})

	// discovery.k8s.io/v1
	s.AddTypeDefaultingFunc(&discoveryv1.EndpointSlice{}, func(o interface{}) { endpointSlice(o.(*discoveryv1.EndpointSlice)) })
	s.AddTypeDefaultingFunc(&discoveryv1.EndpointSliceList{}, func(o interface{}) {
		l := o.(*discoveryv1.EndpointSliceList)
		for i := range l.Items {
			endpointSlice(&l.Items[i])
		}
	})

	// rbac.authorization.k8s.io/v1
	s.AddTypeDefaultingFunc(&rbacv1.RoleBinding{}, func(o interface{}) {
		b := o.(*rbacv1.RoleBinding)
		roleBinding(&b.RoleRef, b.Subjects)
	})
	s.AddTypeDefaultingFunc(&rbacv1.RoleBindingList{}, func(o interface{}) {
		l := o.(*rbacv1.RoleBindingList)
		for i := range l.Items {
			roleBinding(&l.Items[i].RoleRef, l.Items[i].Subjects)
		}
	})
	s.AddTypeDefaultingFunc(&rbacv1.ClusterRoleBinding{}, func(o interface{}) {
		b := o.(*rbacv1.ClusterRoleBinding)
		roleBinding(&b.RoleRef, b.Subjects)
	})
	s.AddTypeDefaultingFunc(&rbacv1.ClusterRoleBindingList{}, func(o interface{}) {
		l := o.(*rbacv1.ClusterRoleBindingList)
		for i := range l.Items {
			roleBinding(&l.Items[i].RoleRef, l.Items[i].Subjects)
		}
	})

	// storage.k8s.io/v1
	s.AddTypeDefaultingFunc(&storagev1.StorageClass{}, func(o interface{}) { storageClass(o.(*storagev1.StorageClass)) })
	s.AddTypeDefaultingFunc(&storagev1.StorageClassList{}, func(o interface{}) {
		l := o.(*storagev1.StorageClassList)
		for i := range l.Items {
			storageClass(&l.Items[i])
		}
	})

	// scheduling.k8s.io/v1
	s.AddTypeDefaultingFunc(&schedulingv1.PriorityClass{}, func(o interface{}) { priorityClass(o.(*schedulingv1.PriorityClass)) })
	s.AddTypeDefaultingFunc(&schedulingv1.PriorityClassList{}, func(o interface{}) {
		l := o.(*schedulingv1.PriorityClassList)
		for i := range l.Items {
			priorityClass(&l.Items[i])
		}
	})

	// certificates.k8s.io/v1
	s.AddTypeDefaultingFunc(&certificatesv1.CertificateSigningRequest{}, func(o interface{}) { csr(o.(*certificatesv1.CertificateSigningRequest)) })
	s.AddTypeDefaultingFunc(&certificatesv1.CertificateSigningRequestList{}, func(o interface{}) {
		l := o.(*certificatesv1.CertificateSigningRequestList)
		for i := range l.Items {
			csr(&l.Items[i])
		}
	})

	// admissionregistration.k8s.io/v1
	s.AddTypeDefaultingFunc(&admissionregistrationv1.ValidatingWebhookConfiguration{}, func(o interface{}) {
		validatingWebhookConfiguration(o.(*admissionregistrationv1.ValidatingWebhookConfiguration))
	})
	s.AddTypeDefaultingFunc(&admissionregistrationv1.ValidatingWebhookConfigurationList{}, func(o interface{}) {
		l := o.(*admissionregistrationv1.ValidatingWebhookConfigurationList)
		for i := range l.Items {
			validatingWebhookConfiguration(&l.Items[i])
		}
	})
	s.AddTypeDefaultingFunc(&admissionregistrationv1.MutatingWebhookConfiguration{}, func(o interface{}) {
		mutatingWebhookConfiguration(o.(*admissionregistrationv1.MutatingWebhookConfiguration))
	})
	s.AddTypeDefaultingFunc(&admissionregistrationv1.MutatingWebhookConfigurationList{}, func(o interface{}) {
		l := o.(*admissionregistrationv1.MutatingWebhookConfigurationList)
		for i := range l.Items {
			mutatingWebhookConfiguration(&l.Items[i])
		}
	})
}

// ptrTo returns a pointer to a copy of v; the defaults below never share a
// pointer between two fields, so later edits of one cannot leak into another.
func ptrTo[T any](v T) *T { return &v }
