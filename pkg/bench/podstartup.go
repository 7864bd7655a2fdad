package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/skiff-project/skiff/pkg/cluster"
)

// Workloads of `skiff bench pods`.
const (
	workloadSleep = "sleep" // busybox running sleep: no probes
	workloadWeb   = "web"   // the "nginx:1.25" test web server with an HTTP readiness probe
)

// podsOptions are the flags of `skiff bench pods`.
type podsOptions struct {
	client        clientOptions
	skiffBin      string
	serverFlags   []string
	workDir       string
	keep          bool
	node          string
	count         int
	workload      string
	image         string
	createWorkers int
	rate          float64
	kubeletPID    int
	nodeTimeout   time.Duration
	timeout       time.Duration
	cleanup       time.Duration
}

func (o *podsOptions) validate() error {
	var errs []error
	if o.count < 1 || o.createWorkers < 1 {
		errs = append(errs, errors.New("--count and --create-workers must be at least 1"))
	}
	if o.rate < 0 {
		errs = append(errs, errors.New("--rate must not be negative"))
	}
	if o.workload != workloadSleep && o.workload != workloadWeb {
		errs = append(errs, fmt.Errorf("--workload %q: must be %s or %s", o.workload, workloadSleep, workloadWeb))
	}
	if o.nodeTimeout <= 0 || o.timeout <= 0 || o.cleanup <= 0 {
		errs = append(errs, errors.New("--node-timeout, --timeout and --cleanup-timeout must be positive"))
	}
	return errors.Join(errs...)
}

