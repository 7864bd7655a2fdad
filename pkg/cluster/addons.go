package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/klog/v2"

	"github.com/skiff-project/skiff/pkg/agent"
)

// The add-ons a server runs as ordinary workloads in kube-system, the way
// kubeadm clusters do; --disable takes their names.
const (
	AddonKubeProxy = "kube-proxy"
	AddonCoreDNS   = "coredns"
)

// Addons lists the add-on names --disable accepts.
func Addons() []string { return []string{AddonCoreDNS, AddonKubeProxy} }

// addonFieldManager owns the fields the server applies; a user's own
// changes to other fields survive, as with upstream's addon manager.
const addonFieldManager = "skiff-addons"

// addonResync is how often the add-ons are applied again, so a deleted or
// edited add-on comes back (upstream's addon manager checks every minute).
const addonResync = time.Minute

// simulatedNodeLabel marks `skiff sim` nodes; add-on pods keep off them,
// since a hollow node runs no containers and has no network to program.
const simulatedNodeLabel = "node.skiff.io/simulated"

// addonConfig is what the add-on objects depend on.
type addonConfig struct {
	Image         string   // the skiff image every node builds
	APIServerURL  string   // the advertised API server, for kube-proxy's kubeconfig
	ClusterCIDR   string   // the pod network, for kube-proxy's masquerade rule
	DNSIP         string   // the kube-dns Service's ClusterIP
	ClusterDomain string   // the cluster's DNS domain
	ProxyMode     string   // kube-proxy's --proxy-mode; iptables when empty
	Disabled      []string // add-on names not to run
}

// addonObjects returns the objects of the enabled add-ons, in the order
// they must be applied (identities before the workloads using them).
func addonObjects(cfg addonConfig) []runtime.Object {
	var objs []runtime.Object
	if !slices.Contains(cfg.Disabled, AddonKubeProxy) {
		objs = append(objs, kubeProxyObjects(cfg)...)
	}
	if !slices.Contains(cfg.Disabled, AddonCoreDNS) {
		objs = append(objs, coreDNSObjects(cfg)...)
	}
	return objs
}

// addonLabels are the labels upstream's add-on manifests carry.
func addonLabels(app string) map[string]string {
	return map[string]string{"k8s-app": app, "addonmanager.kubernetes.io/mode": "Reconcile"}
}

// notSimulated keeps pods off `skiff sim` nodes.
func notSimulated() *corev1.Affinity {
	return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: simulatedNodeLabel, Operator: corev1.NodeSelectorOpDoesNotExist}},
		}}},
	}}
}

// kubeProxyObjects: the kube-proxy DaemonSet with its identity and
// kubeconfig, in kubeadm's shape. The proxy runs on the host network with
// the host's root at /host, where it finds iptables and nft, and talks to
// the API server at its advertised address, since the kubernetes Service
// it would otherwise use is what it programs.
func kubeProxyObjects(cfg addonConfig) []runtime.Object {
	const ns = metav1.NamespaceSystem
	kubeconfig := strings.Join([]string{
		"apiVersion: v1",
		"kind: Config",
		"clusters:",
		"- cluster:",
		"    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
		"    server: " + cfg.APIServerURL,
		"  name: default",
		"contexts:",
		"- context:",
		"    cluster: default",
		"    namespace: default",
		"    user: default",
		"  name: default",
		"current-context: default",
		"users:",
		"- name: default",
		"  user:",
		"    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token",
		"",
	}, "\n")
	privileged := true
	hostPathFileOrCreate := corev1.HostPathFileOrCreate
	labels := addonLabels("kube-proxy")
	selector := map[string]string{"k8s-app": "kube-proxy"}
	return []runtime.Object{
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "kube-proxy", Namespace: ns, Labels: labels}},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "kubeadm:node-proxier", Labels: labels},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:node-proxier"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "kube-proxy", Namespace: ns}},
		},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-proxy", Namespace: ns, Labels: labels},
			Data: map[string]string{"kubeconfig.conf": kubeconfig}},
		&appsv1.DaemonSet{
			ObjectMeta: metav1.ObjectMeta{Name: "kube-proxy", Namespace: ns, Labels: labels},
			Spec: appsv1.DaemonSetSpec{
				Selector: &metav1.LabelSelector{MatchLabels: selector},
				UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
					RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: ptrTo(intstr.FromInt32(1))}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: selector},
					Spec: corev1.PodSpec{
						HostNetwork:        true,
						DNSPolicy:          corev1.DNSClusterFirstWithHostNet,
						PriorityClassName:  "system-node-critical",
						ServiceAccountName: "kube-proxy",
						NodeSelector:       map[string]string{corev1.LabelOSStable: "linux"},
						Affinity:           notSimulated(),
						Tolerations:        []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
						Containers: []corev1.Container{{
							Name:            "kube-proxy",
							Image:           cfg.Image,
							ImagePullPolicy: corev1.PullIfNotPresent,
							Command: []string{agent.SkiffBinaryPath, "proxy",
								"--kubeconfig=/var/lib/kube-proxy/kubeconfig.conf",
								"--hostname-override=$(NODE_NAME)",
								"--host-root=/host",
								"--cluster-cidr=" + cfg.ClusterCIDR,
								"--proxy-mode=" + cmp.Or(cfg.ProxyMode, "iptables")},
							Env: []corev1.EnvVar{{Name: "NODE_NAME", ValueFrom: &corev1.EnvVarSource{
								FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "spec.nodeName"}}}},
							SecurityContext: &corev1.SecurityContext{Privileged: &privileged},
							VolumeMounts: []corev1.VolumeMount{
								{Name: "kube-proxy", MountPath: "/var/lib/kube-proxy"},
								{Name: "xtables-lock", MountPath: "/run/xtables.lock"},
								{Name: "host-root", MountPath: "/host"},
							},
						}},
						Volumes: []corev1.Volume{
							{Name: "kube-proxy", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
								LocalObjectReference: corev1.LocalObjectReference{Name: "kube-proxy"}}}},
							{Name: "xtables-lock", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
								Path: "/run/xtables.lock", Type: &hostPathFileOrCreate}}},
							{Name: "host-root", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}},
						},
					},
				},
			},
		},
	}
}

