package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/skiff-project/skiff/pkg/containerd"
	"github.com/skiff-project/skiff/pkg/proxy"
)

// nodeRuntime is the CRI the agent runs pods on: the private containerd
// (started now, or reused from an earlier agent run) or an external
// endpoint.
type nodeRuntime struct {
	conn *containerd.Conn // never nil
	// proc is the containerd this run started; nil when it reused a
	// live one or uses an external endpoint.
	proc *containerd.Process
	// private is whether the runtime is the agent's own containerd
	// (started or reused), whose CNI configuration the agent writes.
	private bool
	cniConf containerd.CNIConfig // for a reused private containerd
	cniPath string               // where cniConf is written
}

// openRuntime connects to the CRI the agent uses: the external endpoint,
// or the private containerd, reusing a live one and starting it otherwise.
func openRuntime(ctx context.Context, cfg Config, paths Paths) (*nodeRuntime, error) {
	logger := klog.FromContext(ctx)
	if cfg.ContainerRuntimeEndpoint != "" {
		conn, err := containerd.Connect(ctx, cfg.ContainerRuntimeEndpoint, 0)
		if err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		return &nodeRuntime{conn: conn}, nil
	}
	network := cfg.NetworkName
	if network == "" {
		network = containerd.DefaultNetworkName
	}
	bridge := cfg.BridgeName
	if bridge == "" {
		bridge = containerd.DefaultBridgeName
	}
	rt := &nodeRuntime{
		private: true,
		// The layout of containerd.Paths for Dir=paths.Containerd; the
		// test checks the two agree.
		cniPath: filepath.Join(paths.Containerd, "cni", "net.d", "10-"+network+".conflist"),
		cniConf: containerd.CNIConfig{
			NetworkName: network,
			BridgeName:  bridge,
			IPAMDir:     filepath.Join(paths.Containerd, "cni", "ipam"),
			IPMasq:      true,
		},
	}
	if conn, ok := reuseContainerd(ctx, paths); ok {
		logger.Info("reusing running containerd", "socket", paths.Socket())
		rt.conn = conn
		return rt, nil
	}
	proc, err := containerd.Start(ctx, containerd.Config{
		Dir:         paths.Containerd,
		PodCIDR:     placeholderPodCIDR,
		BridgeName:  bridge,
		NetworkName: network,
	})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	// From here on, a failure must not leave the new containerd behind.
	fail := func(err error) (*nodeRuntime, error) {
		return nil, errors.Join(err, proc.Stop())
	}
	if err := os.WriteFile(paths.pidFile(), []byte(strconv.Itoa(proc.PID())+"\n"), 0o644); err != nil {
		return fail(fmt.Errorf("agent: writing containerd pid file: %w", err))
	}
	conn, err := containerd.Connect(ctx, proc.Endpoint(), 0)
	if err != nil {
		return fail(fmt.Errorf("agent: %w", err))
	}
	logger.Info("started containerd", "pid", proc.PID(), "socket", paths.Socket())
	rt.conn, rt.proc = conn, proc
	return rt, nil
}

// reuseContainerd connects to the private containerd left running by an
// earlier agent run, if its pid file names a live containerd and its CRI
// answers.
func reuseContainerd(ctx context.Context, paths Paths) (*containerd.Conn, bool) {
	if _, alive := livePID(paths); !alive {
		return nil, false
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := containerd.Connect(cctx, paths.Socket(), 0)
	if err != nil {
		return nil, false
	}
	if _, err := conn.Runtime.Version(cctx, "v1"); err != nil {
		_ = conn.Close(context.Background())
		return nil, false
	}
	return conn, true
}

// livePID returns the PID in the pid file and whether it is a live
// containerd running this directory's configuration (not a recycled PID).
func livePID(paths Paths) (int, bool) {
	b, err := os.ReadFile(paths.pidFile())
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, isContainerd(pid, paths)
}

// isContainerd reports whether pid is a live (not zombie) containerd
// started with paths' config file.
func isContainerd(pid int, paths Paths) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	return len(args) > 0 && filepath.Base(args[0]) == "containerd" &&
		strings.Contains(string(cmdline), filepath.Join(paths.Containerd, "config.toml"))
}

