// Package containerd runs and connects to containerd for Skiff's kubelet.
//
// Start launches a private containerd whose every path (root, state,
// sockets, runc root, CNI configuration, IPAM leases, bridge) belongs to one
// directory and one bridge name, so it never touches /etc/containerd, the
// system's containerd or another instance. Stop undoes what Start and the
// pods created: it removes every pod through the CRI (so CNI DEL releases
// addresses and rules), stops containerd, kills shims left behind by this
// instance's socket, unmounts leftovers and deletes the bridge.
//
// Connect opens the CRI services of an existing socket, the equivalent of
// the kubelet's --container-runtime-endpoint.
package containerd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"
)

// DefaultRequestTimeout bounds each CRI call made through a Conn, like the
// kubelet's --runtime-request-timeout.
const DefaultRequestTimeout = 2 * time.Minute

// pollInterval is how often Start and Stop re-check a condition they wait
// for (the CRI answering, a shim exiting).
const pollInterval = 20 * time.Millisecond

const ipForwardPath = "/proc/sys/net/ipv4/ip_forward"

// Conn is a connection to a CRI runtime and image service. It is safe for
// concurrent use; Close releases it.
type Conn struct {
	// Runtime is the CRI runtime service; never nil.
	Runtime internalapi.RuntimeService
	// Images is the CRI image service; never nil.
	Images internalapi.ImageManagerService
}

// Connect opens the CRI services at endpoint ("unix:///run/containerd/
// containerd.sock", or a bare socket path). requestTimeout bounds every
// later call (DefaultRequestTimeout when zero). It fails when nothing
// answers the CRI Version call at endpoint.
func Connect(ctx context.Context, endpoint string, requestTimeout time.Duration) (*Conn, error) {
	if !strings.Contains(endpoint, "://") {
		endpoint = "unix://" + endpoint
	}
	if requestTimeout <= 0 {
		requestTimeout = DefaultRequestTimeout
	}
	rs, err := remote.NewRemoteRuntimeServiceBuilder().WithEndpoint(endpoint).WithConnectionTimeout(requestTimeout).Build(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting to CRI runtime service at %s: %w", endpoint, err)
	}
	is, err := remote.NewRemoteImageServiceBuilder().WithEndpoint(endpoint).WithConnectionTimeout(requestTimeout).Build(ctx)
	if err != nil {
		_ = rs.Close(ctx)
		return nil, fmt.Errorf("connecting to CRI image service at %s: %w", endpoint, err)
	}
	return &Conn{Runtime: rs, Images: is}, nil
}

// Close closes both services' connections.
func (c *Conn) Close(ctx context.Context) error {
	return errors.Join(c.Runtime.Close(ctx), c.Images.Close(ctx))
}

// Process is a running private containerd started by Start. Its methods are
// safe for concurrent use.
type Process struct {
	cfg   Config // immutable, defaults applied
	paths Paths  // immutable
	cmd   *exec.Cmd
	log   *os.File
	// ipForward is net.ipv4.ip_forward before Start; immutable.
	ipForward string
	// natTables are the nft "nat" tables (families "ip", "ip6") that did
	// not exist before Start: the bridge plugin's masquerading makes
	// iptables-nft create them, and Stop deletes them again when empty.
	natTables []string

	exited  chan struct{} // closed when containerd has exited
	waitErr error         // containerd's exit; written before exited is closed

	stopOnce sync.Once
	stopErr  error // written once inside stopOnce
}

