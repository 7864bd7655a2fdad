// Package registry describes every resource Skiff serves: its names, scope,
// verbs and subresources (this file), and assembles per-resource strategies
// (defaulting, validation, table printing, field selectors) from the pure
// packages beside it.
package registry

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

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
)

// Standard verb sets, as upstream discovery reports them.
var (
	verbsAll      = []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
	verbsReadOnly = []string{"get", "list"}
)

// Resource describes one resource of one group/version as discovery, the
// HTTP router, storage and OpenAPI see it. Values are immutable after
// Builtin returns them.
type Resource struct {
	Group    string // "" for the core group
	Version  string
	Resource string // plural, lower case: "deployments"
	Singular string // "deployment"
	Kind     string // "Deployment"
	ListKind string // "DeploymentList"

	Namespaced bool
	ShortNames []string
	Categories []string
	Verbs      []string

	// Subresources lists served subresources by name ("status", "scale",
	// "binding", "eviction", "log", "exec", "attach", "portforward", "proxy").
	Subresources []string

	// StorageVersion is the version objects are kept in, when it differs from
	// Version (autoscaling/v1 HPAs are stored as autoscaling/v2).
	StorageVersion string

	// New returns a new empty object of this Kind; NewList its list type.
	New     func() runtime.Object
	NewList func() runtime.Object
}

// GroupVersionResource returns the resource's GVR.
func (r *Resource) GroupVersionResource() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: r.Group, Version: r.Version, Resource: r.Resource}
}

// GroupVersionKind returns the resource's GVK.
func (r *Resource) GroupVersionKind() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind}
}

// GroupResource returns the resource's group and plural name.
func (r *Resource) GroupResource() schema.GroupResource {
	return schema.GroupResource{Group: r.Group, Resource: r.Resource}
}

// HasSubresource reports whether sub is served for this resource.
func (r *Resource) HasSubresource(sub string) bool {
	for _, s := range r.Subresources {
		if s == sub {
			return true
		}
	}
	return false
}

