package cluster

import (
	"context"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/skiff-project/skiff/pkg/apiserver/apiservertest"
	"github.com/skiff-project/skiff/pkg/kubelet"
	"github.com/skiff-project/skiff/pkg/storage"
)

var cpT0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func testServerConfig() ServerConfig {
	cfg := DefaultServerConfig()
	cfg.DataDir = "/var/lib/skiff"
	cfg.BindAddress = netip.MustParseAddr("0.0.0.0")
	cfg.AdvertiseAddress = netip.MustParseAddr("192.168.1.10")
	return cfg
}

func TestControlPlaneContainers(t *testing.T) {
	cfg := testServerConfig()
	got := controlPlaneContainers(cfg, "cp-1", true)
	base := []string{"skiff", "server", "--data-dir=/var/lib/skiff", "--node-name=cp-1"}
	want := map[string][]string{
		"etcd": base,
		"kube-apiserver": append(slices.Clone(base), "--bind-address=0.0.0.0", "--secure-port=6443",
			"--advertise-address=192.168.1.10", "--service-cluster-ip-range=10.96.0.0/12",
			"--service-node-port-range=30000-32767", "--authorization-mode=RBAC",
			"--default-not-ready-toleration-seconds=300", "--default-unreachable-toleration-seconds=300"),
		"kube-controller-manager": append(slices.Clone(base), "--cluster-cidr=10.244.0.0/16", "--node-monitor-grace-period=40s",
			"--default-not-ready-toleration-seconds=300", "--default-unreachable-toleration-seconds=300"),
		"kube-scheduler": base,
	}
	commands := map[string][]string{}
	for name, c := range got {
		commands[name] = c.Command
		if c.Name != name || c.Image != SkiffImage() {
			t.Errorf("%s: container %q image %q", name, c.Name, c.Image)
		}
	}
	if diff := cmp.Diff(want, commands); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
	if p := got["kube-apiserver"].ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Port.IntValue() != 6443 {
		t.Errorf("kube-apiserver readiness probe %+v, want /readyz on 6443", p)
	}

	// An external etcd: no etcd pod, and the API server shows the flags.
	cfg.EtcdServers = []string{"https://10.0.0.1:2379", "https://10.0.0.2:2379"}
	cfg.EtcdCAFile = "/etc/etcd/ca.crt"
	cfg.LogLevel = 2
	got = controlPlaneContainers(cfg, "cp-1", false)
	if _, ok := got["etcd"]; ok {
		t.Error("an etcd pod for an external etcd")
	}
	cmd := strings.Join(got["kube-apiserver"].Command, " ")
	for _, f := range []string{"--etcd-servers=https://10.0.0.1:2379,https://10.0.0.2:2379", "--etcd-cafile=/etc/etcd/ca.crt", "--log-level=2"} {
		if !strings.Contains(cmd, f) {
			t.Errorf("kube-apiserver command %q lacks %s", cmd, f)
		}
	}
}

func TestControlPlanePod(t *testing.T) {
	c := controlPlaneContainers(testServerConfig(), "cp-1", true)["kube-apiserver"]
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cp-1", UID: "node-uid"}}
	withNode := controlPlanePod(c, "cp-1", node)
	noNode := controlPlanePod(c, "cp-1", nil)

	hash := withNode.Annotations[kubelet.ConfigHashAnnotationKey]
	if len(hash) != 32 {
		t.Fatalf("hash %q, want 32 hex digits", hash)
	}
	want := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "kube-apiserver-cp-1", Namespace: "kube-system",
			Labels: map[string]string{"component": "kube-apiserver", "tier": "control-plane"},
			Annotations: map[string]string{
				"kubernetes.io/config.source": "skiff-server",
				"kubernetes.io/config.hash":   hash,
				"kubernetes.io/config.mirror": hash,
			},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: "cp-1", UID: "node-uid", Controller: new(true)}},
		},
		Spec: corev1.PodSpec{
			NodeName: "cp-1", HostNetwork: true, PriorityClassName: "system-node-critical",
			Containers:  []corev1.Container{c},
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}},
		},
	}
	if diff := cmp.Diff(want, withNode); diff != "" {
		t.Errorf("pod (-want +got):\n%s", diff)
	}
	// Without a Node (--disable-agent): no owner, same hash.
	want.OwnerReferences = nil
	if diff := cmp.Diff(want, noNode); diff != "" {
		t.Errorf("pod without a node (-want +got):\n%s", diff)
	}
	// Other flags, other hash.
	c.Command = append(c.Command, "--tls-san=example.com")
	if controlPlanePod(c, "cp-1", node).Annotations[kubelet.ConfigHashAnnotationKey] == hash {
		t.Error("the hash did not change with the command")
	}
}

