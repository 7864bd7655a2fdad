package agent

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-project/skiff/pkg/apiserver/apiservertest"
	"github.com/skiff-project/skiff/pkg/containerd"
	"github.com/skiff-project/skiff/pkg/containerd/containerdtest"
	"github.com/skiff-project/skiff/pkg/images"
)

// skipUnlessNode skips a test that needs a real node: root, containerd,
// runc, the CNI plugins and busybox.
func skipUnlessNode(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs a private containerd with CNI networking")
	}
	for _, bin := range []string{"containerd", "ctr", "runc", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (run hack/setup.sh): %v", bin, err)
		}
	}
	for _, f := range []string{"/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/portmap", DefaultBusybox} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("%s missing (run hack/setup.sh): %v", f, err)
		}
	}
}

// runningAgent is an agent run by a test.
type runningAgent struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func startAgent(t *testing.T, cfg Config) *runningAgent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a := &runningAgent{cancel: cancel, done: make(chan error, 1)}
	go func() { a.done <- Run(ctx, cfg) }()
	t.Cleanup(func() { a.stop(t) })
	return a
}

// stop stops the agent and checks it returned cleanly; idempotent.
func (a *runningAgent) stop(t *testing.T) {
	t.Helper()
	a.once.Do(func() {
		a.cancel()
		select {
		case err := <-a.done:
			if err != nil {
				t.Errorf("agent returned %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("agent did not stop within 30s")
		}
	})
}

// TestAgentRunsRealPods is issue 4's acceptance test on a real containerd:
// the agent registers the node with real capacity and addresses, applies
// the podCIDR the control plane allocates, runs a busybox pod with an env
// value from a ConfigMap (Running, an IP from the range, its output in the
// log file), survives a restart without restarting the pod's containers,
// keeps a finished pod's containers until the pod is deleted, and removes
// a deleted pod's containers.
func TestAgentRunsRealPods(t *testing.T) {
	skipUnlessNode(t)
	srv := apiservertest.Start(t)
	client := srv.Client
	ctx := context.Background()

	cidr := containerdtest.FreeCIDR(t, 214)
	cfg := testNodeConfig(t, srv.Config, "agent-test", "ska")
	dataDir := cfg.DataDir
	paths := PathsFor(dataDir)
	// Registered first, so it runs last: after the agents stopped.
	cleanupNode(t, cfg)
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}

	start := time.Now()
	agent1 := startAgent(t, cfg)
	node := waitFor(t, 2*time.Minute, "node registered", func() (*corev1.Node, bool) {
		n, err := client.CoreV1().Nodes().Get(ctx, cfg.NodeName, metav1.GetOptions{})
		return n, err == nil
	})
	t.Logf("node registered %v after the agent started (containerd start, image build and import included)", time.Since(start).Round(time.Millisecond))
	checkNode(t, node)

	// The control plane's nodeipam controller would do this.
	node.Spec.PodCIDR, node.Spec.PodCIDRs = cidr.String(), []string{cidr.String()}
	if _, err := client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("setting podCIDR: %v", err)
	}
	if _, err := client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "greeting"}, Data: map[string]string{"word": "hello-from-configmap"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// A long-running pod.
	created := time.Now()
	web := createPod(t, client, cfg.NodeName, "web", corev1.RestartPolicyAlways, "echo $WORD; echo started; exec sleep 3600")
	web = waitFor(t, time.Minute, "web Running with an IP", func() (*corev1.Pod, bool) {
		p, err := client.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
		return p, err == nil && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != ""
	})
	t.Logf("pod create → Running with IP %s: %v (poll every 20ms)", web.Status.PodIP, time.Since(created).Round(time.Millisecond))
	if ip, err := netip.ParseAddr(web.Status.PodIP); err != nil || !cidr.Contains(ip) {
		t.Errorf("pod IP %s is not in the node's podCIDR %s", web.Status.PodIP, cidr)
	}
	logPath := filepath.Join(paths.PodLogs, "default_web_"+string(web.UID), "main", "0.log")
	waitFor(t, 10*time.Second, "web's log", func() (string, bool) {
		b, _ := os.ReadFile(logPath)
		return string(b), strings.Contains(string(b), "hello-from-configmap") && strings.Contains(string(b), "started")
	})
	webID := web.Status.ContainerStatuses[0].ContainerID
	// The CNI configuration the agent writes for a reused containerd
	// must be the file pkg/containerd wrote.
	conf, err := os.ReadFile(filepath.Join(paths.Containerd, "cni", "net.d", "10-"+cfg.NetworkName+".conflist"))
	if err != nil || !strings.Contains(string(conf), cidr.String()) {
		t.Errorf("CNI config: %v, want it to hold %s:\n%s", err, cidr, conf)
	}

	// A pod that finishes: its containers stay until it is deleted.
	createPod(t, client, cfg.NodeName, "job", corev1.RestartPolicyNever, "echo done")
	job := waitFor(t, time.Minute, "job Succeeded", func() (*corev1.Pod, bool) {
		p, err := client.CoreV1().Pods("default").Get(ctx, "job", metav1.GetOptions{})
		return p, err == nil && p.Status.Phase == corev1.PodSucceeded
	})

	// Restart the agent: containerd and the containers keep running.
	pidBefore, _ := livePID(paths)
	agent1.stop(t)
	restarted := time.Now()
	startAgent(t, cfg)
	waitFor(t, time.Minute, "node heartbeat after the restart", func() (bool, bool) {
		l, err := client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, cfg.NodeName, metav1.GetOptions{})
		return true, err == nil && l.Spec.RenewTime != nil && l.Spec.RenewTime.After(restarted)
	})
	if pid, alive := livePID(paths); !alive || pid != pidBefore {
		t.Errorf("containerd after the restart: pid %d (alive %v), want the same %d", pid, alive, pidBefore)
	}
	// Several poll intervals later the pod still runs the same container.
	time.Sleep(time.Second)
	web, err = client.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs := web.Status.ContainerStatuses[0]
	if cs.ContainerID != webID || cs.RestartCount != 0 || cs.State.Running == nil || web.Status.Phase != corev1.PodRunning {
		t.Errorf("after the restart: phase %s, container %s (restarts %d, state %+v), want Running %s with no restart",
			web.Status.Phase, cs.ContainerID, cs.RestartCount, cs.State, webID)
	}

	conn, err := containerd.Connect(ctx, paths.Socket(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	containersOf := func(uid string) int {
		cs, err := conn.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: map[string]string{"io.kubernetes.pod.uid": uid}})
		if err != nil {
			t.Fatal(err)
		}
		sb, err := conn.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"io.kubernetes.pod.uid": uid}})
		if err != nil {
			t.Fatal(err)
		}
		return len(cs) + len(sb)
	}
	if n := containersOf(string(job.UID)); n == 0 {
		t.Error("the finished job's containers were removed before the pod was deleted")
	}

	// Deleting pods removes their containers and sandboxes.
	for _, name := range []string{"web", "job"} {
		if err := client.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(1))}); err != nil {
			t.Fatal(err)
		}
	}
	deleted := time.Now()
	for _, p := range []*corev1.Pod{web, job} {
		waitFor(t, time.Minute, p.Name+" gone from the API and the runtime", func() (bool, bool) {
			_, err := client.CoreV1().Pods("default").Get(ctx, p.Name, metav1.GetOptions{})
			return true, apierrors.IsNotFound(err) && containersOf(string(p.UID)) == 0
		})
	}
	t.Logf("pod delete → containers gone: %v", time.Since(deleted).Round(time.Millisecond))
}

