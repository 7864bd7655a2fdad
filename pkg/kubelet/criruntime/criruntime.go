// Package criruntime is the kubelet's container runtime on a real node: it
// implements kubelet.Runtime over the CRI (k8s.io/cri-client) against
// containerd.
//
// Each SyncPod is level-triggered like upstream's computePodActions: it
// reads the pod's sandboxes and containers from the CRI (found by the
// io.kubernetes.pod.uid label, so a restarted kubelet re-adopts them),
// creates the sandbox if none is ready, runs init containers one at a time
// in order, then the regular containers, restarts exited containers as the
// restart policy says with upstream's CrashLoopBackOff (10 s doubling to
// 5 min), and reports what it observed. containerd 1.6 streams no container
// events, so while a pod has live containers SyncPod asks to be called again
// after the poll interval (NextSyncAfter) to notice exits.
//
// The pod's cgroup (cgroupfs driver) is /kubepods[/burstable|/besteffort]/
// pod<uid> under the configured root; the runtime creates it before the
// sandbox and removes it in KillPod.
package criruntime

import (
	"context"
	"errors"
	"fmt"
	"os"
	goruntime "runtime"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"

	"github.com/skiff-project/skiff/pkg/kubelet"
	"github.com/skiff-project/skiff/pkg/kubelet/volume"
)

// Labels and annotations the runtime puts on sandboxes and containers,
// spelled as upstream's kubelet spells them so tools (crictl, upstream's
// kubelet) read them alike.
const (
	LabelPodName       = "io.kubernetes.pod.name"
	LabelPodNamespace  = "io.kubernetes.pod.namespace"
	LabelPodUID        = "io.kubernetes.pod.uid"
	LabelContainerName = "io.kubernetes.container.name"

	annotationContainerHash         = "io.kubernetes.container.hash"
	annotationRestartCount          = "io.kubernetes.container.restartCount"
	annotationTerminationPath       = "io.kubernetes.container.terminationMessagePath"
	annotationTerminationPolicy     = "io.kubernetes.container.terminationMessagePolicy"
	annotationPodTerminationGrace   = "io.kubernetes.pod.terminationGracePeriod"
	defaultTerminationMessagePath   = "/dev/termination-log"
	defaultTerminationMessagePolicy = corev1.TerminationMessageReadFile
)

// Defaults of Config.
const (
	DefaultPodLogsRoot     = "/var/log/pods"
	DefaultPollInterval    = 2 * time.Second
	DefaultClusterDomain   = "cluster.local"
	DefaultResolvConf      = "/etc/resolv.conf"
	DefaultCgroupfsRoot    = "/sys/fs/cgroup"
	InitialBackoff         = 10 * time.Second
	MaxBackoff             = 5 * time.Minute
	minContainerStopPeriod = 0
)

