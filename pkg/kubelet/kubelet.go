// Package kubelet is Skiff's node agent: it registers the node, keeps its
// Lease and status fresh, and runs the pods bound to the node through a
// Runtime, reporting their status back to the API server. It is a client of
// the API server only (client-go), and the same code drives the CRI runtime
// of a real node and the simulated runtime of `skiff sim`.
//
// Structure: one heartbeat goroutine (lease renewal, node status, periodic
// pod resync) and a small pool of pod workers draining a queue of pod keys.
// There is no goroutine per pod, so a process can host a thousand kubelets
// with a hundred pods each.
package kubelet

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/skiff-project/skiff/pkg/kubelet/prober"
)

// Defaults for the zero values of Config, as upstream's kubelet has them.
const (
	DefaultNodeStatusUpdateFrequency = 10 * time.Second
	DefaultNodeStatusReportFrequency = 5 * time.Minute
	DefaultLeaseDuration             = 40 * time.Second
	DefaultResyncInterval            = time.Minute
	DefaultWorkers                   = 4
	// DefaultTerminationGracePeriod applies to pods whose spec does not
	// say (the API server normally defaults the field to 30s).
	DefaultTerminationGracePeriod = 30 * time.Second
)

// Config is what a Kubelet needs. NodeName, Client, Runtime and Capacity
// are required; every other zero field takes the documented default.
type Config struct {
	// NodeName names the Node object; also the hostname label and the
	// Lease name.
	NodeName string
	// Client talks to the API server.
	Client kubernetes.Interface
	// Runtime runs the pods.
	Runtime Runtime
	// Clock drives heartbeats, transition times and delayed syncs;
	// clock.RealClock{} when nil.
	Clock clock.WithTicker

	// Recorder records events with source "kubelet"; when nil, the
	// Kubelet creates (and owns) a broadcaster writing to Client. Sharing
	// one broadcaster among many kubelets saves a goroutine and a cache
	// each: pass broadcaster.NewRecorder(scheme.Scheme,
	// corev1.EventSource{Component: "kubelet", Host: nodeName}).
	Recorder record.EventRecorder
	// Pods is the pod source to share with other kubelets of the process;
	// when nil the Kubelet creates (and runs) its own, watching only pods
	// bound to NodeName.
	Pods *PodSource
	// Nodes, when set, is a lister (of a shared node informer) that the
	// status loop reads its Node from instead of a GET per update.
	Nodes corelisters.NodeLister
	// Services, when set, lists the Services whose variables
	// (KUBERNETES_SERVICE_HOST, ...) every container gets, as upstream's
	// kubelet does; ServicesSynced then reports whether its cache was
	// filled, and containers wait for it. Without it containers get no
	// service variables (the simulated nodes need none).
	Services       corelisters.ServiceLister
	ServicesSynced func() bool

	// Capacity is the node's capacity: cpu, memory, pods,
	// ephemeral-storage.
	Capacity corev1.ResourceList
	// Allocatable defaults to Capacity.
	Allocatable corev1.ResourceList
	// Labels are added to the well-known node labels (and win over them).
	Labels map[string]string
	// Addresses are the node's addresses; the InternalIPs become the
	// hostIPs of its pods.
	Addresses []corev1.NodeAddress
	// SystemInfo supplies machineID, systemUUID, bootID, kernelVersion,
	// osImage (and optionally operatingSystem and architecture, which
	// default to this process's GOOS/GOARCH); the kubelet fills in its
	// own version and the runtime's.
	SystemInfo corev1.NodeSystemInfo

	// NodeStatusUpdateFrequency is how often the kubelet computes the node
	// status (10s); it writes it only when it changed or when
	// NodeStatusReportFrequency (5m) has passed since the last write.
	NodeStatusUpdateFrequency time.Duration
	NodeStatusReportFrequency time.Duration
	// LeaseDuration is the Lease's leaseDurationSeconds (40s);
	// LeaseRenewInterval is how often it is renewed (a quarter of it).
	LeaseDuration      time.Duration
	LeaseRenewInterval time.Duration
	// ResyncInterval is how often every pod of the node is synced even
	// without a change (1m), to catch runtime changes nobody announced.
	ResyncInterval time.Duration
	// Workers is the number of pod workers (4); 1 suits a hollow node.
	Workers int

	// Volumes, when set, materialises the pods' volumes on the host
	// before each SyncPod and removes them once a pod is killed for
	// good. Runtimes that mount nothing (the simulated one) leave it nil.
	Volumes VolumeManager

	// StaticPodPath, upstream's --pod-manifest-path, is a directory of
	// Pod manifests (YAML or JSON, one or more documents per file;
	// hidden files are ignored) that the kubelet runs as static pods,
	// whether or not the API server is reachable, and shows in the API
	// as mirror pods. Empty disables static pods. The directory need not
	// exist yet.
	StaticPodPath string
	// FileCheckFrequency is how often StaticPodPath is re-read
	// (DefaultFileCheckFrequency).
	FileCheckFrequency time.Duration
}