func TestControlPlanePodStatus(t *testing.T) {
	c := controlPlaneContainers(testServerConfig(), "cp-1", true)["kube-scheduler"]
	pod := controlPlanePod(c, "cp-1", nil)
	pod.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: corev1.PodQOSBestEffort}
	start := cpT0.Add(-time.Minute + 300*time.Millisecond)
	at := func(d time.Duration) metav1.Time { return metav1.NewTime(cpT0.Add(d)) }
	startT := metav1.NewTime(cpT0.Add(-time.Minute))
	want := func(ready bool, readySince metav1.Time) corev1.PodStatus {
		cond := corev1.PodCondition{Status: corev1.ConditionTrue, LastTransitionTime: readySince}
		msg := ""
		if !ready {
			cond.Status, cond.Reason, cond.Message = corev1.ConditionFalse, "ContainersNotReady", "containers with unready status: [kube-scheduler]"
			msg = "no leader"
		}
		podReady, containersReady := cond, cond
		podReady.Type, containersReady.Type = corev1.PodReady, corev1.ContainersReady
		return corev1.PodStatus{
			Phase:   corev1.PodRunning,
			Message: msg,
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodReadyToStartContainers, Status: corev1.ConditionTrue, LastTransitionTime: at(0)},
				{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: at(0)},
				podReady, containersReady,
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: at(0)},
			},
			HostIP: "192.168.1.10", HostIPs: []corev1.HostIP{{IP: "192.168.1.10"}},
			PodIP: "192.168.1.10", PodIPs: []corev1.PodIP{{IP: "192.168.1.10"}},
			StartTime: &startT,
			QOSClass:  corev1.PodQOSBestEffort,
			ContainerStatuses: []corev1.ContainerStatus{{
				Name: "kube-scheduler", Image: c.Image, Ready: ready, Started: new(true),
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: startT}},
			}},
		}
	}
	ips := []string{"192.168.1.10"}
	steps := []struct {
		name   string
		at     time.Duration
		health componentHealth
		want   corev1.PodStatus
	}{
		{"not ready at first", 0, componentHealth{Reason: "no leader"}, want(false, at(0))},
		{"unchanged: same status, same times", 5 * time.Second, componentHealth{Reason: "no leader"}, want(false, at(0))},
		{"ready: Ready transitions", 10 * time.Second, componentHealth{Ready: true}, want(true, at(10*time.Second))},
		{"still ready", time.Minute, componentHealth{Ready: true}, want(true, at(10*time.Second))},
	}
	for _, s := range steps {
		got := controlPlanePodStatus(pod, s.health, ips, start, cpT0.Add(s.at+400*time.Millisecond))
		if diff := cmp.Diff(s.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", s.name, diff)
		}
		pod.Status = got
	}
}

// fakePods is a controlPlanePods over a fake clientset with a settable
// health snapshot.
type fakePods struct {
	r      *controlPlanePods
	client *fake.Clientset
	clock  *clocktesting.FakeClock
	mu     sync.Mutex
	health map[string]componentHealth
}

func newFakePods(t *testing.T) *fakePods {
	f := &fakePods{client: fake.NewClientset(), clock: clocktesting.NewFakeClock(cpT0)}
	f.health = map[string]componentHealth{}
	f.r = &controlPlanePods{
		client: f.client, nodeName: "cp-1", fallbackIP: "192.168.1.10",
		containers: controlPlaneContainers(testServerConfig(), "cp-1", true),
		start:      cpT0.Add(-time.Minute), clock: f.clock,
		health: func(context.Context) map[string]componentHealth {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.health
		},
	}
	return f
}

