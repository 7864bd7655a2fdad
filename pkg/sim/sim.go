// Package sim implements `skiff sim`: many simulated ("hollow") nodes in
// one process, each a real kubelet (pkg/kubelet) over the simulated runtime
// (pkg/kubelet/simruntime), for scale tests of the control plane.
//
// All nodes share one API client, one pod informer, one node informer and
// one event broadcaster, so a thousand nodes cost a thousand sets of
// goroutines and small maps, not a thousand watches.
package sim

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/netip"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/skiff-project/skiff/pkg/kubelet"
	"github.com/skiff-project/skiff/pkg/kubelet/simruntime"
)

// Options configure a simulation; the zero value of a field means its
// flag default (see NewCommand), except Nodes, which must be positive.
type Options struct {
	// Kubeconfig is the path of the kubeconfig to reach the API server.
	Kubeconfig string
	// Nodes is how many nodes to simulate.
	Nodes int
	// NamePrefix names the nodes "<prefix>-<i>", i from 0.
	NamePrefix string
	// CPU, Memory, Pods and EphemeralStorage are each node's capacity.
	CPU, Memory, Pods, EphemeralStorage resource.Quantity
	// PodStartupDelay is how long containers stay ContainerCreating.
	PodStartupDelay time.Duration
	// JobDuration is how long containers of pods with restartPolicy
	// Never/OnFailure run before exiting 0.
	JobDuration time.Duration
	// QPS and Burst limit the shared API client.
	QPS   float32
	Burst int
	// Events enables recording of kubelet events.
	Events bool
	// Workers is the number of pod workers per node.
	Workers int
	// HeartbeatInterval is how often each node renews its Lease and checks
	// its status (upstream's 10 s). Tests with a short
	// --node-monitor-grace-period lower it, since the grace period must
	// exceed it.
	HeartbeatInterval time.Duration
}

// DefaultOptions returns the flag defaults.
func DefaultOptions() Options {
	return Options{
		NamePrefix:       "sim",
		CPU:              resource.MustParse("4"),
		Memory:           resource.MustParse("8Gi"),
		Pods:             resource.MustParse("110"),
		EphemeralStorage: resource.MustParse("100Gi"),
		JobDuration:      2 * time.Second,
		// A real sandbox takes ~100-200 ms to start (CRI measurements on
		// this kind of machine); without a delay the kubelet's events would
		// precede the scheduler's Scheduled event.
		PodStartupDelay: 100 * time.Millisecond,
		QPS:             1000,
		Burst:           2000,
		Events:          true,
		Workers:         1,

		HeartbeatInterval: 10 * time.Second,
	}
}