// coreDNSObjects: the coredns Deployment behind the kube-dns Service, in
// the shape of kubeadm's CoreDNS add-on, running `skiff dns`.
func coreDNSObjects(cfg addonConfig) []runtime.Object {
	const ns = metav1.NamespaceSystem
	labels := addonLabels("kube-dns")
	selector := map[string]string{"k8s-app": "kube-dns"}
	no, yes := false, true
	replicas := int32(2)
	svcLabels := map[string]string{"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
		"kubernetes.io/name": "CoreDNS", "addonmanager.kubernetes.io/mode": "Reconcile"}
	return []runtime.Object{
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "coredns", Namespace: ns, Labels: labels}},
		&rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: "system:coredns", Labels: labels},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"endpoints", "services", "pods", "namespaces"}, Verbs: []string{"list", "watch"}},
				{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
			},
		},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "system:coredns", Labels: labels},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:coredns"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "coredns", Namespace: ns}},
		},
		&corev1.Service{
			// `skiff dns` serves its counters at /metrics on the health
			// port, 8080, rather than CoreDNS's 9153.
			ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: ns, Labels: svcLabels,
				Annotations: map[string]string{"prometheus.io/port": "8080", "prometheus.io/scrape": "true"}},
			Spec: corev1.ServiceSpec{
				ClusterIP: cfg.DNSIP,
				Selector:  selector,
				Ports: []corev1.ServicePort{
					{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(53)},
					{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(53)},
				},
			},
		},
		&appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "coredns", Namespace: ns, Labels: labels},
			Spec: appsv1.DeploymentSpec{
				Replicas: &replicas,
				Selector: &metav1.LabelSelector{MatchLabels: selector},
				Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
					RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: ptrTo(intstr.FromInt32(1)), MaxSurge: ptrTo(intstr.FromString("25%"))}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: selector},
					Spec: corev1.PodSpec{
						PriorityClassName:  "system-cluster-critical",
						ServiceAccountName: "coredns",
						DNSPolicy:          corev1.DNSDefault,
						NodeSelector:       map[string]string{corev1.LabelOSStable: "linux"},
						Affinity: func() *corev1.Affinity {
							a := notSimulated()
							a.PodAntiAffinity = &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
								Weight: 100, PodAffinityTerm: corev1.PodAffinityTerm{
									LabelSelector: &metav1.LabelSelector{MatchLabels: selector}, TopologyKey: corev1.LabelHostname}}}}
							return a
						}(),
						Tolerations: []corev1.Toleration{
							{Key: "CriticalAddonsOnly", Operator: corev1.TolerationOpExists},
							{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule},
						},
						Containers: []corev1.Container{{
							Name:            "coredns",
							Image:           cfg.Image,
							ImagePullPolicy: corev1.PullIfNotPresent,
							Command: []string{agent.SkiffBinaryPath, "dns",
								"--address=:53",
								"--cluster-domain=" + cfg.ClusterDomain,
								"--health-address=:8080",
								"--ready-address=:8181"},
							Resources: corev1.ResourceRequirements{
								Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("170Mi")},
								Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("70Mi")},
							},
							Ports: []corev1.ContainerPort{
								{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
								{Name: "dns-tcp", ContainerPort: 53, Protocol: corev1.ProtocolTCP},
								{Name: "metrics", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
							},
							SecurityContext: &corev1.SecurityContext{
								AllowPrivilegeEscalation: &no,
								ReadOnlyRootFilesystem:   &yes,
								Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_BIND_SERVICE"},
									Drop: []corev1.Capability{"ALL"}},
							},
							LivenessProbe: &corev1.Probe{
								ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
									Path: "/health", Port: intstr.FromInt32(8080), Scheme: corev1.URISchemeHTTP}},
								InitialDelaySeconds: 60, TimeoutSeconds: 5, SuccessThreshold: 1, FailureThreshold: 5,
							},
							ReadinessProbe: &corev1.Probe{
								ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
									Path: "/ready", Port: intstr.FromInt32(8181), Scheme: corev1.URISchemeHTTP}},
								PeriodSeconds: 2, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 3,
							},
						}},
					},
				},
			},
		},
	}
}

