// Package simruntime is the container runtime of `skiff sim`: it runs no
// containers, only remembers when each pod "started" and derives every
// container's state from the clock. It implements kubelet.Runtime, so hollow
// nodes exercise the real kubelet code paths.
//
// Containers of pods with restartPolicy Always run forever; those of pods
// with restartPolicy Never or OnFailure exit 0 after the configured job
// duration. Init containers complete at once. Images are always "already
// present on machine".
package simruntime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/skiff-project/skiff/pkg/kubelet"
)

// Name and Version are what the runtime reports; nodes show
// containerRuntimeVersion "sim://<Version>".
const (
	Name    = "sim"
	Version = "1.0.0"
)

// Config configures a simulated runtime.
type Config struct {
	// Clock drives container start and exit times; clock.RealClock{} when
	// nil.
	Clock clock.PassiveClock
	// NodeIP is the node's address, the IP of hostNetwork pods.
	NodeIP string
	// FallbackCIDR is the pod range used until the control plane allocates
	// the node a podCIDR (UpdatePodCIDR); required.
	FallbackCIDR netip.Prefix
	// StartupDelay is how long containers stay ContainerCreating after
	// the first SyncPod of a pod.
	StartupDelay time.Duration
	// JobDuration is how long containers of pods with restartPolicy Never
	// or OnFailure run before exiting 0.
	JobDuration time.Duration
}

// Runtime is a simulated container runtime for one node. It is safe for
// concurrent use.
type Runtime struct {
	clock        clock.PassiveClock // immutable; never nil
	nodeIP       string             // immutable
	startupDelay time.Duration      // immutable
	jobDuration  time.Duration      // immutable

	mu   sync.Mutex
	pods map[types.UID]*simPod // guarded by mu
	ips  ipPool                // guarded by mu

	// started is when the simulated node booted; immutable.
	started time.Time
	// retiredCPU is the core-seconds used by pods since killed, so the
	// node's cumulative CPU never decreases (stats.go); guarded by mu.
	retiredCPU float64
}

// simPod is all the runtime stores per pod: everything else is derived from
// the pod spec and the clock, which keeps a hollow node's memory small.
type simPod struct {
	namespace, name string
	created         time.Time  // first SyncPod
	ip              netip.Addr // zero for hostNetwork pods
	startReported   bool       // Pulled/Created/Started events emitted
	// exits is set for restartPolicy Never/OnFailure: the containers
	// stop after the job duration.
	exits bool
	// usage is each container's synthetic CPU and memory (stats.go).
	usage []containerUsage
}

// New returns a simulated runtime holding no pods.
func New(cfg Config) (*Runtime, error) {
	if !cfg.FallbackCIDR.IsValid() {
		return nil, errors.New("simruntime: FallbackCIDR is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	return &Runtime{
		clock:        cfg.Clock,
		nodeIP:       cfg.NodeIP,
		startupDelay: cfg.StartupDelay,
		jobDuration:  cfg.JobDuration,
		pods:         map[types.UID]*simPod{},
		ips:          newIPPool(cfg.FallbackCIDR.Masked()),
		started:      cfg.Clock.Now(),
	}, nil
}

var _ kubelet.Runtime = (*Runtime)(nil)

// Version implements kubelet.Runtime.
func (r *Runtime) Version(context.Context) (kubelet.RuntimeVersion, error) {
	return kubelet.RuntimeVersion{Name: Name, Version: Version}, nil
}

// UpdatePodCIDR implements kubelet.Runtime: new pods get addresses from
// cidr; running pods keep theirs.
func (r *Runtime) UpdatePodCIDR(_ context.Context, cidr string) error {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return fmt.Errorf("simruntime: parsing pod CIDR: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ips = newIPPool(p.Masked())
	return nil
}

// ListPods implements kubelet.Runtime.
func (r *Runtime) ListPods(context.Context) ([]kubelet.RunningPod, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]kubelet.RunningPod, 0, len(r.pods))
	for uid, p := range r.pods {
		out = append(out, kubelet.RunningPod{UID: uid, Namespace: p.namespace, Name: p.name})
	}
	return out, nil
}

// KillPod implements kubelet.Runtime: simulated containers stop at once.
func (r *Runtime) KillPod(_ context.Context, pod *corev1.Pod, _ time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.pods[pod.UID]; ok {
		r.retiredCPU += r.podCPUSeconds(p, r.clock.Now())
		r.ips.release(p.ip)
		delete(r.pods, pod.UID)
	}
	return nil
}