// NewCommand returns the `skiff sim` command.
func NewCommand() *cobra.Command {
	o := DefaultOptions()
	var cpu, mem, pods, storage string
	cmd := &cobra.Command{
		Use:   "sim --kubeconfig FILE --nodes N",
		Short: "Run N simulated nodes (hollow kubelets, no containers) for scale tests",
		Long: `Run N simulated nodes in one process: each registers a Node, renews its Lease,
reports node status and runs the pods bound to it through a simulated runtime
(no containers: pods become Running with fake IPs; containers of pods with
restartPolicy Never or OnFailure exit 0 after --job-duration). Stopping the
process stops the heartbeats, so the control plane marks the nodes NotReady.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			for _, q := range []struct {
				s   string
				dst *resource.Quantity
			}{{cpu, &o.CPU}, {mem, &o.Memory}, {pods, &o.Pods}, {storage, &o.EphemeralStorage}} {
				if *q.dst, err = resource.ParseQuantity(q.s); err != nil {
					return fmt.Errorf("parsing quantity %q: %w", q.s, err)
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return Run(ctx, o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig of the cluster to join (required)")
	f.IntVar(&o.Nodes, "nodes", 1, "number of simulated nodes")
	f.StringVar(&o.NamePrefix, "name-prefix", o.NamePrefix, "node names are <prefix>-<index>")
	f.StringVar(&cpu, "cpu", o.CPU.String(), "cpu capacity of each node")
	f.StringVar(&mem, "memory", o.Memory.String(), "memory capacity of each node")
	f.StringVar(&pods, "pods", o.Pods.String(), "pod capacity of each node")
	f.StringVar(&storage, "ephemeral-storage", o.EphemeralStorage.String(), "ephemeral-storage capacity of each node")
	f.DurationVar(&o.PodStartupDelay, "pod-startup-delay", o.PodStartupDelay, "how long simulated containers take to start")
	f.DurationVar(&o.JobDuration, "job-duration", o.JobDuration, "how long containers of pods with restartPolicy Never/OnFailure run before exiting 0")
	f.Float32Var(&o.QPS, "qps", o.QPS, "queries per second to the API server, all nodes together")
	f.IntVar(&o.Burst, "burst", o.Burst, "burst of queries to the API server, all nodes together")
	f.BoolVar(&o.Events, "events", o.Events, "record kubelet events (Pulled, Created, Started, NodeReady...)")
	f.IntVar(&o.Workers, "workers", o.Workers, "pod workers per node")
	f.DurationVar(&o.HeartbeatInterval, "heartbeat-interval", o.HeartbeatInterval, "how often each node renews its Lease and checks its status")
	_ = cmd.MarkFlagRequired("kubeconfig")
	return cmd
}

// Run simulates o.Nodes nodes against the cluster of o.Kubeconfig until ctx
// is done, printing registration progress to out. It returns nil after a
// clean stop, once every node's kubelet has stopped.
func Run(ctx context.Context, o Options, out io.Writer) error {
	if o.Nodes <= 0 {
		return errors.New("sim: --nodes must be positive")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	if err != nil {
		return fmt.Errorf("sim: loading kubeconfig: %w", err)
	}
	return RunWithConfig(ctx, cfg, o, out)
}

// RunWithConfig is Run with an already loaded client configuration; its
// QPS, Burst and UserAgent are overridden from o.
func RunWithConfig(ctx context.Context, cfg *rest.Config, o Options, out io.Writer) error {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = o.QPS, o.Burst
	cfg.UserAgent = "skiff-sim"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("sim: creating client: %w", err)
	}
	return run(ctx, client, clock.RealClock{}, o, out)
}

// run is RunWithConfig after the client exists; tests call it with a fake.
func run(ctx context.Context, client kubernetes.Interface, clk clock.WithTicker, o Options, out io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()

	pods := kubelet.NewPodSource(client, "")
	wg.Go(func() { pods.Run(ctx) })
	factory := informers.NewSharedInformerFactory(client, 0)
	nodes := factory.Core().V1().Nodes()
	nodeLister := nodes.Lister() // registers the informer before Start
	factory.Start(ctx.Done())
	defer factory.Shutdown()

	var events record.EventBroadcaster
	if o.Events {
		events = record.NewBroadcaster(record.WithContext(ctx))
		events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
		defer events.Shutdown()
	}

	base := prefixBase(o.NamePrefix)
	kubelets := make([]*kubelet.Kubelet, o.Nodes)
	for i := range kubelets {
		name := fmt.Sprintf("%s-%d", o.NamePrefix, i)
		nodeIP := nodeAddr(base, i)
		rt, err := simruntime.New(simruntime.Config{
			Clock:        clk,
			NodeIP:       nodeIP.String(),
			FallbackCIDR: fallbackCIDR(base, i),
			StartupDelay: o.PodStartupDelay,
			JobDuration:  o.JobDuration,
		})
		if err != nil {
			return fmt.Errorf("sim: node %s: %w", name, err)
		}
		var rec record.EventRecorder = &record.FakeRecorder{} // discards
		if events != nil {
			rec = events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: name})
		}
		k, err := kubelet.New(kubelet.Config{
			NodeName: name,
			Client:   client,
			Runtime:  rt,
			Clock:    clk,
			Recorder: rec,
			Pods:     pods,
			Nodes:    nodeLister,
			Capacity: corev1.ResourceList{
				corev1.ResourceCPU:              o.CPU,
				corev1.ResourceMemory:           o.Memory,
				corev1.ResourcePods:             o.Pods,
				corev1.ResourceEphemeralStorage: o.EphemeralStorage,
			},
			Labels:                    map[string]string{"node.skiff.io/simulated": "true"},
			LeaseRenewInterval:        o.HeartbeatInterval,
			NodeStatusUpdateFrequency: o.HeartbeatInterval,
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: nodeIP.String()},
				{Type: corev1.NodeHostName, Address: name},
			},
			SystemInfo: corev1.NodeSystemInfo{
				MachineID:     machineID(name),
				SystemUUID:    machineID(name),
				BootID:        machineID(name + "/boot"),
				KernelVersion: "simulated",
				OSImage:       "Skiff simulated node",
			},
			Workers: o.Workers,
		})
		if err != nil {
			return fmt.Errorf("sim: node %s: %w", name, err)
		}
		kubelets[i] = k
	}
	if !cache.WaitForCacheSync(ctx.Done(), nodes.Informer().HasSynced) {
		return fmt.Errorf("sim: node cache did not sync: %w", context.Cause(ctx))
	}

	errs := make(chan error, len(kubelets))
	for _, k := range kubelets {
		wg.Go(func() {
			if err := k.Run(ctx); err != nil && ctx.Err() == nil {
				errs <- err
				cancel()
			}
		})
	}
	reportProgress(ctx, kubelets, out)
	<-ctx.Done()
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if len(all) > 0 {
		return fmt.Errorf("sim: %w", errors.Join(all...))
	}
	return nil
}

// reportProgress prints "registered i/N nodes" about ten times during
// registration, then once more when all are registered; then stays quiet.
func reportProgress(ctx context.Context, kubelets []*kubelet.Kubelet, out io.Writer) {
	n := len(kubelets)
	step := max(1, n/10)
	for i, k := range kubelets {
		select {
		case <-ctx.Done():
			return
		case <-k.Registered():
		}
		if done := i + 1; done%step == 0 || done == n {
			fmt.Fprintf(out, "registered %d/%d nodes\n", done, n)
		}
	}
	klog.FromContext(ctx).V(1).Info("all simulated nodes registered", "nodes", n)
}

// prefixBase spreads simulations with different name prefixes over
// different address ranges, so two `skiff sim` processes against one
// cluster do not hand out the same node or fallback pod IPs.
func prefixBase(prefix string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(prefix))
	return int(h.Sum32() % 32)
}

// nodeAddr is node i's InternalIP, in the shared address space 100.64/10.
func nodeAddr(base, i int) netip.Addr {
	return netip.AddrFrom4([4]byte{100, byte(64 + 2*base + (i>>16)&1), byte(i >> 8), byte(i)})
}

// fallbackCIDR is the /24 node i's pods get addresses from until the
// control plane allocates a podCIDR; in 10.128/9, away from the usual
// cluster and service ranges.
func fallbackCIDR(base, i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(128 + 4*base + (i>>8)&3), byte(i), 0}), 24)
}

// machineID derives a stable 32-hex-digit ID from s.
func machineID(s string) string {
	h := fnv.New128a()
	_, _ = h.Write([]byte(s))
	return fmt.Sprintf("%x", h.Sum(nil))
}