// setPodCIDR writes cidr into the private containerd's CNI configuration;
// containerd applies it to pods started afterwards. An external runtime's
// network is its owner's business (the CRI call still tells it).
func (r *nodeRuntime) setPodCIDR(cidr string) error {
	switch {
	case r.proc != nil:
		return r.proc.SetPodCIDR(cidr)
	case !r.private:
		return nil
	}
	c := r.cniConf
	c.PodCIDR = cidr
	data, err := containerd.RenderCNIConfig(c)
	if err != nil {
		return err
	}
	tmp := r.cniPath + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("writing CNI config: %w", err)
	}
	if err := os.Rename(tmp, r.cniPath); err != nil {
		return fmt.Errorf("writing CNI config: %w", err)
	}
	return nil
}

// close closes the CRI connection; containerd keeps running.
func (r *nodeRuntime) close() {
	_ = r.conn.Close(context.Background())
}

// Cleanup tears down what the agent of dataDir left on the node: every pod
// of its private containerd (through the CRI, so CNI DEL releases
// addresses and rules), containerd itself and its shims, mounts left under
// its directory, the service proxy's rules and routes (pkg/proxy), the
// CNI bridge named bridgeName (containerd's default when empty) and the
// pods' cgroups under cgroupRoot ("/" when empty; a dedicated root is
// removed too once empty).
// Images and logs stay. It keeps going after a failed step and returns
// every error; cleaning a node with nothing running succeeds.
func Cleanup(ctx context.Context, dataDir, bridgeName, cgroupRoot string) error {
	paths := PathsFor(dataDir)
	var errs []error
	var podUIDs []string
	if conn, err := containerd.Connect(ctx, paths.Socket(), time.Minute); err == nil {
		var rmErr error
		podUIDs, rmErr = removeAllPods(ctx, conn)
		errs = append(errs, rmErr)
		_ = conn.Close(context.Background())
	}
	if pid, alive := livePID(paths); alive {
		errs = append(errs, terminate(ctx, pid, paths))
	}
	errs = append(errs, killShims(paths.Socket()))
	// The kube-proxy pod is gone with the others; the rules and routes it
	// programmed on this host go with the node.
	if err := proxy.Cleanup(ctx, proxy.Config{}); err != nil {
		errs = append(errs, fmt.Errorf("removing the service proxy's rules: %w", err))
	}
	mounts, err := containerd.MountsUnder(paths.Containerd)
	errs = append(errs, err)
	// Pod volumes (tmpfs for secrets, memory emptyDirs) live under Pods.
	podMounts, err := containerd.MountsUnder(paths.Pods)
	errs = append(errs, err)
	mounts = append(mounts, podMounts...)
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", m, err))
		}
	}
	if bridgeName == "" {
		bridgeName = containerd.DefaultBridgeName
	}
	if _, err := os.Stat(filepath.Join("/sys/class/net", bridgeName)); err == nil {
		if out, err := exec.CommandContext(ctx, "ip", "link", "del", bridgeName).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("deleting bridge %s: %w: %s", bridgeName, err, bytes.TrimSpace(out)))
		}
	}
	errs = append(errs, deleteEmptyXtablesTables(ctx))
	if cgroupRoot == "" {
		cgroupRoot = "/"
	}
	// Processes left in this node's pod cgroups once containerd and its
	// shims are gone are orphans, such as the `runc init` of a container
	// that was being started when the agent stopped. Only the pods this
	// agent's containerd knew are touched: another node on the machine
	// may share the kubepods tree.
	for _, uid := range podUIDs {
		for _, qos := range []string{"", "burstable", "besteffort"} {
			killCgroupProcesses(filepath.Join(cgroupRoot, "kubepods", qos, "pod"+uid))
		}
	}
	errs = append(errs, removeCgroupTree(filepath.Join(cgroupRoot, "kubepods")))
	if filepath.Clean(cgroupRoot) != "/" {
		// A dedicated root goes too, when nothing else lives in it.
		removeEmptyCgroup(cgroupRoot)
	}
	if err := os.RemoveAll(paths.Pods); err != nil {
		errs = append(errs, fmt.Errorf("removing pod volumes %s: %w", paths.Pods, err))
	}
	for _, f := range []string{paths.Socket(), paths.Socket() + ".ttrpc", paths.pidFile()} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("agent: cleanup: %w", err)
	}
	return nil
}

