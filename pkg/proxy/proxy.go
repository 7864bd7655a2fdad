// Package proxy is Skiff's service proxy, the equivalent of kube-proxy: it
// watches Services, EndpointSlices and Nodes through the API server and
// programs the node's packet filter so that connections to a Service's
// ClusterIP, NodePorts and external IPs reach one of its ready endpoints.
//
// Two modes follow upstream's: iptables (the default; iptables-restore
// into KUBE-* chains of the nat and filter tables) and nftables (one
// table, "ip kube-proxy", with verdict maps keyed on address, protocol
// and port). A sync rewrites only what changed since the last one and is
// rate-limited; a full rewrite happens at start and every SyncPeriod. The
// proxy also flushes stale UDP conntrack entries and, optionally, routes
// the other Nodes' pod ranges through their InternalIPs.
//
// Only IPv4 is programmed. Not implemented: externalTrafficPolicy and
// internalTrafficPolicy Local (both behave as Cluster), loadBalancer
// source ranges, health-check NodePorts and NodePorts on 127.0.0.1.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// Mode selects how the proxy programs the kernel.
type Mode string

// The proxy modes.
const (
	// ModeIPTables programs iptables chains with iptables-restore (on
	// this machine iptables is iptables-nft). The default.
	ModeIPTables Mode = "iptables"
	// ModeNFTables programs one nftables table with nft.
	ModeNFTables Mode = "nftables"
)

// Defaults of Config.
const (
	DefaultSyncPeriod    = time.Hour
	DefaultMinSyncPeriod = time.Second
)

// Config configures a Proxier.
type Config struct {
	// Client reaches the API server. Required by New.
	Client kubernetes.Interface
	// NodeName is the name of this machine's Node. Required when
	// NodeRoutes is set (the own pod range gets no route).
	NodeName string
	// Mode is the backend; "" means ModeIPTables. At start the proxy
	// removes what the other mode left, so switching modes is a restart.
	Mode Mode
	// ClusterCIDR is the pod network. Traffic to a ClusterIP from outside
	// it is masqueraded, like upstream with masqueradeAll=false. The zero
	// Prefix disables that rule.
	ClusterCIDR netip.Prefix
	// SyncPeriod is how often every rule is rewritten from scratch, which
	// repairs rules someone else changed. 0 means DefaultSyncPeriod.
	SyncPeriod time.Duration
	// MinSyncPeriod is the shortest time between two syncs: changes
	// within it are applied together. 0 means DefaultMinSyncPeriod.
	MinSyncPeriod time.Duration
	// NodeRoutes makes the proxy route every other Node's spec.podCIDRs
	// via its InternalIP when that address is on a directly connected
	// network ("ip route replace <podCIDR> via <nodeIP>"), and remove the
	// routes of Nodes that go away.
	NodeRoutes bool
	// Executor runs iptables, nft, ip and conntrack. nil means
	// NewExecutor(ExecOptions{HostRoot: HostRoot}).
	Executor Executor
	// HostRoot is the host's root file system when the proxy runs in a
	// container (see ExecOptions.HostRoot); used only when Executor is
	// nil.
	HostRoot string
}

func (c Config) executor() Executor {
	if c.Executor != nil {
		return c.Executor
	}
	return NewExecutor(ExecOptions{HostRoot: c.HostRoot})
}

// backend is one way of programming the kernel. Implementations are not
// safe for concurrent use.
type backend interface {
	name() string
	// sync makes the kernel's rules match services (namespace/name →
	// ports). changed lists the Services whose ports differ from the last
	// successful sync's; full (or a backend that lost track of the kernel)
	// rewrites everything. It reports whether it did a full rewrite.
	sync(ctx context.Context, services map[string][]*servicePort, changed map[string]bool, full bool) (didFull bool, err error)
	// check reports whether the rules are still in the kernel, cheaply:
	// whether someone flushed them since the last sync.
	check(ctx context.Context) (intact bool, err error)
	// cleanup removes everything of the backend from the kernel; it is
	// idempotent and succeeds when the backend's tool is not installed.
	cleanup(ctx context.Context) error
}

// checkInterval is how often the sync loop checks, with a read, that
// nobody flushed the rules (upstream's canary chains); a full sync follows
// when they were.
const checkInterval = 30 * time.Second