// checkNode checks what the agent reports about the machine.
func checkNode(t *testing.T, n *corev1.Node) {
	t.Helper()
	if got := n.Status.Capacity[corev1.ResourcePods]; got.Value() != DefaultMaxPods {
		t.Errorf("pods capacity = %s, want %d", got.String(), DefaultMaxPods)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage} {
		if q, ok := n.Status.Capacity[r]; !ok || q.Sign() <= 0 {
			t.Errorf("capacity %s = %v, want positive", r, q.String())
		}
	}
	info := n.Status.NodeInfo
	if !strings.HasPrefix(info.ContainerRuntimeVersion, "containerd://") || info.KernelVersion == "" || info.OSImage == "" || info.BootID == "" {
		t.Errorf("nodeInfo = %+v, want containerd runtime, kernel, OS image and boot ID", info)
	}
	var internal string
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			internal = a.Address
		}
	}
	if _, err := netip.ParseAddr(internal); err != nil {
		t.Errorf("InternalIP %q: %v", internal, err)
	}
	t.Logf("node: capacity cpu=%s memory=%s ephemeral-storage=%s; InternalIP %s; %s, kernel %s, %s",
		n.Status.Capacity.Cpu(), n.Status.Capacity.Memory(), n.Status.Capacity.StorageEphemeral(), internal,
		info.ContainerRuntimeVersion, info.KernelVersion, info.OSImage)
}