// removeAllPods stops and removes every sandbox (and with it its
// containers).
func removeAllPods(ctx context.Context, conn *containerd.Conn) (uids []string, err error) {
	pods, err := conn.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{})
	if err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	for _, s := range pods {
		if uid := s.GetMetadata().GetUid(); uid != "" && !slices.Contains(uids, uid) {
			uids = append(uids, uid)
		}
	}
	// A container the stopped kubelet was still starting cannot be
	// removed ("container is in starting state") and one that finished
	// starting after the sandbox was stopped is running again: such pods
	// are stopped and removed again, in rounds, until removePodsTimeout.
	remaining := make([]string, 0, len(pods))
	for _, s := range pods {
		remaining = append(remaining, s.Id)
	}
	deadline := time.Now().Add(removePodsTimeout)
	for {
		var errs []error
		var failed []string
		for _, id := range remaining {
			if err := conn.Runtime.StopPodSandbox(ctx, id); err != nil {
				errs = append(errs, fmt.Errorf("stopping pod %s: %w", id, err))
			}
			if err := conn.Runtime.RemovePodSandbox(ctx, id); err != nil {
				errs = append(errs, fmt.Errorf("removing pod %s: %w", id, err))
				failed = append(failed, id)
			}
		}
		if len(failed) == 0 || time.Now().After(deadline) {
			if len(failed) == 0 {
				return uids, nil
			}
			return uids, errors.Join(errs...)
		}
		remaining = failed
		select {
		case <-ctx.Done():
			return uids, errors.Join(append(errs, ctx.Err())...)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// removePodsTimeout bounds how long Cleanup retries pods that cannot be
// removed yet.
const removePodsTimeout = 30 * time.Second

// terminate stops containerd: SIGTERM, then SIGKILL after 10 seconds.
func terminate(ctx context.Context, pid int, paths Paths) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stopping containerd %d: %w", pid, err)
	}
	if waitGone(ctx, 10*time.Second, func() bool { return !isContainerd(pid, paths) }) {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if waitGone(ctx, 5*time.Second, func() bool { return !isContainerd(pid, paths) }) {
		return nil
	}
	return fmt.Errorf("containerd %d still running after SIGKILL", pid)
}

// killShims kills the shims serving socket and waits until they are gone.
func killShims(socket string) error {
	pids, err := containerd.ShimPIDs(socket)
	if err != nil || len(pids) == 0 {
		return err
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if waitGone(context.Background(), 5*time.Second, func() bool {
		left, err := containerd.ShimPIDs(socket)
		return err == nil && len(left) == 0
	}) {
		return nil
	}
	return fmt.Errorf("shims of %s still running after SIGKILL", socket)
}

// waitGone polls done every 20ms until it returns true (then true), or
// until timeout or ctx ends (then false).
func waitGone(ctx context.Context, timeout time.Duration, done func() bool) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if done() {
			return true
		}
		select {
		case <-ctx.Done():
			return done()
		case <-tick.C:
		}
	}
}