// Config configures a Runtime.
type Config struct {
	// Runtime and Images are the CRI services, e.g. from
	// containerd.Connect; required. The Runtime does not close them.
	Runtime internalapi.RuntimeService
	Images  internalapi.ImageManagerService
	// RuntimeHandler selects the CRI runtime handler; "" is the default.
	RuntimeHandler string
	// PodLogsRoot holds a directory <namespace>_<name>_<uid> per pod;
	// DefaultPodLogsRoot when empty.
	PodLogsRoot string
	// CgroupRoot is the cgroup (cgroupfs driver) under which "kubepods"
	// lives; "/" when empty. Tests give each run its own root.
	CgroupRoot string
	// CgroupfsRoot is where the cgroup hierarchies are mounted;
	// DefaultCgroupfsRoot when empty.
	CgroupfsRoot string
	// NodeIPs are the node's addresses: the IPs of hostNetwork pods and
	// the value of status.hostIP(s) in the downward API.
	NodeIPs []string
	// ClusterDNS are the cluster DNS servers for dnsPolicy ClusterFirst;
	// when empty such pods get the node's resolv.conf like upstream.
	ClusterDNS []string
	// ClusterDomain is the cluster's DNS domain; DefaultClusterDomain when
	// empty.
	ClusterDomain string
	// ResolvConf is the node's resolver configuration, the base of
	// dnsPolicy Default; DefaultResolvConf when empty.
	ResolvConf string
	// NodeAllocatable is what resourceFieldRef reports for unset limits;
	// the machine's CPUs and memory when nil.
	NodeAllocatable corev1.ResourceList
	// PollInterval is how soon SyncPod asks to run again while a pod has
	// live containers (there are no CRI container events on containerd
	// 1.6); DefaultPollInterval when zero.
	PollInterval time.Duration
	// PodCIDRChanged, when set, is called by UpdatePodCIDR to apply a new
	// pod range to the CNI configuration (e.g. containerd.Process.
	// SetPodCIDR); the CRI's UpdateRuntimeConfig is always called too.
	PodCIDRChanged func(cidr string) error
	// Clock is used for backoff; clock.RealClock{} when nil.
	Clock clock.Clock
	// Volumes resolves the containers' volume mounts to host paths (a
	// volume.Manager, which the kubelet's Config.Volumes sets up); when
	// nil, volume mounts are ignored.
	Volumes VolumeMounter
	// Secrets reads a Secret, e.g. through the kubelet's client: the
	// runtime reads a pod's spec.imagePullSecrets with it when an image of
	// the pod is pulled (or checked for access, see pull.go). When nil,
	// images are pulled without credentials.
	Secrets func(ctx context.Context, namespace, name string) (*corev1.Secret, error)
	// Events, when set, receives the events of a pod that happen outside
	// SyncPod (FailedPreStopHook in KillPod); SyncPod reports its own in
	// PodRuntimeStatus.Events. KillPod may call it from several
	// goroutines at once.
	Events func(pod *corev1.Pod, e kubelet.Event)
}

// VolumeMounter resolves a container's volume mount to its host source;
// volume.Manager implements it.
type VolumeMounter interface {
	HostMount(pod *corev1.Pod, vm corev1.VolumeMount) (volume.Mount, error)
}

// Runtime implements kubelet.Runtime over the CRI. It is safe for
// concurrent use.
type Runtime struct {
	cfg     Config // immutable, defaults applied
	rs      internalapi.RuntimeService
	is      internalapi.ImageManagerService
	cgroups *cgroupManager // immutable
	// machineCPU and machineMemory default NodeAllocatable; immutable.
	machineCPU, machineMemory resource.Quantity

	// crashBackoff delays container restarts.
	crashBackoff *backoff
	// pulls keeps the image pull back-off and credentials (pull.go).
	pulls *pullState
	// cpuRates remembers Summary's previous CPU samples (stats.go).
	cpuRates cpuRates
}

var _ kubelet.Runtime = (*Runtime)(nil)

// New returns a Runtime using cfg's CRI services.
func New(cfg Config) (*Runtime, error) {
	if cfg.Runtime == nil || cfg.Images == nil {
		return nil, errors.New("criruntime: Config.Runtime and Config.Images are required")
	}
	setDefault(&cfg.PodLogsRoot, DefaultPodLogsRoot)
	setDefault(&cfg.CgroupRoot, "/")
	setDefault(&cfg.CgroupfsRoot, DefaultCgroupfsRoot)
	setDefault(&cfg.ClusterDomain, DefaultClusterDomain)
	setDefault(&cfg.ResolvConf, DefaultResolvConf)
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	cg, err := newCgroupManager(cfg.CgroupfsRoot)
	if err != nil {
		return nil, err
	}
	memTotal, err := machineMemory()
	if err != nil {
		return nil, err
	}
	r := &Runtime{
		cfg:           cfg,
		rs:            cfg.Runtime,
		is:            cfg.Images,
		cgroups:       cg,
		machineCPU:    *resource.NewQuantity(int64(numCPU()), resource.DecimalSI),
		machineMemory: *resource.NewQuantity(memTotal, resource.BinarySI),
		crashBackoff:  newBackoff(cfg.Clock, InitialBackoff, MaxBackoff),
		pulls:         newPullState(cfg.Clock),
	}
	return r, nil
}