func createPod(t *testing.T, client kubernetes.Interface, node, name string, restart corev1.RestartPolicy, script string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			RestartPolicy:                 restart,
			TerminationGracePeriodSeconds: new(int64(1)),
			Containers: []corev1.Container{{
				Name: "main", Image: images.BusyboxRef, ImagePullPolicy: corev1.PullNever,
				Command: []string{"sh", "-c", script},
				Env: []corev1.EnvVar{{Name: "WORD", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: "greeting"}, Key: "word"}}}},
			}},
		},
	}
	created, err := client.CoreV1().Pods("default").Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating pod %s: %v", name, err)
	}
	return created
}

// waitFor polls f every 20ms until it reports done, failing the test
// after timeout.
func waitFor[T any](t *testing.T, timeout time.Duration, what string, f func() (T, bool)) T {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v, ok := f()
		if ok {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s (last: %+v)", timeout, what, v)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testNodeConfig returns the Config of an agent for one test, named after
// name with a random suffix (node, network, cgroup root; the bridge is
// bridgePrefix plus the suffix, within the 15 bytes of an interface name),
// in a data dir of its own, so tests in parallel packages never share
// them; it polls the runtime every 100 ms and reports node status every
// second.
func testNodeConfig(t testing.TB, restCfg *rest.Config, name, bridgePrefix string) Config {
	t.Helper()
	suffix := containerdtest.RandomHex(t, 3)
	return Config{
		RestConfig:                restCfg,
		NodeName:                  name + "-" + suffix,
		DataDir:                   t.TempDir(),
		BridgeName:                bridgePrefix + suffix,
		NetworkName:               "skiff-" + name + "-" + suffix,
		CgroupRoot:                "/skiff-" + name + "-" + suffix,
		PollInterval:              100 * time.Millisecond,
		NodeStatusUpdateFrequency: time.Second,
	}
}

// cleanupNode registers the teardown of the agent of cfg and checks that
// nothing is left behind. Register it before starting the agent, so that it
// runs after the agent stopped.
func cleanupNode(t *testing.T, cfg Config) {
	t.Helper()
	paths := PathsFor(cfg.DataDir)
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := Cleanup(cctx, cfg.DataDir, cfg.BridgeName, cfg.CgroupRoot); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if pids, _ := containerd.ShimPIDs(paths.Socket()); len(pids) > 0 {
			t.Errorf("shims left running: %v", pids)
		}
		if pid, alive := livePID(paths); alive {
			t.Errorf("containerd %d left running", pid)
		}
		if _, err := os.Stat("/sys/class/net/" + cfg.BridgeName); err == nil {
			t.Errorf("bridge %s left behind", cfg.BridgeName)
		}
		if m, _ := containerd.MountsUnder(cfg.DataDir); len(m) > 0 {
			t.Errorf("mounts left behind: %v", m)
		}
		if d, _ := filepath.Glob("/sys/fs/cgroup/*" + cfg.CgroupRoot); len(d) > 0 {
			t.Errorf("cgroups left behind: %v", d)
			_ = removeCgroupTree(cfg.CgroupRoot)
		}
	})
}
