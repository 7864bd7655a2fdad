package criruntime

import (
	"context"
	"fmt"
	"github.com/skiff-project/skiff/pkg/containerd/containerdtest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-project/skiff/pkg/containerd"
	"github.com/skiff-project/skiff/pkg/images"
)

// testEnv is a private containerd with the pause and busybox images
// imported, a CNI bridge of its own and a cgroup root of its own; all of
// it is removed when the test ends.
type testEnv struct {
	proc       *containerd.Process
	conn       *containerd.Conn
	timed      *timedRuntime
	cidr       netip.Prefix
	cgroupRoot string
	logsRoot   string
}

// newTestEnv starts the environment or skips the test when it cannot run
// here (not root, containerd or the CNI plugins missing).
func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs a private containerd with CNI networking")
	}
	for _, bin := range []string{"containerd", "ctr", "runc", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (run hack/setup.sh): %v", bin, err)
		}
	}
	for _, f := range []string{"/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/portmap", "/bin/busybox"} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("%s missing (run hack/setup.sh): %v", f, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	suffix := containerdtest.RandomHex(t, 3)
	e := &testEnv{cidr: containerdtest.FreeCIDR(t, 213), cgroupRoot: "/skiff-test-" + suffix}
	dir := t.TempDir()
	e.logsRoot = filepath.Join(dir, "pods")
	cgroups, err := newCgroupManager(DefaultCgroupfsRoot)
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-registered first: pods and containerd go before
	// the cgroup root they used.
	t.Cleanup(func() {
		if err := cgroups.remove(e.cgroupRoot); err != nil {
			t.Errorf("removing cgroup root: %v", err)
		}
	})
	proc, err := containerd.Start(ctx, containerd.Config{
		Dir:              filepath.Join(dir, "ctrd"),
		PodCIDR:          e.cidr.String(),
		BridgeName:       "skt" + suffix,
		NetworkName:      "skiff-test-" + suffix,
		RestoreIPForward: true,
	})
	if err != nil {
		t.Fatalf("starting containerd: %v", err)
	}
	e.proc = proc
	t.Cleanup(func() {
		if err := proc.Stop(); err != nil {
			t.Errorf("stopping containerd: %v", err)
		}
		if pids, _ := containerd.ShimPIDs(proc.Paths().Socket); len(pids) > 0 {
			t.Errorf("shims left running: %v", pids)
		}
		if _, err := os.Stat("/sys/class/net/" + proc.Config().BridgeName); err == nil {
			t.Errorf("bridge %s left behind", proc.Config().BridgeName)
		}
		if m, _ := containerd.MountsUnder(dir); len(m) > 0 {
			t.Errorf("mounts left behind: %v", m)
		}
	})
	conn, err := containerd.Connect(ctx, proc.Endpoint(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	e.conn = conn
	e.timed = &timedRuntime{RuntimeService: conn.Runtime, d: map[string][]time.Duration{}}

	imgDir := filepath.Join(dir, "images")
	if err := os.MkdirAll(imgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	pauseBin := filepath.Join(imgDir, "pause")
	start := time.Now()
	if err := images.BuildGoBinary(ctx, "../../../test/images/pause", pauseBin); err != nil {
		t.Fatal(err)
	}
	bb, err := images.BusyboxSpec(ctx, "/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range []images.Spec{images.PauseSpec(pauseBin), bb} {
		name := filepath.Join(imgDir, strings.NewReplacer("/", "_", ":", "_").Replace(spec.Ref)+".tar")
		if _, err := images.WriteTarball(name, spec); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := images.ImportDir(ctx, "", proc.Paths().Socket, imgDir); err != nil {
		t.Fatal(err)
	}
	t.Logf("containerd %s on %s, bridge %s; images built and imported in %v",
		proc.Endpoint(), e.cidr, proc.Config().BridgeName, time.Since(start).Round(time.Millisecond))
	return e
}

// runtime returns a Runtime over the environment's (timed) CRI
// connection.
func (e *testEnv) runtime(t *testing.T, mutate func(*Config)) *Runtime {
	t.Helper()
	cfg := Config{
		Runtime:      e.timed,
		Images:       e.conn.Images,
		PodLogsRoot:  e.logsRoot,
		CgroupRoot:   e.cgroupRoot,
		NodeIPs:      []string{"127.0.0.1"},
		PollInterval: 100 * time.Millisecond,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// timedRuntime records the latency of the CRI calls a pod start makes.
type timedRuntime struct {
	internalapi.RuntimeService
	mu sync.Mutex
	d  map[string][]time.Duration // guarded by mu
}

func (t *timedRuntime) record(call string, start time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.d[call] = append(t.d[call], time.Since(start))
}

func (t *timedRuntime) RunPodSandbox(ctx context.Context, cfg *runtimeapi.PodSandboxConfig, h string) (string, error) {
	defer t.record("RunPodSandbox", time.Now())
	return t.RuntimeService.RunPodSandbox(ctx, cfg, h)
}

func (t *timedRuntime) CreateContainer(ctx context.Context, id string, cfg *runtimeapi.ContainerConfig, sb *runtimeapi.PodSandboxConfig) (string, error) {
	defer t.record("CreateContainer", time.Now())
	return t.RuntimeService.CreateContainer(ctx, id, cfg, sb)
}

func (t *timedRuntime) StartContainer(ctx context.Context, id string) error {
	defer t.record("StartContainer", time.Now())
	return t.RuntimeService.StartContainer(ctx, id)
}

func (t *timedRuntime) StopPodSandbox(ctx context.Context, id string) error {
	defer t.record("StopPodSandbox", time.Now())
	return t.RuntimeService.StopPodSandbox(ctx, id)
}

func (t *timedRuntime) RemovePodSandbox(ctx context.Context, id string) error {
	defer t.record("RemovePodSandbox", time.Now())
	return t.RuntimeService.RemovePodSandbox(ctx, id)
}

// summary returns "call: median (min..max, n)" lines.
func (t *timedRuntime) summary() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var calls []string
	for c := range t.d {
		calls = append(calls, c)
	}
	sort.Strings(calls)
	var b strings.Builder
	for _, c := range calls {
		d := append([]time.Duration(nil), t.d[c]...)
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		fmt.Fprintf(&b, "%s: median %v (min %v, max %v, n=%d)\n", c,
			d[len(d)/2].Round(100*time.Microsecond), d[0].Round(100*time.Microsecond), d[len(d)-1].Round(100*time.Microsecond), len(d))
	}
	return b.String()
}