// SyncPod implements kubelet.Runtime.
func (r *Runtime) SyncPod(_ context.Context, pod *corev1.Pod) (kubelet.PodRuntimeStatus, error) {
	now := r.clock.Now()
	r.mu.Lock()
	p, ok := r.pods[pod.UID]
	if !ok {
		p = &simPod{namespace: pod.Namespace, name: pod.Name, created: now, usage: syntheticUsage(pod),
			exits: pod.Spec.RestartPolicy == corev1.RestartPolicyNever || pod.Spec.RestartPolicy == corev1.RestartPolicyOnFailure}
		if !pod.Spec.HostNetwork {
			ip, err := r.ips.allocate()
			if err != nil {
				r.mu.Unlock()
				return kubelet.PodRuntimeStatus{}, fmt.Errorf("simruntime: pod %s/%s: %w", pod.Namespace, pod.Name, err)
			}
			p.ip = ip
		}
		r.pods[pod.UID] = p
	}
	started := now.Sub(p.created) >= r.startupDelay
	emitStart := started && !p.startReported
	if emitStart {
		p.startReported = true
	}
	ip, created := p.ip, p.created
	r.mu.Unlock()

	rs := kubelet.PodRuntimeStatus{SandboxReady: true}
	switch {
	case pod.Spec.HostNetwork && r.nodeIP != "":
		rs.PodIPs = []string{r.nodeIP}
	case ip.IsValid():
		rs.PodIPs = []string{ip.String()}
	}
	if !started {
		rs.NextSyncAfter = created.Add(r.startupDelay).Sub(now)
		return rs, nil
	}
	startedAt := created.Add(r.startupDelay)
	for _, c := range pod.Spec.InitContainers {
		rs.InitContainers = append(rs.InitContainers, kubelet.ContainerStatus{
			Name: c.Name, ID: containerID(pod.UID, c.Name), ImageID: imageID(c.Image),
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 0, Reason: "Completed", ContainerID: containerID(pod.UID, c.Name),
				StartedAt: metav1.NewTime(startedAt), FinishedAt: metav1.NewTime(startedAt),
			}},
		})
		if emitStart {
			rs.Events = append(rs.Events, startEvents(true, c)...)
		}
	}
	exits := pod.Spec.RestartPolicy == corev1.RestartPolicyNever || pod.Spec.RestartPolicy == corev1.RestartPolicyOnFailure
	finishAt := startedAt.Add(r.jobDuration)
	for _, c := range pod.Spec.Containers {
		cs := kubelet.ContainerStatus{Name: c.Name, ID: containerID(pod.UID, c.Name), ImageID: imageID(c.Image)}
		if exits && !now.Before(finishAt) {
			cs.State.Terminated = &corev1.ContainerStateTerminated{
				ExitCode: 0, Reason: "Completed", ContainerID: cs.ID,
				StartedAt: metav1.NewTime(startedAt), FinishedAt: metav1.NewTime(finishAt),
			}
		} else {
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(startedAt)}
		}
		rs.Containers = append(rs.Containers, cs)
		if emitStart {
			rs.Events = append(rs.Events, startEvents(false, c)...)
		}
	}
	if exits && now.Before(finishAt) && len(pod.Spec.Containers) > 0 {
		rs.NextSyncAfter = finishAt.Sub(now)
	}
	return rs, nil
}

// startEvents are the events upstream records when it starts a container
// whose image is already present.
func startEvents(init bool, c corev1.Container) []kubelet.Event {
	fp := kubelet.ContainerFieldPath(init, c.Name)
	return []kubelet.Event{
		{Type: corev1.EventTypeNormal, Reason: "Pulled", FieldPath: fp,
			Message: fmt.Sprintf("Container image %q already present on machine and can be accessed by the pod", c.Image)},
		{Type: corev1.EventTypeNormal, Reason: "Created", FieldPath: fp, Message: "Container created"},
		{Type: corev1.EventTypeNormal, Reason: "Started", FieldPath: fp, Message: "Container started"},
	}
}

// containerID derives a stable fake container ID from the pod UID and the
// container name, so nothing needs storing per container.
func containerID(uid types.UID, name string) string {
	sum := sha256.Sum256([]byte(string(uid) + "/" + name))
	return Name + "://" + hex.EncodeToString(sum[:])
}

// imageID derives a digest-style image reference from the image name.
func imageID(image string) string {
	sum := sha256.Sum256([]byte(image))
	return image + "@sha256:" + hex.EncodeToString(sum[:])
}

// ipPool hands out the host addresses of a prefix, skipping the network
// address and the first host (the gateway, as with the CNI bridge plugin).
type ipPool struct {
	prefix netip.Prefix
	next   netip.Addr
	free   []netip.Addr // released addresses, reused first
	inUse  int
	size   int // usable addresses; capped to keep the arithmetic small
}

func newIPPool(p netip.Prefix) ipPool {
	bits := p.Addr().BitLen() - p.Bits()
	size := 1 << 20
	if bits < 20 {
		size = 1<<bits - 3 // network, gateway, broadcast
	}
	return ipPool{prefix: p, next: p.Addr().Next().Next(), size: size}
}

func (p *ipPool) allocate() (netip.Addr, error) {
	if n := len(p.free); n > 0 {
		a := p.free[n-1]
		p.free = p.free[:n-1]
		p.inUse++
		return a, nil
	}
	if p.inUse >= p.size || !p.prefix.Contains(p.next) {
		return netip.Addr{}, fmt.Errorf("no free pod IP in %s", p.prefix)
	}
	a := p.next
	p.next = p.next.Next()
	p.inUse++
	return a, nil
}

// release returns a to the pool if it came from the current prefix (an
// address from a range replaced by UpdatePodCIDR is simply dropped).
func (p *ipPool) release(a netip.Addr) {
	if !a.IsValid() || !p.prefix.Contains(a) {
		return
	}
	p.free = append(p.free, a)
	p.inUse--
}