// writes returns the mutating requests since the last call as
// "verb resource[/subresource] name".
func (f *fakePods) writes() []string {
	var out []string
	for _, a := range f.client.Actions() {
		switch a.GetVerb() {
		case "get", "list", "watch":
			continue
		}
		s := a.GetVerb() + " " + a.GetResource().Resource
		if a.GetSubresource() != "" {
			s += "/" + a.GetSubresource()
		}
		out = append(out, s)
	}
	f.client.ClearActions()
	return out
}

func (f *fakePods) get(t *testing.T, name string) *corev1.Pod {
	t.Helper()
	p, err := f.client.CoreV1().Pods("kube-system").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// TestControlPlanePodsSync follows the pods through the life of a server:
// created without an owner while the Node does not exist, converged with
// zero writes, adopted by the Node once it exists, replaced when a user
// deletes one, and their Ready condition following each health change.
func TestControlPlanePodsSync(t *testing.T) {
	ctx := context.Background()
	f := newFakePods(t)
	f.health = map[string]componentHealth{
		"etcd": {Ready: true}, "kube-apiserver": {Ready: true},
		"kube-controller-manager": {Ready: true}, "kube-scheduler": {Reason: "no leader"},
	}
	sync := func(name string, want []string) {
		t.Helper()
		f.clock.Step(controlPlanePodsInterval)
		if err := f.r.sync(ctx); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(want, f.writes()); diff != "" {
			t.Errorf("%s: writes (-want +got):\n%s", name, diff)
		}
	}
	four := func(verbs ...string) []string {
		var out []string
		for range 4 {
			out = append(out, verbs...)
		}
		return out
	}

	sync("first sync creates every pod", four("create pods", "update pods/status"))
	for _, name := range []string{"etcd-cp-1", "kube-apiserver-cp-1", "kube-controller-manager-cp-1"} {
		if p := f.get(t, name); !ready(p) || p.Status.Phase != corev1.PodRunning || len(p.OwnerReferences) != 0 {
			t.Errorf("%s: phase %s ready %v owners %v, want Running, Ready, no owner", name, p.Status.Phase, ready(p), p.OwnerReferences)
		}
	}
	if p := f.get(t, "kube-scheduler-cp-1"); ready(p) || p.Status.Message != "no leader" {
		t.Errorf("kube-scheduler: ready %v message %q, want not ready: no leader", ready(p), p.Status.Message)
	}
	sync("converged", nil)

	if _, err := f.client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cp-1", UID: "node-uid"},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.5"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.client.ClearActions()
	sync("the node appeared: owner and IPs", four("update pods", "update pods/status"))
	if p := f.get(t, "kube-apiserver-cp-1"); len(p.OwnerReferences) != 1 || p.OwnerReferences[0].UID != "node-uid" || p.Status.PodIP != "10.0.0.5" {
		t.Errorf("kube-apiserver: owners %v podIP %s, want the node's", p.OwnerReferences, p.Status.PodIP)
	}
	sync("converged again", nil)

	f.mu.Lock()
	f.health = map[string]componentHealth{
		"etcd": {Ready: true}, "kube-apiserver": {Ready: true},
		"kube-controller-manager": {Ready: true}, "kube-scheduler": {Ready: true},
	}
	f.mu.Unlock()
	sync("the scheduler became healthy", []string{"update pods/status"})
	if p := f.get(t, "kube-scheduler-cp-1"); !ready(p) || p.Status.Message != "" {
		t.Errorf("kube-scheduler: ready %v message %q, want ready", ready(p), p.Status.Message)
	}

	if err := f.client.CoreV1().Pods("kube-system").Delete(ctx, "etcd-cp-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.client.ClearActions()
	sync("a deleted pod is created again", []string{"create pods", "update pods/status"})

	// A graceful deletion that nobody finishes: replaced at once.
	p := f.get(t, "kube-apiserver-cp-1")
	p.DeletionTimestamp = new(metav1.NewTime(cpT0))
	if _, err := f.client.CoreV1().Pods("kube-system").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.client.ClearActions()
	sync("a terminating pod is replaced", []string{"delete pods", "create pods", "update pods/status"})
	sync("converged at last", nil)
}

// countingTransport counts the requests that are not reads.
type countingTransport struct {
	next   http.RoundTripper
	mu     sync.Mutex
	writes []string
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodGet {
		c.mu.Lock()
		c.writes = append(c.writes, r.Method+" "+r.URL.Path)
		c.mu.Unlock()
	}
	return c.next.RoundTrip(r)
}

func (c *countingTransport) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.writes
	c.writes = nil
	return w
}

// TestControlPlanePodsOnAPIServer runs the reconciliation with the real
// health checks against a real API server and etcd member: the API
// server's and etcd's pods turn Ready, the controller manager's and the
// scheduler's once their leader Leases are held, and a converged sync
// writes nothing.
func TestControlPlanePodsOnAPIServer(t *testing.T) {
	ctx := context.Background()
	srv := apiservertest.Start(t)
	etcdCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	emb, err := storage.StartEmbedded(etcdCtx, storage.EmbeddedConfig{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = emb.Close() }()

	counter := &countingTransport{}
	cfg := rest.CopyConfig(srv.Config)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { counter.next = rt; return counter }
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	node := "cp-" + rand.String(6)
	r := &controlPlanePods{
		client: client, nodeName: node, fallbackIP: "127.0.0.1",
		containers: controlPlaneContainers(testServerConfig(), node, true),
		start:      time.Now(), clock: clocktesting.NewFakeClock(time.Now()),
		health: func(ctx context.Context) map[string]componentHealth {
			return checkControlPlane(ctx, client, emb.Client(), time.Now())
		},
	}
	if err := r.sync(ctx); err != nil {
		t.Fatal(err)
	}
	get := func(component string) *corev1.Pod {
		t.Helper()
		p, err := srv.Client.CoreV1().Pods("kube-system").Get(ctx, component+"-"+node, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	api := get("kube-apiserver")
	if !ready(api) || api.Status.Phase != corev1.PodRunning || api.Status.PodIP != "127.0.0.1" {
		t.Errorf("kube-apiserver-%s: phase %s ready %v podIP %s, want Running, Ready, 127.0.0.1", node, api.Status.Phase, ready(api), api.Status.PodIP)
	}
	if api.Spec.Priority == nil || *api.Spec.Priority != 2000001000 {
		t.Errorf("kube-apiserver priority %v, want system-node-critical's 2000001000", api.Spec.Priority)
	}
	if !ready(get("etcd")) {
		t.Errorf("etcd not ready: %q", get("etcd").Status.Message)
	}
	for _, c := range []string{"kube-controller-manager", "kube-scheduler"} {
		if p := get(c); ready(p) || !strings.Contains(p.Status.Message, "kube-system/"+c) {
			t.Errorf("%s without a leader: ready %v message %q, want not ready naming its lease", c, ready(p), p.Status.Message)
		}
	}

	// Converged: nothing written.
	counter.take()
	if err := r.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if w := counter.take(); len(w) != 0 {
		t.Errorf("converged sync wrote %v", w)
	}

	// Leaders elected (by another server, say): Ready.
	for _, name := range []string{"kube-controller-manager", "kube-scheduler"} {
		lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-system"},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: new("other-server_abc"), LeaseDurationSeconds: new(int32(15)),
				RenewTime: new(metav1.NewMicroTime(time.Now()))}}
		if _, err := srv.Client.CoordinationV1().Leases("kube-system").Create(ctx, lease, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.sync(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"kube-controller-manager", "kube-scheduler"} {
		if p := get(c); !ready(p) {
			t.Errorf("%s with a leader: not ready (%q)", c, p.Status.Message)
		}
	}

	// A user's delete is undone by the next sync.
	if err := srv.Client.CoreV1().Pods("kube-system").Delete(ctx, "kube-apiserver-"+node, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := r.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if again := get("kube-apiserver"); again.UID == api.UID || !ready(again) {
		t.Errorf("after deletion: uid %s (was %s), ready %v; want a new Ready pod", again.UID, api.UID, ready(again))
	}
	if _, err := srv.Client.CoreV1().Pods("kube-system").Get(ctx, "kube-apiserver-"+node, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		t.Error("the pod is gone")
	}
}