func ptrTo[T any](v T) *T { return &v }

// applyAddons server-side applies every object with force, as the field
// manager skiff-addons: creating what is missing and restoring the fields
// it owns, leaving fields others set alone. Applying a converged object
// writes nothing.
func applyAddons(ctx context.Context, client kubernetes.Interface, objs []runtime.Object) error {
	force := true
	opts := metav1.PatchOptions{FieldManager: addonFieldManager, Force: &force}
	for _, obj := range objs {
		gvks, _, err := scheme.Scheme.ObjectKinds(obj)
		if err != nil {
			return fmt.Errorf("add-on object %T: %w", obj, err)
		}
		obj.GetObjectKind().SetGroupVersionKind(gvks[0])
		acc, err := meta.Accessor(obj)
		if err != nil {
			return fmt.Errorf("add-on object %T: %w", obj, err)
		}
		data, err := json.Marshal(obj)
		if err != nil {
			return fmt.Errorf("encoding %s %s: %w", gvks[0].Kind, acc.GetName(), err)
		}
		name, ns := acc.GetName(), acc.GetNamespace()
		switch obj.(type) {
		case *corev1.ServiceAccount:
			_, err = client.CoreV1().ServiceAccounts(ns).Patch(ctx, name, types.ApplyPatchType, data, opts)
		case *corev1.ConfigMap:
			_, err = client.CoreV1().ConfigMaps(ns).Patch(ctx, name, types.ApplyPatchType, data, opts)
		case *corev1.Service:
			_, err = client.CoreV1().Services(ns).Patch(ctx, name, types.ApplyPatchType, data, opts)
		case *rbacv1.ClusterRole:
			_, err = client.RbacV1().ClusterRoles().Patch(ctx, name, types.ApplyPatchType, data, opts)
		case *rbacv1.ClusterRoleBinding:
			_, err = client.RbacV1().ClusterRoleBindings().Patch(ctx, name, types.ApplyPatchType, data, opts)
		case *appsv1.DaemonSet:
			_, err = client.AppsV1().DaemonSets(ns).Patch(ctx, name, types.ApplyPatchType, data, opts)
		case *appsv1.Deployment:
			_, err = client.AppsV1().Deployments(ns).Patch(ctx, name, types.ApplyPatchType, data, opts)
		default:
			err = fmt.Errorf("no client for %T", obj)
		}
		if err != nil {
			return fmt.Errorf("applying add-on %s %s: %w", gvks[0].Kind, name, err)
		}
	}
	return nil
}

// runAddons applies the add-ons until ctx is done: at start (retrying
// with back-off until the API server takes them) and every addonResync
// after, so deleted or edited add-ons come back.
func runAddons(ctx context.Context, client kubernetes.Interface, cfg addonConfig) {
	objs := addonObjects(cfg)
	if len(objs) == 0 {
		return
	}
	logger := klog.FromContext(ctx).WithName("addons")
	wait := 200 * time.Millisecond
	for {
		err := applyAddons(ctx, client, objs)
		next := addonResync
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if wait >= 10*time.Second {
				logger.Error(err, "add-ons not applied; retrying", "in", wait)
			} else {
				logger.V(1).Info("add-ons not applied yet; retrying", "err", err, "in", wait)
			}
			next, wait = wait, min(2*wait, addonResync)
		} else {
			wait = 200 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		}
	}
}