// Start writes the configuration of a private containerd under cfg.Dir and
// starts it, returning once its CRI reports the runtime and the network
// ready. On error nothing is left running. ctx bounds only the start; the
// process lives until Stop.
func Start(ctx context.Context, cfg Config) (*Process, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ctrdPath, err := exec.LookPath(cfg.ContainerdPath)
	if err != nil {
		return nil, fmt.Errorf("containerd: finding containerd binary: %w", err)
	}
	runcPath, err := exec.LookPath(cfg.RuncPath)
	if err != nil {
		return nil, fmt.Errorf("containerd: finding runc binary: %w", err)
	}
	p := pathsFor(cfg.Dir)
	for _, d := range []string{cfg.Dir, p.Root, p.State, p.RuncRoot, p.CNIConfDir, p.IPAMDir, filepath.Join(cfg.Dir, "certs.d")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("containerd: creating %s: %w", d, err)
		}
	}
	proc := &Process{cfg: cfg, paths: p, exited: make(chan struct{})}
	if err := proc.writeCNIConfig(cfg.PodCIDR); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(p.Config, []byte(renderConfig(cfg, p, runcPath)), 0o600); err != nil {
		return nil, fmt.Errorf("containerd: %w", err)
	}
	proc.natTables = missingNATTables()
	if b, err := os.ReadFile(ipForwardPath); err == nil {
		proc.ipForward = strings.TrimSpace(string(b))
	}
	// A socket file left by an instance that died would make containerd
	// fail to listen.
	for _, s := range []string{p.Socket, p.Socket + ".ttrpc"} {
		if err := os.Remove(s); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("containerd: removing stale socket: %w", err)
		}
	}
	logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("containerd: opening log: %w", err)
	}
	proc.log = logf
	cmd := exec.Command(ctrdPath, "--config", p.Config)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session: a terminal's signals to our process group must not
	// stop it behind Stop's back.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("containerd: starting %s: %w", ctrdPath, err)
	}
	proc.cmd = cmd
	go func() {
		proc.waitErr = cmd.Wait()
		close(proc.exited)
	}()
	if err := proc.waitReady(ctx); err != nil {
		stopErr := proc.Stop()
		return nil, errors.Join(err, stopErr)
	}
	return proc, nil
}

// waitReady polls the CRI until it reports RuntimeReady and NetworkReady,
// containerd exits, ctx ends or the ready timeout passes.
func (p *Process) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.ReadyTimeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var conn *Conn
	defer func() {
		if conn != nil {
			_ = conn.Close(context.Background())
		}
	}()
	var last error
	for {
		if conn == nil {
			if _, err := os.Stat(p.paths.Socket); err == nil {
				c, err := Connect(ctx, p.Endpoint(), time.Second)
				if err == nil {
					conn = c
				}
				last = err
			}
		}
		if conn != nil {
			last = criReady(ctx, conn.Runtime)
			if last == nil {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("containerd: exited before it was ready (%v): %s", p.waitErr, p.logTail())
		case <-ctx.Done():
			return fmt.Errorf("containerd: not ready after %v (last error: %v): %s", p.cfg.ReadyTimeout, last, p.logTail())
		case <-tick.C:
		}
	}
}

// criReady returns nil when the runtime reports both RuntimeReady and
// NetworkReady.
func criReady(ctx context.Context, rs internalapi.RuntimeService) error {
	st, err := rs.Status(ctx, false)
	if err != nil {
		return err
	}
	ready := map[string]bool{}
	for _, c := range st.GetStatus().GetConditions() {
		ready[c.Type] = c.Status
	}
	for _, t := range []string{runtimeapi.RuntimeReady, runtimeapi.NetworkReady} {
		if !ready[t] {
			return fmt.Errorf("CRI condition %s is not true", t)
		}
	}
	return nil
}

// logTail returns the end of containerd's log for error messages.
func (p *Process) logTail() string {
	b, err := os.ReadFile(p.paths.Log)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	const max = 2000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(bytes.TrimSpace(b))
}

// Endpoint returns the CRI endpoint, "unix://<Dir>/containerd.sock".
func (p *Process) Endpoint() string { return "unix://" + p.paths.Socket }

// Paths returns where the instance keeps its files.
func (p *Process) Paths() Paths { return p.paths }

// Config returns the configuration with defaults applied.
func (p *Process) Config() Config { return p.cfg }

// PID returns containerd's process ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// SetPodCIDR rewrites the CNI configuration for a new pod range; containerd
// picks the change up for pods started afterwards. Running pods keep their
// addresses.
func (p *Process) SetPodCIDR(cidr string) error { return p.writeCNIConfig(cidr) }

