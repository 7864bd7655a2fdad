// Package controllermanager runs Skiff's controllers as one component, like
// kube-controller-manager: one clientset and shared informer factory, one
// event broadcaster, optional leader election on a Lease, and a registry of
// controllers that can be enabled by name.
package controllermanager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// Defaults used when the corresponding Options field is zero.
const (
	DefaultLeaseNamespace = "kube-system"
	// LeaseName is the Lease contended for, as upstream, so tooling that
	// looks for the active controller manager finds it.
	LeaseName = "kube-controller-manager"

	// Throughput matters more than politeness towards our own API server:
	// client-go's defaults (5 QPS, burst 10) would make a 1,000-replica
	// scale-up take minutes. At 500 QPS pod creation was the bottleneck of
	// a 10,000-replica rollout (25.8 s); at 2,000 it took 23.4 s, bounded by
	// the API server's CPU (skiff bench scheduling, 1,000 nodes).
	clientQPS   = 2000
	clientBurst = 4000

	leaseDuration = 15 * time.Second
	renewDeadline = 10 * time.Second
	retryPeriod   = 2 * time.Second
)

// Options configures Run. The zero value of every field but Config is valid.
type Options struct {
	// Config reaches the API server; the controller manager talks to it
	// through client-go only. Required. Run does not modify it.
	Config *rest.Config
	// Controllers to enable; nil means all. Names as upstream
	// ("deployment", "replicaset", ...); "*" means all, "-name" disables
	// one. Unknown names are an error.
	Controllers []string
	// LeaderElect makes Run contend for the Lease LeaseName in
	// LeaseNamespace and run controllers only while leading.
	LeaderElect bool
	// LeaseNamespace defaults to DefaultLeaseNamespace.
	LeaseNamespace string
	// Identity is this instance's leader-election identity; defaults to
	// "<hostname>_<random>".
	Identity string
	// NodeMonitorGracePeriod is how long a node may miss heartbeats before
	// it is marked unreachable (node lifecycle controller).
	NodeMonitorGracePeriod time.Duration
	// DefaultNotReadyTolerationSeconds and DefaultUnreachableTolerationSeconds
	// are the tolerations added to pods for the not-ready/unreachable taints.
	DefaultNotReadyTolerationSeconds    int64
	DefaultUnreachableTolerationSeconds int64
	// ClusterCIDR is the pod network node podCIDRs are allocated from.
	ClusterCIDR string
	// Clock drives controllers' timing; defaults to the real clock.
	Clock clock.WithTicker
}

// controllerContext is what a controller's init function gets: shared
// clients and informers and a way to start its goroutines. It is valid for
// the duration of one leadership term.
type controllerContext struct {
	// Client is the shared clientset. Immutable.
	Client kubernetes.Interface
	// Metadata is a metadata-only client (garbage collector, namespace
	// deletion). Immutable.
	Metadata metadata.Interface
	// Informers is the shared informer factory; init functions request the
	// informers they need before Run starts the factory. Immutable.
	Informers informers.SharedInformerFactory
	// Options are Run's options, defaults applied. Immutable.
	Options Options
	// Clock is Options.Clock. Immutable.
	Clock clock.WithTicker

	broadcaster record.EventBroadcaster
	wg          *sync.WaitGroup
	ctx         context.Context
	errs        chan<- error
}

// Recorder returns an event recorder that reports as component (the From
// column of `kubectl describe`, e.g. "deployment-controller").
func (c *controllerContext) Recorder(component string) record.EventRecorder {
	return c.broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component})
}

// Go runs fn in a goroutine owned by the controller manager: fn must return
// once its context is done, and Run waits for it before returning. A non-nil
// error from fn is logged and stops the controller manager.
func (c *controllerContext) Go(name string, fn func(ctx context.Context) error) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := fn(c.ctx); err != nil && c.ctx.Err() == nil {
			select {
			case c.errs <- fmt.Errorf("controller %s: %w", name, err):
			default:
			}
		}
	}()
}

// initFunc constructs one controller (registering its informer handlers
// synchronously, before the informers start) and starts it with cc.Go.
type initFunc func(ctx context.Context, cc *controllerContext) error