// sliceServiceIndex indexes EndpointSlices by "namespace/service".
const sliceServiceIndex = "service"

// Proxier programs this node's Service rules. Create it with New, start it
// with Run.
type Proxier struct {
	cfg     Config   // defaults applied; immutable
	exec    Executor // immutable
	backend backend  // used by the sync loop only
	other   backend  // the other mode, cleaned at start
	routes  *routeSyncer
	clock   clock.Clock

	factory  informers.SharedInformerFactory
	services corelisters.ServiceLister
	slices   cache.Indexer
	nodes    corelisters.NodeLister // nil without NodeRoutes
	synced   []cache.InformerSynced
	runner   *syncRunner
	running  atomic.Bool

	mu sync.Mutex
	// dirty are Services (namespace/name) whose objects changed since
	// the last sync; guarded by mu.
	dirty map[string]bool
	// nodesDirty reports a Node change since the last sync; guarded by mu.
	nodesDirty bool

	// The rest belongs to the sync loop.

	// model is the ports of every Service with rules, as last synced.
	model map[string][]*servicePort
	// needFull forces the next sync to rewrite everything.
	needFull bool
	// lastFull is when the last full rewrite started.
	lastFull time.Time
	// lastCheck is when the rules were last known to be in the kernel.
	lastCheck time.Time
	// flows are conntrack deletions waiting for the rules that make them
	// safe to apply.
	flows [][]string
	// conntrackMissing is set once the missing tool has been reported.
	conntrackMissing bool
	// afterSync, when set (by tests), is called after each successful
	// sync that changed something.
	afterSync func()
}

// New returns a Proxier for cfg. It registers informers but starts
// nothing: Run does.
func New(cfg Config) (*Proxier, error) {
	if cfg.Client == nil {
		return nil, errors.New("proxy: Config.Client is required")
	}
	if cfg.Mode == "" {
		cfg.Mode = ModeIPTables
	}
	if cfg.SyncPeriod <= 0 {
		cfg.SyncPeriod = DefaultSyncPeriod
	}
	if cfg.MinSyncPeriod <= 0 {
		cfg.MinSyncPeriod = DefaultMinSyncPeriod
	}
	if cfg.NodeRoutes && cfg.NodeName == "" {
		return nil, errors.New("proxy: Config.NodeName is required with NodeRoutes")
	}
	if cfg.ClusterCIDR.IsValid() {
		if !cfg.ClusterCIDR.Addr().Is4() {
			return nil, fmt.Errorf("proxy: cluster CIDR %s: only IPv4 is supported", cfg.ClusterCIDR)
		}
		cfg.ClusterCIDR = cfg.ClusterCIDR.Masked()
	}
	exec := cfg.executor()
	ipt := newIPTablesBackend(exec, cfg.ClusterCIDR)
	nft := newNFTBackend(exec, cfg.ClusterCIDR)
	p := &Proxier{
		cfg:   cfg,
		exec:  exec,
		clock: clock.RealClock{},
		dirty: map[string]bool{},
		model: map[string][]*servicePort{},
	}
	switch cfg.Mode {
	case ModeIPTables:
		p.backend, p.other = ipt, nft
	case ModeNFTables:
		p.backend, p.other = nft, ipt
	default:
		return nil, fmt.Errorf("proxy: unknown mode %q (want %q or %q)", cfg.Mode, ModeIPTables, ModeNFTables)
	}
	p.runner = newSyncRunner(p.syncOnce, cfg.MinSyncPeriod, min(cfg.SyncPeriod, checkInterval), p.clock)

	p.factory = informers.NewSharedInformerFactory(cfg.Client, 0)
	svcInformer := p.factory.Core().V1().Services()
	sliceInformer := p.factory.Discovery().V1().EndpointSlices()
	if err := sliceInformer.Informer().AddIndexers(cache.Indexers{sliceServiceIndex: sliceServiceKey}); err != nil {
		return nil, fmt.Errorf("proxy: index endpoint slices: %w", err)
	}
	p.services = svcInformer.Lister()
	p.slices = sliceInformer.Informer().GetIndexer()
	if _, err := svcInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    p.onService,
		UpdateFunc: func(_, obj any) { p.onService(obj) },
		DeleteFunc: p.onService,
	}); err != nil {
		return nil, fmt.Errorf("proxy: watch services: %w", err)
	}
	if _, err := sliceInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    p.onSlice,
		UpdateFunc: func(_, obj any) { p.onSlice(obj) },
		DeleteFunc: p.onSlice,
	}); err != nil {
		return nil, fmt.Errorf("proxy: watch endpoint slices: %w", err)
	}
	p.synced = []cache.InformerSynced{svcInformer.Informer().HasSynced, sliceInformer.Informer().HasSynced}
	if cfg.NodeRoutes {
		nodeInformer := p.factory.Core().V1().Nodes()
		p.nodes = nodeInformer.Lister()
		p.routes = &routeSyncer{exec: exec, nodeName: cfg.NodeName}
		if _, err := nodeInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    p.onNode,
			UpdateFunc: func(_, obj any) { p.onNode(obj) },
			DeleteFunc: p.onNode,
		}); err != nil {
			return nil, fmt.Errorf("proxy: watch nodes: %w", err)
		}
		p.synced = append(p.synced, nodeInformer.Informer().HasSynced)
	}
	return p, nil
}

