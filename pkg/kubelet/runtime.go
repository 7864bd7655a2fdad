package kubelet

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Runtime is what the kubelet needs from a container runtime: the
// CRI-backed runtime on a real node, the simulated runtime for `skiff sim`.
//
// Implementations must be safe for concurrent use. The kubelet never calls
// SyncPod or KillPod concurrently for the same pod UID, but does call them
// concurrently for different pods.
type Runtime interface {
	// Version returns the runtime's name and version; the kubelet reports
	// it as the node's containerRuntimeVersion ("containerd://1.6.20").
	Version(ctx context.Context) (RuntimeVersion, error)

	// UpdatePodCIDR tells the runtime the pod CIDR the control plane
	// allocated to this node (node.spec.podCIDR), like CRI's
	// UpdateRuntimeConfig. The kubelet calls it each time it observes a new
	// non-empty value.
	UpdatePodCIDR(ctx context.Context, cidr string) error

	// SyncPod makes the runtime run pod (sandbox and containers) as its spec
	// says and returns what it observes. It is idempotent: calling it for a
	// pod that is already running as specified changes nothing and returns
	// no Events. It must not block waiting for containers to finish; state
	// changes expected at a known time are announced with NextSyncAfter.
	// On error the returned status still holds whatever was observed and
	// the Events that happened before the failure.
	SyncPod(ctx context.Context, pod *corev1.Pod) (PodRuntimeStatus, error)

	// KillPod stops every container of the pod with pod.UID, giving each
	// up to gracePeriod to exit, then removes the sandbox and releases its
	// resources (IP address). Killing an unknown pod is not an error. pod
	// may carry only UID, Namespace and Name: that is all the kubelet knows
	// of an orphan found by ListPods.
	KillPod(ctx context.Context, pod *corev1.Pod, gracePeriod time.Duration) error

	// ListPods returns the pods the runtime holds, including those started
	// before a kubelet restart, so the kubelet can adopt or clean them.
	ListPods(ctx context.Context) ([]RunningPod, error)
}

// RuntimeVersion names a container runtime and its version.
type RuntimeVersion struct {
	// Name is the runtime's name, e.g. "containerd" or "sim".
	Name string
	// Version is the runtime's version, e.g. "1.6.20".
	Version string
}

// String returns the form the Node API reports: "<name>://<version>".
func (v RuntimeVersion) String() string { return v.Name + "://" + v.Version }

// RunningPod identifies a pod the runtime holds.
type RunningPod struct {
	UID       types.UID
	Namespace string
	Name      string
}

// PodRuntimeStatus is what the runtime observes of one pod; the kubelet
// turns it into the pod's API status.
type PodRuntimeStatus struct {
	// SandboxReady reports that the sandbox exists with its network set
	// up (the PodReadyToStartContainers condition).
	SandboxReady bool
	// PodIPs are the pod's addresses, primary first; empty until the
	// sandbox has its network.
	PodIPs []string
	// InitContainers and Containers hold one entry per container the
	// runtime has created, in any order; containers not listed have not
	// been created yet.
	InitContainers []ContainerStatus
	Containers     []ContainerStatus
	// Events happened during this SyncPod call; the kubelet records them
	// against the pod with source "kubelet".
	Events []Event
	// NextSyncAfter, when positive, asks the kubelet to call SyncPod again
	// after this long because the runtime expects a change by then (a
	// delayed start, a simulated container exiting). Zero means the next
	// sync comes from a pod change or the periodic resync.
	NextSyncAfter time.Duration
}

// ContainerStatus is the runtime's view of one container.
type ContainerStatus struct {
	// Name is the container's name in the pod spec.
	Name string
	// ID is "<runtime>://<id>", e.g. "containerd://4f2a..." or "sim://4f2a...".
	ID string
	// ImageID is the resolved image reference, e.g.
	// "docker.io/library/nginx@sha256:...".
	ImageID string
	// State is the current state; exactly one member is set.
	State corev1.ContainerState
	// LastTerminationState is the state of the previous instance after a
	// restart; zero if the container never restarted.
	LastTerminationState corev1.ContainerState
	// RestartCount counts restarts of the container.
	RestartCount int32
	// Unready and NotStarted are set by the kubelet from the container's
	// readiness and startup probes; runtimes leave them false. A running
	// container is ready and started unless they say otherwise.
	Unready, NotStarted bool
}

// ProbingRuntime is implemented by runtimes whose containers the kubelet
// probes (the CRI runtime). For a Runtime that does not implement it, such
// as the simulated one, probes are never run: a running container counts
// as started, ready and alive, as if every probe succeeded.
type ProbingRuntime interface {
	Runtime
	// ExecSync runs cmd in the container with containerID
	// ("<runtime>://<id>") and returns its combined output and exit
	// code. A command still running after timeout is killed and
	// reported as an error wrapping context.DeadlineExceeded; other
	// errors mean the command could not be run.
	ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (output []byte, exitCode int32, err error)
	// KillContainer stops the container with containerID of pod, giving
	// it up to gracePeriod to exit; the next SyncPod restarts it as the
	// pod's restart policy says. Killing a container that is gone is
	// not an error.
	KillContainer(ctx context.Context, pod *corev1.Pod, containerID string, gracePeriod time.Duration) error
}

// Event is something that happened to a pod inside the runtime, recorded
// by the kubelet as a Kubernetes Event on the pod.
type Event struct {
	// Type is corev1.EventTypeNormal or corev1.EventTypeWarning.
	Type string
	// Reason is the upstream reason: Pulling, Pulled, Created, Started, ...
	Reason string
	// Message is the human-readable message.
	Message string
	// FieldPath points into the pod, e.g. "spec.containers{nginx}"; empty
	// for pod-level events.
	FieldPath string
}

// ContainerFieldPath returns the involvedObject.fieldPath upstream uses for
// events about the named container ("spec.containers{nginx}" or
// "spec.initContainers{init}").
func ContainerFieldPath(init bool, name string) string {
	if init {
		return "spec.initContainers{" + name + "}"
	}
	return "spec.containers{" + name + "}"
}

// VolumeManager sets up pod volumes on the host for a runtime that mounts
// them into containers (volume.Manager). The kubelet never calls it
// concurrently for the same pod UID.
type VolumeManager interface {
	// SetUp creates or refreshes every volume of pod; the kubelet calls
	// it before each SyncPod, which is how ConfigMap and Secret updates
	// reach mounted files. ready reports whether every volume exists, so
	// the containers can start; it may be true with an error when only
	// the refresh of an existing volume failed. Each failure is recorded
	// as a FailedMount event with err's message.
	SetUp(ctx context.Context, pod *corev1.Pod) (ready bool, err error)
	// TearDown unmounts and removes every volume of the pod with uid.
	// Tearing down a pod without volumes is not an error.
	TearDown(uid types.UID) error
}