// Kubelet is the node agent of one node. Create it with New and start it
// with Run, at most once.
type Kubelet struct {
	cfg      Config                                       // immutable after New; defaults applied
	recorder record.EventRecorder                         // immutable; never nil
	events   record.EventBroadcaster                      // immutable; nil unless the Kubelet owns it
	pods     *PodSource                                   // immutable; never nil
	ownPods  bool                                         // immutable; whether Run must run pods
	queue    workqueue.TypedRateLimitingInterface[string] // immutable; never nil; keys "namespace/name"
	hostIPs  []string                                     // immutable
	env      *envResolver                                 // immutable; never nil
	// probes runs container probes; immutable; nil when the runtime is
	// not a ProbingRuntime (probing is then skipped, see there).
	probes *prober.Manager

	registered chan struct{} // closed once the node is registered

	// Heartbeat state, touched only by registration and then the
	// heartbeat goroutine.
	runtimeVersion string
	node           *corev1.Node // last node status written (or read at registration)
	lastReport     time.Time    // when the node status was last written
	lease          *coordinationv1.Lease
	podCIDR        string // last pod CIDR passed to the runtime

	mu sync.Mutex
	// known maps the key of each pod the runtime runs for us to its UID,
	// so that a pod deleted (or re-created under the same name) is killed
	// in the runtime; guarded by mu.
	known map[string]types.UID
	// static holds the static pods; immutable; nil without
	// Config.StaticPodPath.
	static *fileSource
	// staticStatus holds the last status of each static pod, by key;
	// guarded by mu.
	staticStatus map[string]staticStatus
	// nodeUID is the registered Node's UID, the owner of mirror pods;
	// nodeKnown reports that it was recorded (see noteNode). Guarded by
	// mu.
	nodeUID   types.UID
	nodeKnown bool
}

// New validates cfg, applies defaults and returns a Kubelet that does
// nothing until Run.
func New(cfg Config) (*Kubelet, error) {
	switch {
	case cfg.NodeName == "":
		return nil, errors.New("kubelet: NodeName is required")
	case cfg.Client == nil:
		return nil, errors.New("kubelet: Client is required")
	case cfg.Runtime == nil:
		return nil, errors.New("kubelet: Runtime is required")
	case len(cfg.Capacity) == 0:
		return nil, errors.New("kubelet: Capacity is required")
	case cfg.Services != nil && cfg.ServicesSynced == nil:
		return nil, errors.New("kubelet: ServicesSynced is required with Services")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Allocatable == nil {
		cfg.Allocatable = cfg.Capacity
	}
	setDefault(&cfg.NodeStatusUpdateFrequency, DefaultNodeStatusUpdateFrequency)
	setDefault(&cfg.NodeStatusReportFrequency, DefaultNodeStatusReportFrequency)
	setDefault(&cfg.LeaseDuration, DefaultLeaseDuration)
	setDefault(&cfg.LeaseRenewInterval, cfg.LeaseDuration/4)
	setDefault(&cfg.ResyncInterval, DefaultResyncInterval)
	setDefault(&cfg.FileCheckFrequency, DefaultFileCheckFrequency)
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	cfg.SystemInfo = defaultSystemInfo(cfg.SystemInfo)

	k := &Kubelet{
		cfg:        cfg,
		recorder:   cfg.Recorder,
		pods:       cfg.Pods,
		registered: make(chan struct{}),
		known:      map[string]types.UID{},
		env:        newEnvResolver(cfg.Client, cfg.Services, cfg.ServicesSynced),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "kubelet-" + cfg.NodeName, Clock: cfg.Clock},
		),
	}
	for _, a := range cfg.Addresses {
		if a.Type == corev1.NodeInternalIP {
			k.hostIPs = append(k.hostIPs, a.Address)
		}
	}
	if k.pods == nil {
		k.pods, k.ownPods = NewPodSource(cfg.Client, cfg.NodeName), true
	}
	k.staticStatus = map[string]staticStatus{}
	if cfg.StaticPodPath != "" {
		k.static = newFileSource(cfg.StaticPodPath, cfg.NodeName, cfg.Clock, cfg.FileCheckFrequency, k.queue.Add)
	}
	if k.recorder == nil {
		k.events = record.NewBroadcaster(record.WithContext(context.Background()))
		k.recorder = k.events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: cfg.NodeName})
	}
	if pr, ok := cfg.Runtime.(ProbingRuntime); ok {
		k.probes = prober.New(prober.Config{
			Executor: prober.NewExecutor(pr),
			Clock:    cfg.Clock,
			Changed:  k.queue.Add,
			Event: func(pod *corev1.Pod, container, eventType, reason, message string) {
				k.recordPodEvent(pod, Event{Type: eventType, Reason: reason, Message: message, FieldPath: ContainerFieldPath(false, container)})
			},
		})
	}
	return k, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Registered returns a channel closed once the Node object is registered.