// Run programs the rules and keeps them up to date until ctx is done; it
// returns nil then. Rules stay in place when Run returns (connections
// keep working while the proxy restarts); Cleanup removes them. Run may be
// called once.
func (p *Proxier) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("proxy: Run called twice")
	}
	logger := klog.FromContext(ctx).WithName("proxy").WithValues("mode", p.cfg.Mode)
	ctx = klog.NewContext(ctx, logger)
	p.factory.Start(ctx.Done())
	// Shutdown waits for the informers' goroutines, which stop with ctx.
	defer p.factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), p.synced...) {
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("proxy: informer caches did not sync")
	}
	if err := p.other.cleanup(ctx); err != nil {
		logger.Error(err, "Removing the rules of the other proxy mode", "otherMode", p.other.name())
	}
	p.mu.Lock()
	p.nodesDirty = true
	p.mu.Unlock()
	p.needFull = true
	logger.V(1).Info("Service proxy started", "clusterCIDR", p.cfg.ClusterCIDR, "nodeRoutes", p.cfg.NodeRoutes)
	p.runner.loop(ctx, func(err error) { logger.Error(err, "Syncing service rules failed; retrying") })
	return nil
}

// Cleanup removes every rule, chain, table and route the proxy of either
// mode installs, with cfg's Executor (or HostRoot). It needs no API
// server, is idempotent and succeeds when nothing is installed or a tool
// is missing. It must not run while a Proxier runs on the same machine.
func Cleanup(ctx context.Context, cfg Config) error {
	exec := cfg.executor()
	return errors.Join(
		newIPTablesBackend(exec, netip.Prefix{}).cleanup(ctx),
		newNFTBackend(exec, netip.Prefix{}).cleanup(ctx),
		cleanupRoutes(ctx, exec),
	)
}

// onService records a Service event.
func (p *Proxier) onService(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return
	}
	p.markDirty(svc.Namespace + "/" + svc.Name)
}

// onSlice records an EndpointSlice event as a change of its Service.
func (p *Proxier) onSlice(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	keys, err := sliceServiceKey(obj)
	if err != nil || len(keys) == 0 {
		return
	}
	p.markDirty(keys[0])
}

func (p *Proxier) onNode(any) {
	p.mu.Lock()
	p.nodesDirty = true
	p.mu.Unlock()
	p.runner.request()
}

func (p *Proxier) markDirty(key string) {
	p.mu.Lock()
	p.dirty[key] = true
	p.mu.Unlock()
	p.runner.request()
}

// sliceServiceKey is the index function of sliceServiceIndex: the
// slice's Service from its kubernetes.io/service-name label.
func sliceServiceKey(obj any) ([]string, error) {
	es, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, nil
	}
	name := es.Labels[discoveryv1.LabelServiceName]
	if name == "" {
		return nil, nil
	}
	return []string{es.Namespace + "/" + name}, nil
}

