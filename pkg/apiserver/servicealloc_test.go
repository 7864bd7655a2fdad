package apiserver_test

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/skiff-project/skiff/pkg/apiserver"
	"github.com/skiff-project/skiff/pkg/apiserver/apiservertest"
	"github.com/skiff-project/skiff/pkg/storage"
)

func svc(name string, typ corev1.ServiceType, ports ...corev1.ServicePort) *corev1.Service {
	if len(ports) == 0 {
		ports = []corev1.ServicePort{{Port: 80}}
	}
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{Type: typ, Ports: ports, Selector: map[string]string{"app": name}}}
}

// wantInvalid checks a 422 and its full message, which is what kubectl
// prints after "The Service ... is invalid: ".
func wantInvalid(t *testing.T, err error, want string) {
	t.Helper()
	if !apierrors.IsInvalid(err) {
		t.Fatalf("got %v, want 422 Invalid", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q\nwant it to contain %q", err.Error(), want)
	}
}

func TestServiceClusterIPAllocation(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	svcs := s.Client.CoreV1().Services("default")

	dns := svc("dns", "")
	dns.Spec.ClusterIP = "10.96.0.10"
	got, err := svcs.Create(ctx, dns, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create with a static clusterIP: %v", err)
	}
	if got.Spec.ClusterIP != "10.96.0.10" || fmt.Sprint(got.Spec.ClusterIPs) != "[10.96.0.10]" || fmt.Sprint(got.Spec.IPFamilies) != "[IPv4]" {
		t.Fatalf("static service: clusterIP %q clusterIPs %v ipFamilies %v", got.Spec.ClusterIP, got.Spec.ClusterIPs, got.Spec.IPFamilies)
	}

	dup := svc("dup", "")
	dup.Spec.ClusterIP = "10.96.0.10"
	_, err = svcs.Create(ctx, dup, metav1.CreateOptions{})
	wantInvalid(t, err, `Service "dup" is invalid: spec.clusterIPs: Invalid value: ["10.96.0.10"]: failed to allocate IP 10.96.0.10: provided IP is already allocated`)

	out := svc("out", "")
	out.Spec.ClusterIPs = []string{"10.200.0.1"}
	_, err = svcs.Create(ctx, out, metav1.CreateOptions{})
	wantInvalid(t, err, `spec.clusterIPs: Invalid value: ["10.200.0.1"]: failed to allocate IP 10.200.0.1: provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12`)

	// Dynamic addresses come from the upper band: the first 256 addresses
	// (10.96.0.1-10.96.1.0) stay free for static requests.
	web, err := svcs.Create(ctx, svc("web", ""), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ip := net.ParseIP(web.Spec.ClusterIP).To4()
	_, cidr, _ := net.ParseCIDR("10.96.0.0/12")
	if ip == nil || !cidr.Contains(ip) || (ip[1] == 96 && ip[2] == 0) || web.Spec.ClusterIPs[0] != web.Spec.ClusterIP {
		t.Fatalf("dynamic clusterIP %q (clusterIPs %v): want one in 10.96.0.0/12 above the static band", web.Spec.ClusterIP, web.Spec.ClusterIPs)
	}

	// The clusterIP is immutable (upstream's current wording).
	web.Spec.ClusterIP, web.Spec.ClusterIPs = "10.96.0.11", []string{"10.96.0.11"}
	_, err = svcs.Update(ctx, web, metav1.UpdateOptions{})
	wantInvalid(t, err, "spec.clusterIPs[0]: Invalid value: [\"10.96.0.11\"]: may not change once set")

	// An update that omits the clusterIP (kubectl apply of a manifest)
	// keeps it.
	cur, err := svcs.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := cur.Spec.ClusterIP
	cur.Spec.ClusterIP, cur.Spec.ClusterIPs = "", nil
	cur.Labels = map[string]string{"touched": "yes"}
	upd, err := svcs.Update(ctx, cur, metav1.UpdateOptions{})
	if err != nil || upd.Spec.ClusterIP != want {
		t.Fatalf("update without clusterIP: %v, clusterIP %q, want %q", err, upd.Spec.ClusterIP, want)
	}

	// Headless: no address; ExternalName: none at all.
	headless := svc("headless", "")
	headless.Spec.ClusterIP = corev1.ClusterIPNone
	h, err := svcs.Create(ctx, headless, metav1.CreateOptions{})
	if err != nil || h.Spec.ClusterIP != "None" || fmt.Sprint(h.Spec.ClusterIPs) != "[None]" {
		t.Fatalf("headless: %v, clusterIP %q clusterIPs %v", err, h.Spec.ClusterIP, h.Spec.ClusterIPs)
	}
	ext := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "ext"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"}}
	e, err := svcs.Create(ctx, ext, metav1.CreateOptions{})
	if err != nil || e.Spec.ClusterIP != "" || len(e.Spec.ClusterIPs) != 0 {
		t.Fatalf("ExternalName: %v, clusterIP %q clusterIPs %v", err, e.Spec.ClusterIP, e.Spec.ClusterIPs)
	}

	// Only one address family here.
	ds := svc("ds", "")
	ds.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
	_, err = svcs.Create(ctx, ds, metav1.CreateOptions{})
	wantInvalid(t, err, `spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not configured for dual-stack services`)
}

func TestServiceReleasesIPOnDeleteAndFailedCreate(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	svcs := s.Client.CoreV1().Services("default")

	// The IP is released once the Service is gone.
	a := svc("a", "")
	a.Spec.ClusterIP = "10.96.0.20"
	if _, err := svcs.Create(ctx, a, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := svcs.Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	a2 := svc("a2", "")
	a2.Spec.ClusterIP = "10.96.0.20"
	if _, err := svcs.Create(ctx, a2, metav1.CreateOptions{}); err != nil {
		t.Fatalf("reuse of a deleted Service's IP: %v", err)
	}

	// A create that fails after the IP was taken (its node port is taken)
	// gives the IP back.
	np := svc("np", corev1.ServiceTypeNodePort, corev1.ServicePort{Port: 80, NodePort: 30080})
	if _, err := svcs.Create(ctx, np, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bad := svc("bad", corev1.ServiceTypeNodePort, corev1.ServicePort{Port: 80, NodePort: 30080})
	bad.Spec.ClusterIP = "10.96.0.30"
	_, err := svcs.Create(ctx, bad, metav1.CreateOptions{})
	wantInvalid(t, err, `Service "bad" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated`)
	good := svc("good", "")
	good.Spec.ClusterIP = "10.96.0.30"
	if _, err := svcs.Create(ctx, good, metav1.CreateOptions{}); err != nil {
		t.Fatalf("the failed create leaked 10.96.0.30: %v", err)
	}

	// A create that fails in storage (the name exists) gives both back.
	again := svc("np", corev1.ServiceTypeNodePort, corev1.ServicePort{Port: 80, NodePort: 30090})
	again.Spec.ClusterIP = "10.96.0.40"
	if _, err := svcs.Create(ctx, again, metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create of an existing name: %v, want AlreadyExists", err)
	}
	other := svc("other", corev1.ServiceTypeNodePort, corev1.ServicePort{Port: 80, NodePort: 30090})
	other.Spec.ClusterIP = "10.96.0.40"
	if _, err := svcs.Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatalf("AlreadyExists leaked the IP or node port: %v", err)
	}

	// Dry runs take nothing but are refused like real requests.
	dry := svc("dry", "")
	dry.Spec.ClusterIP = "10.96.0.50"
	if _, err := svcs.Create(ctx, dry, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svcs.Create(ctx, dry, metav1.CreateOptions{}); err != nil {
		t.Fatalf("the dry run kept its IP: %v", err)
	}
	dry2 := svc("dry2", "")
	dry2.Spec.ClusterIP = "10.96.0.50"
	_, err = svcs.Create(ctx, dry2, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	wantInvalid(t, err, "provided IP is already allocated")
}

func TestServiceNodePorts(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	svcs := s.Client.CoreV1().Services("default")

	auto, err := svcs.Create(ctx, svc("auto", corev1.ServiceTypeNodePort,
		corev1.ServicePort{Name: "http", Port: 80}, corev1.ServicePort{Name: "https", Port: 443}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p0, p1 := auto.Spec.Ports[0].NodePort, auto.Spec.Ports[1].NodePort
	if p0 < 30000 || p0 > 32767 || p1 < 30000 || p1 > 32767 || p0 == p1 {
		t.Fatalf("node ports %d, %d: want two distinct ports in 30000-32767", p0, p1)
	}

	// Explicit requests: taken, out of range.
	_, err = svcs.Create(ctx, svc("taken", corev1.ServiceTypeNodePort, corev1.ServicePort{Port: 80, NodePort: p0}), metav1.CreateOptions{})
	wantInvalid(t, err, fmt.Sprintf("spec.ports[0].nodePort: Invalid value: %d: provided port is already allocated", p0))
	_, err = svcs.Create(ctx, svc("range", corev1.ServiceTypeNodePort, corev1.ServicePort{Port: 80, NodePort: 8080}), metav1.CreateOptions{})
	wantInvalid(t, err, "spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767")

	// TCP and UDP of one port share a node port, as upstream.
	dns, err := svcs.Create(ctx, svc("dnsnp", corev1.ServiceTypeNodePort,
		corev1.ServicePort{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}, corev1.ServicePort{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP}), metav1.CreateOptions{})
	if err != nil || dns.Spec.Ports[0].NodePort == 0 || dns.Spec.Ports[0].NodePort != dns.Spec.Ports[1].NodePort {
		t.Fatalf("TCP+UDP 53: %v, node ports %d and %d, want one shared", err, dns.Spec.Ports[0].NodePort, dns.Spec.Ports[1].NodePort)
	}

	// Patching NodePort -> ClusterIP drops and releases the node ports.
	patch := []byte(`{"spec":{"type":"ClusterIP"}}`)
	cip, err := svcs.Patch(ctx, "auto", types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		t.Fatalf("NodePort -> ClusterIP: %v", err)
	}
	if cip.Spec.Ports[0].NodePort != 0 || cip.Spec.Ports[1].NodePort != 0 || cip.Spec.ExternalTrafficPolicy != "" || cip.Spec.ClusterIP != auto.Spec.ClusterIP {
		t.Fatalf("after NodePort -> ClusterIP: ports %+v etp %q clusterIP %q (was %q)", cip.Spec.Ports, cip.Spec.ExternalTrafficPolicy, cip.Spec.ClusterIP, auto.Spec.ClusterIP)
	}
	if _, err := svcs.Create(ctx, svc("reuse", corev1.ServiceTypeNodePort, corev1.ServicePort{Port: 80, NodePort: p0}), metav1.CreateOptions{}); err != nil {
		t.Fatalf("node port %d not released by the type change: %v", p0, err)
	}
	// And back: ClusterIP -> NodePort allocates again.
	back, err := svcs.Patch(ctx, "auto", types.MergePatchType, []byte(`{"spec":{"type":"NodePort"}}`), metav1.PatchOptions{})
	if err != nil || back.Spec.Ports[0].NodePort == 0 || back.Spec.Ports[0].NodePort == p0 {
		t.Fatalf("ClusterIP -> NodePort: %v, node port %d (p0 %d is taken by reuse)", err, back.Spec.Ports[0].NodePort, p0)
	}
	// An update that omits node ports keeps them (matched by name).
	keep := back.DeepCopy()
	keep.Spec.Ports[0].NodePort, keep.Spec.Ports[1].NodePort = 0, 0
	kept, err := svcs.Update(ctx, keep, metav1.UpdateOptions{})
	if err != nil || kept.Spec.Ports[0].NodePort != back.Spec.Ports[0].NodePort || kept.Spec.Ports[1].NodePort != back.Spec.Ports[1].NodePort {
		t.Fatalf("update without node ports: %v, got %+v want %+v", err, kept.Spec.Ports, back.Spec.Ports)
	}
	// Deleting releases them.
	if err := svcs.Delete(ctx, "auto", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	np := back.Spec.Ports[1].NodePort
	if _, err := svcs.Create(ctx, svc("after-delete", corev1.ServiceTypeNodePort, corev1.ServicePort{Port: 80, NodePort: np}), metav1.CreateOptions{}); err != nil {
		t.Fatalf("node port %d not released by delete: %v", np, err)
	}
}

func TestServiceLoadBalancerHealthCheckNodePort(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	svcs := s.Client.CoreV1().Services("default")
	lb := svc("lb", corev1.ServiceTypeLoadBalancer)
	lb.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	got, err := svcs.Create(ctx, lb, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hc, np := got.Spec.HealthCheckNodePort, got.Spec.Ports[0].NodePort
	if hc < 30000 || hc > 32767 || np < 30000 || hc == np {
		t.Fatalf("healthCheckNodePort %d, nodePort %d: want two distinct ports in range", hc, np)
	}
	// No health check port without Local.
	plain, err := svcs.Create(ctx, svc("lb2", corev1.ServiceTypeLoadBalancer), metav1.CreateOptions{})
	if err != nil || plain.Spec.HealthCheckNodePort != 0 {
		t.Fatalf("Cluster-policy LoadBalancer: %v, healthCheckNodePort %d", err, plain.Spec.HealthCheckNodePort)
	}
	// allocateLoadBalancerNodePorts=false: no node ports.
	nonp := svc("lb3", corev1.ServiceTypeLoadBalancer)
	nonp.Spec.AllocateLoadBalancerNodePorts = ptr.To(false)
	n, err := svcs.Create(ctx, nonp, metav1.CreateOptions{})
	if err != nil || n.Spec.Ports[0].NodePort != 0 {
		t.Fatalf("allocateLoadBalancerNodePorts=false: %v, nodePort %d", err, n.Spec.Ports[0].NodePort)
	}
	// Local -> Cluster releases the health check port.
	if _, err := svcs.Patch(ctx, "lb", types.MergePatchType, []byte(`{"spec":{"externalTrafficPolicy":"Cluster"}}`), metav1.PatchOptions{}); err != nil {
		t.Fatalf("Local -> Cluster: %v", err)
	}
	if _, err := svcs.Create(ctx, svc("hc-reuse", corev1.ServiceTypeNodePort, corev1.ServicePort{Port: 80, NodePort: hc}), metav1.CreateOptions{}); err != nil {
		t.Fatalf("health check port %d not released: %v", hc, err)
	}
}

func TestServiceTypeChangesExternalName(t *testing.T) {
	s := apiservertest.Start(t)
	ctx := context.Background()
	svcs := s.Client.CoreV1().Services("default")
	a := svc("a", "")
	a.Spec.ClusterIP = "10.96.0.60"
	if _, err := svcs.Create(ctx, a, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// ClusterIP -> ExternalName: the IP is dropped and released.
	en, err := svcs.Patch(ctx, "a", types.MergePatchType, []byte(`{"spec":{"type":"ExternalName","externalName":"example.com"}}`), metav1.PatchOptions{})
	if err != nil || en.Spec.ClusterIP != "" || len(en.Spec.ClusterIPs) != 0 {
		t.Fatalf("ClusterIP -> ExternalName: %v, clusterIP %q clusterIPs %v", err, en.Spec.ClusterIP, en.Spec.ClusterIPs)
	}
	b := svc("b", "")
	b.Spec.ClusterIP = "10.96.0.60"
	if _, err := svcs.Create(ctx, b, metav1.CreateOptions{}); err != nil {
		t.Fatalf("10.96.0.60 not released by the change to ExternalName: %v", err)
	}
	// ExternalName -> ClusterIP allocates; an explicit taken one is refused.
	_, err = svcs.Patch(ctx, "a", types.MergePatchType, []byte(`{"spec":{"type":"ClusterIP","externalName":null,"clusterIP":"10.96.0.60"}}`), metav1.PatchOptions{})
	wantInvalid(t, err, "failed to allocate IP 10.96.0.60: provided IP is already allocated")
	ci, err := svcs.Patch(ctx, "a", types.MergePatchType, []byte(`{"spec":{"type":"ClusterIP","externalName":null}}`), metav1.PatchOptions{})
	if err != nil || net.ParseIP(ci.Spec.ClusterIP) == nil || fmt.Sprint(ci.Spec.IPFamilies) != "[IPv4]" {
		t.Fatalf("ExternalName -> ClusterIP: %v, clusterIP %q ipFamilies %v", err, ci.Spec.ClusterIP, ci.Spec.IPFamilies)
	}
}

// apiServerOn runs an API server over store with cfg's ranges and returns a
// client and a stop function (also run at cleanup; idempotent).
func apiServerOn(t *testing.T, store *storage.Store, cfg apiserver.Config) (kubernetes.Interface, func()) {
	t.Helper()
	cfg.Store = store
	cfg.Authenticator = apiserver.NewTokenAuthenticator(map[string]*apiserver.UserInfo{
		apiservertest.AdminToken: {Name: "admin", Groups: []string{"system:masters"}},
	})
	api, err := apiserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewTLSServer(api.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	if err := api.Start(ctx); err != nil {
		cancel()
		hs.Close()
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(&rest.Config{Host: hs.URL, BearerToken: apiservertest.AdminToken,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true}, QPS: 1000, Burst: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); hs.Close() }) }
	t.Cleanup(stop)
	return client, stop
}

// smallRanges: 10.0.0.0/27 has 30 addresses (16 static, 14 dynamic) and
// 30000-30019 20 ports, so a test can fill them.
func smallRanges() apiserver.Config {
	_, cidr, _ := net.ParseCIDR("10.0.0.0/27")
	return apiserver.Config{ServiceClusterIPRange: cidr, ServiceNodePortRange: utilnet.PortRange{Base: 30000, Size: 20}}
}

// createUntilFull creates NodePort Services until the range is full,
// returning the IPs and ports they got and the refusal.
func createUntilFull(t *testing.T, client kubernetes.Interface, prefix string, ips, ports map[string]string) error {
	t.Helper()
	for i := 0; ; i++ {
		name := fmt.Sprintf("%s-%d", prefix, i)
		got, err := client.CoreV1().Services("default").Create(context.Background(), svc(name, corev1.ServiceTypeNodePort), metav1.CreateOptions{})
		if err != nil {
			return err
		}
		if prev, ok := ips[got.Spec.ClusterIP]; ok {
			t.Fatalf("%s got clusterIP %s, already given to %s", name, got.Spec.ClusterIP, prev)
		}
		ips[got.Spec.ClusterIP] = name
		np := fmt.Sprint(got.Spec.Ports[0].NodePort)
		if prev, ok := ports[np]; ok {
			t.Fatalf("%s got node port %s, already given to %s", name, np, prev)
		}
		ports[np] = name
		if i > 100 {
			t.Fatal("the range never filled up")
		}
	}
}

// A new API server on the same etcd data sees every allocation: no address
// or port is handed out twice after a restart, and the ranges fill up at
// exactly their size.
func TestServiceAllocationsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	ips, ports := map[string]string{}, map[string]string{}
	for round := 0; round < 2; round++ {
		ctx, cancel := context.WithCancel(context.Background())
		emb, err := storage.StartEmbedded(ctx, storage.EmbeddedConfig{DataDir: dir})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		store := storage.New(emb.Client(), storage.Options{})
		client, stop := apiServerOn(t, store, smallRanges())
		if round == 0 {
			for i := 0; i < 12; i++ {
				name := fmt.Sprintf("first-%d", i)
				got, err := client.CoreV1().Services("default").Create(ctx, svc(name, corev1.ServiceTypeNodePort), metav1.CreateOptions{})
				if err != nil {
					t.Fatal(err)
				}
				ips[got.Spec.ClusterIP] = name
				ports[fmt.Sprint(got.Spec.Ports[0].NodePort)] = name
			}
		} else {
			err := createUntilFull(t, client, "second", ips, ports)
			// 20 node ports run out before 30 addresses.
			if !apierrors.IsInternalError(err) || !strings.Contains(err.Error(), "failed to allocate a nodePort: range is full") {
				t.Fatalf("filling up after restart: %v, want the node port range to be full", err)
			}
			if len(ports) != 20 {
				t.Fatalf("%d node ports handed out in total, want all 20", len(ports))
			}
		}
		stop()
		store.Close()
		if err := emb.Close(); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
}

func TestServiceIPRangeFull(t *testing.T) {
	_, cidr, _ := net.ParseCIDR("10.0.0.0/28") // 14 addresses, no static band
	s, _ := apiServerOn(t, newStore(t), apiserver.Config{ServiceClusterIPRange: cidr})
	for i := 0; i < 14; i++ {
		if _, err := s.CoreV1().Services("default").Create(context.Background(), svc(fmt.Sprintf("s%d", i), ""), metav1.CreateOptions{}); err != nil {
			t.Fatalf("service %d of 14: %v", i, err)
		}
	}
	_, err := s.CoreV1().Services("default").Create(context.Background(), svc("s14", ""), metav1.CreateOptions{})
	if !apierrors.IsInternalError(err) || !strings.Contains(err.Error(), "failed to allocate a serviceIP: range is full") {
		t.Fatalf("15th service in a /28: %v, want 500 %q", err, "failed to allocate a serviceIP: range is full")
	}
}

func newStore(t *testing.T) *storage.Store {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	emb, err := storage.StartEmbedded(ctx, storage.EmbeddedConfig{DataDir: t.TempDir()})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	store := storage.New(emb.Client(), storage.Options{})
	t.Cleanup(func() { store.Close(); _ = emb.Close(); cancel() })
	return store
}

// Two API servers on one etcd (an HA control plane) creating Services at
// the same time never hand out one address or port twice.
func TestServiceAllocationTwoServersConcurrently(t *testing.T) {
	store := newStore(t)
	a, _ := apiServerOn(t, store, smallRanges())
	b, _ := apiServerOn(t, store, smallRanges())
	var mu sync.Mutex
	ips, ports := map[string]string{}, map[string]string{}
	var full int
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		client := a
		if w%2 == 1 {
			client = b
		}
		wg.Go(func() {
			for i := 0; i < 5; i++ {
				name := fmt.Sprintf("w%d-%d", w, i)
				got, err := client.CoreV1().Services("default").Create(context.Background(), svc(name, corev1.ServiceTypeNodePort), metav1.CreateOptions{})
				mu.Lock()
				switch {
				case err != nil && strings.Contains(err.Error(), "range is full"):
					full++
				case err != nil:
					t.Errorf("create %s: %v", name, err)
				default:
					for key, m := range map[string]map[string]string{got.Spec.ClusterIP: ips, fmt.Sprint(got.Spec.Ports[0].NodePort): ports} {
						if prev, ok := m[key]; ok {
							t.Errorf("%s and %s both got %s", prev, name, key)
						}
						m[key] = name
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(ports) != 20 || full != 10 {
		t.Fatalf("%d services created and %d refused as full; want 20 and 10", len(ports), full)
	}
}