// Run starts the enabled controllers and blocks until ctx is done, then
// stops them and waits for every goroutine it started. With LeaderElect it
// runs controllers only while holding the Lease and returns an error if the
// lease is lost while ctx is still live.
func Run(ctx context.Context, opts Options) error {
	if opts.Config == nil {
		return errors.New("controller manager: no API server config")
	}
	if opts.LeaseNamespace == "" {
		opts.LeaseNamespace = DefaultLeaseNamespace
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Identity == "" {
		host, err := os.Hostname()
		if err != nil {
			host = "skiff"
		}
		opts.Identity = host + "_" + utilrand.String(8)
	}
	enabled, err := enabledControllers(opts.Controllers, registry())
	if err != nil {
		return err
	}

	cfg := rest.CopyConfig(opts.Config)
	cfg.QPS, cfg.Burst = clientQPS, clientBurst
	cfg.UserAgent = "skiff-controller-manager"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("controller manager: building client: %w", err)
	}

	metaClient, err := metadata.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("controller manager: building metadata client: %w", err)
	}
	if !opts.LeaderElect {
		return runControllers(ctx, client, metaClient, opts, enabled)
	}

	// Lease renewals get their own client so a burst of controller writes
	// cannot throttle them into losing the lease.
	leCfg := rest.CopyConfig(opts.Config)
	leCfg.UserAgent = "skiff-controller-manager-leader-election"
	leCfg.Timeout = renewDeadline
	leClient, err := kubernetes.NewForConfig(leCfg)
	if err != nil {
		return fmt.Errorf("controller manager: building leader election client: %w", err)
	}
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, opts.LeaseNamespace, LeaseName,
		leClient.CoreV1(), leClient.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: opts.Identity})
	if err != nil {
		return fmt.Errorf("controller manager: building lease lock: %w", err)
	}
	var (
		runErr  error
		done    = make(chan struct{})
		started bool
		mu      sync.Mutex
	)
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   leaseDuration,
		RenewDeadline:   renewDeadline,
		RetryPeriod:     retryPeriod,
		ReleaseOnCancel: true,
		Name:            LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(leadCtx context.Context) {
				mu.Lock()
				started = true
				mu.Unlock()
				defer close(done)
				err := runControllers(leadCtx, client, metaClient, opts, enabled)
				mu.Lock()
				runErr = err
				mu.Unlock()
			},
			OnStoppedLeading: func() {
				klog.FromContext(ctx).Info("stopped leading", "identity", opts.Identity)
			},
		},
	})
	if err != nil {
		return fmt.Errorf("controller manager: leader election: %w", err)
	}
	// Run returns when ctx is done or the lease is lost; either way it
	// cancels the context OnStartedLeading got, and the controllers stop.
	elector.Run(ctx)
	mu.Lock()
	wasStarted := started
	mu.Unlock()
	if wasStarted {
		<-done
	}
	mu.Lock()
	defer mu.Unlock()
	if runErr != nil {
		return runErr
	}
	if ctx.Err() == nil {
		return errors.New("controller manager: lost leader election lease")
	}
	return nil
}

// runControllers runs one term: informers, broadcaster and controllers,
// until ctx is done or a controller fails.
func runControllers(ctx context.Context, client kubernetes.Interface, metaClient metadata.Interface, opts Options, enabled []string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	logger := klog.FromContext(ctx)

	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	defer broadcaster.Shutdown()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})

	factory := informers.NewSharedInformerFactory(client, 0)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	cc := &controllerContext{
		Client:      client,
		Metadata:    metaClient,
		Informers:   factory,
		Options:     opts,
		Clock:       opts.Clock,
		broadcaster: broadcaster,
		wg:          &wg,
		ctx:         ctx,
		errs:        errs,
	}
	// Stop order on return: controllers first (cancel, wait), then the
	// informers they read from.
	defer factory.Shutdown()
	defer wg.Wait()
	defer cancel()

	inits := registry()
	for _, name := range enabled {
		if err := inits[name](ctx, cc); err != nil {
			return fmt.Errorf("starting controller %s: %w", name, err)
		}
		logger.V(2).Info("started controller", "controller", name)
	}
	factory.Start(ctx.Done())

	select {
	case <-ctx.Done():
		return nil
	case err := <-errs:
		return err
	}
}

// enabledControllers resolves the --controllers style list against the
// registry and returns the names to start, sorted.
func enabledControllers(list []string, reg map[string]initFunc) ([]string, error) {
	all := make([]string, 0, len(reg))
	for name := range reg {
		all = append(all, name)
	}
	sort.Strings(all)
	if list == nil {
		return all, nil
	}
	star := false
	on, off := map[string]bool{}, map[string]bool{}
	for _, item := range list {
		item = strings.TrimSpace(item)
		switch {
		case item == "*":
			star = true
			continue
		case strings.HasPrefix(item, "-"):
			off[item[1:]] = true
			item = item[1:]
		default:
			on[item] = true
		}
		if _, ok := reg[item]; !ok {
			return nil, fmt.Errorf("controller manager: unknown controller %q (known: %s)", item, strings.Join(all, ", "))
		}
	}
	var out []string
	for _, name := range all {
		if off[name] {
			continue
		}
		if star || on[name] {
			out = append(out, name)
		}
	}
	return slices.Clip(out), nil
}