// removeCgroupTree removes the cgroup at path (cgroupfs notation) and
// everything below it, deepest first, in every hierarchy mounted under
// /sys/fs/cgroup. Cgroups still holding processes fail with EBUSY.
func removeCgroupTree(path string) error {
	hierarchies, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return fmt.Errorf("listing cgroup hierarchies: %w", err)
	}
	var errs []error
	roots := []string{filepath.Join("/sys/fs/cgroup", path)} // cgroup v2
	for _, h := range hierarchies {
		roots = append(roots, filepath.Join("/sys/fs/cgroup", h.Name(), path))
	}
	for _, root := range roots {
		if st, err := os.Stat(root); err != nil || !st.IsDir() {
			continue
		}
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("removing cgroup %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

// xtablesTables are the nftables tables iptables-nft creates on first use
// (by the proxy's iptables mode and the CNI plugins' masquerade rules).
var xtablesTables = []string{"ip nat", "ip filter", "ip6 nat", "ip6 filter"}

// deleteEmptyXtablesTables deletes the tables of xtablesTables that hold
// no rule, sets or maps any more: iptables-nft leaves them behind, empty,
// when the last rule goes. A table with anything in it, anyone's, stays.
// Without nft there is nothing to do.
func deleteEmptyXtablesTables(ctx context.Context) error {
	if _, err := exec.LookPath("nft"); err != nil {
		return nil
	}
	var errs []error
	for _, t := range xtablesTables {
		args := append([]string{"-a", "list", "table"}, strings.Fields(t)...)
		out, err := exec.CommandContext(ctx, "nft", args...).Output()
		if err != nil || !nftTableEmpty(string(out)) {
			continue // absent, or in use
		}
		del := append([]string{"delete", "table"}, strings.Fields(t)...)
		if out, err := exec.CommandContext(ctx, "nft", del...).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("deleting the empty nft table %s: %w: %s", t, err, bytes.TrimSpace(out)))
		}
	}
	return errors.Join(errs...)
}

// nftTableEmpty reports whether `nft -a list table` output shows a table
// holding only empty base chains: no rule, set, map or regular chain
// (someone's, even empty, is taken as in use).
func nftTableEmpty(listing string) bool {
	chains, hooks := 0, 0
	for _, line := range strings.Split(listing, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "", line == "}", strings.HasPrefix(line, "table "):
		case strings.HasPrefix(line, "chain "):
			chains++
		case strings.HasPrefix(line, "type ") && strings.Contains(line, " hook "):
			hooks++
		default:
			return false
		}
	}
	return chains == hooks
}

// killCgroupProcesses sends SIGKILL to every process in the cgroup at path
// (cgroupfs notation, never the root) and below, in every hierarchy, and
// waits up to 5 s for them to go.
func killCgroupProcesses(path string) {
	if filepath.Clean(path) == "/" {
		return
	}
	pids := func() []int {
		var out []int
		matches, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", path))
		matches = append(matches, filepath.Join("/sys/fs/cgroup", path))
		for _, root := range matches {
			_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
				if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
					return nil
				}
				b, err := os.ReadFile(p)
				if err != nil {
					return nil
				}
				for _, f := range strings.Fields(string(b)) {
					if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
						out = append(out, pid)
					}
				}
				return nil
			})
		}
		return out
	}
	left := pids()
	for _, pid := range left {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for deadline := time.Now().Add(5 * time.Second); len(left) > 0 && time.Now().Before(deadline); left = pids() {
		time.Sleep(50 * time.Millisecond)
	}
}

// removeEmptyCgroup removes the cgroup at path in every hierarchy where it
// has no child cgroups and no processes; elsewhere it stays.
func removeEmptyCgroup(path string) {
	hierarchies, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return
	}
	_ = os.Remove(filepath.Join("/sys/fs/cgroup", path))
	for _, h := range hierarchies {
		_ = os.Remove(filepath.Join("/sys/fs/cgroup", h.Name(), path))
	}
}