func newPodsCommand(g *globalOptions) *cobra.Command {
	o := &podsOptions{}
	cmd := &cobra.Command{
		Use:   "pods [--skiff-bin PATH] [--count N]",
		Short: "Measure pod startup latency on a real node",
		Long: `Creates --count pods on one real node (containers in containerd) at once,
from --create-workers concurrent requests (or at --rate pods per second), in
a temporary namespace, and watches them:

  scheduled  first event with spec.nodeName set
  running    first event with phase Running
  ready      first event with condition Ready True

The latency of each pod is from just before its create request to the watch
event that showed the milestone; the table gives p50/p90/p99/max, and how
many pods per second got Running and Ready (count / time from the first
create to the last pod). It also reports creationTimestamp → Ready
lastTransitionTime from the pods' status, upstream's pod startup SLI (1 s
resolution). The upstream SLO is p99 ≤ 5 s.

Workloads: "sleep" (busybox sleep; Ready as soon as it runs) or "web" (the
"nginx:1.25" test web server with an HTTP readiness probe every second). The
images must be on the node (a Skiff agent builds both at start).

The kubelet's resident memory (VmRSS) is read before the pods and with all
of them Ready: of --kubelet-pid, else of the one local "skiff agent", else
of the local "skiff server" serving the cluster (which runs the kubelet
in-process; the report says which).

With --skiff-bin, the benchmark starts its own cluster in a temporary data
directory under --work-dir: "skiff server --disable-agent" (without the
add-ons, on a pod range no route of this machine uses) and a separate "skiff
agent" whose kubelet runs in a process of its own, with its own node name,
CNI bridge and cgroup root, so other Skiff nodes on the machine are left
alone. It waits until the agent is idle (its image builds done) before the
pods. At the end it stops both and runs "skiff agent --cleanup" for those
names. Otherwise it uses the cluster of --kubeconfig and the node of --node
(or its only schedulable node).

At the end it deletes the pods, waits until they are gone (the kubelet
stopped their containers) and deletes the namespace, also when interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return fmt.Errorf("invalid flags: %w", err)
			}
			return run(cmd, g, func(ctx context.Context, progress io.Writer) (report, error) {
				return runPodStartup(ctx, o, progress)
			})
		},
	}
	fs := cmd.Flags()
	o.client.addFlags(fs)
	fs.StringVar(&o.skiffBin, "skiff-bin", "", "Start a cluster of this skiff binary (server and agent) instead of using --kubeconfig.")
	fs.StringArrayVar(&o.serverFlags, "server-flag", nil, "Extra flag for the server started with --skiff-bin, e.g. --server-flag=--log-level=2 (repeatable).")
	fs.StringVar(&o.workDir, "work-dir", os.TempDir(), "Where --skiff-bin's cluster gets its temporary data directory.")
	fs.BoolVar(&o.keep, "keep", false, "Keep --skiff-bin's data directory and logs (containerd is cleaned up all the same).")
	fs.StringVar(&o.node, "node", "", "Node to run the pods on. Default: the cluster's only schedulable node.")
	fs.IntVar(&o.count, "count", 100, "Pods to create.")
	fs.StringVar(&o.workload, "workload", workloadSleep, `"sleep" (busybox) or "web" (nginx:1.25 test image with a readiness probe).`)
	fs.StringVar(&o.image, "image", "", "Image of the pods. Default: docker.io/library/busybox:1.36 for sleep, docker.io/library/nginx:1.25 for web.")
	fs.IntVar(&o.createWorkers, "create-workers", 100, "Concurrent pod creates.")
	fs.Float64Var(&o.rate, "rate", 0, "Create the pods at this many per second instead of all at once: the latency a node sustains at that rate.")
	fs.IntVar(&o.kubeletPID, "kubelet-pid", 0, "PID of the process running the node's kubelet, for its memory. Default: found locally (see above); -1 disables.")
	fs.DurationVar(&o.nodeTimeout, "node-timeout", 5*time.Minute, "Longest wait for the node to be Ready (with --skiff-bin: the server's start, image builds included).")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "Longest wait for all pods to be Ready.")
	fs.DurationVar(&o.cleanup, "cleanup-timeout", 5*time.Minute, "Longest wait for the pods' deletion at the end.")
	return cmd
}

// podsReport is the result of `skiff bench pods`.
type podsReport struct {
	Server    string `json:"server"`
	Node      string `json:"node"`
	Namespace string `json:"namespace"`
	Workload  string `json:"workload"`
	Image     string `json:"image"`
	Count     int    `json:"count"`
	// Rate is the pods created per second; 0 means all at once.
	Rate float64 `json:"rate,omitempty"`
	// CreateSeconds is how long the create requests took, all together.
	CreateSeconds float64          `json:"createSeconds"`
	Startup       podStartupResult `json:"startup"`
	Kubelet       *kubeletStat     `json:"kubelet,omitempty"`
	// DeleteSeconds is from the pod deletions to all pods gone.
	DeleteSeconds float64 `json:"deleteSeconds"`
	// CleanupErrors are failures to remove what the benchmark created;
	// they do not invalidate the measurements.
	CleanupErrors []string `json:"cleanupErrors,omitempty"`
}

// kubeletStat is the resource use of the process running the kubelet.
type kubeletStat struct {
	PID int `json:"pid"`
	// Process says what the process is: "skiff agent", or "skiff server"
	// when the kubelet runs inside the server (its RSS then includes the
	// control plane).
	Process string `json:"process"`
	// RSSBeforeKiB is VmRSS before the pods were created; RSSWithPodsKiB
	// once all were Ready; PeakRSSKiB is VmHWM then.
	RSSBeforeKiB   int64 `json:"rssBeforeKiB"`
	RSSWithPodsKiB int64 `json:"rssWithPodsKiB"`
	PeakRSSKiB     int64 `json:"peakRSSKiB"`
	// CPUSeconds is the user+system CPU time while the pods started.
	CPUSeconds float64 `json:"cpuSeconds"`
}

func (r *podsReport) writeTable(w io.Writer) error {
	s := r.Startup
	how := "all at once"
	if r.Rate > 0 {
		how = fmt.Sprintf("%g/s", r.Rate)
	}
	fmt.Fprintf(w, "Pod startup: %d %s pods (%s) created %s on node %s, %s\n", r.Count, r.Workload, r.Image, how, r.Node, r.Server)
	fmt.Fprintf(w, "creates took %.2fs; all Running %.2fs and all Ready %.2fs after the first create: %.1f pods/s Running, %.1f pods/s Ready\n\n",
		r.CreateSeconds, s.AllRunningSeconds, s.AllReadySeconds, s.RunningPerSecond, s.ReadyPerSecond)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "LATENCY PER POD\tCOUNT\tP50 ms\tP90 ms\tP99 ms\tMAX ms\t")
	for _, row := range []struct {
		name string
		s    Summary
	}{
		{"create → scheduled", s.Scheduled},
		{"create → Running", s.Running},
		{"create → Ready", s.Ready},
		{"creationTimestamp → Ready transition (1 s resolution)", s.ReadyFromTimestamps},
	} {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t\n", row.name, row.s.Count, row.s.P50Ms, row.s.P90Ms, row.s.P99Ms, row.s.MaxMs)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	if s.Failed > 0 {
		fmt.Fprintf(w, "%d pods failed\n", s.Failed)
	}
	fmt.Fprintln(w)
	if k := r.Kubelet; k != nil {
		what := "kubelet (" + k.Process + ")"
		if k.Process == "skiff server" {
			what = "skiff server (control plane and kubelet in one process)"
		}
		fmt.Fprintf(w, "%s pid %d: RSS %.1f MiB before the pods, %.1f MiB with %d pods, peak %.1f MiB; %.1f CPU s while they started\n",
			what, k.PID, mib(k.RSSBeforeKiB), mib(k.RSSWithPodsKiB), r.Count, mib(k.PeakRSSKiB), k.CPUSeconds)
	}
	fmt.Fprintf(w, "cleanup: pods deleted and gone in %.1fs\n", r.DeleteSeconds)
	for _, e := range r.CleanupErrors {
		fmt.Fprintf(w, "cleanup failed: %s\n", e)
	}
	return nil
}

// podStartupResult is the analysis of a podStartupTracker.
type podStartupResult struct {
	// Scheduled, Running and Ready are the latencies from each pod's
	// create request to the watch event showing the milestone.
	Scheduled Summary `json:"scheduled"`
	Running   Summary `json:"running"`
	Ready     Summary `json:"ready"`
	// ReadyFromTimestamps is from creationTimestamp to the Ready
	// condition's lastTransitionTime, both from the API (1 s resolution).
	ReadyFromTimestamps Summary `json:"readyFromTimestamps"`
	// AllRunningSeconds and AllReadySeconds are from the first create
	// request to the last pod reaching the milestone; the rates are the
	// pods that reached it divided by that time.
	AllRunningSeconds float64 `json:"allRunningSeconds"`
	AllReadySeconds   float64 `json:"allReadySeconds"`
	RunningPerSecond  float64 `json:"runningPerSecond"`
	ReadyPerSecond    float64 `json:"readyPerSecond"`
	Failed            int     `json:"failed"`
}

// podMilestones is when one pod reached each milestone.
type podMilestones struct {
	created                   time.Time // just before the create request; zero until known
	scheduled, running, ready time.Time // observed; zero until seen
	// fromTimestamps is creationTimestamp → Ready lastTransitionTime.
	fromTimestamps time.Duration
	failed         bool
}

// podStartupTracker folds create times and watch observations into each
// pod's milestones. It does no I/O and reads no clock, so the analysis is
// a pure function of what it is fed. Not safe for concurrent use.
type podStartupTracker struct {
	pods                      map[string]*podMilestones
	running, ready, failed, n int
}

func newPodStartupTracker() *podStartupTracker {
	return &podStartupTracker{pods: map[string]*podMilestones{}}
}

func (t *podStartupTracker) get(name string) *podMilestones {
	p, ok := t.pods[name]
	if !ok {
		p = &podMilestones{}
		t.pods[name] = p
	}
	return p
}

// created records that the create request of pod name was sent at at.
func (t *podStartupTracker) created(name string, at time.Time) {
	t.get(name).created = at
}

// observe records the state of pod as seen by the watch at now.
func (t *podStartupTracker) observe(pod *corev1.Pod, now time.Time) {
	p := t.get(pod.Name)
	if p.scheduled.IsZero() && pod.Spec.NodeName != "" {
		p.scheduled = now
	}
	if p.running.IsZero() && pod.Status.Phase == corev1.PodRunning {
		p.running = now
		t.running++
	}
	if p.ready.IsZero() {
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				p.ready = now
				p.fromTimestamps = c.LastTransitionTime.Sub(pod.CreationTimestamp.Time)
				t.ready++
			}
		}
	}
	if !p.failed && pod.Status.Phase == corev1.PodFailed {
		p.failed = true
		t.failed++
	}
}

// counts returns how many pods were seen Running, Ready and Failed.
func (t *podStartupTracker) counts() (running, ready, failed int) {
	return t.running, t.ready, t.failed
}

// results analyses the pods whose create time is known.
func (t *podStartupTracker) results() podStartupResult {
	var sched, running, ready, fromTS []time.Duration
	var first, lastRunning, lastReady time.Time
	var r podStartupResult
	for _, p := range t.pods {
		if p.created.IsZero() {
			continue
		}
		if first.IsZero() || p.created.Before(first) {
			first = p.created
		}
		if !p.scheduled.IsZero() {
			sched = append(sched, p.scheduled.Sub(p.created))
		}
		if !p.running.IsZero() {
			running = append(running, p.running.Sub(p.created))
			if p.running.After(lastRunning) {
				lastRunning = p.running
			}
		}
		if !p.ready.IsZero() {
			ready = append(ready, p.ready.Sub(p.created))
			fromTS = append(fromTS, p.fromTimestamps)
			if p.ready.After(lastReady) {
				lastReady = p.ready
			}
		}
		if p.failed {
			r.Failed++
		}
	}
	r.Scheduled, r.Running, r.Ready, r.ReadyFromTimestamps = Summarize(sched), Summarize(running), Summarize(ready), Summarize(fromTS)
	if !lastRunning.IsZero() {
		r.AllRunningSeconds = lastRunning.Sub(first).Seconds()
		r.RunningPerSecond = rate(len(running), r.AllRunningSeconds)
	}
	if !lastReady.IsZero() {
		r.AllReadySeconds = lastReady.Sub(first).Seconds()
		r.ReadyPerSecond = rate(len(ready), r.AllReadySeconds)
	}
	return r
}

// rate is n/seconds, or 0 for a zero time.
func rate(n int, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return float64(n) / seconds
}

// podStartupPod returns pod i of the benchmark on node.
func podStartupPod(o *podsOptions, ns, node string, i int) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns,
			Name:      fmt.Sprintf("pod-%d", i),
			Labels:    map[string]string{"app.kubernetes.io/name": "skiff-bench-pods", "app.kubernetes.io/managed-by": "skiff-bench"},
		},
		Spec: corev1.PodSpec{
			// Through the scheduler, like any pod, but onto one node.
			NodeSelector:                  map[string]string{corev1.LabelHostname: node},
			TerminationGracePeriodSeconds: new(int64(5)),
			// No ServiceAccount token volume: the benchmark measures the
			// kubelet and the runtime, not the token and root CA
			// publishing of the control plane.
			AutomountServiceAccountToken: new(false),
		},
	}
	c := corev1.Container{Name: "main", Image: o.image, ImagePullPolicy: corev1.PullIfNotPresent}
	switch o.workload {
	case workloadWeb:
		c.ReadinessProbe = &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(80)}},
			PeriodSeconds: 1,
		}
	default:
		// Exits at once on SIGTERM (a bare sleep as PID 1 would ignore
		// it and wait for the grace period), so the cleanup is quick.
		c.Command = []string{"sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"}
	}
	pod.Spec.Containers = []corev1.Container{c}
	return pod
}

// runPodStartup runs the benchmark. Whatever happens after the namespace
// exists, it deletes the pods and the namespace (and with --skiff-bin
// stops and cleans up the server), with a fresh deadline when ctx is
// cancelled; such failures go to the report's CleanupErrors.
func runPodStartup(ctx context.Context, o *podsOptions, progress io.Writer) (_ *podsReport, err error) {
	if o.image == "" {
		o.image = "docker.io/library/busybox:1.36"
		if o.workload == workloadWeb {
			o.image = "docker.io/library/nginx:1.25"
		}
	}
	rep := &podsReport{Workload: o.workload, Image: o.image, Count: o.count, Rate: o.rate, Namespace: "skiff-bench-pods-" + utilrand.String(5)}
	cleanupCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), o.cleanup)
	}
	cleanupFailed := func(cerr error) {
		if cerr == nil {
			return
		}
		fmt.Fprintf(progress, "pods: cleanup: %v\n", cerr)
		rep.CleanupErrors = append(rep.CleanupErrors, cerr.Error())
	}

	var cfg *rest.Config
	var benchAgent *benchCluster // with --skiff-bin
	kubeletPID, kubeletProcess := o.kubeletPID, ""
	if o.skiffBin != "" {
		bc, err := startBenchCluster(ctx, o, progress)
		if err != nil {
			return nil, err
		}
		defer func() { cleanupFailed(bc.stop(o, progress)) }()
		cfg, o.node, benchAgent = bc.config, bc.node, bc
		if kubeletPID == 0 {
			kubeletPID, kubeletProcess = bc.agent.cmd.Process.Pid, "skiff agent"
		}
	} else {
		if cfg, err = o.client.restConfig(); err != nil {
			return nil, err
		}
	}
	o.client.apply(cfg)
	rep.Server = cfg.Host
	client, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	if kubeletPID == 0 {
		kubeletPID, kubeletProcess = findKubeletPID(cfg.Host)
		if kubeletPID == 0 {
			fmt.Fprintf(progress, "pods: no local skiff agent or server found; no kubelet memory (see --kubelet-pid)\n")
		}
	}
	if kubeletProcess == "" && kubeletPID > 0 {
		kubeletProcess = processName(kubeletPID)
	}
	node, err := pickNode(ctx, client, o.node, o.nodeTimeout, progress)
	if err != nil {
		return nil, err
	}
	rep.Node = node.Name
	if benchAgent != nil {
		if err := benchAgent.waitQuiet(ctx, time.Minute, progress); err != nil {
			return nil, err
		}
	}
	hostname := node.Labels[corev1.LabelHostname]
	if hostname == "" {
		return nil, fmt.Errorf("node %s has no %s label", node.Name, corev1.LabelHostname)
	}

	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: rep.Namespace}}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create namespace: %w", err)
	}
	defer func() {
		cctx, cancel := cleanupCtx()
		defer cancel()
		d, cerr := deletePods(cctx, client, rep.Namespace, progress)
		rep.DeleteSeconds = d.Seconds()
		cleanupFailed(cerr)
		if cerr := client.CoreV1().Namespaces().Delete(cctx, rep.Namespace, metav1.DeleteOptions{}); cerr != nil && !apierrors.IsNotFound(cerr) {
			cleanupFailed(fmt.Errorf("delete namespace %s: %w", rep.Namespace, cerr))
		}
	}()

	var before procSample
	if kubeletPID > 0 {
		if before, err = readProc(kubeletPID); err != nil {
			return nil, fmt.Errorf("kubelet process: %w", err)
		}
	}
	tracker, createSeconds, err := startPods(ctx, client, o, rep.Namespace, hostname, progress)
	if err != nil {
		return nil, err
	}
	rep.CreateSeconds = createSeconds
	rep.Startup = tracker.results()
	if kubeletPID > 0 {
		after, err := readProc(kubeletPID)
		if err != nil {
			return nil, fmt.Errorf("kubelet process: %w", err)
		}
		rep.Kubelet = &kubeletStat{PID: kubeletPID, Process: kubeletProcess, RSSBeforeKiB: before.rssKiB, RSSWithPodsKiB: after.rssKiB,
			PeakRSSKiB: after.hwmKiB, CPUSeconds: (after.cpu - before.cpu).Seconds()}
	}
	return rep, nil
}

// startPods creates the pods and watches them until all are Ready; it
// returns the tracker and how long the creates took.
func startPods(ctx context.Context, client kubernetes.Interface, o *podsOptions, ns, hostname string, progress io.Writer) (*podStartupTracker, float64, error) {
	pods := client.CoreV1().Pods(ns)
	list, err := pods.List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, 0, fmt.Errorf("list pods before watching: %w", err)
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	w, err := watchtools.NewRetryWatcherWithContext(watchCtx, list.ResourceVersion, podWatcher{pods})
	if err != nil {
		return nil, 0, fmt.Errorf("watch pods: %w", err)
	}
	defer w.Stop()

	var (
		mu       sync.Mutex // guards tracker
		tracker  = newPodStartupTracker()
		watchErr = make(chan error, 1)
		wg       sync.WaitGroup
	)
	wg.Go(func() {
		for ev := range w.ResultChan() {
			switch ev.Type {
			case watch.Added, watch.Modified:
				if pod, ok := ev.Object.(*corev1.Pod); ok {
					now := time.Now()
					mu.Lock()
					tracker.observe(pod, now)
					mu.Unlock()
				}
			case watch.Error:
				watchErr <- fmt.Errorf("pod watch: %w", apierrors.FromObject(ev.Object))
				return
			}
		}
	})
	stop := func() {
		stopWatch()
		w.Stop()
		wg.Wait()
	}
	counts := func() (int, int, int) {
		mu.Lock()
		defer mu.Unlock()
		return tracker.counts()
	}

	fmt.Fprintf(progress, "pods: creating %d %s pods in %s\n", o.count, o.workload, ns)
	start := time.Now()
	err = parallel(ctx, o.count, o.createWorkers, func(ctx context.Context, i int) error {
		pod := podStartupPod(o, ns, hostname, i)
		if o.rate > 0 {
			// Pod i's slot is i/rate seconds after the start.
			slot := start.Add(time.Duration(float64(i) / o.rate * float64(time.Second)))
			if err := sleep(ctx, time.Until(slot)); err != nil {
				return err
			}
		}
		ctx, cancel := context.WithTimeout(ctx, o.client.timeout)
		defer cancel()
		mu.Lock()
		tracker.created(pod.Name, time.Now())
		mu.Unlock()
		if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create pod %s: %w", pod.Name, err)
		}
		return nil
	})
	createSeconds := time.Since(start).Seconds()
	if err != nil {
		stop()
		return nil, 0, err
	}

	deadline := time.NewTimer(o.timeout)
	defer deadline.Stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	last := time.Now()
	for {
		running, ready, failed := counts()
		if ready+failed >= o.count {
			break
		}
		select {
		case <-ctx.Done():
			stop()
			return nil, 0, fmt.Errorf("interrupted while waiting for the pods: %w", ctx.Err())
		case err := <-watchErr:
			stop()
			return nil, 0, err
		case <-deadline.C:
			stop()
			return nil, 0, fmt.Errorf("after %s only %d of %d pods were Ready (%d Running, %d failed)", o.timeout, ready, o.count, running, failed)
		case now := <-tick.C:
			if now.Sub(last) >= 2*time.Second {
				fmt.Fprintf(progress, "pods: %5.1fs: %d Running, %d Ready of %d\n", now.Sub(start).Seconds(), running, ready, o.count)
				last = now
			}
		}
	}
	stop()
	running, ready, failed := counts()
	fmt.Fprintf(progress, "pods: %5.1fs: %d Running, %d Ready, %d failed of %d\n", time.Since(start).Seconds(), running, ready, failed, o.count)
	return tracker, createSeconds, nil
}

// pickNode returns the node named name, or the only schedulable node when
// name is empty, waiting up to timeout for it to be schedulable.
func pickNode(ctx context.Context, client kubernetes.Interface, name string, timeout time.Duration, progress io.Writer) (*corev1.Node, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	start, lastReport := time.Now(), time.Now()
	var last string
	for {
		list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			last = err.Error()
		} else {
			var ok []*corev1.Node
			for i := range list.Items {
				n := &list.Items[i]
				if (name == "" || n.Name == name) && schedulable(n) {
					ok = append(ok, n)
				}
			}
			switch {
			case len(ok) == 1:
				fmt.Fprintf(progress, "pods: node %s is Ready (waited %.1fs)\n", ok[0].Name, time.Since(start).Seconds())
				return ok[0], nil
			case len(ok) > 1:
				return nil, fmt.Errorf("%d schedulable nodes: choose one with --node", len(ok))
			}
			last = fmt.Sprintf("%d nodes, none schedulable", len(list.Items))
			if name != "" {
				last = fmt.Sprintf("node %s not schedulable yet", name)
			}
		}
		if time.Since(lastReport) >= 10*time.Second {
			fmt.Fprintf(progress, "pods: waiting for a Ready node (%s)\n", last)
			lastReport = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no schedulable node after %s (%s): %w", timeout, last, ctx.Err())
		case <-tick.C:
		}
	}
}

// deletePods deletes every pod of ns and waits until all are gone from the
// API, that is until the kubelet stopped their containers.
func deletePods(ctx context.Context, client kubernetes.Interface, ns string, progress io.Writer) (time.Duration, error) {
	start := time.Now()
	fmt.Fprintf(progress, "pods: deleting the pods\n")
	if err := client.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		return 0, fmt.Errorf("delete pods: %w", err)
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	last := time.Now()
	for {
		list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err == nil && len(list.Items) == 0 {
			d := time.Since(start)
			fmt.Fprintf(progress, "pods: all pods gone after %.1fs\n", d.Seconds())
			return d, nil
		}
		if err == nil && time.Since(last) >= 2*time.Second {
			fmt.Fprintf(progress, "pods: %5.1fs: %d pods left\n", time.Since(start).Seconds(), len(list.Items))
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return time.Since(start), fmt.Errorf("pods of %s not gone (last: %v): %w", ns, err, ctx.Err())
		case <-tick.C:
		}
	}
}

// findKubeletPID returns the local process running the kubelet of the
// cluster at host: the one "skiff agent", else the "skiff server" serving
// host (kubelet in-process); 0 if none.
func findKubeletPID(host string) (int, string) {
	dirs, err := os.ReadDir("/proc")
	if err == nil {
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
			args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
			if len(args) >= 2 && filepath.Base(args[0]) == "skiff" && args[1] == "agent" && !hasArg(args, "--cleanup") {
				if found != 0 {
					found = -1
					break
				}
				found = pid
			}
		}
		if found > 0 {
			return found, "skiff agent"
		}
	}
	if pid := findServerPID(host); pid > 0 {
		return pid, "skiff server"
	}
	return 0, ""
}

// processName describes process pid from its command line ("skiff agent").
func processName(pid int) string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return "pid " + strconv.Itoa(pid)
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if len(args) >= 2 {
		return filepath.Base(args[0]) + " " + args[1]
	}
	return filepath.Base(args[0])
}

func hasArg(args []string, arg string) bool {
	for _, a := range args {
		if a == arg || strings.HasPrefix(a, arg+"=") {
			return true
		}
	}
	return false
}

// benchCluster is what --skiff-bin starts: "skiff server --disable-agent"
// and a separate "skiff agent" (the kubelet in a process of its own) with
// names of its own (node, CNI bridge, cgroup root, pod range) and no
// kubelet API port, so that it disturbs no other Skiff node of the machine
// and cleans up only what it created.
type benchCluster struct {
	bin        string
	root       string // temporary directory: data dir and logs
	dataDir    string // the server's, and the agent's <data-dir>/agent
	node       string
	bridge     string
	cgroupRoot string
	server     *serverProcess
	agent      *serverProcess // nil until started
	config     *rest.Config
}

// startBenchCluster starts the server, waits until it serves, then starts
// the agent. On error nothing is left running.
func startBenchCluster(ctx context.Context, o *podsOptions, progress io.Writer) (_ *benchCluster, err error) {
	bin, err := filepath.Abs(o.skiffBin)
	if err != nil {
		return nil, fmt.Errorf("--skiff-bin: %w", err)
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("--skiff-bin: %w", err)
	}
	clusterCIDR, err := freeClusterCIDR()
	if err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp(o.workDir, "skiff-bench-pods-")
	if err != nil {
		return nil, fmt.Errorf("create work dir: %w", err)
	}
	suffix := utilrand.String(5)
	c := &benchCluster{
		bin: bin, root: root, dataDir: filepath.Join(root, "data"),
		node: "skiff-bench-" + suffix, bridge: "skb" + suffix, cgroupRoot: "/skiff-bench-" + suffix,
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	// The add-ons (kube-proxy, CoreDNS) would program this machine's
	// iptables next to another Skiff node's and compete with the
	// benchmark for the CPU; the benchmark's pods need neither.
	serverArgs := append([]string{"server", "--data-dir", c.dataDir, "--secure-port", strconv.Itoa(port), "--disable-agent",
		"--cluster-cidr", clusterCIDR, "--disable", strings.Join(cluster.Addons(), ",")}, o.serverFlags...)
	if c.server, err = startProcess(bin, serverArgs, c.dataDir, port, c.dataDir+".log", progress); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.stop(o, progress))
		}
	}()
	d, err := c.server.waitReady(ctx, 10*time.Millisecond, o.nodeTimeout)
	if err != nil {
		return c, err
	}
	fmt.Fprintf(progress, "pods: server ready after %.1fs\n", d.Seconds())
	if c.config, err = c.server.restConfig(); err != nil {
		return c, err
	}
	agentArgs := []string{"agent", "--kubeconfig", c.server.kubeconfigPath(), "--data-dir", c.dataDir, "--node-name", c.node,
		"--bridge-name", c.bridge, "--cgroup-root", c.cgroupRoot}
	if c.agent, err = startProcess(bin, agentArgs, c.dataDir, 0, filepath.Join(root, "agent.log"), progress); err != nil {
		return c, err
	}
	return c, nil
}

// startProcess starts bin with args, its output appended to logPath.
func startProcess(bin string, args []string, dataDir string, port int, logPath string, progress io.Writer) (*serverProcess, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	defer logFile.Close() // the child has its own copy
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	p := &serverProcess{cmd: cmd, dataDir: dataDir, port: port, logPath: logPath, done: make(chan struct{})}
	fmt.Fprintf(progress, "pods: starting %s %s (log %s)\n", bin, strings.Join(args, " "), logPath)
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s %s: %w", bin, args[0], err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// waitQuiet waits until the agent uses less than a tenth of a CPU over two
// consecutive seconds (its start-up work, such as building its images, is
// done), or for at most timeout.
func (c *benchCluster) waitQuiet(ctx context.Context, timeout time.Duration, progress io.Writer) error {
	path := filepath.Join("/proc", strconv.Itoa(c.agent.cmd.Process.Pid), "stat")
	start := time.Now()
	prev, err := procCPU(path)
	if err != nil {
		return fmt.Errorf("agent process: %w", err)
	}
	quiet := 0
	for quiet < 2 && time.Since(start) < timeout {
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
		cur, err := procCPU(path)
		if err != nil {
			return fmt.Errorf("agent process: %w", err)
		}
		if cur-prev < 100*time.Millisecond {
			quiet++
		} else {
			quiet = 0
		}
		prev = cur
	}
	fmt.Fprintf(progress, "pods: agent idle after %.1fs\n", time.Since(start).Seconds())
	return nil
}

// stop stops the agent and the server, then tears down the agent's
// containerd, pods, bridge and cgroups with "skiff agent --cleanup" (which
// touches only the names given to this agent), and removes the temporary
// directory unless --keep.
func (c *benchCluster) stop(o *podsOptions, progress io.Writer) error {
	var errs []error
	if c.agent != nil {
		if err := c.agent.stop(stopGrace); err != nil {
			errs = append(errs, fmt.Errorf("agent: %w", err))
		}
	}
	if err := c.server.stop(stopGrace); err != nil {
		errs = append(errs, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.cleanup)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.bin, "agent", "--cleanup", "--data-dir", c.dataDir,
		"--bridge-name", c.bridge, "--cgroup-root", c.cgroupRoot).CombinedOutput()
	if err != nil {
		errs = append(errs, fmt.Errorf("%s agent --cleanup: %w: %s", c.bin, err, strings.TrimSpace(string(out))))
	}
	if o.keep || len(errs) > 0 {
		fmt.Fprintf(progress, "pods: data and logs kept in %s\n", c.root)
	} else if err := os.RemoveAll(c.root); err != nil {
		errs = append(errs, fmt.Errorf("remove work dir: %w", err))
	}
	return errors.Join(errs...)
}

// freeClusterCIDR picks a 10.x.0.0/16 (x in 200..249) that no route of this
// machine overlaps, for the pod ranges of --skiff-bin's cluster, so that
// its bridge never shadows another node's pods.
func freeClusterCIDR() (string, error) {
	out, err := exec.Command("ip", "-4", "route", "show").Output()
	if err != nil {
		return "", fmt.Errorf("list routes: %w", err)
	}
	var used []netip.Prefix
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == "default" {
			continue
		}
		if !strings.Contains(f[0], "/") {
			f[0] += "/32"
		}
		if p, err := netip.ParsePrefix(f[0]); err == nil {
			used = append(used, p)
		}
	}
	start := rand.IntN(50)
	for i := range 50 {
		cand := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(200 + (start+i)%50), 0, 0}), 16)
		free := true
		for _, u := range used {
			free = free && !u.Overlaps(cand)
		}
		if free {
			return cand.String(), nil
		}
	}
	return "", errors.New("no free 10.x.0.0/16 (x in 200..249) for the pod range")
}
