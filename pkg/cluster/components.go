package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"

	"github.com/skiff-project/skiff/pkg/controllermanager"
	"github.com/skiff-project/skiff/pkg/scheduler"
)

// runningComponents are the in-process clients of the API server (the
// controller manager and the scheduler) started by RunServer.
type runningComponents struct {
	wg sync.WaitGroup
}

// wait blocks until every component returned (after ctx is cancelled).
func (c *runningComponents) wait() { c.wg.Wait() }

// startComponents starts the in-process components against the API server
// at cfg.LocalURL(), through the same HTTPS API every other client uses;
// they stop when ctx is cancelled. A component that fails is logged and
// restarted after a pause, so one bad sync cannot take the server down.
func startComponents(ctx context.Context, cfg ServerConfig, pki *PKI) *runningComponents {
	rc := &runningComponents{}
	loopback := pki.LoopbackConfig(cfg.LocalURL())
	// Components speak protobuf, like upstream's: cheaper to encode and
	// decode than JSON on the hot paths (pod creates, bindings, watches).
	loopback.ContentType = "application/vnd.kubernetes.protobuf"
	loopback.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	run := func(name string, fn func(ctx context.Context) error) {
		rc.wg.Add(1)
		go func() {
			defer rc.wg.Done()
			for ctx.Err() == nil {
				if err := fn(ctx); err != nil && ctx.Err() == nil {
					klog.ErrorS(err, "component failed; restarting in 1s", "component", name)
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}()
	}
	run("controller-manager", func(ctx context.Context) error {
		return controllermanager.Run(ctx, controllermanager.Options{
			Config:                              loopback,
			LeaderElect:                         true,
			NodeMonitorGracePeriod:              cfg.NodeMonitorGracePeriod,
			DefaultNotReadyTolerationSeconds:    cfg.DefaultNotReadyTolerationSeconds,
			DefaultUnreachableTolerationSeconds: cfg.DefaultUnreachableTolerationSeconds,
			ClusterCIDR:                         cfg.ClusterCIDR.String(),
		})
	})
	run("scheduler", func(ctx context.Context) error {
		return RunScheduler(ctx, SchedulerOptions{Config: loopback, LeaderElect: true})
	})
	if !cfg.DisableAgent {
		run("agent", func(ctx context.Context) error { return runAgent(ctx, cfg, loopback, pki) })
	}
	run("addons", func(ctx context.Context) error {
		client, err := kubernetes.NewForConfig(loopback)
		if err != nil {
			return fmt.Errorf("add-ons client: %w", err)
		}
		dns, err := ClusterDNSIP(cfg.ServiceClusterIPRange)
		if err != nil {
			return err
		}
		runAddons(ctx, client, addonConfig{
			Image:         SkiffImage(),
			APIServerURL:  "https://" + net.JoinHostPort(cfg.AdvertiseAddress.String(), strconv.Itoa(cfg.SecurePort)),
			ClusterCIDR:   cfg.ClusterCIDR.String(),
			DNSIP:         dns.String(),
			ClusterDomain: "cluster.local",
			Disabled:      cfg.Disable,
			ProxyMode:     cfg.ProxyMode,
		})
		return nil
	})
	return rc
}

// SchedulerOptions configures RunScheduler.
type SchedulerOptions struct {
	// Config reaches the API server. Required.
	Config *rest.Config
	// LeaderElect makes the scheduler schedule only while it holds the
	// kube-system/kube-scheduler Lease, so several servers can run.
	LeaderElect bool
	// QPS and Burst of the scheduler's client; zero means 1000 and 2000:
	// binding is one request per pod, and throughput is the point.
	QPS   float32
	Burst int
}

// RunScheduler runs the scheduler until ctx is done.
func RunScheduler(ctx context.Context, opts SchedulerOptions) error {
	if opts.Config == nil {
		return errors.New("scheduler: no API server config")
	}
	cfg := rest.CopyConfig(opts.Config)
	cfg.QPS, cfg.Burst = opts.QPS, opts.Burst
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 1000, 2000
	}
	cfg.UserAgent = "skiff-scheduler"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("scheduler client: %w", err)
	}
	schedule := func(ctx context.Context) error {
		factory := informers.NewSharedInformerFactory(client, 0)
		s, err := scheduler.New(scheduler.Config{Client: client, Informers: factory})
		if err != nil {
			return err
		}
		factory.Start(ctx.Done())
		defer factory.Shutdown()
		return s.Run(ctx)
	}
	if !opts.LeaderElect {
		return schedule(ctx)
	}
	return RunLeading(ctx, opts.Config, "kube-scheduler", schedule)
}

// RunLeading runs fn while this process holds the kube-system Lease name,
// like upstream's leader election: fn's context is cancelled when the lease
// is lost. It returns when ctx is done, or with an error when the lease was
// lost while ctx is still live.
func RunLeading(ctx context.Context, config *rest.Config, name string, fn func(ctx context.Context) error) error {
	cfg := rest.CopyConfig(config)
	cfg.UserAgent = name + "-leader-election"
	cfg.Timeout = 10 * time.Second
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("leader election client: %w", err)
	}
	host, err := os.Hostname()
	if err != nil {
		host = "skiff"
	}
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, "kube-system", name, client.CoreV1(), client.CoordinationV1(),
		resourcelock.ResourceLockConfig{Identity: host + "_" + rand.String(8)})
	if err != nil {
		return fmt.Errorf("lease lock: %w", err)
	}
	var (
		fnErr   error
		mu      sync.Mutex
		started bool
		done    = make(chan struct{})
	)
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: lock, LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
		ReleaseOnCancel: true, Name: name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(leadCtx context.Context) {
				mu.Lock()
				started = true
				mu.Unlock()
				defer close(done)
				err := fn(leadCtx)
				mu.Lock()
				fnErr = err
				mu.Unlock()
			},
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	// Run returns when ctx is done or the lease is lost; the callback runs
	// in its own goroutine, so wait for fn before reporting.
	elector.Run(ctx)
	mu.Lock()
	wasStarted := started
	mu.Unlock()
	if wasStarted {
		<-done
	}
	mu.Lock()
	defer mu.Unlock()
	if fnErr != nil {
		return fnErr
	}
	if ctx.Err() == nil {
		return fmt.Errorf("%s: lost leader election lease", name)
	}
	return nil
}
