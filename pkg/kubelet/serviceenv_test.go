package kubelet

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

func serviceLister(t *testing.T, svcs ...*corev1.Service) corelisters.ServiceLister {
	t.Helper()
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, s := range svcs {
		if err := idx.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	return corelisters.NewServiceLister(idx)
}

func TestServiceEnvFollowsUpstreamNames(t *testing.T) {
	no := false
	master := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.1", Ports: []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP}}}}
	web := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "my-web", Namespace: "apps"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.5.6", Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}, {Name: "dns-udp", Port: 53, Protocol: corev1.ProtocolUDP}}}}
	headless := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "apps"},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Ports: []corev1.ServicePort{{Port: 5432}}}}
	other := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere", Namespace: "other"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.7.7", Ports: []corev1.ServicePort{{Port: 1}}}}
	lister := serviceLister(t, master, web, headless, other)

	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "apps"}}
	got, err := serviceEnv(lister, pod)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"KUBERNETES_SERVICE_HOST":       "10.96.0.1",
		"KUBERNETES_SERVICE_PORT":       "443",
		"KUBERNETES_SERVICE_PORT_HTTPS": "443",
		"KUBERNETES_PORT":               "tcp://10.96.0.1:443",
		"KUBERNETES_PORT_443_TCP":       "tcp://10.96.0.1:443",
		"KUBERNETES_PORT_443_TCP_PROTO": "tcp",
		"KUBERNETES_PORT_443_TCP_PORT":  "443",
		"KUBERNETES_PORT_443_TCP_ADDR":  "10.96.0.1",
		"MY_WEB_SERVICE_HOST":           "10.96.5.6",
		"MY_WEB_SERVICE_PORT":           "80",
		"MY_WEB_SERVICE_PORT_HTTP":      "80",
		"MY_WEB_SERVICE_PORT_DNS_UDP":   "53",
		"MY_WEB_PORT":                   "tcp://10.96.5.6:80",
		"MY_WEB_PORT_80_TCP":            "tcp://10.96.5.6:80",
		"MY_WEB_PORT_80_TCP_PROTO":      "tcp",
		"MY_WEB_PORT_80_TCP_PORT":       "80",
		"MY_WEB_PORT_80_TCP_ADDR":       "10.96.5.6",
		"MY_WEB_PORT_53_UDP":            "udp://10.96.5.6:53",
		"MY_WEB_PORT_53_UDP_PROTO":      "udp",
		"MY_WEB_PORT_53_UDP_PORT":       "53",
		"MY_WEB_PORT_53_UDP_ADDR":       "10.96.5.6",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("service env (-want +got):\n%s", diff)
	}

	// enableServiceLinks: false keeps only the API server's variables.
	pod.Spec.EnableServiceLinks = &no
	got, err = serviceEnv(lister, pod)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["MY_WEB_SERVICE_HOST"]; ok || got["KUBERNETES_SERVICE_HOST"] != "10.96.0.1" {
		t.Errorf("enableServiceLinks=false: %v", got)
	}
}

func TestResolverPutsServiceEnvFirstAndLetsTheContainerWin(t *testing.T) {
	master := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.1", Ports: []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP}}}}
	synced := false
	r := newEnvResolver(fake.NewClientset(), serviceLister(t, master), func() bool { return synced })
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "u1"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Env: []corev1.EnvVar{
			{Name: "KUBERNETES_SERVICE_PORT", Value: "mine"}, {Name: "URL", Value: "https://$(KUBERNETES_SERVICE_HOST)"}}}}}}

	if _, errs := r.resolve(context.Background(), pod); errs["c"] == nil {
		t.Fatal("resolved before the service cache synced; want an error")
	}
	synced = true
	out, errs := r.resolve(context.Background(), pod)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	env := out.Spec.Containers[0].Env
	pos := map[string]int{}
	for i, e := range env {
		if _, dup := pos[e.Name]; dup {
			t.Fatalf("%s given twice: %v", e.Name, env)
		}
		pos[e.Name] = i
	}
	if env[pos["KUBERNETES_SERVICE_PORT"]].Value != "mine" {
		t.Errorf("the container's own variable lost to the service's: %v", env)
	}
	if pos["KUBERNETES_SERVICE_HOST"] > pos["URL"] {
		t.Errorf("service variables must come first so $(VAR) can use them: %v", env)
	}
	if pod.Spec.Containers[0].Env[0].Value != "mine" || len(pod.Spec.Containers[0].Env) != 2 {
		t.Errorf("resolve modified its input: %v", pod.Spec.Containers[0].Env)
	}
}
