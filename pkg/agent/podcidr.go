package agent

import (
	"context"
	"errors"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/skiff-project/skiff/pkg/kubelet"
)

// networkWaitRetry is how soon a pod that arrived before the pod CIDR is
// synced again.
const networkWaitRetry = 500 * time.Millisecond

// podCIDRGate is the kubelet's Runtime until the node's pod range is
// known: it holds pods back (Pending, ContainerCreating) so that none gets
// an address from the placeholder range, and passes everything through
// afterwards. Safe for concurrent use.
type podCIDRGate struct {
	kubelet.Runtime // the CRI runtime; immutable

	mu   sync.Mutex
	cidr string // the range applied last; guarded by mu
	// ready is closed once a range is applied; immutable.
	ready chan struct{}
	once  sync.Once
}

func newPodCIDRGate(rt kubelet.Runtime) *podCIDRGate {
	return &podCIDRGate{Runtime: rt, ready: make(chan struct{})}
}

// UpdatePodCIDR applies cidr unless it is the one applied last, and opens
// the gate.
func (g *podCIDRGate) UpdatePodCIDR(ctx context.Context, cidr string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if cidr == g.cidr {
		return nil
	}
	if err := g.Runtime.UpdatePodCIDR(ctx, cidr); err != nil {
		return err
	}
	g.cidr = cidr
	g.once.Do(func() { close(g.ready) })
	return nil
}

// SyncPod holds pod back until a pod range is applied, unless it uses
// the host's network (it takes no address from the range): static pods of
// that kind must run before the control plane allocates anything.
func (g *podCIDRGate) SyncPod(ctx context.Context, pod *corev1.Pod) (kubelet.PodRuntimeStatus, error) {
	select {
	case <-g.ready:
		return g.Runtime.SyncPod(ctx, pod)
	default:
		if pod.Spec.HostNetwork {
			return g.Runtime.SyncPod(ctx, pod)
		}
		return kubelet.PodRuntimeStatus{NextSyncAfter: networkWaitRetry}, nil
	}
}

// ExecSync passes through to the CRI runtime, so that the kubelet runs
// container probes.
func (g *podCIDRGate) ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) ([]byte, int32, error) {
	pr, ok := g.Runtime.(kubelet.ProbingRuntime)
	if !ok {
		return nil, 0, errors.New("agent: the runtime cannot exec in containers")
	}
	return pr.ExecSync(ctx, containerID, cmd, timeout)
}

// KillContainer passes through to the CRI runtime.
func (g *podCIDRGate) KillContainer(ctx context.Context, pod *corev1.Pod, containerID string, gracePeriod time.Duration) error {
	pr, ok := g.Runtime.(kubelet.ProbingRuntime)
	if !ok {
		return errors.New("agent: the runtime cannot kill single containers")
	}
	return pr.KillContainer(ctx, pod, containerID, gracePeriod)
}

// hasCIDR reports whether a range has been applied.
func (g *podCIDRGate) hasCIDR() bool {
	select {
	case <-g.ready:
		return true
	default:
		return false
	}
}

// watchPodCIDR applies the Node's spec.podCIDR as soon as the control
// plane allocates it (the kubelet would see it only at its next status
// update), and the fallback range if none arrives within the timeout. It
// returns when ctx is done.
func watchPodCIDR(ctx context.Context, client kubernetes.Interface, cfg Config, gate *podCIDRGate) {
	logger := klog.FromContext(ctx)
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", cfg.NodeName).String()
	}))
	apply := func(obj any) {
		node, ok := obj.(*corev1.Node)
		if !ok || node.Spec.PodCIDR == "" {
			return
		}
		if err := gate.UpdatePodCIDR(ctx, node.Spec.PodCIDR); err != nil {
			logger.Error(err, "applying the node's pod CIDR", "cidr", node.Spec.PodCIDR)
			return
		}
		logger.V(1).Info("pod CIDR applied", "cidr", node.Spec.PodCIDR)
	}
	inf := factory.Core().V1().Nodes().Informer()
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    apply,
		UpdateFunc: func(_, obj any) { apply(obj) },
	})
	factory.Start(ctx.Done())
	defer factory.Shutdown()

	timer := time.NewTimer(cfg.PodCIDRTimeout)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return
	case <-gate.ready:
	case <-timer.C:
		if cfg.FallbackPodCIDR != "" && !gate.hasCIDR() {
			logger.Info("no podCIDR allocated to the node; using the fallback range", "after", cfg.PodCIDRTimeout, "cidr", cfg.FallbackPodCIDR)
			if err := gate.UpdatePodCIDR(ctx, cfg.FallbackPodCIDR); err != nil {
				logger.Error(err, "applying the fallback pod CIDR")
			}
		}
	}
	<-ctx.Done()
}