func (p *Process) writeCNIConfig(cidr string) error {
	data, err := RenderCNIConfig(CNIConfig{
		NetworkName: p.cfg.NetworkName,
		BridgeName:  p.cfg.BridgeName,
		PodCIDR:     cidr,
		IPAMDir:     p.paths.IPAMDir,
		IPMasq:      !p.cfg.NoIPMasq,
	})
	if err != nil {
		return fmt.Errorf("containerd: %w", err)
	}
	path := filepath.Join(p.paths.CNIConfDir, "10-"+p.cfg.NetworkName+".conflist")
	if err := writeFileAtomic(path, data, 0o644); err != nil {
		return fmt.Errorf("containerd: writing CNI config: %w", err)
	}
	return nil
}

// Stop removes every pod of the instance through the CRI (CNI DEL runs for
// each), stops containerd (SIGTERM, then SIGKILL after the stop timeout),
// kills shims still serving its socket, unmounts what is left mounted under
// Dir, deletes the bridge and, if configured, restores ip_forward. It
// keeps going after a failed step and returns every error. Stop is
// idempotent; later calls return the first call's result.
func (p *Process) Stop() error {
	p.stopOnce.Do(func() { p.stopErr = p.stop() })
	return p.stopErr
}

func (p *Process) stop() error {
	var errs []error
	select {
	case <-p.exited:
	default:
		errs = append(errs, p.removeAllPods())
		errs = append(errs, p.terminate())
	}
	errs = append(errs, p.killShims())
	errs = append(errs, p.unmountLeftovers())
	errs = append(errs, p.deleteBridge())
	for _, s := range []string{p.paths.Socket, p.paths.Socket + ".ttrpc"} {
		if err := os.Remove(s); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("containerd: removing %s: %w", s, err))
		}
	}
	errs = append(errs, deleteEmptyNATTables(p.natTables))
	// libcni's cache directory, shared by every CNI user: only removed
	// when nothing is left in it.
	_ = os.Remove("/var/lib/cni/results")
	_ = os.Remove("/var/lib/cni")
	if p.cfg.RestoreIPForward && p.ipForward != "" {
		if err := os.WriteFile(ipForwardPath, []byte(p.ipForward), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("containerd: restoring ip_forward: %w", err))
		}
	}
	if p.log != nil {
		errs = append(errs, p.log.Close())
	}
	return errors.Join(errs...)
}

// removeAllPods stops and removes every sandbox (and with it its
// containers) so the CNI plugins release addresses and rules.
func (p *Process) removeAllPods() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := Connect(ctx, p.Endpoint(), time.Minute)
	if err != nil {
		return fmt.Errorf("containerd: connecting to remove pods: %w", err)
	}
	defer conn.Close(ctx)
	pods, err := conn.Runtime.ListPodSandbox(ctx, nil)
	if err != nil {
		return fmt.Errorf("containerd: listing pods to remove: %w", err)
	}
	var errs []error
	for _, s := range pods {
		if err := conn.Runtime.StopPodSandbox(ctx, s.Id); err != nil {
			errs = append(errs, fmt.Errorf("containerd: stopping pod %s: %w", s.Id, err))
		}
		if err := conn.Runtime.RemovePodSandbox(ctx, s.Id); err != nil {
			errs = append(errs, fmt.Errorf("containerd: removing pod %s: %w", s.Id, err))
		}
	}
	return errors.Join(errs...)
}

// terminate sends SIGTERM and waits for the exit, escalating to SIGKILL
// after the stop timeout.
func (p *Process) terminate() error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("containerd: sending SIGTERM: %w", err)
	}
	timer := time.NewTimer(p.cfg.StopTimeout)
	defer timer.Stop()
	select {
	case <-p.exited:
		return nil
	case <-timer.C:
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("containerd: sending SIGKILL: %w", err)
	}
	<-p.exited
	return fmt.Errorf("containerd: did not exit within %v of SIGTERM; killed", p.cfg.StopTimeout)
}

