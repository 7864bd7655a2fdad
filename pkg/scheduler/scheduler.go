// Package scheduler is Skiff's kube-scheduler: it watches pending pods
// through client-go informers, picks a node for each with a plugin pipeline
// modelled on upstream's scheduling framework, and binds through the
// pods/binding subresource. Events are recorded as "default-scheduler".
//
// The loop does the I/O; the decision (schedulePod) is a pure function of
// the pod and a snapshot of the cluster.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	schedulinglisters "k8s.io/client-go/listers/scheduling/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/skiff-project/skiff/pkg/scheduler/internal/cache"
	"github.com/skiff-project/skiff/pkg/scheduler/internal/queue"
)

// DefaultSchedulerName is the scheduler name and event source used when
// Config.SchedulerName is empty.
const DefaultSchedulerName = v1.DefaultSchedulerName

// Config configures a Scheduler.
type Config struct {
	// Client is used for bindings, status patches, preemption and events. Required.
	Client kubernetes.Interface
	// Informers is shared with other in-process components; the caller
	// starts it (after New, or before: handlers replay). Required.
	Informers informers.SharedInformerFactory
	// SchedulerName selects pods by spec.schedulerName and is the event
	// source. Default DefaultSchedulerName.
	SchedulerName string
	// Clock drives backoff and queue flushes. Default: the real clock.
	Clock clock.WithTicker
	// Parallelism is the number of filter/score workers per cycle.
	// Default: GOMAXPROCS.
	Parallelism int
	// Recorder, when set, receives events instead of an event broadcaster
	// writing to Client. Meant for tests.
	Recorder record.EventRecorder
}

// Scheduler places pods on nodes. Create with New, then call Run once.
type Scheduler struct {
	client    kubernetes.Interface
	name      string
	clock     clock.WithTicker
	recorder  record.EventRecorder // nil until Run unless Config.Recorder
	cache     *cache.Cache
	queue     *queue.PriorityQueue
	fwk       *frameworkImpl
	snapshot  *cache.Snapshot // used only by the scheduling loop goroutine
	podLister corelisters.PodLister
	pcLister  schedulinglisters.PriorityClassLister
	synced    []toolscache.InformerSynced

	// bindings tracks in-flight binding goroutines; Run waits for them.
	bindings sync.WaitGroup
}

// New builds a scheduler and registers its informer event handlers.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Client == nil || cfg.Informers == nil {
		return nil, errors.New("scheduler: Client and Informers are required")
	}
	if cfg.SchedulerName == "" {
		cfg.SchedulerName = DefaultSchedulerName
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Parallelism <= 0 {
		cfg.Parallelism = runtime.GOMAXPROCS(0)
	}
	s := &Scheduler{
		client:   cfg.Client,
		name:     cfg.SchedulerName,
		clock:    cfg.Clock,
		recorder: cfg.Recorder,
		cache:    cache.New(),
		snapshot: cache.NewEmptySnapshot(),
	}
	// The queue needs the plugins' events and the framework the queue's
	// nominator; build the framework with a nil nominator, then wire it.
	s.fwk = newDefaultFramework(cfg.Client, nil, cfg.Parallelism)
	s.queue = queue.New(cfg.Clock, queue.Options{PluginEvents: s.fwk.events})
	s.fwk.nominator = s.queue
	s.fwk.recorder = cfg.Recorder

	pods := cfg.Informers.Core().V1().Pods()
	nodes := cfg.Informers.Core().V1().Nodes()
	pcs := cfg.Informers.Scheduling().V1().PriorityClasses()
	s.podLister = pods.Lister()
	s.pcLister = pcs.Lister()
	s.synced = []toolscache.InformerSynced{pods.Informer().HasSynced, nodes.Informer().HasSynced, pcs.Informer().HasSynced}
	if err := s.addEventHandlers(pods.Informer(), nodes.Informer()); err != nil {
		return nil, fmt.Errorf("scheduler: registering event handlers: %w", err)
	}
	return s, nil
}

// Run waits for the informer caches, then schedules pods one at a time
// until ctx is done. It returns after every goroutine it started (queue
// flushes, bindings, event broadcaster) has stopped. Leader election is the
// caller's business. Run must be called at most once.
func (s *Scheduler) Run(ctx context.Context) error {
	if s.recorder == nil {
		b := record.NewBroadcaster(record.WithContext(ctx))
		b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: s.client.CoreV1().Events("")})
		defer b.Shutdown()
		s.recorder = b.NewRecorder(scheme.Scheme, v1.EventSource{Component: s.name})
		s.fwk.recorder = s.recorder
	}
	if !toolscache.WaitForCacheSync(ctx.Done(), s.synced...) {
		return fmt.Errorf("scheduler: waiting for informer caches: %w", ctx.Err())
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(2)
	go func() {
		defer wg.Done()
		s.queue.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		<-ctx.Done()
		s.queue.Close()
	}()

	for {
		qp, ok := s.queue.Pop()
		if !ok {
			break
		}
		s.scheduleOne(ctx, qp)
	}
	s.bindings.Wait()
	return nil
}