func setDefault(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

// Version implements kubelet.Runtime: the CRI's runtime name and version,
// e.g. containerd 1.6.20 (a distribution suffix such as "~ds1" is cut).
func (r *Runtime) Version(ctx context.Context) (kubelet.RuntimeVersion, error) {
	v, err := r.rs.Version(ctx, "v1")
	if err != nil {
		return kubelet.RuntimeVersion{}, fmt.Errorf("criruntime: CRI version: %w", err)
	}
	version, _, _ := strings.Cut(strings.TrimPrefix(v.RuntimeVersion, "v"), "~")
	return kubelet.RuntimeVersion{Name: v.RuntimeName, Version: version}, nil
}

// UpdatePodCIDR implements kubelet.Runtime: it applies cidr through
// Config.PodCIDRChanged (if set) and tells the CRI.
func (r *Runtime) UpdatePodCIDR(ctx context.Context, cidr string) error {
	if r.cfg.PodCIDRChanged != nil {
		if err := r.cfg.PodCIDRChanged(cidr); err != nil {
			return fmt.Errorf("criruntime: applying pod CIDR %s: %w", cidr, err)
		}
	}
	err := r.rs.UpdateRuntimeConfig(ctx, &runtimeapi.RuntimeConfig{NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: cidr}})
	if err != nil {
		return fmt.Errorf("criruntime: updating the CRI's pod CIDR to %s: %w", cidr, err)
	}
	return nil
}

// ListPods implements kubelet.Runtime: every pod with a sandbox in the
// CRI, whatever its state, identified by upstream's labels.
func (r *Runtime) ListPods(ctx context.Context) ([]kubelet.RunningPod, error) {
	sandboxes, err := r.rs.ListPodSandbox(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("criruntime: listing pod sandboxes: %w", err)
	}
	seen := map[types.UID]bool{}
	var out []kubelet.RunningPod
	for _, s := range sandboxes {
		uid := types.UID(s.Labels[LabelPodUID])
		if uid == "" || seen[uid] {
			continue
		}
		seen[uid] = true
		out = append(out, kubelet.RunningPod{UID: uid, Namespace: s.Labels[LabelPodNamespace], Name: s.Labels[LabelPodName]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UID < out[j].UID })
	return out, nil
}

// KillPod implements kubelet.Runtime: it stops the pod's running
// containers in parallel, each with gracePeriod (its preStop hook first,
// then SIGTERM, then SIGKILL once the period passes; a failed hook goes
// to Config.Events as FailedPreStopHook), then stops and removes every sandbox of the pod (which
// removes its containers and releases its IP through CNI DEL), and
// removes the pod's cgroup. The pod's log directory is kept.
func (r *Runtime) KillPod(ctx context.Context, pod *corev1.Pod, gracePeriod time.Duration) error {
	containers, err := r.rs.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: map[string]string{LabelPodUID: string(pod.UID)}})
	if err != nil {
		return fmt.Errorf("criruntime: listing containers of pod %s: %w", podDesc(pod), err)
	}
	var podIP string
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, c := range containers {
		if c.State != runtimeapi.ContainerState_CONTAINER_RUNNING && c.State != runtimeapi.ContainerState_CONTAINER_CREATED {
			continue
		}
		name := c.Labels[LabelContainerName]
		if sc, _ := specContainer(pod, name); podIP == "" && sc != nil && sc.Lifecycle != nil && sc.Lifecycle.PreStop != nil &&
			sc.Lifecycle.PreStop.HTTPGet != nil && sc.Lifecycle.PreStop.HTTPGet.Host == "" {
			podIP = r.podIP(ctx, pod)
		}
		wg.Add(1)
		go func(id, name, podIP string) {
			defer wg.Done()
			if err := r.stopContainer(ctx, pod, id, name, podIP, gracePeriod, r.emitter(pod)); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("stopping container %s: %w", id, err))
				mu.Unlock()
			}
		}(c.Id, name, podIP)
	}
	wg.Wait()
	sandboxes, err := r.rs.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{LabelPodUID: string(pod.UID)}})
	if err != nil {
		errs = append(errs, fmt.Errorf("listing sandboxes: %w", err))
	}
	for _, s := range sandboxes {
		if err := r.rs.StopPodSandbox(ctx, s.Id); err != nil {
			errs = append(errs, fmt.Errorf("stopping sandbox %s: %w", s.Id, err))
			continue
		}
		if err := r.rs.RemovePodSandbox(ctx, s.Id); err != nil {
			errs = append(errs, fmt.Errorf("removing sandbox %s: %w", s.Id, err))
		}
	}
	if len(errs) == 0 {
		for _, qos := range []corev1.PodQOSClass{corev1.PodQOSGuaranteed, corev1.PodQOSBurstable, corev1.PodQOSBestEffort} {
			if err := r.cgroups.remove(r.podCgroup(pod.UID, qos)); err != nil {
				errs = append(errs, err)
			}
		}
		r.crashBackoff.forget(string(pod.UID))
		r.pulls.forget(pod.UID)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("criruntime: killing pod %s: %w", podDesc(pod), err)
	}
	return nil
}

