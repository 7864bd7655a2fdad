package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/skiff-project/skiff/pkg/kubelet"
	"github.com/skiff-project/skiff/pkg/sim"
)

// schedulingOptions are the flags of `skiff bench scheduling`.
type schedulingOptions struct {
	client        clientOptions
	nodes         int
	replicas      int
	podsOnly      bool
	nodeCPU       string
	nodeMemory    string
	nodePods      string
	podCPU        string
	podMemory     string
	simQPS        float32
	simBurst      int
	simWorkers    int
	nodeEvents    bool
	createWorkers int
	serverPID     int
	nodesTimeout  time.Duration
	timeout       time.Duration
	cleanup       time.Duration
}

// schedulingQuantities are the parsed resource flags.
type schedulingQuantities struct {
	nodeCPU, nodeMemory, nodePods, podCPU, podMemory resource.Quantity
}

func (o *schedulingOptions) validate() (schedulingQuantities, error) {
	var q schedulingQuantities
	var errs []error
	if o.nodes < 1 || o.replicas < 1 {
		errs = append(errs, errors.New("--nodes and --replicas must be at least 1"))
	}
	for _, f := range []struct {
		name, value string
		dst         *resource.Quantity
	}{
		{"--node-cpu", o.nodeCPU, &q.nodeCPU}, {"--node-memory", o.nodeMemory, &q.nodeMemory}, {"--node-pods", o.nodePods, &q.nodePods},
		{"--pod-cpu", o.podCPU, &q.podCPU}, {"--pod-memory", o.podMemory, &q.podMemory},
	} {
		v, err := resource.ParseQuantity(f.value)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.name, err))
			continue
		}
		*f.dst = v
	}
	if o.simWorkers < 1 || o.createWorkers < 1 {
		errs = append(errs, errors.New("--sim-workers and --create-workers must be at least 1"))
	}
	if o.nodesTimeout <= 0 || o.timeout <= 0 || o.cleanup <= 0 {
		errs = append(errs, errors.New("--nodes-timeout, --timeout and --cleanup-timeout must be positive"))
	}
	return q, errors.Join(errs...)
}