// syncOnce brings the kernel up to date with the informers' view: the
// changed Services, or everything when a full sync is due.
func (p *Proxier) syncOnce(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	start := p.clock.Now()
	p.mu.Lock()
	dirty, nodesDirty := p.dirty, p.nodesDirty
	p.dirty, p.nodesDirty = map[string]bool{}, false
	p.mu.Unlock()
	succeeded := false
	defer func() {
		if !succeeded {
			// Put the work back for the retry. Keys whose change
			// already reached the model compare equal next time.
			p.requeue(dirty, nodesDirty)
		}
	}()

	full := p.needFull || p.clock.Since(p.lastFull) >= p.cfg.SyncPeriod
	if !full && p.clock.Since(p.lastCheck) >= checkInterval {
		intact, err := p.backend.check(ctx)
		if err != nil {
			return fmt.Errorf("check rules: %w", err)
		}
		p.lastCheck = start
		if !intact {
			logger.Info("Service rules were removed by something else; rewriting them all")
			full = true
		}
	}
	if full {
		// Rebuild every Service from the caches: a full sync also
		// repairs a model that missed an event.
		all, err := p.services.List(labels.Everything())
		if err != nil {
			return fmt.Errorf("list services: %w", err)
		}
		for _, svc := range all {
			dirty[svc.Namespace+"/"+svc.Name] = true
		}
		for key := range p.model {
			dirty[key] = true
		}
		nodesDirty = true
	}
	changed := map[string]bool{}
	for key := range dirty {
		ports, err := p.buildPorts(key)
		if err != nil {
			return err
		}
		old := p.model[key]
		if portsEqual(old, ports) {
			continue
		}
		changed[key] = true
		p.flows = append(p.flows, conntrackFlushes(old, ports)...)
		if len(ports) == 0 {
			delete(p.model, key)
		} else {
			p.model[key] = ports
		}
	}
	wrote := false
	if full || len(changed) > 0 {
		didFull, err := p.backend.sync(ctx, p.model, changed, full)
		if err != nil {
			// The model is ahead of the kernel now; only a full sync
			// knows how to catch up.
			p.needFull = true
			return err
		}
		if didFull {
			p.needFull = false
			p.lastFull, p.lastCheck = start, start
		}
		wrote = true
		p.flushConntrack(ctx)
	}
	if p.routes != nil && nodesDirty {
		nodes, err := p.nodes.List(labels.Everything())
		if err == nil {
			err = p.routes.sync(ctx, nodes, full)
		}
		if err != nil {
			return fmt.Errorf("sync node routes: %w", err)
		}
	}
	if wrote {
		logger.V(2).Info("Synced service rules", "full", full, "changedServices", len(changed), "services", len(p.model), "elapsed", p.clock.Since(start))
		if p.afterSync != nil {
			p.afterSync()
		}
	}
	succeeded = true
	return nil
}

// requeue puts back work a failed sync did not finish.
func (p *Proxier) requeue(dirty map[string]bool, nodes bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range dirty {
		p.dirty[k] = true
	}
	p.nodesDirty = p.nodesDirty || nodes
}

// buildPorts reads one Service and its slices from the caches.
func (p *Proxier) buildPorts(key string) ([]*servicePort, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil, fmt.Errorf("bad service key %q: %w", key, err)
	}
	svc, err := p.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get service %s: %w", key, err)
	}
	objs, err := p.slices.ByIndex(sliceServiceIndex, key)
	if err != nil {
		return nil, fmt.Errorf("endpoint slices of %s: %w", key, err)
	}
	slices := make([]*discoveryv1.EndpointSlice, 0, len(objs))
	for _, o := range objs {
		if es, ok := o.(*discoveryv1.EndpointSlice); ok {
			slices = append(slices, es)
		}
	}
	return buildServicePorts(svc, slices), nil
}

// flushConntrack runs the pending conntrack deletions. Failures are
// logged, not retried: a stale UDP flow is a degradation, and retrying
// forever would hide it.
func (p *Proxier) flushConntrack(ctx context.Context) {
	flows := p.flows
	p.flows = nil
	if p.conntrackMissing && len(flows) > 0 {
		return
	}
	logger := klog.FromContext(ctx)
	for _, args := range flows {
		err := runConntrack(ctx, p.exec, args)
		if errors.Is(err, ErrToolMissing) {
			p.conntrackMissing = true
			logger.Error(err, "conntrack is not installed: stale UDP flows to removed endpoints will not be flushed")
			return
		}
		if err != nil {
			logger.Error(err, "Flushing stale conntrack entries")
		}
	}
}