// podDesc names a pod in messages like upstream's format.Pod:
// "name_namespace(uid)".
func podDesc(pod *corev1.Pod) string {
	return fmt.Sprintf("%s_%s(%s)", pod.Name, pod.Namespace, pod.UID)
}

// podLogDir is the pod's log directory.
func (r *Runtime) podLogDir(pod *corev1.Pod) string {
	return fmt.Sprintf("%s/%s_%s_%s", strings.TrimRight(r.cfg.PodLogsRoot, "/"), pod.Namespace, pod.Name, pod.UID)
}

// podCgroup is the pod's cgroup path (cgroupfs notation) for its QoS class.
func (r *Runtime) podCgroup(uid types.UID, qos corev1.PodQOSClass) string {
	base := strings.TrimRight(r.cfg.CgroupRoot, "/") + "/kubepods"
	switch qos {
	case corev1.PodQOSBurstable:
		base += "/burstable"
	case corev1.PodQOSBestEffort:
		base += "/besteffort"
	}
	return base + "/pod" + string(uid)
}

// numCPU is the number of CPUs the kubelet may use.
func numCPU() int {
	n := 0
	if b, err := os.ReadFile("/sys/fs/cgroup/cpuset/cpuset.cpus"); err == nil {
		n = countCPUs(strings.TrimSpace(string(b)))
	}
	if n > 0 {
		return n
	}
	return max(1, goruntime.NumCPU())
}

// countCPUs counts the CPUs of a cpuset list such as "0-3,6".
func countCPUs(list string) int {
	n := 0
	for _, part := range strings.Split(list, ",") {
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		var a, b int
		if _, err := fmt.Sscan(lo, &a); err != nil {
			return 0
		}
		b = a
		if isRange {
			if _, err := fmt.Sscan(hi, &b); err != nil {
				return 0
			}
		}
		n += b - a + 1
	}
	return n
}

// machineMemory returns MemTotal from /proc/meminfo in bytes.
func machineMemory() (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("criruntime: reading /proc/meminfo: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			var kb int64
			if _, err := fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb); err != nil {
				return 0, fmt.Errorf("criruntime: parsing MemTotal %q: %w", line, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, errors.New("criruntime: no MemTotal in /proc/meminfo")
}