func (k *Kubelet) Registered() <-chan struct{} { return k.registered }

// Run registers the node, then heartbeats and syncs pods until ctx is done.
// Static pods are read and started first, before and regardless of the
// registration. It returns nil after a clean stop (every goroutine it
// started has exited), or an error if it could not start. Stopping Run
// only stops the heartbeats: the node's pods keep running in the runtime,
// and the node lifecycle controller marks the node NotReady once its Lease
// expires.
func (k *Kubelet) Run(ctx context.Context) error {
	logger := klog.FromContext(ctx).WithValues("node", k.cfg.NodeName)
	ctx = klog.NewContext(ctx, logger)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer k.probes.Stop()

	if k.events != nil {
		k.events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: k.cfg.Client.CoreV1().Events("")})
		defer k.events.Shutdown()
	}
	if k.ownPods {
		wg.Go(func() { k.pods.Run(ctx) })
	}
	k.recorder.Event(k.nodeRef(), corev1.EventTypeNormal, "Starting", "Starting kubelet.")

	defer k.queue.ShutDown()
	startWorkers := func() {
		for range k.cfg.Workers {
			wg.Go(func() {
				defer utilruntime.HandleCrash()
				for k.processNext(ctx) {
				}
			})
		}
	}
	if k.static != nil {
		// Static pods need no API server (they may be the API server):
		// they start now, and their mirror pods follow once the node is
		// registered and the pod cache synced.
		k.static.scan(ctx)
		wg.Go(func() { k.static.run(ctx) })
		for _, key := range k.static.keys() {
			k.queue.Add(key)
		}
		startWorkers()
	}

	if err := k.retry(ctx, "registering node", func() error { return k.registerNode(ctx) }); err != nil {
		return err
	}
	k.noteNode(k.node)
	close(k.registered)
	logger.V(2).Info("node registered")
	k.logErr(ctx, "renewing lease", k.renewLease(ctx))

	if !cache.WaitForCacheSync(ctx.Done(), k.pods.HasSynced) {
		return fmt.Errorf("kubelet %s: pod cache did not sync: %w", k.cfg.NodeName, context.Cause(ctx))
	}
	// Register before listing: a pod that appears between the two is
	// then seen by at least one of them.
	unregister, err := k.pods.register(k.cfg.NodeName, k.queue.Add)
	if err != nil {
		return fmt.Errorf("kubelet %s: %w", k.cfg.NodeName, err)
	}
	defer unregister()
	k.logErr(ctx, "cleaning up orphaned pods", k.adoptRuntimePods(ctx))
	k.enqueueAll()
	if k.static == nil {
		startWorkers()
	}
	k.heartbeat(ctx)
	return nil
}

// heartbeat renews the Lease, updates node status and resyncs pods, each
// on its own ticker, until ctx is done.
func (k *Kubelet) heartbeat(ctx context.Context) {
	lease := k.cfg.Clock.NewTicker(k.cfg.LeaseRenewInterval)
	defer lease.Stop()
	status := k.cfg.Clock.NewTicker(k.cfg.NodeStatusUpdateFrequency)
	defer status.Stop()
	resync := k.cfg.Clock.NewTicker(k.cfg.ResyncInterval)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-lease.C():
			k.logErr(ctx, "renewing lease", k.renewLease(ctx))
		case <-status.C():
			k.logErr(ctx, "updating node status", k.syncNodeStatus(ctx, false))
			k.noteNode(k.node)
		case <-resync.C():
			k.enqueueAll()
		}
	}
}

// retry calls f until it succeeds or ctx is done, backing off
// exponentially from 100ms to 7s between attempts like upstream's
// registration loop.
func (k *Kubelet) retry(ctx context.Context, what string, f func() error) error {
	delay := 100 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return nil
		}
		klog.FromContext(ctx).Info("retrying", "what", what, "err", err, "after", delay)
		t := k.cfg.Clock.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("kubelet %s: %s: %w (last error: %w)", k.cfg.NodeName, what, context.Cause(ctx), err)
		case <-t.C():
		}
		delay = min(2*delay, 7*time.Second)
	}
}

func (k *Kubelet) logErr(ctx context.Context, what string, err error) {
	if err != nil && ctx.Err() == nil {
		klog.FromContext(ctx).Error(err, what)
	}
}

// enqueueAll queues every cached pod of the node for a sync, every static
// pod, and every pod the runtime runs for us, so that a deletion whose
// event was missed is still noticed.
func (k *Kubelet) enqueueAll() {
	for _, p := range k.pods.podsOn(k.cfg.NodeName) {
		k.queue.Add(p.Namespace + "/" + p.Name)
	}
	for _, key := range k.static.keys() {
		k.queue.Add(key)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for key := range k.known {
		k.queue.Add(key)
	}
}
