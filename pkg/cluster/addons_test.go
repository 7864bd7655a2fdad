package cluster

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func testAddonConfig() addonConfig {
	return addonConfig{Image: "skiff.local/skiff:v1.2.3", APIServerURL: "https://192.0.2.2:6443",
		ClusterCIDR: "10.244.0.0/16", DNSIP: "10.96.0.10", ClusterDomain: "cluster.local"}
}

func findObj[T runtime.Object](t *testing.T, objs []runtime.Object, name string) T {
	t.Helper()
	for _, o := range objs {
		if v, ok := o.(T); ok {
			if m, ok := any(v).(interface{ GetName() string }); ok && m.GetName() == name {
				return v
			}
		}
	}
	var zero T
	t.Fatalf("no %T %q among the add-on objects", zero, name)
	return zero
}

func TestAddonObjectsMatchKubeadmShapes(t *testing.T) {
	objs := addonObjects(testAddonConfig())

	// `kubectl cluster-info` lists kube-system Services labelled
	// kubernetes.io/cluster-service=true under their kubernetes.io/name.
	svc := findObj[*corev1.Service](t, objs, "kube-dns")
	if svc.Spec.ClusterIP != "10.96.0.10" || svc.Labels["kubernetes.io/cluster-service"] != "true" || svc.Labels["kubernetes.io/name"] != "CoreDNS" {
		t.Errorf("kube-dns Service: clusterIP %q labels %v", svc.Spec.ClusterIP, svc.Labels)
	}
	var names []string
	for _, p := range svc.Spec.Ports {
		names = append(names, p.Name+"/"+string(p.Protocol))
	}
	if want := []string{"dns/UDP", "dns-tcp/TCP"}; !slices.Equal(names, want) {
		t.Errorf("kube-dns ports %v, want %v", names, want)
	}

	dep := findObj[*appsv1.Deployment](t, objs, "coredns")
	if *dep.Spec.Replicas != 2 || dep.Spec.Template.Labels["k8s-app"] != "kube-dns" {
		t.Errorf("coredns: replicas %d labels %v", *dep.Spec.Replicas, dep.Spec.Template.Labels)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if c.Image != "skiff.local/skiff:v1.2.3" || c.Command[1] != "dns" || c.ReadinessProbe == nil || c.LivenessProbe == nil {
		t.Errorf("coredns container: %+v", c)
	}

	ds := findObj[*appsv1.DaemonSet](t, objs, "kube-proxy")
	ps := ds.Spec.Template.Spec
	if !ps.HostNetwork || ps.PriorityClassName != "system-node-critical" || len(ps.Tolerations) != 1 || ps.Tolerations[0].Operator != corev1.TolerationOpExists {
		t.Errorf("kube-proxy pod spec: hostNetwork %v priority %q tolerations %v", ps.HostNetwork, ps.PriorityClassName, ps.Tolerations)
	}
	cmd := strings.Join(ps.Containers[0].Command, " ")
	for _, want := range []string{" proxy ", "--host-root=/host", "--cluster-cidr=10.244.0.0/16", "--hostname-override=$(NODE_NAME)", "--proxy-mode=iptables"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("kube-proxy command %q lacks %q", cmd, want)
		}
	}
	cm := findObj[*corev1.ConfigMap](t, objs, "kube-proxy")
	if !strings.Contains(cm.Data["kubeconfig.conf"], "server: https://192.0.2.2:6443") {
		t.Errorf("kube-proxy kubeconfig does not name the advertised API server:\n%s", cm.Data["kubeconfig.conf"])
	}
	// Neither add-on may land on a simulated node.
	for _, spec := range []corev1.PodSpec{ps, dep.Spec.Template.Spec} {
		req := spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions[0]
		if req.Key != simulatedNodeLabel || req.Operator != corev1.NodeSelectorOpDoesNotExist {
			t.Errorf("affinity %+v does not keep pods off simulated nodes", req)
		}
	}
}

func TestDisabledAddonsAreLeftOut(t *testing.T) {
	cfg := testAddonConfig()
	cfg.Disabled = []string{AddonCoreDNS}
	for _, o := range addonObjects(cfg) {
		if d, ok := o.(*appsv1.Deployment); ok && d.Name == "coredns" {
			t.Fatal("coredns applied although disabled")
		}
	}
	cfg.Disabled = Addons()
	if objs := addonObjects(cfg); len(objs) != 0 {
		t.Fatalf("%d objects with every add-on disabled", len(objs))
	}
}