// killShims kills every containerd-shim whose command line names this
// instance's socket ("-address <socket>") and waits until they are gone.
func (p *Process) killShims() error {
	pids, err := shimPIDs(p.paths.Socket)
	if err != nil {
		return err
	}
	if len(pids) == 0 {
		return nil
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		left, err := shimPIDs(p.paths.Socket)
		if err != nil || len(left) == 0 {
			return err
		}
		select {
		case <-deadline.C:
			return fmt.Errorf("containerd: shims %v still running after SIGKILL", left)
		case <-tick.C:
		}
	}
}

// ShimPIDs returns the PIDs of the containerd shims serving socket.
func ShimPIDs(socket string) ([]int, error) { return shimPIDs(socket) }

func shimPIDs(socket string) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("containerd: listing processes: %w", err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue // gone meanwhile, or a zombie
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if !strings.Contains(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		for i := 1; i+1 < len(args); i++ {
			if args[i] == "-address" && args[i+1] == socket {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids, nil
}

// unmountLeftovers lazily unmounts everything still mounted under Dir
// (rootfs and shm mounts left by an unclean exit), deepest first.
func (p *Process) unmountLeftovers() error {
	mounts, err := mountsUnder(p.cfg.Dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("containerd: unmounting %s: %w", m, err))
		}
	}
	return errors.Join(errs...)
}

// MountsUnder returns the mount points below dir, deepest first.
func MountsUnder(dir string) ([]string, error) { return mountsUnder(dir) }

func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("containerd: reading mounts: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	prefix := strings.TrimRight(dir, "/") + "/"
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountPath(fields[4])
		if strings.HasPrefix(mp, prefix) {
			out = append(out, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("containerd: reading mounts: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out, nil
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// deleteBridge removes the CNI bridge if it exists.
func (p *Process) deleteBridge() error {
	if _, err := os.Stat(filepath.Join("/sys/class/net", p.cfg.BridgeName)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	out, err := exec.Command("ip", "link", "del", p.cfg.BridgeName).CombinedOutput()
	if err != nil {
		return fmt.Errorf("containerd: deleting bridge %s: %w: %s", p.cfg.BridgeName, err, bytes.TrimSpace(out))
	}
	return nil
}

// Exited returns a channel closed once containerd has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// missingNATTables returns the nft nat tables that do not exist now; none
// when nft is not installed.
func missingNATTables() []string {
	if _, err := exec.LookPath("nft"); err != nil {
		return nil
	}
	var missing []string
	for _, fam := range []string{"ip", "ip6"} {
		if err := exec.Command("nft", "list", "table", fam, "nat").Run(); err != nil {
			missing = append(missing, fam)
		}
	}
	return missing
}

// deleteEmptyNATTables deletes the nat tables of the given families when
// they hold no rules (only empty chains): another user's rules are never
// touched.
func deleteEmptyNATTables(families []string) error {
	var errs []error
	for _, fam := range families {
		out, err := exec.Command("nft", "list", "table", fam, "nat").Output()
		if err != nil {
			continue // not there (any more)
		}
		if hasNFTRules(string(out)) {
			continue
		}
		if b, err := exec.Command("nft", "delete", "table", fam, "nat").CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("containerd: deleting empty nft table %s nat: %w: %s", fam, err, bytes.TrimSpace(b)))
		}
	}
	return errors.Join(errs...)
}

// hasNFTRules reports whether an `nft list table` listing holds a rule:
// any line other than table/chain headers, base-chain type lines and
// closing braces.
func hasNFTRules(listing string) bool {
	for _, line := range strings.Split(listing, "\n") {
		l := strings.TrimSpace(line)
		switch {
		case l == "", l == "}", strings.HasPrefix(l, "table "), strings.HasPrefix(l, "chain "), strings.HasPrefix(l, "type "):
		default:
			return true
		}
	}
	return false
}