// res is a compact constructor for the table below.
func res(group, version, plural, singular, kind string, namespaced bool, newObj, newList func() runtime.Object, opts ...func(*Resource)) *Resource {
	r := &Resource{
		Group: group, Version: version, Resource: plural, Singular: singular,
		Kind: kind, ListKind: kind + "List", Namespaced: namespaced,
		Verbs: verbsAll, New: newObj, NewList: newList,
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

func short(names ...string) func(*Resource) { return func(r *Resource) { r.ShortNames = names } }
func cats(c ...string) func(*Resource)      { return func(r *Resource) { r.Categories = c } }
func subs(s ...string) func(*Resource)      { return func(r *Resource) { r.Subresources = s } }
func verbs(v ...string) func(*Resource)     { return func(r *Resource) { r.Verbs = v } }
func storedAs(v string) func(*Resource)     { return func(r *Resource) { r.StorageVersion = v } }

// Builtin returns the built-in resources in discovery order (groups in
// upstream's preferred order, resources alphabetical within a group). Each
// call returns fresh values so callers cannot corrupt each other.
func Builtin() []*Resource {
	all := "all"
	return []*Resource{
		// core/v1
		res("", "v1", "bindings", "binding", "Binding", true,
			func() runtime.Object { return &corev1.Binding{} }, nil, verbs("create")),
		res("", "v1", "componentstatuses", "componentstatus", "ComponentStatus", false,
			func() runtime.Object { return &corev1.ComponentStatus{} }, func() runtime.Object { return &corev1.ComponentStatusList{} },
			short("cs"), verbs(verbsReadOnly...)),
		res("", "v1", "configmaps", "configmap", "ConfigMap", true,
			func() runtime.Object { return &corev1.ConfigMap{} }, func() runtime.Object { return &corev1.ConfigMapList{} }, short("cm")),
		res("", "v1", "endpoints", "endpoints", "Endpoints", true,
			func() runtime.Object { return &corev1.Endpoints{} }, func() runtime.Object { return &corev1.EndpointsList{} }, short("ep")),
		res("", "v1", "events", "event", "Event", true,
			func() runtime.Object { return &corev1.Event{} }, func() runtime.Object { return &corev1.EventList{} }, short("ev")),
		res("", "v1", "limitranges", "limitrange", "LimitRange", true,
			func() runtime.Object { return &corev1.LimitRange{} }, func() runtime.Object { return &corev1.LimitRangeList{} }, short("limits")),
		res("", "v1", "namespaces", "namespace", "Namespace", false,
			func() runtime.Object { return &corev1.Namespace{} }, func() runtime.Object { return &corev1.NamespaceList{} },
			short("ns"), verbs("create", "delete", "get", "list", "patch", "update", "watch"), subs("status", "finalize")),
		res("", "v1", "nodes", "node", "Node", false,
			func() runtime.Object { return &corev1.Node{} }, func() runtime.Object { return &corev1.NodeList{} },
			short("no"), subs("status", "proxy")),
		res("", "v1", "persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim", true,
			func() runtime.Object { return &corev1.PersistentVolumeClaim{} }, func() runtime.Object { return &corev1.PersistentVolumeClaimList{} },
			short("pvc"), subs("status")),
		res("", "v1", "persistentvolumes", "persistentvolume", "PersistentVolume", false,
			func() runtime.Object { return &corev1.PersistentVolume{} }, func() runtime.Object { return &corev1.PersistentVolumeList{} },
			short("pv"), subs("status")),
		res("", "v1", "pods", "pod", "Pod", true,
			func() runtime.Object { return &corev1.Pod{} }, func() runtime.Object { return &corev1.PodList{} },
			short("po"), cats(all), subs("status", "binding", "eviction", "ephemeralcontainers", "log", "exec", "attach", "portforward", "proxy")),
		res("", "v1", "podtemplates", "podtemplate", "PodTemplate", true,
			func() runtime.Object { return &corev1.PodTemplate{} }, func() runtime.Object { return &corev1.PodTemplateList{} }),
		res("", "v1", "replicationcontrollers", "replicationcontroller", "ReplicationController", true,
			func() runtime.Object { return &corev1.ReplicationController{} }, func() runtime.Object { return &corev1.ReplicationControllerList{} },
			short("rc"), cats(all), subs("status", "scale")),
		res("", "v1", "resourcequotas", "resourcequota", "ResourceQuota", true,
			func() runtime.Object { return &corev1.ResourceQuota{} }, func() runtime.Object { return &corev1.ResourceQuotaList{} },
			short("quota"), subs("status")),
		res("", "v1", "secrets", "secret", "Secret", true,
			func() runtime.Object { return &corev1.Secret{} }, func() runtime.Object { return &corev1.SecretList{} }),
		res("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", true,
			func() runtime.Object { return &corev1.ServiceAccount{} }, func() runtime.Object { return &corev1.ServiceAccountList{} },
			short("sa"), subs("token")),
		res("", "v1", "services", "service", "Service", true,
			func() runtime.Object { return &corev1.Service{} }, func() runtime.Object { return &corev1.ServiceList{} },
			short("svc"), cats(all), subs("status", "proxy"),
			verbs("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")),

		// admissionregistration.k8s.io/v1 (served so webhooks can be registered later)
		res("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", "mutatingwebhookconfiguration", "MutatingWebhookConfiguration", false,
			func() runtime.Object { return &admissionregistrationv1.MutatingWebhookConfiguration{} },
			func() runtime.Object { return &admissionregistrationv1.MutatingWebhookConfigurationList{} }, cats("api-extensions")),
		res("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", "validatingwebhookconfiguration", "ValidatingWebhookConfiguration", false,
			func() runtime.Object { return &admissionregistrationv1.ValidatingWebhookConfiguration{} },
			func() runtime.Object { return &admissionregistrationv1.ValidatingWebhookConfigurationList{} }, cats("api-extensions")),

		// apps/v1
		res("apps", "v1", "controllerrevisions", "controllerrevision", "ControllerRevision", true,
			func() runtime.Object { return &appsv1.ControllerRevision{} }, func() runtime.Object { return &appsv1.ControllerRevisionList{} }),
		res("apps", "v1", "daemonsets", "daemonset", "DaemonSet", true,
			func() runtime.Object { return &appsv1.DaemonSet{} }, func() runtime.Object { return &appsv1.DaemonSetList{} },
			short("ds"), cats(all), subs("status")),
		res("apps", "v1", "deployments", "deployment", "Deployment", true,
			func() runtime.Object { return &appsv1.Deployment{} }, func() runtime.Object { return &appsv1.DeploymentList{} },
			short("deploy"), cats(all), subs("status", "scale")),
		res("apps", "v1", "replicasets", "replicaset", "ReplicaSet", true,
			func() runtime.Object { return &appsv1.ReplicaSet{} }, func() runtime.Object { return &appsv1.ReplicaSetList{} },
			short("rs"), cats(all), subs("status", "scale")),
		res("apps", "v1", "statefulsets", "statefulset", "StatefulSet", true,
			func() runtime.Object { return &appsv1.StatefulSet{} }, func() runtime.Object { return &appsv1.StatefulSetList{} },
			short("sts"), cats(all), subs("status", "scale")),

		// events.k8s.io/v1 (stored with core events: same etcd keys)
		res("events.k8s.io", "v1", "events", "event", "Event", true,
			func() runtime.Object { return &eventsv1.Event{} }, func() runtime.Object { return &eventsv1.EventList{} }, short("ev")),

		// autoscaling: v2 is the storage version, v1 is converted.
		res("autoscaling", "v2", "horizontalpodautoscalers", "horizontalpodautoscaler", "HorizontalPodAutoscaler", true,
			func() runtime.Object { return &autoscalingv2.HorizontalPodAutoscaler{} },
			func() runtime.Object { return &autoscalingv2.HorizontalPodAutoscalerList{} },
			short("hpa"), cats(all), subs("status")),
		res("autoscaling", "v1", "horizontalpodautoscalers", "horizontalpodautoscaler", "HorizontalPodAutoscaler", true,
			func() runtime.Object { return &autoscalingv1.HorizontalPodAutoscaler{} },
			func() runtime.Object { return &autoscalingv1.HorizontalPodAutoscalerList{} },
			short("hpa"), cats(all), subs("status"), storedAs("v2")),

		// batch/v1
		res("batch", "v1", "cronjobs", "cronjob", "CronJob", true,
			func() runtime.Object { return &batchv1.CronJob{} }, func() runtime.Object { return &batchv1.CronJobList{} },
			short("cj"), cats(all), subs("status")),
		res("batch", "v1", "jobs", "job", "Job", true,
			func() runtime.Object { return &batchv1.Job{} }, func() runtime.Object { return &batchv1.JobList{} },
			cats(all), subs("status")),

		// certificates.k8s.io/v1
		res("certificates.k8s.io", "v1", "certificatesigningrequests", "certificatesigningrequest", "CertificateSigningRequest", false,
			func() runtime.Object { return &certificatesv1.CertificateSigningRequest{} },
			func() runtime.Object { return &certificatesv1.CertificateSigningRequestList{} },
			short("csr"), subs("status", "approval")),

		// networking.k8s.io/v1
		res("networking.k8s.io", "v1", "ingressclasses", "ingressclass", "IngressClass", false,
			func() runtime.Object { return &networkingv1.IngressClass{} }, func() runtime.Object { return &networkingv1.IngressClassList{} }),
		res("networking.k8s.io", "v1", "ingresses", "ingress", "Ingress", true,
			func() runtime.Object { return &networkingv1.Ingress{} }, func() runtime.Object { return &networkingv1.IngressList{} },
			short("ing"), subs("status")),
		res("networking.k8s.io", "v1", "networkpolicies", "networkpolicy", "NetworkPolicy", true,
			func() runtime.Object { return &networkingv1.NetworkPolicy{} }, func() runtime.Object { return &networkingv1.NetworkPolicyList{} },
			short("netpol")),

		// policy/v1
		res("policy", "v1", "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", true,
			func() runtime.Object { return &policyv1.PodDisruptionBudget{} }, func() runtime.Object { return &policyv1.PodDisruptionBudgetList{} },
			short("pdb"), subs("status")),

		// rbac.authorization.k8s.io/v1
		res("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "clusterrolebinding", "ClusterRoleBinding", false,
			func() runtime.Object { return &rbacv1.ClusterRoleBinding{} }, func() runtime.Object { return &rbacv1.ClusterRoleBindingList{} }),
		res("rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", false,
			func() runtime.Object { return &rbacv1.ClusterRole{} }, func() runtime.Object { return &rbacv1.ClusterRoleList{} }),
		res("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", true,
			func() runtime.Object { return &rbacv1.RoleBinding{} }, func() runtime.Object { return &rbacv1.RoleBindingList{} }),
		res("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", true,
			func() runtime.Object { return &rbacv1.Role{} }, func() runtime.Object { return &rbacv1.RoleList{} }),

		// storage.k8s.io/v1
		res("storage.k8s.io", "v1", "storageclasses", "storageclass", "StorageClass", false,
			func() runtime.Object { return &storagev1.StorageClass{} }, func() runtime.Object { return &storagev1.StorageClassList{} },
			short("sc")),

		// apiextensions.k8s.io/v1: CRDs are handled as unstructured objects, so
		// New/NewList are nil and the server uses unstructured codecs.
		res("apiextensions.k8s.io", "v1", "customresourcedefinitions", "customresourcedefinition", "CustomResourceDefinition", false,
			nil, nil, short("crd", "crds"), cats("api-extensions"), subs("status")),

		// scheduling.k8s.io/v1
		res("scheduling.k8s.io", "v1", "priorityclasses", "priorityclass", "PriorityClass", false,
			func() runtime.Object { return &schedulingv1.PriorityClass{} }, func() runtime.Object { return &schedulingv1.PriorityClassList{} },
			short("pc")),

		// coordination.k8s.io/v1
		res("coordination.k8s.io", "v1", "leases", "lease", "Lease", true,
			func() runtime.Object { return &coordinationv1.Lease{} }, func() runtime.Object { return &coordinationv1.LeaseList{} }),

		// discovery.k8s.io/v1
		res("discovery.k8s.io", "v1", "endpointslices", "endpointslice", "EndpointSlice", true,
			func() runtime.Object { return &discoveryv1.EndpointSlice{} }, func() runtime.Object { return &discoveryv1.EndpointSliceList{} }),
	}
}