func newSchedulingCommand(g *globalOptions) *cobra.Command {
	o := &schedulingOptions{}
	cmd := &cobra.Command{
		Use:   "scheduling --nodes N --replicas R",
		Short: "Measure scheduling throughput and pod startup on simulated nodes",
		Long: `Registers --nodes simulated nodes (the real kubelet code over the simulated
runtime of "skiff sim", run inside this process, named bench-<random>-<i>,
containers starting without delay) and waits until all are Ready. Then it
creates, in a temporary namespace, a Deployment of --replicas pods requesting
--pod-cpu and --pod-memory (or, with --pods-only, as many bare pods, which
measures the scheduler without the ReplicaSet controller), and watches the
pods from that moment:

  created    first event about the pod
  scheduled  first event with spec.nodeName set
  running    first event with phase Running and condition Ready True

For each it reports the time from the Deployment's creation (the first pod
create with --pods-only) until the last pod got there, the overall rate
(pods / that time) and the peak rate over 1 s windows; and the latency per
pod from created to scheduled and to running (also from creationTimestamp,
upstream's pod startup SLI, which has a 1 s resolution). With -o json it
adds the per-second timeline.

When the API server is a local "skiff server" (--server-pid, or found in
/proc by its --secure-port), it also reports the server's resident memory
(VmRSS before the pods and after all are running, peak VmHWM) and the CPU
time it used while the pods started; the CPU of this process, which runs the
simulated kubelets, is reported too.

At the end it deletes the namespace, waits until it is gone, stops the
simulated nodes and deletes their Node and Lease objects, also when
interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := o.validate()
			if err != nil {
				return fmt.Errorf("invalid flags: %w", err)
			}
			cfg, err := o.client.restConfig()
			if err != nil {
				return err
			}
			return run(cmd, g, func(ctx context.Context, progress io.Writer) (report, error) {
				return runScheduling(ctx, cfg, o, q, progress)
			})
		},
	}
	fs := cmd.Flags()
	o.client.addFlags(fs)
	fs.IntVar(&o.nodes, "nodes", 100, "Simulated nodes to register.")
	fs.IntVar(&o.replicas, "replicas", 10000, "Pods to create: the Deployment's replicas, or bare pods with --pods-only.")
	fs.BoolVar(&o.podsOnly, "pods-only", false, "Create bare pods instead of a Deployment (measures the scheduler alone).")
	fs.StringVar(&o.nodeCPU, "node-cpu", "4", "CPU capacity of each simulated node.")
	fs.StringVar(&o.nodeMemory, "node-memory", "8Gi", "Memory capacity of each simulated node.")
	fs.StringVar(&o.nodePods, "node-pods", "110", "Pod capacity of each simulated node.")
	fs.StringVar(&o.podCPU, "pod-cpu", "10m", "CPU request of each pod.")
	fs.StringVar(&o.podMemory, "pod-memory", "10Mi", "Memory request of each pod.")
	fs.Float32Var(&o.simQPS, "sim-qps", 0, "Client-side rate limit of the simulated nodes' shared API client. Default: 50 per node, like the kubelet's kubeAPIQPS.")
	fs.IntVar(&o.simBurst, "sim-burst", 0, "Burst of the simulated nodes' shared API client. Default: 100 per node.")
	fs.IntVar(&o.simWorkers, "sim-workers", 1, "Pod workers per simulated node.")
	fs.BoolVar(&o.nodeEvents, "node-events", false,
		"Let the simulated kubelets record events (Pulled, Created, Started...) as real ones do. Off by default: the simulated nodes share one event "+
			"broadcaster that writes serially, so with thousands of pods its backlog outlives the run.")
	fs.IntVar(&o.createWorkers, "create-workers", 64, "Concurrent creates with --pods-only.")
	fs.IntVar(&o.serverPID, "server-pid", 0, "PID of the skiff server, for its memory and CPU. Default: the local skiff server listening on the kubeconfig's port, if any; -1 disables.")
	fs.DurationVar(&o.nodesTimeout, "nodes-timeout", 5*time.Minute, "Longest wait for the nodes to be Ready.")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Minute, "Longest wait for all pods to be Running.")
	fs.DurationVar(&o.cleanup, "cleanup-timeout", 10*time.Minute, "Longest wait for the namespace deletion at the end.")
	return cmd
}

// schedulingReport is the result of `skiff bench scheduling`.
type schedulingReport struct {
	Server string `json:"server"`
	// Mode is "deployment" or "pods".
	Mode         string              `json:"mode"`
	Namespace    string              `json:"namespace"`
	NodePrefix   string              `json:"nodePrefix"`
	Nodes        int                 `json:"nodes"`
	Replicas     int                 `json:"replicas"`
	NodeCapacity corev1.ResourceList `json:"nodeCapacity"`
	PodRequests  corev1.ResourceList `json:"podRequests"`
	// NodesReadySeconds is from starting the simulated nodes to all of them
	// Ready and untainted.
	NodesReadySeconds float64 `json:"nodesReadySeconds"`
	// CreateRequestsSeconds is how long the creates of the bare pods took
	// (--pods-only).
	CreateRequestsSeconds float64     `json:"createRequestsSeconds,omitempty"`
	Pods                  podResults  `json:"pods"`
	ServerProcess         *serverStat `json:"serverProcess,omitempty"`
	// BenchCPUSeconds is the CPU time of this process (the simulated
	// kubelets and the watch) from the start of the pods to all running.
	BenchCPUSeconds float64 `json:"benchCPUSeconds"`
	// CleanupSeconds is from the namespace deletion to it being gone.
	CleanupSeconds float64 `json:"cleanupSeconds"`
	// CleanupErrors are the failures to delete what the benchmark created;
	// they do not invalidate the measurements, so the report still prints.
	CleanupErrors []string `json:"cleanupErrors,omitempty"`
}

// serverStat is the API server process's resource use.
type serverStat struct {
	PID int `json:"pid"`
	// RSSBeforeKiB is VmRSS once the nodes were Ready, before the pods.
	RSSBeforeKiB int64 `json:"rssBeforeKiB"`
	// RSSAfterKiB is VmRSS once all pods were running.
	RSSAfterKiB int64 `json:"rssAfterKiB"`
	// PeakRSSKiB is VmHWM then: the peak over the process's life.
	PeakRSSKiB int64 `json:"peakRSSKiB"`
	// CPUSeconds is the user+system CPU time from the start of the pods to
	// all running.
	CPUSeconds float64 `json:"cpuSeconds"`
}

func (r *schedulingReport) writeTable(w io.Writer) error {
	what := fmt.Sprintf("Deployment of %d replicas", r.Replicas)
	if r.Mode == "pods" {
		what = fmt.Sprintf("%d bare pods", r.Replicas)
	}
	fmt.Fprintf(w, "Scheduling %s (%s CPU, %s memory each) on %d simulated nodes (%s CPU, %s memory, %s pods each), %s\n",
		what, qty(r.PodRequests, corev1.ResourceCPU), qty(r.PodRequests, corev1.ResourceMemory), r.Nodes,
		qty(r.NodeCapacity, corev1.ResourceCPU), qty(r.NodeCapacity, corev1.ResourceMemory), qty(r.NodeCapacity, corev1.ResourcePods), r.Server)
	fmt.Fprintf(w, "nodes Ready %.1fs after start\n\n", r.NodesReadySeconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ALL PODS (time from start)\tPODS\tTIME s\tOVERALL pods/s\tPEAK pods/s (1s)\t")
	for _, m := range []struct {
		name string
		m    milestone
	}{{"created", r.Pods.Created}, {"scheduled", r.Pods.Scheduled}, {"Running and Ready", r.Pods.Running}} {
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.0f\t%d\t\n", m.name, m.m.Pods, m.m.LastSeconds, m.m.OverallPerSecond, m.m.PeakPerSecond)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	if r.Pods.Counts.Failed > 0 {
		fmt.Fprintf(w, "%d pods failed\n", r.Pods.Counts.Failed)
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "LATENCY PER POD\tCOUNT\tP50 ms\tP90 ms\tP99 ms\tMAX ms\t")
	for _, s := range []struct {
		name string
		s    Summary
	}{{"created → scheduled", r.Pods.SchedulingLatency}, {"created → running", r.Pods.StartupLatency}, {"creationTimestamp → running", r.Pods.StartupFromCreationTimestamp}} {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t\n", s.name, s.s.Count, s.s.P50Ms, s.s.P90Ms, s.s.P99Ms, s.s.MaxMs)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	fmt.Fprintln(w)
	if s := r.ServerProcess; s != nil {
		fmt.Fprintf(w, "server pid %d: RSS %.0f MiB before the pods, %.0f MiB after, peak %.0f MiB; %.1f CPU s while the pods started\n",
			s.PID, mib(s.RSSBeforeKiB), mib(s.RSSAfterKiB), mib(s.PeakRSSKiB), s.CPUSeconds)
	}
	fmt.Fprintf(w, "this process (simulated kubelets): %.1f CPU s while the pods started\n", r.BenchCPUSeconds)
	if r.CreateRequestsSeconds > 0 {
		fmt.Fprintf(w, "bare pod creates took %.2fs\n", r.CreateRequestsSeconds)
	}
	fmt.Fprintf(w, "cleanup: namespace deleted in %.1fs\n", r.CleanupSeconds)
	for _, e := range r.CleanupErrors {
		fmt.Fprintf(w, "cleanup failed: %s\n", e)
	}
	return nil
}

// qty formats l[name], or "-" if absent.
func qty(l corev1.ResourceList, name corev1.ResourceName) string {
	if q, ok := l[name]; ok {
		return q.String()
	}
	return "-"
}

// runScheduling runs the scheduling benchmark. Whatever happens, it deletes
// the namespace and the nodes it created, with a fresh deadline if ctx is
// cancelled; failures to do so are in the report's CleanupErrors (and
// printed to progress) when the measurement itself succeeded.
func runScheduling(ctx context.Context, cfg *rest.Config, o *schedulingOptions, q schedulingQuantities, progress io.Writer) (*schedulingReport, error) {
	client, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	suffix := utilrand.String(5)
	rep := &schedulingReport{
		Server:       cfg.Host,
		Mode:         "deployment",
		Namespace:    "skiff-bench-scheduling-" + suffix,
		NodePrefix:   "bench-" + suffix,
		Nodes:        o.nodes,
		Replicas:     o.replicas,
		NodeCapacity: corev1.ResourceList{corev1.ResourceCPU: q.nodeCPU, corev1.ResourceMemory: q.nodeMemory, corev1.ResourcePods: q.nodePods},
		PodRequests:  corev1.ResourceList{corev1.ResourceCPU: q.podCPU, corev1.ResourceMemory: q.podMemory},
	}
	if o.podsOnly {
		rep.Mode = "pods"
	}
	pid := o.serverPID
	if pid == 0 {
		pid = findServerPID(cfg.Host)
		if pid == 0 {
			fmt.Fprintf(progress, "scheduling: no local skiff server serves %s; no server memory or CPU (see --server-pid)\n", cfg.Host)
		}
	}

	// Cleanup must run after an interrupt too, so it gets its own context.
	cleanupCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), o.cleanup)
	}
	cleanupFailed := func(cerr error) {
		if cerr == nil {
			return
		}
		fmt.Fprintf(progress, "scheduling: cleanup: %v\n", cerr)
		rep.CleanupErrors = append(rep.CleanupErrors, cerr.Error())
	}
	nodes := startSimNodes(ctx, cfg, o, q, rep.NodePrefix, progress)
	defer func() {
		cctx, cancel := cleanupCtx()
		defer cancel()
		cleanupFailed(nodes.stop(cctx, client))
	}()
	ready, err := nodes.waitReady(ctx, client, o.nodesTimeout, progress)
	if err != nil {
		return nil, err
	}
	rep.NodesReadySeconds = ready.Seconds()

	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: rep.Namespace}}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create namespace: %w", err)
	}
	defer func() {
		cctx, cancel := cleanupCtx()
		defer cancel()
		d, cerr := deleteNamespace(cctx, client, rep.Namespace, progress)
		rep.CleanupSeconds = d.Seconds()
		cleanupFailed(cerr)
	}()

	var before procSample
	if pid > 0 {
		if before, err = readProc(pid); err != nil {
			return nil, err
		}
	}
	benchCPU0 := selfCPU()
	results, createSeconds, err := runPods(ctx, client, o, rep, progress)
	if err != nil {
		return nil, err
	}
	rep.Pods, rep.CreateRequestsSeconds = results, createSeconds
	rep.BenchCPUSeconds = (selfCPU() - benchCPU0).Seconds()
	if pid > 0 {
		after, err := readProc(pid)
		if err != nil {
			return nil, err
		}
		rep.ServerProcess = &serverStat{PID: pid, RSSBeforeKiB: before.rssKiB, RSSAfterKiB: after.rssKiB, PeakRSSKiB: after.hwmKiB,
			CPUSeconds: (after.cpu - before.cpu).Seconds()}
	}
	return rep, nil
}

// runPods creates the pods, watches them until all are running and
// returns the analysis, and with --pods-only the time the creates took.
func runPods(ctx context.Context, client kubernetes.Interface, o *schedulingOptions, rep *schedulingReport, progress io.Writer) (podResults, float64, error) {
	pods := client.CoreV1().Pods(rep.Namespace)
	list, err := pods.List(ctx, metav1.ListOptions{})
	if err != nil {
		return podResults{}, 0, fmt.Errorf("list pods before watching: %w", err)
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	// A RetryWatcher resumes from the last resourceVersion when the server
	// ends a watch, so no event is lost on long runs.
	w, err := watchtools.NewRetryWatcherWithContext(watchCtx, list.ResourceVersion, podWatcher{pods})
	if err != nil {
		return podResults{}, 0, fmt.Errorf("watch pods: %w", err)
	}
	defer w.Stop()

	start := time.Now()
	tracker := newPodTracker(start)
	var (
		running  atomic.Int64
		counts   atomic.Pointer[podCounts]
		watchErr = make(chan error, 1)
		wg       sync.WaitGroup
	)
	counts.Store(&podCounts{})
	wg.Go(func() {
		for ev := range w.ResultChan() {
			switch ev.Type {
			case watch.Added, watch.Modified:
				if pod, ok := ev.Object.(*corev1.Pod); ok {
					tracker.observe(pod, time.Now())
					c := tracker.counts()
					counts.Store(&c)
					running.Store(int64(c.Running))
				}
			case watch.Error:
				watchErr <- fmt.Errorf("pod watch: %w", apierrors.FromObject(ev.Object))
				return
			}
		}
	})
	stop := func() podResults {
		stopWatch()
		w.Stop()
		wg.Wait()
		return tracker.results()
	}

	template := podTemplate(rep)
	var createSeconds float64
	if o.podsOnly {
		err = parallel(ctx, o.replicas, o.createWorkers, func(ctx context.Context, i int) error {
			ctx, cancel := context.WithTimeout(ctx, o.client.timeout)
			defer cancel()
			pod := &corev1.Pod{ObjectMeta: *template.ObjectMeta.DeepCopy(), Spec: *template.Spec.DeepCopy()}
			pod.Name = fmt.Sprintf("pod-%d", i)
			if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("create pod %s: %w", pod.Name, err)
			}
			return nil
		})
		createSeconds = time.Since(start).Seconds()
	} else {
		replicas := int32(o.replicas)
		_, err = client.AppsV1().Deployments(rep.Namespace).Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "bench", Labels: template.Labels},
			Spec: appsv1.DeploymentSpec{
				Replicas: &replicas,
				Selector: &metav1.LabelSelector{MatchLabels: template.Labels},
				Template: template,
			},
		}, metav1.CreateOptions{})
		if err != nil {
			err = fmt.Errorf("create deployment: %w", err)
		}
	}
	if err != nil {
		stop()
		return podResults{}, 0, err
	}

	deadline := time.NewTimer(o.timeout)
	defer deadline.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for last := time.Now(); running.Load() < int64(o.replicas); {
		select {
		case <-ctx.Done():
			stop()
			return podResults{}, 0, fmt.Errorf("interrupted while waiting for the pods: %w", ctx.Err())
		case err := <-watchErr:
			stop()
			return podResults{}, 0, err
		case <-deadline.C:
			c := *counts.Load()
			stop()
			return podResults{}, 0, fmt.Errorf("after %s only %d of %d pods were running (%d created, %d scheduled, %d failed)",
				o.timeout, c.Running, o.replicas, c.Created, c.Scheduled, c.Failed)
		case now := <-tick.C:
			if now.Sub(last) >= 5*time.Second {
				c := *counts.Load()
				fmt.Fprintf(progress, "scheduling: %5.0fs: %d created, %d scheduled, %d running of %d\n",
					now.Sub(start).Seconds(), c.Created, c.Scheduled, c.Running, o.replicas)
				last = now
			}
		}
	}
	return stop(), createSeconds, nil
}

// podTemplate is the pod of the benchmark: one pause container requesting
// rep.PodRequests, deleted without grace.
func podTemplate(rep *schedulingReport) corev1.PodTemplateSpec {
	labels := map[string]string{"app.kubernetes.io/name": "skiff-bench-scheduling", "app.kubernetes.io/managed-by": "skiff-bench"}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{
				Name:      "pause",
				Image:     "registry.k8s.io/pause:3.10",
				Resources: corev1.ResourceRequirements{Requests: rep.PodRequests.DeepCopy()},
			}},
		},
	}
}

// podWatcher adapts a pod client to the interface of a RetryWatcher.
type podWatcher struct {
	pods interface {
		Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
	}
}

func (p podWatcher) WatchWithContext(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	return p.pods.Watch(ctx, opts)
}

// simNodes are the simulated nodes, run by a goroutine that stop ends.
type simNodes struct {
	prefix string
	n      int
	cancel context.CancelFunc
	done   chan struct{} // closed when sim.RunWithConfig returned
	err    error         // set before done is closed
	start  time.Time
}

// startSimNodes starts o.nodes simulated nodes named prefix-<i>.
// They keep running when ctx is cancelled, until stop, so that they can
// finish the deletion of the pods during cleanup.
func startSimNodes(ctx context.Context, cfg *rest.Config, o *schedulingOptions, q schedulingQuantities, prefix string, progress io.Writer) *simNodes {
	so := sim.DefaultOptions()
	so.Nodes = o.nodes
	so.NamePrefix = prefix
	so.CPU, so.Memory, so.Pods = q.nodeCPU, q.nodeMemory, q.nodePods
	so.PodStartupDelay = 0
	so.QPS, so.Burst = o.simQPS, o.simBurst
	if so.QPS == 0 {
		so.QPS = 50 * float32(o.nodes)
	}
	if so.Burst == 0 {
		so.Burst = 100 * o.nodes
	}
	so.Events = o.nodeEvents
	so.Workers = o.simWorkers
	simCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &simNodes{prefix: prefix, n: o.nodes, cancel: cancel, done: make(chan struct{}), start: time.Now()}
	fmt.Fprintf(progress, "scheduling: starting %d simulated nodes %s-*\n", o.nodes, prefix)
	go func() {
		defer close(s.done)
		s.err = sim.RunWithConfig(simCtx, cfg, so, prefixWriter{w: progress, prefix: "scheduling: sim: "})
	}()
	return s
}

// waitReady waits until every node is Ready and has no NoSchedule or
// NoExecute taint, and returns the time since the nodes were started.
func (s *simNodes) waitReady(ctx context.Context, client kubernetes.Interface, timeout time.Duration, progress io.Writer) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	ready := 0
	for {
		// resourceVersion 0 lets the server answer from its watch cache.
		list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		if err == nil {
			ready = 0
			for i := range list.Items {
				if strings.HasPrefix(list.Items[i].Name, s.prefix+"-") && schedulable(&list.Items[i]) {
					ready++
				}
			}
			if ready == s.n {
				d := time.Since(s.start)
				fmt.Fprintf(progress, "scheduling: %d nodes Ready after %.1fs\n", s.n, d.Seconds())
				return d, nil
			}
		}
		select {
		case <-s.done:
			return 0, fmt.Errorf("simulated nodes stopped before they were Ready: %w", s.err)
		case <-ctx.Done():
			return 0, fmt.Errorf("only %d of %d nodes Ready after %s (last list error: %v): %w", ready, s.n, timeout, err, ctx.Err())
		case <-tick.C:
		}
	}
}

// schedulable reports whether node is Ready without NoSchedule or
// NoExecute taints (such as node.kubernetes.io/not-ready).
func schedulable(node *corev1.Node) bool {
	if node.Spec.Unschedulable {
		return false
	}
	for _, t := range node.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
			return false
		}
	}
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// stop stops the simulated kubelets, then deletes their Nodes and Leases
// (stopped first, so that no kubelet registers its node again).
func (s *simNodes) stop(ctx context.Context, client kubernetes.Interface) error {
	s.cancel()
	select {
	case <-s.done:
	case <-ctx.Done():
		return fmt.Errorf("simulated nodes did not stop: %w", ctx.Err())
	}
	var errs []error
	if s.err != nil {
		errs = append(errs, fmt.Errorf("simulated nodes: %w", s.err))
	}
	err := parallel(ctx, s.n, 32, func(ctx context.Context, i int) error {
		name := fmt.Sprintf("%s-%d", s.prefix, i)
		if err := client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete node %s: %w", name, err)
		}
		err := client.CoordinationV1().Leases(kubelet.NodeLeaseNamespace).Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete lease %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// deleteNamespace deletes ns and waits until it is gone, so that the
// simulated kubelets, still running, finish the pods' deletion.
func deleteNamespace(ctx context.Context, client kubernetes.Interface, ns string, progress io.Writer) (time.Duration, error) {
	start := time.Now()
	fmt.Fprintf(progress, "scheduling: deleting namespace %s\n", ns)
	if err := client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("delete namespace %s: %w", ns, err)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		_, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return time.Since(start), fmt.Errorf("namespace %s not gone (last: %v): %w", ns, err, ctx.Err())
		case <-tick.C:
		}
	}
}

// prefixWriter prefixes each Write (the sim prints whole lines) with
// prefix.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := io.WriteString(p.w, p.prefix); err != nil {
		return 0, err
	}
	return p.w.Write(b)
}

// procSample is the memory and CPU time of a process at one moment.
type procSample struct {
	rssKiB, hwmKiB int64         // VmRSS, VmHWM
	cpu            time.Duration // user + system
}

// readProc samples process pid from /proc.
func readProc(pid int) (procSample, error) {
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	var s procSample
	var err error
	if s.rssKiB, err = procStatusKiB(filepath.Join(dir, "status"), "VmRSS"); err != nil {
		return s, fmt.Errorf("server process: %w", err)
	}
	if s.hwmKiB, err = procStatusKiB(filepath.Join(dir, "status"), "VmHWM"); err != nil {
		return s, fmt.Errorf("server process: %w", err)
	}
	if s.cpu, err = procCPU(filepath.Join(dir, "stat")); err != nil {
		return s, fmt.Errorf("server process: %w", err)
	}
	return s, nil
}

// userHZ is the unit of the CPU times in /proc/<pid>/stat: USER_HZ, 100 on
// every Linux architecture Go supports.
const userHZ = 100

// procCPU returns utime+stime of a /proc/<pid>/stat file.
func procCPU(path string) (time.Duration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	// The command name, field 2, is in parentheses and may hold spaces;
	// fields 14 and 15 (utime, stime) count from after it.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: no command name", path)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: %d fields", path, len(f)+2)
	}
	var ticks int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: parse CPU time %q: %w", path, v, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// selfCPU returns the user+system CPU time of this process, or 0 if it
// cannot be read.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// findServerPID returns the PID of the one local process "skiff server"
// whose --secure-port is the port of host, or 0 if there is no such
// process, or several.
func findServerPID(host string) int {
	u, err := url.Parse(host)
	if err != nil {
		return 0
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	found := 0
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if isSkiffServer(strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"), port) {
			if found != 0 {
				return 0
			}
			found = pid
		}
	}
	return found
}

// isSkiffServer reports whether args is the command line of "skiff server"
// serving on port (6443 when no --secure-port is given).
func isSkiffServer(args []string, port string) bool {
	if len(args) < 2 || filepath.Base(args[0]) != "skiff" || args[1] != "server" {
		return false
	}
	got := "6443"
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--secure-port="); ok {
			got = v
		} else if a == "--secure-port" && i+1 < len(args) {
			got = args[i+1]
		}
	}
	return got == port
}
